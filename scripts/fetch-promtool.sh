#!/usr/bin/env bash
# Unpack Debian's promtool (from the prometheus package) into .cache/prometheus for the
# tests that check the shipped alert rules and the watchdog's metrics
# (tests/integration/roles/watchdog/test_metrics.py), without installing the package: on
# the control node that would start a Prometheus server. Prints the binary's path.
# Usage: scripts/fetch-promtool.sh [DEST]
set -euo pipefail
dest="${1:-$(cd "$(dirname "$0")/.." && pwd)/.cache/prometheus}"
bin="$dest/usr/bin/promtool"
if [[ -x "$bin" ]] && "$bin" --version >/dev/null 2>&1; then
    echo "$bin"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null; }
rm -rf "$dest"
mkdir -p "$dest"
dpkg-deb -x prometheus_*.deb "$dest"
"$bin" --version >/dev/null 2>&1 || { echo "fetch-promtool: $bin does not run" >&2; exit 1; }
echo "$bin"
