#!/usr/bin/env python3
"""Serving benchmark of the hardened stack (`make bench`; issue #6). See bench/README.md.

Hardens a local Docker container `hk-bench` with the real kit (reused when it already is),
times Ansible's own runs, then loads the example app from inside the container with `wrk`
in four configurations, interleaved round by round:

    A   the incident's way: `pnpm dev` (tsx watch server.ts, Next dev mode) in a source copy
    B   the kit's PM2 cluster, straight on app_port
    B1  one plain `node dist/server.js` of the live release (reference)
    C   the hardened stack: Nginx on port 80 -> PM2 cluster

and deploys a new release under a request loop through Nginx. Writes
bench/results/<UTC timestamp>.json, .md and .png. Not part of `make test`: a timing is a
measurement, not a pass/fail; the exit status is non-zero only when the bench itself fails.

    .venv/bin/python bench/serve_bench.py            # full: 5 rounds of 10 s per run
    .venv/bin/python bench/serve_bench.py --quick    # 2 rounds of 3 s, no Ansible figures
    .venv/bin/python bench/serve_bench.py --fresh    # recreate and re-harden the container
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
WORK = BENCH / ".work"
RESULTS = BENCH / "results"
INVENTORY = BENCH / "inventory"
APP_SRC = ROOT / "examples" / "workbot"
APP_COPY = WORK / "app"
LOAD_LOOP = ROOT / "molecule" / "resources" / "files" / "load_loop.py"

CONTAINER = "hk-bench"
IMAGE = os.environ.get("HARDENKIT_BENCH_IMAGE", "hardenkit-base:debian12")
# Built like the Molecule platforms (molecule/default/molecule.yml): systemd as PID 1
# without --privileged.
DOCKER_RUN = [
    "docker",
    "run",
    "-d",
    "--name",
    CONTAINER,
    "--hostname",
    CONTAINER,
    "--cap-add",
    "SYS_ADMIN",
    "--cap-add",
    "SYS_PTRACE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--cgroupns=host",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
    "--env",
    "container=docker",
    "--stop-signal",
    "SIGRTMIN+3",
    IMAGE,
    "/lib/systemd/systemd",
]
TARGET_DIR = "/opt/hk-bench"
MARKER = "/var/lib/hk-bench/first-harden.json"
APP_ROOT = "/srv/workbot"
DEV_DIR = "/srv/bench-dev"
DEV_UNIT = "hk-bench-dev"
SINGLE_UNIT = "hk-bench-single"
LOAD_UNIT = "hk-bench-load"
RELEASE_TAG = "// hk-bench release "


@dataclass(frozen=True)
class Config:
    key: str
    port: int
    label: str


CONFIGS = [
    Config("A", 5200, "dev mode: pnpm dev (tsx watch server.ts)"),
    Config("B", 5000, "PM2 cluster on app_port"),
    Config("B1", 5300, "one node dist/server.js"),
    Config("C", 80, "Nginx -> PM2 cluster (hardened)"),
]
ROUTES = ["health", "page", "static"]
ROUTE_LABELS = {"health": "/api/health", "page": "/", "static": "/_next/static/ asset"}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(
    argv: list[str],
    *,
    check: bool = True,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, input=stdin, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:6])}... exited {proc.returncode}: "
            f"{(proc.stderr or proc.stdout).strip()[-1500:]}"
        )
    return proc


def dexec(script: str, *, check: bool = True, timeout: float | None = None) -> str:
    """Run a bash script inside the bench container as root; return its stdout."""
    return run(
        ["docker", "exec", CONTAINER, "bash", "-c", script], check=check, timeout=timeout
    ).stdout


def host_load() -> float:
    """1-minute load average of the machine (the container shares its kernel)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


# ---- the container ---------------------------------------------------------------------


def container_status() -> str | None:
    proc = run(["docker", "inspect", "-f", "{{.State.Status}}", CONTAINER], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def wait_for_systemd() -> None:
    for _ in range(90):
        state = dexec("systemctl is-system-running --wait 2>/dev/null || true", check=False)
        if state.strip() in ("running", "degraded"):
            return
        time.sleep(1)
    raise RuntimeError(f"systemd in {CONTAINER} did not come up")


def ensure_container(fresh: bool) -> dict[str, Any]:
    """Start (or restart, or recreate) the container; harden it unless it already is."""
    status = container_status()
    if fresh and status is not None:
        log(f"--fresh: removing {CONTAINER}")
        run(["docker", "rm", "-f", CONTAINER])
        status = None
    if status is None:
        log(f"starting {CONTAINER} from {IMAGE}")
        run(DOCKER_RUN)
        shutil.rmtree(APP_COPY, ignore_errors=True)
    elif status != "running":
        log(f"restarting the stopped {CONTAINER}")
        run(["docker", "start", CONTAINER])
    wait_for_systemd()
    if not APP_COPY.exists():
        log(f"copying {APP_SRC.relative_to(ROOT)} to {APP_COPY.relative_to(ROOT)}")
        shutil.copytree(
            APP_SRC,
            APP_COPY,
            ignore=shutil.ignore_patterns("node_modules", ".next", "dist", ".git"),
        )
    marker = dexec(f"cat {MARKER} 2>/dev/null && test -L {APP_ROOT}/current", check=False)
    if marker.strip():
        first = json.loads(marker)
        first["reused"] = True
        log(f"{CONTAINER} is hardened already (first harden.yml took {first['seconds']} s)")
        return first
    log("first harden.yml (installs Node.js, pnpm, PM2, Nginx, builds the app)")
    first = run_playbook("harden-first", "harden.yml")
    if first["rc"] != 0:
        raise RuntimeError(f"harden.yml failed; see {first['log']}")
    first["at"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    first["image"] = IMAGE
    dexec(f"mkdir -p {Path(MARKER).parent} && cat > {MARKER} <<'EOF'\n{json.dumps(first)}\nEOF")
    first["reused"] = False
    return first


def stop_container(remove: bool) -> None:
    if container_status() is None:
        return
    if remove:
        run(["docker", "rm", "-f", CONTAINER], check=False)
        log(f"removed {CONTAINER}")
    else:
        run(["docker", "stop", "-t", "30", CONTAINER], check=False)
        log(f"stopped {CONTAINER} (`docker start {CONTAINER}` or the next bench reuses it)")


# ---- Ansible ---------------------------------------------------------------------------

RECAP = re.compile(
    r"^" + re.escape(CONTAINER) + r"\s*:\s*ok=(\d+)\s+changed=(\d+)\s+"
    r"unreachable=(\d+)\s+failed=(\d+)",
    re.M,
)


BUILD_TIME = re.compile(r"^hardenkit\.nodeapp\.app_release : Build -+ ([\d.]+)s$", re.M)


def configured_strategy() -> str:
    for line in (ROOT / "ansible.cfg").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "strategy":
            return value.strip()
    return "ansible.builtin.linear"


def run_playbook(name: str, playbook: str, extra: list[str] | None = None) -> dict[str, Any]:
    """ansible-playbook with the bench inventory, timed; its output goes to a log file."""
    bindir = Path(sys.executable).parent
    env = dict(os.environ)
    env["PATH"] = f"{bindir}:{env.get('PATH', '')}"
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(ROOT / "collections"))
    env["ANSIBLE_FORCE_COLOR"] = "0"
    ca = "/etc/ssl/certs/ca-certificates.crt"
    if "HARDENKIT_CA_BUNDLE" not in env and Path(ca).exists():
        env["HARDENKIT_CA_BUNDLE"] = ca
    logdir = WORK / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    logfile = logdir / f"{time.strftime('%Y%m%dT%H%M%S')}-{name}.log"
    argv = ["ansible-playbook", "-i", str(INVENTORY), playbook, *(extra or [])]
    start = time.monotonic()
    with logfile.open("w") as fh:
        rc = subprocess.run(
            argv, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False
        ).returncode
    seconds = round(time.monotonic() - start, 1)
    text = logfile.read_text(errors="replace")
    recap = RECAP.search(text)
    # profile_tasks (ansible.cfg) times the build; the target is "<= 20 s plus it".
    build = BUILD_TIME.findall(text)
    result = {
        "playbook": playbook,
        "seconds": seconds,
        "rc": rc,
        "strategy": env.get("ANSIBLE_STRATEGY") or configured_strategy(),
        "build_s": float(build[-1]) if build else None,
        "without_build_s": round(seconds - float(build[-1]), 1) if build else None,
        "ok": int(recap.group(1)) if recap else None,
        "changed": int(recap.group(2)) if recap else None,
        "failed": int(recap.group(4)) if recap else None,
        "log": str(logfile.relative_to(ROOT)),
    }
    log(f"{name}: {playbook} {seconds} s, rc={rc}, changed={result['changed']}")
    return result


def latest_report() -> dict[str, Any]:
    path = WORK / "reports" / CONTAINER / "latest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def new_release(tag: str) -> None:
    """A new release id: the id hashes the source's content, so edit a comment in it."""
    page = APP_COPY / "app" / "page.tsx"
    lines = [ln for ln in page.read_text().splitlines() if not ln.startswith(RELEASE_TAG)]
    page.write_text("\n".join([*lines, f"{RELEASE_TAG}{tag}"]) + "\n")


def ansible_speed() -> dict[str, Any]:
    out: dict[str, Any] = {}
    log("idempotent re-run of harden.yml")
    out["harden_rerun"] = run_playbook("harden-rerun", "harden.yml")
    log("redeploy: playbooks/deploy.yml of an edited source, same lockfile")
    new_release(f"redeploy {time.strftime('%Y%m%dT%H%M%S')}")
    out["redeploy"] = run_playbook("redeploy", "playbooks/deploy.yml")
    report = latest_report()
    out["redeploy"]["verdict"] = report.get("verdict")
    out["redeploy"]["release"] = report.get("release")
    log("playbooks/diagnose.yml")
    out["diagnose"] = run_playbook("diagnose", "playbooks/diagnose.yml")
    return out


# ---- configurations --------------------------------------------------------------------


def install_tools() -> None:
    if dexec("command -v wrk || true").strip() == "":
        log("installing wrk in the container")
        dexec(
            "export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q wrk >/dev/null 2>&1 "
            "|| { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }",
            timeout=600,
        )
    dexec(f"mkdir -p {TARGET_DIR}")
    for src in (BENCH / "files" / "wrk_report.lua", BENCH / "files" / "bench_target.py", LOAD_LOOP):
        run(["docker", "cp", str(src), f"{CONTAINER}:{TARGET_DIR}/{src.name}"])
    dexec(f"chmod 0755 {TARGET_DIR} && chmod 0644 {TARGET_DIR}/*")


def warm(urls: list[str], deadline: float = 600) -> dict[str, float]:
    out = dexec(
        f"python3 {TARGET_DIR}/bench_target.py warm --deadline {deadline:.0f} " + " ".join(urls),
        timeout=deadline + 60,
    )
    return json.loads(out)


def stop_unit(unit: str) -> None:
    dexec(
        f"systemctl stop {unit} 2>/dev/null; systemctl reset-failed {unit} 2>/dev/null; true",
        check=False,
    )


def start_dev() -> dict[str, Any]:
    """Config A: the source copy, `pnpm install` and `pnpm dev` as the app user."""
    stop_unit(DEV_UNIT)
    dexec(f"rm -rf {DEV_DIR}/src.new && mkdir -p {DEV_DIR}/src.new")
    pipe = subprocess.Popen(
        [
            "tar",
            "-C",
            str(APP_SRC),
            "--exclude=node_modules",
            "--exclude=.next",
            "--exclude=dist",
            "-cf",
            "-",
            ".",
        ],
        stdout=subprocess.PIPE,
    )
    subprocess.run(
        ["docker", "exec", "-i", CONTAINER, "tar", "-C", f"{DEV_DIR}/src.new", "-xf", "-"],
        stdin=pipe.stdout,
        check=True,
    )
    pipe.wait()
    # Keep the earlier copy's node_modules when the lockfile is the same (cheap re-runs).
    dexec(f"""set -e
cd {DEV_DIR}
if [ -d src/node_modules ] && cmp -s src/pnpm-lock.yaml src.new/pnpm-lock.yaml; then
  mv src/node_modules src.new/node_modules
fi
rm -rf src && mv src.new src && chown -R workbot:workbot {DEV_DIR}""")
    env = (
        "HOME=/tmp CI=true npm_config_store_dir=/srv/workbot/shared/pnpm-store "
        "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt NEXT_TELEMETRY_DISABLED=1"
    )
    start = time.monotonic()
    dexec(
        f"cd {DEV_DIR}/src && runuser -u workbot -- env {env} "
        "/usr/local/bin/pnpm install --frozen-lockfile --prefer-offline >/dev/null",
        timeout=900,
    )
    install_s = round(time.monotonic() - start, 1)
    port = CONFIGS[0].port
    dexec(
        f"systemd-run --unit={DEV_UNIT} --collect --quiet --uid=workbot --gid=workbot "
        f"--working-directory={DEV_DIR}/src -E HOME=/tmp -E PORT={port} "
        "-E HOSTNAME=127.0.0.1 -E NEXT_TELEMETRY_DISABLED=1 "
        "-E NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt "
        "-E PATH=/usr/local/bin:/usr/bin:/bin /usr/local/bin/pnpm dev"
    )
    base = f"http://127.0.0.1:{port}"
    log("A: warming the dev server (Next compiles each route on its first request)")
    took = warm([f"{base}/", f"{base}/api/health"], deadline=900)
    asset = json.loads(dexec(f"python3 {TARGET_DIR}/bench_target.py dev-asset {base}"))["path"]
    took.update(warm([base + asset]))
    return {"pnpm_install_s": install_s, "warm_s": took, "static_path": asset}


def start_single() -> None:
    """Config B1: one Node process of the live release, PM2's environment, another port."""
    stop_unit(SINGLE_UNIT)
    port = CONFIGS[2].port
    dexec(
        f"systemd-run --unit={SINGLE_UNIT} --collect --quiet --uid=workbot --gid=workbot "
        f"/usr/bin/python3 {TARGET_DIR}/bench_target.py exec-single {port}"
    )
    warm([f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{port}/api/health"], deadline=120)


def static_asset() -> str:
    """The largest top-level hashed chunk of the live build (React's framework chunk)."""
    out = dexec(f"cd {APP_ROOT}/current/.next/static/chunks && ls -S *.js | head -1").strip()
    if not out:
        raise RuntimeError("no .js chunk in the live release's .next/static/chunks")
    return f"/_next/static/chunks/{out}"


def pm2_processes() -> list[dict[str, Any]]:
    out = dexec(f"runuser -u workbot -- env PM2_HOME={APP_ROOT}/.pm2 /usr/local/bin/pm2 jlist")
    return [
        {
            "pid": p["pid"],
            "restarts": p["pm2_env"]["restart_time"],
            "status": p["pm2_env"]["status"],
        }
        for p in json.loads(out)
    ]


# ---- measurement -----------------------------------------------------------------------


def wrk(
    url: str, args: argparse.Namespace, *, count: bool = False, duration: int | None = None
) -> dict[str, Any]:
    """One wrk run; `count` adds the Lua non-2xx counter (slower: see wrk_report.lua)."""
    load_before = host_load()
    duration = duration or args.duration
    out = dexec(
        f"wrk -t{args.threads} -c{args.connections} -d{duration}s "
        f"--timeout {args.timeout}s --latency -s {TARGET_DIR}/wrk_report.lua {url}"
        + (" -- count" if count else ""),
        timeout=duration + args.timeout + 60,
    )
    match = re.search(r"^HK_RESULT (\{.*\})$", out, re.M)
    if not match:
        raise RuntimeError(f"wrk printed no result for {url}:\n{out[-1000:]}")
    raw = json.loads(match.group(1))
    socket_errors = (
        raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    )
    return {
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "requests": raw["requests"],
        "non2xx": raw["non2xx"],
        "socket_errors": socket_errors,
        "errors": raw["non2xx"] + socket_errors,
        "load_before": load_before,
        "counted_in_lua": raw["counted_in_lua"],
    }


def connections_sampler(port: int, after_s: float) -> subprocess.Popen:
    """Reads the established TCP connections on `port` after `after_s` seconds, in the
    background (see `connection_split`)."""
    return subprocess.Popen(
        [
            "docker",
            "exec",
            CONTAINER,
            "bash",
            "-c",
            f"sleep {after_s}; ss -Htnp state established '( sport = :{port} or dport = :{port} )'",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def connection_split(ss_out: str, port: int, client: str = "wrk") -> list[int]:
    """How many of `client`'s connections to `port` each server process holds, largest
    first. Node's cluster hands each new connection to a worker that is free at that
    moment, so wrk's burst of connections can land unevenly on PM2's workers; a worker
    with more of them gets more of the load, and B's throughput depends on the split."""
    server: list[tuple[int, int]] = []  # (peer port, server pid)
    clients: dict[int, str] = {}  # local port -> client process name
    for line in ss_out.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        local, peer = fields[2].rsplit(":", 1)[1], fields[3].rsplit(":", 1)[1]
        name = re.search(r'\(\("([^"]+)"', line)
        pid = re.search(r"pid=(\d+)", line)
        if local == str(port) and pid:
            server.append((int(peer), int(pid.group(1))))
        elif peer == str(port) and name:
            clients[int(local)] = name.group(1)
    counts: dict[int, int] = {}
    for peer, pid in server:
        if clients.get(peer) == client:
            counts[pid] = counts.get(pid, 0) + 1
    return sorted(counts.values(), reverse=True)


def serve_bench(args: argparse.Namespace, paths: dict[str, dict[str, str]]) -> list[dict]:
    samples = []
    for rnd in range(1, args.rounds + 1):
        for route in ROUTES:
            for cfg in CONFIGS:
                url = f"http://127.0.0.1:{cfg.port}{paths[cfg.key][route]}"
                sampler = connections_sampler(cfg.port, 2) if cfg.key == "B" else None
                sample = wrk(url, args)
                if sampler is not None:
                    out, _ = sampler.communicate(timeout=60)
                    sample["split"] = connection_split(out, cfg.port)
                sample.update({"round": rnd, "config": cfg.key, "route": route})
                samples.append(sample)
                log(
                    f"round {rnd}/{args.rounds} {route:<6} {cfg.key:<2} {sample['rps']:>9.1f} "
                    f"req/s  p50 {sample['p50_ms']:>8.2f} ms  p99 {sample['p99_ms']:>8.2f} ms  "
                    f"errors {sample['errors']}  (load {sample['load_before']})"
                )
    return samples


def audit(args: argparse.Namespace, paths: dict[str, dict[str, str]]) -> dict[str, dict]:
    """Every answer's status checked in Lua (3xx and 1xx count too), one short run each."""
    out: dict[str, dict] = {}
    for route in ROUTES:
        out[route] = {}
        for cfg in CONFIGS:
            url = f"http://127.0.0.1:{cfg.port}{paths[cfg.key][route]}"
            sample = wrk(url, args, count=True, duration=args.audit_duration)
            out[route][cfg.key] = {
                k: sample[k] for k in ("requests", "non2xx", "socket_errors", "rps")
            }
            log(
                f"audit {route:<6} {cfg.key:<2} {sample['requests']} requests, "
                f"{sample['non2xx']} non-2xx, {sample['socket_errors']} socket errors"
            )
    return out


def summarize(samples: list[dict]) -> dict[str, dict[str, dict[str, Any]]]:
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for route in ROUTES:
        table[route] = {}
        for cfg in CONFIGS:
            rows = [s for s in samples if s["route"] == route and s["config"] == cfg.key]
            table[route][cfg.key] = {
                "rps": round(statistics.median(s["rps"] for s in rows), 1),
                "p50_ms": round(statistics.median(s["p50_ms"] for s in rows), 2),
                "p99_ms": round(statistics.median(s["p99_ms"] for s in rows), 2),
                "errors": sum(s["errors"] for s in rows),
                "requests": sum(s["requests"] for s in rows),
                "rps_min": min(s["rps"] for s in rows),
                "rps_max": max(s["rps"] for s in rows),
                "rounds": len(rows),
            }
    return table


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def evaluate(table: dict, deploy: dict | None) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and pass/miss."""
    targets = []

    def add(name: str, value: float | None, op: str, bound: float, unit: str = "") -> None:
        passed = value is not None and (value >= bound if op == ">=" else value <= bound)
        targets.append(
            {"target": name, "value": value, "op": op, "bound": bound, "unit": unit, "pass": passed}
        )

    for route in ("health", "page"):
        add(
            f"{ROUTE_LABELS[route]}: req/s C / B",
            ratio(table[route]["C"]["rps"], table[route]["B"]["rps"]),
            ">=",
            0.95,
            "x",
        )
    for route in ROUTES:
        add(
            f"{ROUTE_LABELS[route]}: p99 C / B",
            ratio(table[route]["C"]["p99_ms"], table[route]["B"]["p99_ms"]),
            "<=",
            1.2,
            "x",
        )
    add(
        f"{ROUTE_LABELS['static']}: req/s C / B",
        ratio(table["static"]["C"]["rps"], table["static"]["B"]["rps"]),
        ">=",
        5,
        "x",
    )
    add(
        f"{ROUTE_LABELS['page']}: req/s C / A",
        ratio(table["page"]["C"]["rps"], table["page"]["A"]["rps"]),
        ">=",
        50,
        "x",
    )
    add(
        f"{ROUTE_LABELS['health']}: req/s C / A",
        ratio(table["health"]["C"]["rps"], table["health"]["A"]["rps"]),
        ">=",
        4,
        "x",
    )
    if deploy:
        add("deploy under load: failed requests", deploy["load"]["failed"], "<=", 0)
    return targets


# ---- deploy under load -----------------------------------------------------------------


def deploy_under_load(interval: float) -> dict[str, Any]:
    """deploy.yml of a new release while a request loop runs through Nginx on /api/health."""
    new_release(f"under-load {time.strftime('%Y%m%dT%H%M%S')}")
    pids_before = [p["pid"] for p in pm2_processes()]
    dexec(
        f"rm -f /tmp/{LOAD_UNIT}.json /tmp/{LOAD_UNIT}.stop; "
        f"systemd-run --unit={LOAD_UNIT} --collect --quiet /usr/bin/python3 "
        f"{TARGET_DIR}/load_loop.py http://127.0.0.1:80/api/health /tmp/{LOAD_UNIT}.json "
        f"/tmp/{LOAD_UNIT}.stop 1800 {interval}"
    )
    time.sleep(3)  # a few requests before the deploy starts
    log(f"deploy.yml under a request loop (one GET every {interval} s through Nginx)")
    deploy = run_playbook("deploy-under-load", "playbooks/deploy.yml")
    time.sleep(3)
    dexec(f"touch /tmp/{LOAD_UNIT}.stop")
    for _ in range(60):
        out = dexec(f"cat /tmp/{LOAD_UNIT}.json 2>/dev/null || true").strip()
        if out:
            break
        time.sleep(1)
    else:
        raise RuntimeError("the request loop wrote no result")
    load = json.loads(out)
    report = latest_report()
    pids_after = [p["pid"] for p in pm2_processes()]
    deploy.update({"verdict": report.get("verdict"), "release": report.get("release")})
    return {
        "deploy": deploy,
        "load": load,
        "interval_s": interval,
        "workers_replaced": not set(pids_before) & set(pids_after),
        "pm2_pids": {"before": pids_before, "after": pids_after},
    }


# ---- output ----------------------------------------------------------------------------


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def every_worker(split: list[int] | None, workers: int) -> bool | None:
    """Every PM2 worker holds some of wrk's connections (None: not measured)."""
    if not split:
        return None
    return len(split) >= workers


def balance_lines(doc: dict[str, Any]) -> list[str]:
    """/api/health round by round, with how wrk's connections fell on B's workers."""
    rows = [s for s in doc.get("samples", []) if s["route"] == "health"]
    b = {s["round"]: s for s in rows if s["config"] == "B"}
    c = {s["round"]: s for s in rows if s["config"] == "C"}
    if not any("split" in s for s in b.values()):
        return []
    lines = [
        "",
        "## `/api/health` round by round: B's connections per PM2 worker",
        "",
        "| round | B: wrk connections per worker | B req/s | C req/s | C/B | B p99 ms | "
        "C p99 ms | p99 C/B |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    workers = len((doc.get("pm2") or {}).get("before") or []) or 2
    even_rps, even_p99 = [], []
    for rnd in sorted(b):
        sb, sc = b[rnd], c.get(rnd)
        if sc is None:
            continue
        r_rps, r_p99 = ratio(sc["rps"], sb["rps"]), ratio(sc["p99_ms"], sb["p99_ms"])
        if every_worker(sb.get("split"), workers):
            even_rps.append(r_rps)
            even_p99.append(r_p99)
        split = "/".join(map(str, sb.get("split") or [])) or "?"
        lines.append(
            f"| {rnd} | {split} | {fmt(sb['rps'])} | {fmt(sc['rps'])} | "
            f"{fmt(r_rps, 2)} | {fmt(sb['p99_ms'], 2)} | {fmt(sc['p99_ms'], 2)} | "
            f"{fmt(r_p99, 2)} |"
        )
    lines += [
        "",
        "Node's cluster hands each new connection to a worker free at that moment, so "
        "wrk's connections can fall unevenly on B's workers (read with `ss` 2 s into the "
        "run). When one worker holds all of them, B measures one worker (compare B1). "
        "Nginx spreads its requests over its pooled connections, so C does not depend "
        "on that split.",
    ]
    if even_rps:
        lines.append(
            f"Rounds where each of B's {workers} workers held some of the connections: "
            f"{len(even_rps)} of {len(b)}; median C/B over them "
            f"{fmt(statistics.median(even_rps), 2)} req/s, "
            f"{fmt(statistics.median(even_p99), 2)} p99."
        )
    else:
        lines.append(
            f"In none of the {len(b)} rounds did each of B's {workers} workers hold "
            "some of the connections."
        )
    return lines


def markdown(doc: dict[str, Any]) -> str:
    p = doc["parameters"]
    lines = [
        f"# Serving benchmark, {doc['started']}",
        "",
        f"Kit commit `{doc['kit_commit']}`; container `{CONTAINER}` ({doc['image']}); "
        f"{doc['machine']['cpus']} CPUs shared with the rest of the machine (1-minute load "
        f"average during the runs: {doc['machine']['load_min']}-{doc['machine']['load_max']}, "
        f"median {doc['machine']['load_median']}). `wrk -t{p['threads']} -c{p['connections']} "
        f"-d{p['duration']}s --timeout {p['timeout']}s` inside the container against 127.0.0.1, "
        f"{p['rounds']} rounds, configurations interleaved; medians. Bench runtime "
        f"{doc['runtime_s']:.0f} s. How to read this: bench/README.md.",
        "",
        "## Configurations",
        "",
    ]
    for cfg in CONFIGS:
        lines.append(f"- **{cfg.key}**: {cfg.label}, 127.0.0.1:{cfg.port}")
    lines += [
        "",
        "Paths: "
        + ", ".join(f"{cfg.key} static `{doc['paths'][cfg.key]['static']}`" for cfg in CONFIGS[:2])
        + "",
        "",
    ]
    lines += [
        "## Throughput and latency (median of rounds)",
        "",
        "| route | config | req/s | (min-max) | p50 ms | p99 ms | errors / requests | "
        "audit: non-2xx / requests |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for route in ROUTES:
        for cfg in CONFIGS:
            r = doc["summary"][route][cfg.key]
            a = doc.get("audit", {}).get(route, {}).get(cfg.key)
            checked = f"{a['non2xx'] + a['socket_errors']} / {a['requests']:,}" if a else "—"
            lines.append(
                f"| `{ROUTE_LABELS[route]}` | {cfg.key} | {fmt(r['rps'])} | "
                f"{fmt(r['rps_min'], 0)}-{fmt(r['rps_max'], 0)} | {fmt(r['p50_ms'], 2)} | "
                f"{fmt(r['p99_ms'], 2)} | {r['errors']} / {r['requests']:,} | "
                f"{checked} |"
            )
    lines += [
        "",
        "Errors: socket errors, timeouts and answers >= 400 in the timed runs (wrk's "
        "own counter); audit: one short run per cell whose Lua hook counts every non-2xx "
        "answer (3xx too), kept out of the timed runs because the hook slows wrk down.",
        "",
        "## Ratios",
        "",
        "| route | C/B req/s | C/B1 req/s | C/A req/s | p99 C/B |",
        "|---|---:|---:|---:|---:|",
    ]
    for route in ROUTES:
        s = doc["summary"][route]
        lines.append(
            f"| `{ROUTE_LABELS[route]}` | {fmt(ratio(s['C']['rps'], s['B']['rps']), 2)} | "
            f"{fmt(ratio(s['C']['rps'], s['B1']['rps']), 2)} | "
            f"{fmt(ratio(s['C']['rps'], s['A']['rps']), 1)} | "
            f"{fmt(ratio(s['C']['p99_ms'], s['B']['p99_ms']), 2)} |"
        )
    lines += balance_lines(doc)
    lines += [
        "",
        "## Targets (issue #6)",
        "",
        "| target | measured | bound | |",
        "|---|---:|---:|---|",
    ]
    for t in doc["targets"]:
        value = fmt(t["value"], 2) + t["unit"]
        lines.append(
            f"| {t['target']} | {value} | {t['op']} {t['bound']}{t['unit']} | "
            f"{'pass' if t['pass'] else '**miss**'} |"
        )
    dul = doc.get("deploy_under_load")
    if dul:
        load = dul["load"]
        lines += [
            "",
            "## Deploy under load",
            "",
            f"`playbooks/deploy.yml` of a new release ({fmt(dul['deploy']['seconds'])} s, "
            f"rc {dul['deploy']['rc']}, verdict `{dul['deploy']['verdict']}`, PM2 workers "
            f"replaced: {'yes' if dul['workers_replaced'] else 'no'}) while a loop sent "
            f"GET /api/health through Nginx every {dul['interval_s']} s:",
            "",
            "| requests | failed | statuses | socket errors | worst latency |",
            "|---:|---:|---|---|---:|",
            f"| {load['requests']} | {load['failed']} | {load['statuses']} | "
            f"{load['errors'] or '—'} | {load['worst_ms']} ms |",
        ]
    first = doc["first_harden"]
    when = f"measured {first['at']}, container reused" if first["reused"] else "this run"
    ans = doc.get("ansible")
    strategy = (ans or {}).get("harden_rerun", {}).get("strategy")
    lines += ["", "## Ansible's own speed", ""]
    if strategy:
        lines += [f"Strategy `{strategy}` (ansible.cfg; `ANSIBLE_STRATEGY` overrides it).", ""]
    lines += [
        "| run | seconds | rc | changed | note |",
        "|---|---:|---:|---:|---|",
        f"| first `harden.yml` (fresh container) | {fmt(first['seconds'])} | {first['rc']} | "
        f"{first['changed']} | {when} |",
    ]
    if ans:
        redeploy = ans["redeploy"]
        build = (
            f"; build {fmt(redeploy['build_s'])} s, the rest {fmt(redeploy['without_build_s'])} s"
            if redeploy.get("build_s")
            else ""
        )
        rows = [
            ("harden_rerun", "idempotent `harden.yml` re-run", ""),
            (
                "redeploy",
                "`playbooks/deploy.yml`, edited source, same lockfile",
                f"verdict `{redeploy.get('verdict')}`{build}",
            ),
            ("diagnose", "`playbooks/diagnose.yml` (one host)", ""),
        ]
        for key, label, note in rows:
            r = ans[key]
            note = note if r["rc"] == 0 else f"**failed**, see `{r['log']}`"
            lines.append(f"| {label} | {fmt(r['seconds'])} | {r['rc']} | {r['changed']} | {note} |")
    if doc.get("notes"):
        lines += ["", "## Notes", "", *[f"- {note}" for note in doc["notes"]]]

    def workers(procs: list[dict]) -> str:
        return ", ".join(f"pid {w['pid']} ({w['status']}, {w['restarts']} restarts)" for w in procs)

    warm_s = ", ".join(
        f"`{url.split(':5200', 1)[-1]}` {s} s" for url, s in doc["dev"]["warm_s"].items()
    )
    lines += [
        "",
        "## Checks",
        "",
        f"- PM2 workers before the serving runs: {workers(doc['pm2']['before'])}; after: "
        f"{workers(doc['pm2']['after'])}. A restart in between would void B and C.",
        f"- Dev server (A): `pnpm install` {doc['dev']['pnpm_install_s']} s; first 2xx "
        f"after {warm_s} (Next compiles a route on its first request).",
        "",
    ]
    return "\n".join(lines)


def chart(doc: dict[str, Any], path: Path) -> bool:
    """Throughput and p99 per configuration and route; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install -r bench/requirements.txt): no PNG")
        return False
    colors = {"A": "#c44e52", "B": "#4c72b0", "B1": "#8c8c8c", "C": "#55a868"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    width = 0.2
    for ax, metric, title in (
        (axes[0], "rps", "requests/s (median, log scale)"),
        (axes[1], "p99_ms", "p99 latency, ms (median, log scale)"),
    ):
        for i, cfg in enumerate(CONFIGS):
            values = [doc["summary"][route][cfg.key][metric] for route in ROUTES]
            xs = [x + (i - 1.5) * width for x in range(len(ROUTES))]
            bars = ax.bar(xs, values, width, label=f"{cfg.key}: {cfg.label}", color=colors[cfg.key])
            ax.bar_label(
                bars,
                labels=[f"{v:,.0f}" if v >= 10 else f"{v:.1f}" for v in values],
                fontsize=7,
                padding=1,
            )
        ax.set_yscale("log")
        ax.set_xticks(range(len(ROUTES)), [ROUTE_LABELS[r] for r in ROUTES])
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    p = doc["parameters"]
    fig.suptitle(
        f"hardenkit serving bench {doc['started']}: wrk -t{p['threads']} "
        f"-c{p['connections']} -d{p['duration']}s, {p['rounds']} rounds, "
        f"{doc['machine']['cpus']} CPUs",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def kit_commit() -> str:
    head = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False)
    dirty = run(
        [
            "git",
            "-C",
            str(ROOT),
            "status",
            "--porcelain",
            "--",
            "roles",
            "playbooks",
            "plugins",
            "harden.yml",
        ],
        check=False,
    )
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


# ---- main ------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fresh", action="store_true", help="recreate the container and harden it from scratch"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 rounds of 3 s, no Ansible figures and no deploy under load",
    )
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--duration", type=int, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=10, help="wrk's request timeout, s")
    parser.add_argument(
        "--audit-duration",
        type=int,
        default=3,
        help="seconds of the status-counting run per configuration and route",
    )
    parser.add_argument(
        "--skip-ansible",
        action="store_true",
        help="no idempotent re-run, redeploy or diagnose timing",
    )
    parser.add_argument("--skip-deploy", action="store_true", help="no deploy under load")
    parser.add_argument(
        "--ansible-only",
        action="store_true",
        help="only Ansible's own speed (a warm-up re-run first), into "
        "<stamp>-ansible-<strategy>.json; e.g. through Mitogen with "
        "ANSIBLE_STRATEGY_PLUGINS and ANSIBLE_STRATEGY=mitogen_linear (docs/scaling.md)",
    )
    parser.add_argument(
        "--load-interval",
        type=float,
        default=0.15,
        help="seconds between the loop's requests (under 10 r/s, the kit's default /api/ limit)",
    )
    parser.add_argument(
        "--keep-running", action="store_true", help="leave the container running (default: stop it)"
    )
    parser.add_argument("--remove", action="store_true", help="remove the container at the end")
    parser.add_argument("--tag", default="", help="suffix of the result files' names")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="only write the .md and .png of an earlier result file",
    )
    args = parser.parse_args()
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if args.duration is None:
        args.duration = 3 if args.quick else 10
    if args.quick:
        args.skip_ansible = args.skip_deploy = True
    return args


def render(path: Path) -> int:
    doc = json.loads(path.read_text())
    path.with_suffix(".md").write_text(markdown(doc))
    chart(doc, path.with_suffix(".png"))
    print(markdown(doc))
    return 0


def ansible_only(args: argparse.Namespace) -> int:
    """Ansible's own speed alone: the same runs as a full bench's, after one warm-up
    re-run (the first run through a strategy fills caches the later ones reuse)."""
    started = dt.datetime.now(dt.UTC)
    strategy = os.environ.get("ANSIBLE_STRATEGY") or configured_strategy()
    doc: dict[str, Any] = {
        "generated_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "strategy": strategy,
        "kit_commit": kit_commit(),
    }
    try:
        ensure_container(args.fresh)
        doc["harden_rerun_1"] = run_playbook("harden-rerun-warm-up", "harden.yml")
        doc.update(ansible_speed())
    finally:
        if args.remove:
            stop_container(remove=True)
        elif not args.keep_running:
            stop_container(remove=False)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = strategy.rsplit(".", 1)[-1].replace("_linear", "")
    stem = started.strftime("%Y%m%dT%H%M%SZ") + f"-ansible-{name}"
    stem += f"-{args.tag}" if args.tag else ""
    (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    redeploy = doc["redeploy"]
    print(
        f"{strategy}: idempotent harden.yml {doc['harden_rerun']['seconds']} s "
        f"(changed {doc['harden_rerun']['changed']}); redeploy {redeploy['seconds']} s = build "
        f"{redeploy['build_s']} + {redeploy['without_build_s']}; diagnose.yml "
        f"{doc['diagnose']['seconds']} s"
    )
    print(f"results: bench/results/{stem}.json")
    return 0


def main() -> int:
    args = parse_args()
    if args.render:
        return render(args.render)
    if args.ansible_only:
        return ansible_only(args)
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    loads: list[float] = []
    doc: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kit_commit": kit_commit(),
        "image": IMAGE,
        "parameters": {
            k: getattr(args, k)
            for k in ("rounds", "duration", "connections", "threads", "timeout", "quick")
        },
    }
    try:
        doc["first_harden"] = ensure_container(args.fresh)
        if not args.skip_ansible:
            doc["ansible"] = ansible_speed()
        install_tools()
        loads.append(host_load())
        static = static_asset()
        doc["dev"] = start_dev()
        start_single()
        doc["paths"] = {
            cfg.key: {"health": "/api/health", "page": "/", "static": static} for cfg in CONFIGS
        }
        doc["paths"]["A"]["static"] = doc["dev"]["static_path"]
        for cfg in CONFIGS[1:]:
            base = f"http://127.0.0.1:{cfg.port}"
            warm([base + p for p in doc["paths"][cfg.key].values()], deadline=120)
        doc["pm2"] = {"before": pm2_processes()}
        samples = serve_bench(args, doc["paths"])
        doc["audit"] = audit(args, doc["paths"])
        doc["pm2"]["after"] = pm2_processes()
        loads += [s["load_before"] for s in samples]
        doc["samples"] = samples
        doc["summary"] = summarize(samples)
        stop_unit(DEV_UNIT)
        stop_unit(SINGLE_UNIT)
        if not args.skip_deploy:
            doc["deploy_under_load"] = deploy_under_load(args.load_interval)
        doc["targets"] = evaluate(doc["summary"], doc.get("deploy_under_load"))
        doc["machine"] = {
            "cpus": os.cpu_count(),
            "load_min": min(loads),
            "load_max": max(loads),
            "load_median": statistics.median(loads),
        }
        doc["runtime_s"] = round(time.monotonic() - t0, 1)
        RESULTS.mkdir(parents=True, exist_ok=True)
        stem = started.strftime("%Y%m%dT%H%M%SZ") + (f"-{args.tag}" if args.tag else "")
        (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
        (RESULTS / f"{stem}.md").write_text(markdown(doc))
        png = chart(doc, RESULTS / f"{stem}.png")
        print(markdown(doc))
        print(f"results: bench/results/{stem}.json, .md" + (", .png" if png else ""))
    finally:
        if container_status() == "running":
            stop_unit(DEV_UNIT)
            stop_unit(SINGLE_UNIT)
            stop_unit(LOAD_UNIT)
        if args.remove:
            stop_container(remove=True)
        elif not args.keep_running:
            stop_container(remove=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
