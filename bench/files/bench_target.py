#!/usr/bin/env python3
"""Helper that bench/serve_bench.py copies into the bench container (stdlib only).

    bench_target.py warm URL [URL ...] [--deadline S]   request each URL until it answers 2xx
    bench_target.py dev-asset BASE_URL                  a /_next/static/ .js the dev page loads
    bench_target.py exec-single PORT                    exec one `node dist/server.js` (B1)

Prints one JSON document on stdout (warm, dev-asset); exits non-zero with a message when a
URL never answers or the release cannot be started.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

# The kit's fixed app environment (DESIGN.md, "Public contract"); PORT comes from the caller.
FIXED_ENV = {"HOSTNAME": "127.0.0.1", "NODE_ENV": "production", "NEXT_TELEMETRY_DISABLED": "1"}


def fetch(url: str, timeout: float) -> tuple[int, bytes]:
    """Status and body of a GET; an HTTP error status is an answer, not an exception."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def warm(urls: list[str], deadline_s: float) -> int:
    """Dev mode compiles a route on its first request: wait until every route answers 2xx."""
    start = time.monotonic()
    took: dict[str, float] = {}
    for url in urls:
        t0 = time.monotonic()
        last = "no answer"
        while True:
            try:
                status, _ = fetch(url, timeout=max(1.0, deadline_s - (time.monotonic() - start)))
                last = str(status)
                if 200 <= status < 300:
                    break
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() - start > deadline_s:
                print(
                    f"warm: {url} did not answer 2xx within {deadline_s:.0f} s ({last})",
                    file=sys.stderr,
                )
                return 1
            time.sleep(1)
        took[url] = round(time.monotonic() - t0, 2)
    print(json.dumps(took))
    return 0


def dev_asset(base: str) -> int:
    """Hashed chunk names differ in dev mode: take a .js the dev server's page links to."""
    status, body = fetch(base + "/", timeout=120)
    paths = re.findall(r'"(/_next/static/[^"?]+\.js)', body.decode("utf-8", "replace"))
    for path in dict.fromkeys(paths):
        if fetch(base + path, timeout=120)[0] == 200:
            print(json.dumps({"path": path}))
            return 0
    print(
        f"dev-asset: no /_next/static/ .js answers on {base}/ (page status {status})",
        file=sys.stderr,
    )
    return 1


def read_env_file(path: str) -> dict[str, str]:
    """The kit's .hardenkit.env: KEY=<JSON string> per line, # comments."""
    env = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            env[key] = json.loads(value)
    return env


def exec_single(port: int, app_root: str, script: str) -> int:
    """One plain Node process of the live release, with the environment PM2 gives it."""
    current = os.path.join(app_root, "current")
    with open(os.path.join(app_root, "ecosystem.config.js"), encoding="utf-8") as fh:
        ecosystem = fh.read()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": app_root}
    env.update(read_env_file(os.path.join(current, ".hardenkit.env")))
    env.update(FIXED_ENV)
    env["PORT"] = str(port)
    ca = re.search(r'"NODE_EXTRA_CA_CERTS":\s*"([^"]+)"', ecosystem)
    if ca:
        env["NODE_EXTRA_CA_CERTS"] = ca.group(1)
    heap = re.search(r"--max-old-space-size=\d+", ecosystem)
    argv = ["node", *([heap.group(0)] if heap else []), os.path.join(current, script)]
    os.chdir(current)
    os.execvpe("node", argv, env)
    return 1  # not reached


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_warm = sub.add_parser("warm")
    p_warm.add_argument("urls", nargs="+")
    p_warm.add_argument("--deadline", type=float, default=600)
    p_asset = sub.add_parser("dev-asset")
    p_asset.add_argument("base")
    p_single = sub.add_parser("exec-single")
    p_single.add_argument("port", type=int)
    p_single.add_argument("--app-root", default="/srv/workbot")
    p_single.add_argument("--script", default="dist/server.js")
    args = parser.parse_args()
    if args.cmd == "warm":
        return warm(args.urls, args.deadline)
    if args.cmd == "dev-asset":
        return dev_asset(args.base)
    return exec_single(args.port, args.app_root, args.script)


if __name__ == "__main__":
    sys.exit(main())
