#!/usr/bin/env bash
# Make sure a Docker engine is reachable; start one if it is not.
#
#   scripts/docker-up.sh
#
# Idempotent: exits 0 at once when `docker info` already works.
# Otherwise:
#   - systemd is PID 1 (/run/systemd/system exists): `systemctl start docker`;
#   - no systemd (containers, CI sandboxes, micro-VMs): start `dockerd` in its
#     own session (setsid + nohup, stdin from /dev/null, output to a log), so it
#     survives this script, the calling shell and `make` exiting.
# Then waits until `docker info` succeeds, or fails with the log tail.
#
# Safe from `make`/CI: needs no TTY and never reads stdin.
#
# Environment (all optional):
#   HARDENKIT_DOCKERD          dockerd binary      (default: `command -v dockerd`, else /usr/sbin/dockerd)
#   HARDENKIT_DOCKERD_ARGS     extra dockerd arguments, split on whitespace (default: none)
#   HARDENKIT_DOCKERD_PIDFILE  pid file to check for a dockerd that is still starting;
#                              when set it is also passed to dockerd as --pidfile
#                              (default: /var/run/docker.pid, not passed)
#   HARDENKIT_DOCKERD_LOG      log file            (default: /var/log/hardenkit-dockerd.log)
#   HARDENKIT_DOCKER_WAIT      seconds to wait     (default: 60)
#   DOCKER_HOST                honoured by the docker CLI as usual
set -euo pipefail

log() { printf 'docker-up: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

wait_s="${HARDENKIT_DOCKER_WAIT:-60}"
logfile="${HARDENKIT_DOCKERD_LOG:-/var/log/hardenkit-dockerd.log}"
pidfile="${HARDENKIT_DOCKERD_PIDFILE:-/var/run/docker.pid}"

command -v docker >/dev/null 2>&1 || die "docker CLI not found in PATH (install docker.io or docker-ce-cli)"

docker_ok() { docker info >/dev/null 2>&1; }

if docker_ok; then
    exit 0
fi

show_log_tail() {
    if [[ -r "$logfile" ]]; then
        log "last lines of $logfile:"
        tail -n 30 "$logfile" >&2 || true
    fi
}

# Wait until `docker info` works; $1 = pid to watch (optional, empty = none).
# Returns 0 when up, 1 if the watched process exited, 2 on timeout.
wait_for_docker() {
    local pid="${1:-}" i
    for ((i = 0; i < wait_s; i++)); do
        if docker_ok; then
            log "Docker engine is up (after ~${i}s)"
            return 0
        fi
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            # dockerd exited; one last chance in case another instance answers.
            sleep 1
            docker_ok && return 0
            log "dockerd (pid $pid) exited during start-up"
            return 1
        fi
        sleep 1
    done
    docker_ok && return 0
    return 2
}

# --- systemd host ----------------------------------------------------------
if [[ -d /run/systemd/system ]]; then
    log "systemd is running: systemctl start docker"
    systemctl start docker || {
        systemctl --no-pager status docker >&2 || true
        die "systemctl start docker failed"
    }
    wait_for_docker "" || {
        journalctl --no-pager -n 30 -u docker >&2 || true
        die "Docker engine not reachable ${wait_s}s after systemctl start docker"
    }
    exit 0
fi

# --- no systemd: run dockerd ourselves -------------------------------------
# A dockerd may already be starting (e.g. a parallel job); wait for it instead
# of launching a second one that would fight over the pid file.
if [[ -s "$pidfile" ]]; then
    oldpid="$(cat "$pidfile" 2>/dev/null || true)"
    if [[ "$oldpid" =~ ^[0-9]+$ ]] && kill -0 "$oldpid" 2>/dev/null \
        && [[ "$(cat "/proc/$oldpid/comm" 2>/dev/null || true)" == dockerd ]]; then
        log "dockerd already running (pid $oldpid) but not answering yet; waiting up to ${wait_s}s"
        wait_for_docker "$oldpid" || { show_log_tail; die "running dockerd (pid $oldpid) did not become ready"; }
        exit 0
    fi
fi

[[ "$(id -u)" -eq 0 ]] || die "Docker engine not reachable and not root: cannot start dockerd (run as root or start Docker yourself)"

dockerd_bin="${HARDENKIT_DOCKERD:-}"
if [[ -z "$dockerd_bin" ]]; then
    dockerd_bin="$(command -v dockerd 2>/dev/null || true)"
    [[ -n "$dockerd_bin" ]] || dockerd_bin=/usr/sbin/dockerd
fi
[[ -x "$dockerd_bin" ]] || die "dockerd not found ($dockerd_bin); install docker.io"
command -v setsid >/dev/null 2>&1 || die "setsid not found (util-linux)"

# Extra arguments are whitespace-separated on purpose (no quoting support).
read -r -a extra_args <<<"${HARDENKIT_DOCKERD_ARGS:-}"
if [[ -n "${HARDENKIT_DOCKERD_PIDFILE:-}" ]]; then
    extra_args+=(--pidfile "$HARDENKIT_DOCKERD_PIDFILE")
fi

mkdir -p "$(dirname "$logfile")"
{
    printf '\n===== %s docker-up.sh: starting %s %s =====\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$dockerd_bin" "${extra_args[*]}"
} >>"$logfile"

log "starting $dockerd_bin in the background (log: $logfile)"
# setsid: new session, no controlling terminal, immune to the caller's process
# group signals (make, CI step); nohup: ignore SIGHUP; all fds detached so that
# make/CI do not wait for the daemon's stdout/stderr to close.
# In a non-interactive shell the background job is not a process-group
# leader, so setsid does not fork and $! is dockerd's pid.
setsid nohup "$dockerd_bin" "${extra_args[@]}" </dev/null >>"$logfile" 2>&1 &
dpid=$!
disown "$dpid" 2>/dev/null || true

rc=0
wait_for_docker "$dpid" || rc=$?
if ((rc == 1)); then
    show_log_tail
    die "dockerd ($dockerd_bin, pid $dpid) exited before the Docker engine became reachable"
elif ((rc != 0)); then
    show_log_tail
    die "Docker engine not reachable ${wait_s}s after starting dockerd (pid $dpid, still running)"
fi
