#!/usr/bin/env python3
"""Load an app's database route through Nginx and watch PostgreSQL's connections meanwhile
(molecule/faults/faults/13_db_budget.yml), standard library only.

Usage: db_load.py URL CONCURRENCY OUT STOP MAX_SECONDS DB_USER

CONCURRENCY threads each send GET URL over one kept-alive connection, one request after
the other, until the file STOP exists or MAX_SECONDS pass. Every 100 ms a sampler counts
DB_USER's connections in ``pg_stat_activity`` (``psql`` as postgres). At the end OUT
gets a JSON object: requests, statuses {status: count}, ``too_many_clients`` (answers
whose body says PostgreSQL refused a connection: SQLSTATE 53300's "too many clients" or
"remaining connection slots"), the samples taken, the most connections seen and a
histogram {connections: samples}.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter

REFUSED = (b"too many clients", b"remaining connection slots", b"53300")


def load(url: str, until: float, stop: str, out: dict, lock: threading.Lock) -> None:
    parts = urllib.parse.urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection | None = None
    statuses: Counter = Counter()
    refused = 0
    while time.monotonic() < until and not os.path.exists(stop):
        try:
            if conn is None:
                conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=15)
            conn.request("GET", path, headers={"Host": "localhost"})
            resp = conn.getresponse()
            body = resp.read()
            statuses[str(resp.status)] += 1
            refused += any(marker in body for marker in REFUSED)
            if resp.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            statuses["error"] += 1
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.05)
    with lock:
        out["statuses"].update(statuses)
        out["too_many_clients"] += refused


def count_connections(user: str) -> int | None:
    query = f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}'"
    try:
        proc = subprocess.run(
            ["runuser", "-u", "postgres", "--", "psql", "-XAtqc", query],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return int(proc.stdout.strip()) if proc.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def sample(user: str, until: float, stop: str, seen: Counter) -> None:
    while time.monotonic() < until and not os.path.exists(stop):
        started = time.monotonic()
        count = count_connections(user)
        if count is not None:
            seen[count] += 1
        time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))


def main() -> int:
    url, concurrency, out_path, stop, seconds, user = sys.argv[1:7]
    until = time.monotonic() + float(seconds)
    out: dict = {"statuses": Counter(), "too_many_clients": 0}
    lock = threading.Lock()
    seen: Counter = Counter()
    threads = [
        threading.Thread(target=load, args=(url, until, stop, out, lock))
        for _ in range(int(concurrency))
    ]
    threads.append(threading.Thread(target=sample, args=(user, until, stop, seen)))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = {
        "seconds": round(time.monotonic() - started, 1),
        "concurrency": int(concurrency),
        "requests": sum(out["statuses"].values()),
        "statuses": dict(out["statuses"]),
        "too_many_clients": out["too_many_clients"],
        "samples": sum(seen.values()),
        "max_connections": max(seen) if seen else None,
        "connections": {str(k): v for k, v in sorted(seen.items())},
    }
    tmp = f"{out_path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
