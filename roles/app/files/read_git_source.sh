#!/bin/sh
# On the control node: the files of app_git_repo at app_git_version that decide how the app
# is built (package.json, lockfiles, .nvmrc, .node-version, next.config, at any depth), and
# nothing else, into DEST. Prints DEST when done; on any failure, the reason on stderr and
# exit status 1, and DEST is left as it was.
# Usage: read_git_source.sh REPO VERSION DEST
set -eu
repo=$1 version=$2 dest=$3
work="$dest.partial.$$"
trap 'rm -rf -- "$work"' EXIT
rm -rf -- "$work"
mkdir -p -- "$work"
cd -- "$work"
# Never wait for a password: a repository the control node cannot read is left to the host.
export GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND="${GIT_SSH_COMMAND:-ssh -o BatchMode=yes}"
git init -q .
git remote add origin "$repo"
git config core.sparseCheckout true
cat > .git/info/sparse-checkout <<'PATTERNS'
package.json
pnpm-lock.yaml
pnpm-workspace.yaml
package-lock.json
npm-shrinkwrap.json
yarn.lock
.yarnrc.yml
bun.lock
bun.lockb
.nvmrc
.node-version
next.config.*
!node_modules/
PATTERNS
timeout 120 git fetch -q --depth 1 --filter=blob:none origin "$version" 2>/dev/null \
  || timeout 120 git fetch -q --depth 1 origin "$version"
git checkout -q FETCH_HEAD
rm -rf -- .git
cd /
rm -rf -- "$dest"
mv -- "$work" "$dest"
trap - EXIT
echo "$dest"
