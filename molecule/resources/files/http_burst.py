#!/usr/bin/env python3
"""Send a bounded burst of GET requests and count the statuses, standard library only.

Usage: http_burst.py URL COUNT  (certificates are not verified)
Prints a JSON object {status: count}; a request that gets no answer counts as "error".
"""

import json
import ssl
import sys
import urllib.error
import urllib.request
from collections import Counter


def main() -> int:
    url, count = sys.argv[1], int(sys.argv[2])
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    counts: Counter = Counter()
    for _ in range(count):
        try:
            with urllib.request.urlopen(url, timeout=10, context=ctx) as resp:
                counts[str(resp.status)] += 1
        except urllib.error.HTTPError as exc:
            counts[str(exc.code)] += 1
        except OSError:
            counts["error"] += 1
    print(json.dumps(dict(counts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
