"""Download a URL through the proxy of a root-only npmrc, check its sha512, move it in place.

Run by tasks/pnpm.yml when the proxy URL holds credentials: urllib takes a proxy from the
environment only, and a task's environment is on the command line of the process Ansible
starts (ps, sudo's log). This reads it from the file instead.
Usage: python3 -c "$(cat fetch_via_proxy.py)" NPMRC URL DEST SHA512; prints "changed" or "ok".
"""

import hashlib
import os
import sys
import tempfile
import urllib.request


def proxies(npmrc: str) -> dict[str, str]:
    found = {}
    with open(npmrc, encoding="utf-8") as fh:
        for line in fh:
            key, _, value = line.strip().partition("=")
            if key in ("proxy", "http-proxy", "https-proxy") and value:
                found["https" if key == "https-proxy" else "http"] = value
    return found


def sha512(path: str) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(npmrc: str, url: str, dest: str, expected: str) -> str:
    if os.path.isfile(dest) and sha512(dest) == expected:
        return "ok"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies(npmrc)))
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".fetch.")
    try:
        with os.fdopen(fd, "wb") as out, opener.open(url, timeout=60) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        got = sha512(tmp)
        if got != expected:
            raise SystemExit(f"{url}: sha512 {got}, expected {expected}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return "changed"


if __name__ == "__main__":
    print(main(*sys.argv[1:5]))
