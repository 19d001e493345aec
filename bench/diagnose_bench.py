#!/usr/bin/env python3
"""How long one diagnosis takes on a busy host (DESIGN.md: well under a second).

Runs the `diagnose` module's logic (plugins/module_utils/diagnosis.py) against this
machine's real /proc, optionally after starting N idle processes so the process table has
a few hundred entries, and prints the median and worst of R rounds. Probes go to a closed
loopback port, so they answer at once ("connection refused") and time only the diagnosis.

    .venv/bin/python bench/diagnose_bench.py --extra-processes 300 --rounds 20

Not part of `make test`: a timing is a measurement, not a pass/fail.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.diagnosis import (  # noqa: E402
    DiagnoseOptions,
    diagnose,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra-processes", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    sleepers = [subprocess.Popen(["sleep", "600"]) for _ in range(args.extra_processes)]
    try:
        procs = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit())
        opts = DiagnoseOptions(
            app_name="workbot",
            app_root="/srv/workbot",
            app_port=59999,
            proxy_port=59998,
            probes=[{"path": "/", "status": 200}, {"path": "/api/health", "status": 200}],
        )
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            result = diagnose(opts)
            times.append((time.perf_counter() - start) * 1000)
        report = {
            "processes": procs,
            "rounds": args.rounds,
            "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1),
            "findings": len(result["findings"]),
        }
        print(json.dumps(report))
    finally:
        for p in sleepers:
            p.kill()
        for p in sleepers:
            p.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
