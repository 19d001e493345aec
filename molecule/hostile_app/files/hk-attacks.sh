#!/bin/sh
# What code running as the app user tries once it runs (molecule/hostile_app): an RCE in the
# app. One line per attempt: "<name> written" or "<name> refused". Run inside PM2's
# sandbox (nsenter into its mount namespace) and as the plain app user.
cd "${1:-/srv/workbot}" || exit 1
try() {
  name=$1
  shift
  if (eval "$*") >/dev/null 2>&1; then echo "$name written"; else echo "$name refused"; fi
}
# The first chunk in the order ls lists them; empty when the glob matches nothing.
set -- shared/static/_next/static/chunks/*.js
if [ -e "$1" ]; then chunk=$1; else chunk=; fi
try h1-static-link 'mv shared/static/_next shared/static/_next.hk && ln -s /etc shared/static/_next'
try release-code 'echo "//pwned" >> current/dist/server.js'
try release-new-file 'touch current/hk-rce'
try release-env 'echo "X=\"1\"" >> current/.hardenkit.env'
try static-asset "echo '//pwned' >> '$chunk'"
try static-new-file 'touch shared/static/_next/static/hk-rce.js'
try current-link 'ln -sfn /etc current'
try build-cache 'mkdir -p shared/cache/build && touch shared/cache/build/hk-rce'
try pnpm-store 'touch shared/pnpm-store/hk-rce'
try data 'touch shared/data/hk-rce'
try next-cache 'mkdir -p current/.next/cache/images && touch current/.next/cache/images/hk-rce'
