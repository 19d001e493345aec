#!/usr/bin/env bash
# Unpack one of Debian's binaries into .cache/<package> without installing its package, for
# the tests that run it (make integration): nginx's, as installing it on the control node
# would start a system Nginx on port 80 (`nginx -t` on the rendered templates, a live load
# balancer on loopback); prometheus's promtool, as installing it would start a Prometheus
# server (the alert rules and the watchdog's metrics). Prints the binary's path.
# Usage: scripts/fetch-debian-binary.sh PACKAGE PATH-IN-PACKAGE VERSION-FLAG
#   e.g. scripts/fetch-debian-binary.sh nginx usr/sbin/nginx -v
set -euo pipefail
package="$1" path="$2" flag="$3"
dest="$(cd "$(dirname "$0")/.." && pwd)/.cache/$package"
bin="$dest/$path"
if [[ -x "$bin" ]] && "$bin" "$flag" >/dev/null 2>&1; then
    echo "$bin"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download "$package" >/dev/null 2>&1 || { apt-get update -qq && apt-get download "$package" >/dev/null; }
rm -rf "$dest"
mkdir -p "$dest"
dpkg-deb -x "${package}"_*.deb "$dest"
"$bin" "$flag" >/dev/null 2>&1 || { echo "fetch-debian-binary: $bin does not run" >&2; exit 1; }
echo "$bin"
