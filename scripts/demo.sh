#!/usr/bin/env bash
# `make demo`: a local Docker container plays the incident's broken server, the kit
# diagnoses it, `ansible-playbook harden.yml` hardens it, and the before/after diagnosis,
# the verdict and the report are shown. `scripts/demo.sh --clean` removes the container.
#
# Environment: HARDENKIT_DEMO_PORT (default 8080) is where Nginx is published on
# 127.0.0.1; HARDENKIT_DEMO_IMAGE (default hardenkit-base:debian12) is the target image;
# HARDENKIT_REPORTS_DIR (default reports/) is where the reports go.
set -euo pipefail
cd "$(dirname "$0")/.."

name=hardenkit-demo
port="${HARDENKIT_DEMO_PORT:-8080}"
image="${HARDENKIT_DEMO_IMAGE:-hardenkit-base:debian12}"

if [[ "${1:-}" == "--clean" ]]; then
    docker rm -f "$name" >/dev/null 2>&1 || true
    echo "demo: removed the container $name"
    exit 0
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting a fresh target container ($name, $image)"
docker rm -f "$name" >/dev/null 2>&1 || true
docker run -d --name "$name" --hostname "$name" \
    --cap-add SYS_ADMIN --cap-add SYS_PTRACE --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
    -p "127.0.0.1:${port}:80" "$image" /lib/systemd/systemd >/dev/null
for _ in $(seq 1 60); do
    state=$(docker exec "$name" systemctl is-system-running --wait 2>/dev/null || true)
    [[ "$state" == running || "$state" == degraded ]] && break
    sleep 1
done
echo "systemd: ${state:-not up}"

reports="${HARDENKIT_REPORTS_DIR:-$PWD/reports}"
findings() {  # findings of a report: latest.json's "after" (or "before" for a diagnosis)
    python3 - "$reports/$name/latest.json" "$1" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
phase = doc.get(sys.argv[2]) or doc["before"]
for f in phase["findings"]:
    print(f"  {f['severity']:<8} {f['code']:<20} {f['summary']}")
if not phase["findings"]:
    print("  (no findings)")
PY
}

say "Breaking it the way the incident's server was broken"
echo "four 'tsx watch server.ts' dev copies, an incomplete .next, API routes failing, no PM2,"
echo "no Nginx, no log rotation (molecule/resources/playbooks/break_server.yml)"
ansible-playbook molecule/resources/playbooks/break_server.yml >/tmp/hardenkit-demo-break.log 2>&1 || {
    tail -40 /tmp/hardenkit-demo-break.log; echo "demo: breaking the server failed" >&2; exit 1; }

say "Diagnosis before: ansible-playbook playbooks/diagnose.yml"
ansible-playbook playbooks/diagnose.yml -e "hardenkit_reports_dir=$reports" >/tmp/hardenkit-demo-diagnose.log 2>&1 || {
    tail -40 /tmp/hardenkit-demo-diagnose.log; exit 1; }
findings before

say "ansible-playbook harden.yml"
# The Makefile's local Node.js mirror where nodejs.org is out of reach (HARDENKIT_NODE_MIRROR).
mirror=()
[[ -n "${HARDENKIT_NODE_MIRROR:-}" ]] && mirror=(-e "node_runtime_mirror=$HARDENKIT_NODE_MIRROR")
ansible-playbook harden.yml -e "hardenkit_reports_dir=$reports" "${mirror[@]}"

say "Diagnosis after"
findings after
verdict=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["verdict"])' "$reports/$name/latest.json")
echo
echo "  verdict: $verdict"
echo "  report:  $reports/$name/latest.md"

say "The hardened app"
for path in / /login /api/health; do
    code=$(python3 - "$port" "$path" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}", timeout=10) as r:
        print(r.status)
except Exception as exc:  # any failure is printed for the user
    print(getattr(exc, "code", exc))
PY
)
    printf '  http://127.0.0.1:%s%-12s -> %s\n' "$port" "$path" "$code"
done
cat <<TXT

The app answers through Nginx at http://127.0.0.1:${port}/ (WebSocket: ws://127.0.0.1:${port}/ws).
Look inside:  docker exec -it ${name} bash
Run it again: make demo        Remove it: make demo-clean
TXT
