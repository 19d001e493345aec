#!/usr/bin/env bash
# Unpack Debian's nginx binary into .cache/nginx for the unit tests that run `nginx -t` and
# a live load balancer on loopback (tests/integration/roles/nginx_proxy/test_nginx_templates.py), without installing
# the package: on the control node that would start a system Nginx on port 80.
# Prints the binary's path. Usage: scripts/fetch-nginx.sh [DEST]
set -euo pipefail
dest="${1:-$(cd "$(dirname "$0")/.." && pwd)/.cache/nginx}"
bin="$dest/usr/sbin/nginx"
if [[ -x "$bin" ]] && "$bin" -v >/dev/null 2>&1; then
    echo "$bin"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download nginx >/dev/null 2>&1 || { apt-get update -qq && apt-get download nginx >/dev/null; }
rm -rf "$dest"
mkdir -p "$dest"
dpkg-deb -x nginx_*.deb "$dest"
"$bin" -v >/dev/null 2>&1 || { echo "fetch-nginx: $bin does not run" >&2; exit 1; }
echo "$bin"
