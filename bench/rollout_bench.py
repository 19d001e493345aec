#!/usr/bin/env python3
"""A rolling deploy of two app servers, one build for the fleet against a build on each host
(issue 19; `make bench-rollout`). See bench/README.md.

Three fresh containers of the local image on a network of their own (systemd as PID 1, as
molecule/cluster's platforms): a load balancer and two app servers, hardened once with the
real kit (`harden.yml`, the example app). Then, in turn, --rounds rolling deploys
(`playbooks/deploy.yml`, one host at a time) of a new release with
`app_release_build_once=true` and as many with `false`, each of a copy of the example app
whose page says which deploy it is (so each builds a new release), while
molecule/resources/files/load_loop.py sends `GET /` through the load balancer every 20 ms
from inside it. For each deploy: its wall time, its build steps (profile_tasks' lines:
how many hosts built, and for how long) and the loop's requests and failures. Writes
bench/results/rollout-<UTC stamp>.json and .md; removes the containers and the network
unless --keep (Ansible's logs stay in /tmp/hk-bench-rollout-*/logs). Not part of `make
test`: a timing is a measurement, not a pass/fail.

    .venv/bin/python bench/rollout_bench.py              # 2 rounds of each
    .venv/bin/python bench/rollout_bench.py --rounds 1
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
import tempfile
import time
from pathlib import Path
from typing import Any

# The containers of `make bench-apps` and the strategy and commit reading of `make bench`
# (this directory is on sys.path).
from apps_bench import run_logged, start_container, uptime
from serve_bench import BUILD_TIME, configured_strategy, kit_commit, log

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
NETWORK = "hk-bench-rollout"
LB = "hk-bench-rollout-lb"
APPS = ["hk-bench-rollout-app1", "hk-bench-rollout-app2"]
# profile_tasks' line of the step that takes a release another host built.
SHIP_TIME = re.compile(
    r"^hardenkit\.nodeapp\.app_release : Give the app user a build directory with the release,"
    r" its checksum checked -+ ([\d.]+)s$",
    re.M,
)
RECAP = re.compile(r"^(\S+)\s*:\s*ok=\d+\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def write_inventory(work: Path, app_src: Path) -> None:
    ca = os.environ.get("HARDENKIT_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"
    docker = {"ansible_connection": "docker", "ansible_python_interpreter": "/usr/bin/python3"}
    doc = {
        "all": {
            "vars": {
                "ansible_user": "root",
                "app_name": "workbot",
                "app_src": str(app_src),
                "app_port": 5000,
                "app_script": "dist/server.js",
                "app_script_args": "",
                "app_probes": [
                    {"path": "/", "status": 200},
                    {"path": "/api/health", "status": 200},
                ],
                "pm2_instances": 2,
                "pm2_wait_ready": True,
                "hardenkit_reports_dir": str(work / "reports"),
                "node_runtime_extra_ca_certs": [ca],
                "node_runtime_mirror": os.environ.get(
                    "HARDENKIT_NODE_MIRROR", "https://nodejs.org/dist/"
                ),
            },
            "children": {
                "app_servers": {"hosts": {name: docker for name in APPS}},
                "load_balancers": {"hosts": {LB: docker}},
            },
        }
    }
    (work / "inventory.json").write_text(json.dumps(doc, indent=2) + "\n")


def playbook(work: Path, step: str, name: str, extra: list[str]) -> dict[str, Any]:
    """One timed ansible-playbook run (profile_tasks' lines: ansible.cfg); its output goes to
    <work>/logs/<step>.log."""
    rc, seconds, text, logfile = run_logged(work, step, name, tuple(extra))
    builds = [float(x) for x in BUILD_TIME.findall(text)]
    ships = [float(x) for x in SHIP_TIME.findall(text)]
    failed = [h for h, unreachable, fail in RECAP.findall(text) if int(unreachable) or int(fail)]
    log(f"{step}: {name} {seconds} s, rc={rc}, builds {builds}, shipped {ships}")
    if rc != 0 or failed:
        tail = "\n".join(text.splitlines()[-40:])
        raise RuntimeError(f"{name} ({step}) exited {rc}; {logfile}, last lines:\n{tail}")
    return {"seconds": seconds, "builds_s": builds, "ship_s": ships, "log": str(logfile)}


def new_source(work: Path, label: str) -> Path:
    """A copy of the example app whose page names the deploy: a new release id."""
    src = work / "src" / label
    shutil.copytree(
        ROOT / "examples" / "workbot",
        src,
        ignore=shutil.ignore_patterns("node_modules", ".next", "dist"),
    )
    page = src / "app" / "page.tsx"
    page.write_text(page.read_text().replace("<h1>WorkBot</h1>", f"<h1>WorkBot {label}</h1>"))
    return src


def docker(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *argv], capture_output=True, text=True, check=False)


def deploy_under_load(work: Path, label: str, once: bool) -> dict[str, Any]:
    src = new_source(work, label)
    docker("exec", LB, "rm", "-f", "/var/tmp/bench-load.json", "/var/tmp/bench-load.stop")
    docker(
        "exec",
        LB,
        "systemd-run",
        "--unit=hk-bench-load",
        "--collect",
        "--quiet",
        "python3",
        "/usr/local/bin/hk-load-loop",
        "http://127.0.0.1/",
        "/var/tmp/bench-load.json",
        "/var/tmp/bench-load.stop",
        "900",
        "0.02",
    )
    time.sleep(2)
    try:
        out = playbook(
            work,
            label,
            "playbooks/deploy.yml",
            ["-e", f"app_src={src}", "-e", f"app_release_build_once={str(once).lower()}"],
        )
    finally:
        time.sleep(2)
        docker("exec", LB, "touch", "/var/tmp/bench-load.stop")
    load: dict[str, Any] = {}
    for _ in range(30):
        got = docker("exec", LB, "cat", "/var/tmp/bench-load.json")
        if got.returncode == 0 and got.stdout.strip():
            load = json.loads(got.stdout)
            break
        time.sleep(1)
    if not load.get("requests"):
        raise RuntimeError(f"the request loop on {LB} left no result for {label}")
    out.update({"label": label, "build_once": once, "load": load})
    return out


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# A rolling deploy of two app servers: one build against a build per host "
        f"({doc['started']})",
        "",
        f"`{doc['command']}`: a load balancer and two app servers, fresh "
        f"`{doc['image']}` containers, hardened once; then rolling deploys "
        f"(`playbooks/deploy.yml`, one host at a time) of a new release each, in turn with "
        f"`app_release_build_once` true and false, while `GET /` runs through the load "
        f"balancer every 20 ms. Strategy `{doc['strategy']}`, commit `{doc['kit_commit']}`, "
        f"{doc['cpus']} CPUs.",
        "",
        "| deploy | build once | wall s | builds (s each) | shipped (s each) | requests | failed |",
        "|---|---|---:|---|---|---:|---:|",
    ]
    for d in doc["deploys"]:
        lines.append(
            f"| {d['label']} | {'yes' if d['build_once'] else 'no'} | {d['seconds']:.1f} | "
            f"{', '.join(f'{x:.1f}' for x in d['builds_s']) or '—'} | "
            f"{', '.join(f'{x:.1f}' for x in d['ship_s']) or '—'} | "
            f"{d['load'].get('requests', '—')} | {d['load'].get('failed', '—')} |"
        )
    s = doc["summary"]
    lines += [
        "",
        f"Median wall time: build once {s['median_once_s']} s, a build per host "
        f"{s['median_per_host_s']} s ({s['saved_s']} s, {s['saved_pct']} % less with one "
        f"build). Failed requests through the load balancer: {s['failed_requests']} of "
        f"{s['requests']}.",
        "",
        f"Load: `{doc['uptime_before']}` before, `{doc['uptime_after']}` after. The first "
        f"`harden.yml` of the three containers took {doc['first_harden_s']} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="leave the containers running")
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC)
    doc: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "make bench-rollout"
        + (f" (--rounds {args.rounds})" if args.rounds != 2 else ""),
        "image": "hardenkit-base:debian12",
        "strategy": configured_strategy(),
        "kit_commit": kit_commit(),
        "cpus": os.cpu_count(),
        "uptime_before": uptime(),
        "deploys": [],
    }
    work = Path(tempfile.mkdtemp(prefix="hk-bench-rollout-"))
    names = [LB, *APPS]
    docker("network", "rm", NETWORK)
    docker("network", "create", NETWORK)
    try:
        for name in names:
            start_container(name, image=doc["image"], network=NETWORK)
        docker(
            "cp",
            str(ROOT / "molecule/resources/files/load_loop.py"),
            f"{LB}:/usr/local/bin/hk-load-loop",
        )
        write_inventory(work, new_source(work, "A"))
        log("first harden.yml of the load balancer and both app servers")
        doc["first_harden_s"] = playbook(work, "harden", "harden.yml", [])["seconds"]
        for n in range(args.rounds):
            for once in (True, False):
                label = f"{'once' if once else 'each'}-{n + 1}"
                doc["deploys"].append(deploy_under_load(work, label, once))
    finally:
        if not args.keep:
            docker("rm", "-f", *names)
            docker("network", "rm", NETWORK)
    once_s = [d["seconds"] for d in doc["deploys"] if d["build_once"]]
    each_s = [d["seconds"] for d in doc["deploys"] if not d["build_once"]]
    med_once, med_each = statistics.median(once_s), statistics.median(each_s)
    doc["summary"] = {
        "median_once_s": round(med_once, 1),
        "median_per_host_s": round(med_each, 1),
        "saved_s": round(med_each - med_once, 1),
        "saved_pct": round(100 * (med_each - med_once) / med_each, 1),
        "requests": sum(d["load"].get("requests", 0) for d in doc["deploys"]),
        "failed_requests": sum(d["load"].get("failed", 0) for d in doc["deploys"]),
    }
    doc["uptime_after"] = uptime()
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"rollout-{stamp}.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = markdown(doc)
    (RESULTS / f"rollout-{stamp}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
