#!/usr/bin/env python3
"""Ask the site for its home page several ways, back to back, and say how Nginx answered.

Usage: page_cache.py BASE_URL  (certificates are not verified)
Prints a JSON object: for each kind of request, a list of {status, cache, type} in order;
cache is the X-Cache-Status header (null when absent).
"""

import json
import ssl
import sys
import urllib.error
import urllib.request

KINDS = {
    "page": ("/", {}),
    "rsc": ("/", {"RSC": "1"}),
    "cookie": ("/", {"Cookie": "session=abc"}),
    "api": ("/api/health", {}),
}


def ask(url: str, headers: dict[str, str], ctx: ssl.SSLContext) -> dict:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=ctx) as resp:
            resp.read()
            status, got = resp.status, resp.headers
    except urllib.error.HTTPError as exc:
        status, got = exc.code, exc.headers
    return {
        "status": status,
        "cache": got.get("X-Cache-Status"),
        "type": (got.get("Content-Type") or "").split(";")[0],
    }


def main() -> int:
    base = sys.argv[1].rstrip("/")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    result: dict[str, list] = {kind: [] for kind in KINDS}
    for kind, (path, headers) in KINDS.items():
        for _ in range(3):
            result[kind].append(ask(base + path, headers, ctx))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
