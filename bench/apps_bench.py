#!/usr/bin/env python3
"""Ansible's own speed on the test apps of issue 18 (`make bench-apps`). See bench/README.md.

For each app of tests/apps (npm, yarn 4, pnpm 9), one after the other, on a fresh container
`hk-bench-apps-<name>` of the local image (systemd as PID 1, like molecule/apps' platforms):
the first `harden.yml`, an idempotent re-run (its time and the recap's `changed=`), then a
redeploy: a comment in a copy of the app's `app/page.tsx` changes, so `playbooks/deploy.yml`
builds a new release; its time splits into the build step (profile_tasks' line, as in
`make bench`) and the rest. Issue 18's targets, for the pnpm app: idempotent ≤ 30 s, redeploy
the build + ≤ 20 s. Writes bench/results/apps-<UTC stamp>.json and .md; removes the containers
at the end unless --keep (Ansible's logs stay in /tmp/hk-bench-apps-*/logs). Not part of
`make test`: a timing is a measurement, not a pass/fail.

    .venv/bin/python bench/apps_bench.py                 # npm, yarn4 and pnpm9
    .venv/bin/python bench/apps_bench.py --apps pnpm9    # one of them
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The same containers as `make bench-fleet` (systemd as PID 1, as molecule/apps' platforms),
# and the same build-step line, strategy and commit reading as `make bench` (this directory
# is on sys.path).
from fleet_bench import RUN_ARGS
from serve_bench import BUILD_TIME, configured_strategy, kit_commit, log

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
IMAGE = "hardenkit-base:debian13"
PREFIX = "hk-bench-apps-"
TARGET_IDEMPOTENT_S = 30.0
TARGET_REST_S = 20.0
RELEASE_TAG = "// hk-bench-apps release "
# profile_tasks' line of the install step (part of "the rest"), beside serve_bench's BUILD_TIME.
INSTALL_TIME = re.compile(
    r"^hardenkit\.nodeapp\.app_release : Install dependencies -+ ([\d.]+)s$", re.M
)

# name -> (directory under tests/apps, package manager, host vars beyond the shared ones)
APPS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "npm": ("npm-next-start", "npm", {}),
    "yarn4": (
        "yarn4-berry",
        "yarn 4",
        # As molecule/apps: output 'standalone' copies public/ in; check it is served.
        {
            "app_probes": [
                {"path": "/", "status": 200},
                {"path": "/no-such-page", "status": 404},
                {"path": "/robots.txt", "status": 200},
            ]
        },
    ),
    "pnpm9": ("pnpm9-pinned", "pnpm 9", {}),
}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def start_container(name: str, image: str = IMAGE, network: str = "") -> None:
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    argv = ["docker", "run", "-d", "--name", name, "--hostname", name, *RUN_ARGS]
    argv += [f"--network={network}", image] if network else [image]
    proc = subprocess.run(
        [*argv, "/lib/systemd/systemd"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"docker run {name} exited {proc.returncode}: {proc.stderr.strip()}")
    # "degraded" is fine: some units of a minimal image fail in a container. Right after
    # the start systemctl cannot reach systemd yet ("Failed to connect to system scope bus").
    state = ""
    for _ in range(90):
        proc = subprocess.run(
            ["docker", "exec", name, "systemctl", "is-system-running", "--wait"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        state = (proc.stdout or proc.stderr).strip()
        if state in ("running", "degraded"):
            return
        time.sleep(1)
    raise RuntimeError(f"systemd in {name} did not come up: {state!r}")


def write_inventory(path: Path, host: str, app_src: Path, reports: Path, extra: dict) -> None:
    hosts = {host: {"ansible_connection": "docker", **extra}}
    ca = os.environ.get("HARDENKIT_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"
    doc = {
        "all": {
            "vars": {
                "ansible_python_interpreter": "/usr/bin/python3",
                "app_name": "shop",
                "app_port": 3000,
                "app_src": str(app_src),
                "app_probes": [
                    {"path": "/", "status": 200},
                    {"path": "/no-such-page", "status": 404},
                ],
                "app_release_progress_interval": 5,
                "hardenkit_reports_dir": str(reports),
                "node_runtime_extra_ca_certs": [ca],
                "node_runtime_mirror": os.environ.get(
                    "HARDENKIT_NODE_MIRROR", "https://nodejs.org/dist/"
                ),
            },
            "children": {"app_servers": {"hosts": hosts}, "load_balancers": {"hosts": hosts}},
        }
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


def run_logged(
    work: Path, logname: str, name: str, extra: tuple[str, ...] = ()
) -> tuple[int, float, str, Path]:
    """One timed ansible-playbook run with <work>/inventory.json, its output in
    <work>/logs/<logname>.log: (rc, seconds, output, log file)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT / "collections")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    # A fact cache of this run's own: a container of the same name an hour ago is another host.
    env["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = str(work / "facts")
    logfile = work / "logs" / f"{logname}.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with logfile.open("w") as fh:
        rc = subprocess.run(
            ["ansible-playbook", "-i", str(work / "inventory.json"), name, *extra],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    seconds = round(time.monotonic() - t0, 1)
    return rc, seconds, logfile.read_text(errors="replace"), logfile


def playbook(work: Path, host: str, step: str, name: str) -> dict[str, Any]:
    """One timed ansible-playbook run; its output goes to <work>/logs/<host>-<step>.log."""
    load = os.getloadavg()[0]
    rc, seconds, text, logfile = run_logged(work, f"{host}-{step}", name)
    recap = re.search(
        rf"^{re.escape(host)}\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
        text,
        re.M,
    )
    build = BUILD_TIME.findall(text)
    install = INSTALL_TIME.findall(text)
    build_s = float(build[-1]) if build else None
    result = {
        "playbook": name,
        "seconds": seconds,
        "rc": rc,
        "changed": int(recap.group(2)) if recap else None,
        "failed": int(recap.group(4)) if recap else None,
        "build_s": build_s,
        "rest_s": round(seconds - build_s, 1) if build_s is not None else None,
        "install_s": float(install[-1]) if install else None,
        "load_before": round(load, 2),
        "log": str(logfile),
    }
    log(f"{host} {step}: {name} {seconds} s, rc={rc}, changed={result['changed']}")
    if rc != 0:
        tail = "\n".join(text.splitlines()[-40:])
        raise RuntimeError(f"{name} on {host} exited {rc}; {logfile}, last lines:\n{tail}")
    return result


def latest_report(reports: Path, host: str) -> dict[str, Any]:
    found = sorted((reports / host).rglob("latest.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(found[-1].read_text()) if found else {}


def bench_app(key: str, work: Path, keep: bool) -> dict[str, Any]:
    directory, manager, extra = APPS[key]
    host = PREFIX + key
    app_src = work / "src" / key
    shutil.copytree(
        ROOT / "tests" / "apps" / directory,
        app_src,
        ignore=shutil.ignore_patterns("node_modules", ".next", ".git"),
    )
    reports = work / "reports"
    write_inventory(work / "inventory.json", host, app_src, reports, extra)
    out: dict[str, Any] = {"app": f"tests/apps/{directory}", "manager": manager, "host": host}
    try:
        log(f"{host}: starting from {IMAGE}")
        start_container(host)
        log(f"{host}: first harden.yml")
        out["first_harden"] = playbook(work, host, "harden-first", "harden.yml")
        log(f"{host}: idempotent harden.yml")
        out["idempotent"] = playbook(work, host, "harden-rerun", "harden.yml")
        # A new release id: the id hashes the source, so edit a comment in it.
        page = app_src / "app" / "page.tsx"
        stamp = time.strftime("%Y%m%dT%H%M%S")
        page.write_text(page.read_text() + f"{RELEASE_TAG}{stamp}\n")
        log(f"{host}: redeploy (playbooks/deploy.yml, edited app/page.tsx)")
        out["redeploy"] = playbook(work, host, "redeploy", "playbooks/deploy.yml")
        report = latest_report(reports, host)
        out["redeploy"]["verdict"] = report.get("verdict")
        out["redeploy"]["release"] = report.get("release")
    except (RuntimeError, subprocess.SubprocessError) as exc:
        out["error"] = str(exc)
        log(f"{host}: FAILED: {exc}")
    finally:
        if not keep:
            subprocess.run(["docker", "rm", "-f", host], capture_output=True, check=False)
    return out


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def verdict(value: float | None, bound: float) -> str:
    return "—" if value is None else ("pass" if value <= bound else "**miss**")


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# Ansible on the test apps of issue 18 ({doc['started']})",
        "",
        f"`{doc['command']}`: one fresh `{doc['image']}` container per app, one app after "
        f"the other; strategy `{doc['strategy']}`, commit `{doc['kit_commit']}`, "
        f"{doc['cpus']} CPUs. Targets (issue 18, the pnpm app): idempotent ≤ "
        f"{TARGET_IDEMPOTENT_S:.0f} s, redeploy the build + ≤ {TARGET_REST_S:.0f} s.",
        "",
        "| app | manager | first `harden.yml` s | idempotent s (changed) | redeploy s "
        "| build s | rest s (install s) | idempotent ≤ 30 s | rest ≤ 20 s |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in doc["apps"]:
        first = r.get("first_harden", {})
        idem = r.get("idempotent", {})
        dep = r.get("redeploy", {})
        idem_verdict = (
            "**changed**"
            if idem.get("changed") not in (None, 0)
            else verdict(idem.get("seconds"), TARGET_IDEMPOTENT_S)
        )
        lines.append(
            f"| `{r['app']}` | {r['manager']} | {fmt(first.get('seconds'))} | "
            f"{fmt(idem.get('seconds'))} ({idem.get('changed', '—')}) | "
            f"{fmt(dep.get('seconds'))} | {fmt(dep.get('build_s'))} | {fmt(dep.get('rest_s'))} "
            f"({fmt(dep.get('install_s'))}) | "
            f"{idem_verdict} "
            f"| {verdict(dep.get('rest_s'), TARGET_REST_S)} |"
        )
    lines += [
        "",
        "Redeploy: `playbooks/deploy.yml` after a comment in the copy's `app/page.tsx` "
        "changed (same lockfile); build = profile_tasks' `app_release : Build` step, rest = "
        "the run's wall time minus it; install = its `Install dependencies` step, part of "
        "the rest. "
        + "; ".join(
            f"{r['host']}: verdict `{r.get('redeploy', {}).get('verdict')}`" for r in doc["apps"]
        )
        + ".",
        "",
        f"Load: `{doc['uptime_before']}` before, `{doc['uptime_after']}` after; the 1-minute "
        "load average before each run is `load_before` in the JSON.",
    ]
    if doc.get("notes"):
        lines += ["", "## Notes", "", *[f"- {note}" for note in doc["notes"]]]
    errors = [r for r in doc["apps"] if r.get("error")]
    if errors:
        lines += ["", "## Failures", ""]
        for r in errors:
            lines += [f"- `{r['host']}`:", "", "```", r["error"], "```", ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", nargs="+", choices=list(APPS), default=list(APPS))
    parser.add_argument(
        "--keep", action="store_true", help="leave the containers and the work directory"
    )
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC)
    work = Path(tempfile.mkdtemp(prefix=PREFIX))
    doc: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "bench/apps_bench.py"
        + ("" if args.apps == list(APPS) else f" --apps {' '.join(args.apps)}"),
        "image": IMAGE,
        "strategy": configured_strategy(),
        "kit_commit": kit_commit(),
        "cpus": os.cpu_count(),
        "uptime_before": uptime(),
        "apps": [],
    }
    log(f"work directory {work}; {doc['uptime_before']}")
    for key in args.apps:
        doc["apps"].append(bench_app(key, work, args.keep))
    doc["uptime_after"] = uptime()
    doc["runtime_s"] = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1)
    failed = any(r.get("error") for r in doc["apps"])
    if failed or args.keep:
        log(f"kept the work directory {work} (logs, inventory, app copies)")
    else:
        # Keep only Ansible's logs (the JSON names them): a few hundred kB.
        for path in work.iterdir():
            if path.is_dir() and path.name != "logs":
                shutil.rmtree(path)
            elif path.is_file():
                path.unlink()
        log(f"Ansible's logs: {work}/logs")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "apps-" + started.strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(doc))
    print(markdown(doc))
    print(f"results: bench/results/{stem}.json, .md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
