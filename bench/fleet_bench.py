#!/usr/bin/env python3
"""`diagnose.yml` over N light containers against over one (issue: Ansible's own speed).

Starts N containers of the local base image (systemd and Python, nothing of the app: the
diagnosis then reports an app that is not there, which takes the same work), runs the real
`playbooks/diagnose.yml` with the repository's ansible.cfg (forks, pipelining) against one
of them and against all of them, R rounds interleaved, and writes the medians to
bench/results/fleet-<UTC stamp>.json and .md. The containers are removed afterwards.

Beside it, the same rounds of a one-task playbook (`ansible.builtin.ping`, nothing of the
kit): Ansible's own cost of one more host on this machine, the floor under any playbook's
ratio. Here the containers and the control node share the same CPUs, so every host's
module runs on the control node's cores too.

    .venv/bin/python bench/fleet_bench.py --hosts 10 --rounds 3
    # Through Mitogen's own strategy, set up as docs/scaling.md ("Mitogen") shows:
    ANSIBLE_STRATEGY_PLUGINS=... .venv/bin/python bench/fleet_bench.py --strategy mitogen_linear

Not part of `make test`: a timing is a measurement, not a pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The same reading of ansible.cfg as `make bench` (this directory is on sys.path).
from serve_bench import configured_strategy

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
IMAGE = "hardenkit-base:debian12"
# systemd as PID 1 without --privileged, as in molecule/*/molecule.yml.
RUN_ARGS = [
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
]


def sh(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=True, text=True, capture_output=True, **kw)


def start(names: list[str]) -> None:
    for name in names:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        sh("docker", "run", "-d", "--name", name, *RUN_ARGS, IMAGE, "/lib/systemd/systemd")
    for name in names:
        # "degraded" is fine: some units of a minimal image fail in a container.
        subprocess.run(
            ["docker", "exec", name, "systemctl", "is-system-running", "--wait"],
            capture_output=True,
            timeout=120,
        )


def inventory(names: list[str], path: Path, reports: Path) -> None:
    # community.docker.docker by its short name, the one Mitogen takes over (docs/scaling.md).
    hosts = {n: {"ansible_connection": "docker"} for n in names}
    doc = {
        "all": {
            "vars": {
                "ansible_python_interpreter": "/usr/bin/python3",
                "app_name": "workbot",
                "app_src": str(ROOT / "examples" / "workbot"),
                "hardenkit_reports_dir": str(reports),
            },
            "children": {"app_servers": {"hosts": hosts}, "load_balancers": {"hosts": hosts}},
        }
    }
    path.write_text(json.dumps(doc, indent=2))


# The floor: one module run per host, nothing else.
PING_PLAY = """- name: One module run per host, nothing of the kit
  hosts: app_servers
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""


def run(
    inv: Path, limit: str, strategy: str | None, playbook: str = "playbooks/diagnose.yml"
) -> float:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0"}
    if strategy:
        env["ANSIBLE_STRATEGY"] = strategy
    t0 = time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inv), "--limit", limit, playbook],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
    )
    took = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"{playbook} failed ({limit}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--strategy", default=None, help="ANSIBLE_STRATEGY for the runs (default: ansible.cfg's)"
    )
    args = parser.parse_args()
    strategy = args.strategy or configured_strategy()

    names = [f"hk-fleet-{i:02d}" for i in range(1, args.hosts + 1)]
    start(names)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            inv = Path(tmp) / "inventory.json"
            inventory(names, inv, Path(tmp) / "reports")
            ping = Path(tmp) / "ping.yml"
            ping.write_text(PING_PLAY)
            run(inv, names[0], args.strategy)  # warm-up: fact caches, page cache
            one, many, ping_one, ping_many = [], [], [], []
            for _ in range(args.rounds):
                one.append(run(inv, names[0], args.strategy))
                many.append(run(inv, "app_servers", args.strategy))
                ping_one.append(run(inv, names[0], args.strategy, str(ping)))
                ping_many.append(run(inv, "app_servers", args.strategy, str(ping)))
            fleet = json.loads((Path(tmp) / "reports" / "fleet" / "latest.json").read_text())
    finally:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True)

    load = os.getloadavg()
    result = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hosts": args.hosts,
        "rounds": args.rounds,
        "strategy": strategy,
        "one_host_s": [round(x, 2) for x in one],
        "all_hosts_s": [round(x, 2) for x in many],
        "median_one_s": round(statistics.median(one), 2),
        "median_all_s": round(statistics.median(many), 2),
        "ratio": round(statistics.median(many) / statistics.median(one), 2),
        # A one-task ping playbook, 1 host and all hosts: the floor of the ratio here.
        "floor_one_host_s": [round(x, 2) for x in ping_one],
        "floor_all_hosts_s": [round(x, 2) for x in ping_many],
        "floor_ratio": round(statistics.median(ping_many) / statistics.median(ping_one), 2),
        # Seconds each host beyond the first adds, for diagnose.yml and for the ping.
        "per_extra_host_s": round(
            (statistics.median(many) - statistics.median(one)) / max(args.hosts - 1, 1), 3
        ),
        "floor_per_extra_host_s": round(
            (statistics.median(ping_many) - statistics.median(ping_one)) / max(args.hosts - 1, 1), 3
        ),
        "fleet_rows": len(fleet["hosts"]),
        "cpus": os.cpu_count(),
        "load_after": [round(x, 2) for x in load],
    }
    one_s, all_s = result["one_host_s"], result["all_hosts_s"]
    stamp = result["generated_at"].replace("-", "").replace(":", "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"fleet-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = (
        f"# diagnose.yml over {args.hosts} containers vs 1 ({result['generated_at']})\n\n"
        f"`.venv/bin/python bench/fleet_bench.py --hosts {args.hosts} --rounds {args.rounds}`, "
        f"{result['cpus']} CPUs, the repository's ansible.cfg (forks 20, pipelining), "
        f"strategy `{strategy}`, `docker` connection.\n\n"
        "| hosts | runs (s) | median (s) |\n|---:|---|---:|\n"
        f"| 1 | {', '.join(map(str, one_s))} | {result['median_one_s']} |\n"
        f"| {args.hosts} | {', '.join(map(str, all_s))} | {result['median_all_s']} |\n\n"
        f"Ratio {result['ratio']} (target ≤ 2); the fleet summary listed "
        f"{result['fleet_rows']} hosts. Each host beyond the first adds "
        f"{result['per_extra_host_s']} s.\n\n"
        "The floor, a one-task `ansible.builtin.ping` playbook over the same hosts "
        "(nothing of the kit; the hosts' modules run on the control node's CPUs):\n\n"
        "| hosts | runs (s) | median (s) |\n|---:|---|---:|\n"
        f"| 1 | {', '.join(map(str, result['floor_one_host_s']))} | "
        f"{statistics.median(ping_one):.2f} |\n"
        f"| {args.hosts} | {', '.join(map(str, result['floor_all_hosts_s']))} | "
        f"{statistics.median(ping_many):.2f} |\n\n"
        f"Floor ratio {result['floor_ratio']}; each host beyond the first adds "
        f"{result['floor_per_extra_host_s']} s. Load average after: {result['load_after']}.\n"
    )
    (RESULTS / f"fleet-{stamp}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
