#!/usr/bin/env bash
# Install the Debian packages the test rig and the demo need on the control node:
# the Docker engine (docker.io), debootstrap (base images), python3-venv (.venv),
# tar, git and xz (the local Node.js mirror). Installs only what is missing; needs root
# (or sudo) for that.
set -euo pipefail

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_cmd dockerd || [[ -x /usr/sbin/dockerd ]] || need+=(docker.io)
have_cmd docker || need+=(docker.io)
have_cmd debootstrap || [[ -x /usr/sbin/debootstrap ]] || need+=(debootstrap)
have_cmd tar || need+=(tar)
have_cmd git || need+=(git)
have_cmd xz || need+=(xz-utils)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)

if [[ ${#need[@]} -eq 0 ]]; then
    exit 0
fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
echo "install-system: installing ${need[*]}" >&2
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
