#!/usr/bin/env python3
"""A bounded request loop: GET a URL until a stop file appears or the time runs out.

Usage: load_loop.py URL RESULT_JSON STOP_FILE MAX_SECONDS [INTERVAL]
Writes {requests, ok, failed, statuses, errors, worst_ms, seconds, started, first_fail,
last_fail} to RESULT_JSON (the last three as Unix times, so a fault's recovery time can
be read against the moment it was injected: last_fail is when the last failed request was
sent, so every request sent after it succeeded). A failed request is a non-2xx answer or
no answer at all.
"""

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections import Counter


def main() -> int:
    url, result_path, stop_file, max_s = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    interval = float(sys.argv[5]) if len(sys.argv) > 5 else 0.05
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    statuses: Counter = Counter()
    errors: Counter = Counter()
    worst = 0.0
    first_fail = last_fail = None
    started = time.time()
    start = time.monotonic()
    while time.monotonic() - start < max_s and not os.path.exists(stop_file):
        t0 = time.monotonic()
        sent = time.time()
        ok = False
        try:
            with urllib.request.urlopen(url, timeout=10, context=ctx) as resp:
                resp.read()
                statuses[str(resp.status)] += 1
                ok = 200 <= resp.status < 300
        except urllib.error.HTTPError as exc:
            statuses[str(exc.code)] += 1
        except OSError as exc:
            errors[type(exc).__name__] += 1
        if not ok:
            first_fail = first_fail or sent
            last_fail = sent
        worst = max(worst, (time.monotonic() - t0) * 1000)
        time.sleep(interval)
    total = sum(statuses.values()) + sum(errors.values())
    ok = sum(n for code, n in statuses.items() if code.startswith("2"))
    result = {
        "requests": total,
        "ok": ok,
        "failed": total - ok,
        "statuses": dict(statuses),
        "errors": dict(errors),
        "worst_ms": round(worst, 1),
        "seconds": round(time.monotonic() - start, 1),
        "started": round(started, 3),
        "first_fail": first_fail and round(first_fail, 3),
        "last_fail": last_fail and round(last_fail, 3),
    }
    tmp = result_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(tmp, result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
