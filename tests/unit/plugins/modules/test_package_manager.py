"""hardenkit.nodeapp.package_manager against a real registry served on loopback: the app's
manager from its lockfile, its tarball fetched once and checked, and each refusal."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.hk_testlib import run_module

DEFAULTS = {
    "pnpm": "10.34.8",
    "npm": "10.9.2",
    "yarn": "1.22.22",
    "yarn_berry": "4.5.3",
    "bun": "1.1.38",
}


def tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@contextmanager
def registry(packages: dict[str, tuple[bytes, str]]):
    """``{"npm@10.9.2": (tarball, integrity)}`` served as the npm registry serves them."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            name, _, version = self.path.strip("/").partition("/")
            if "/-/" in self.path:
                key = next(k for k in packages if self.path.endswith(f"-{k.split('@')[-1]}.tgz"))
                body, ctype = packages[key][0], "application/octet-stream"
            elif f"{name}@{version}" in packages:
                integrity = packages[f"{name}@{version}"][1]
                url = f"http://127.0.0.1:{self.server.server_port}/{name}/-/{name}-{version}.tgz"
                body = json.dumps({"dist": {"tarball": url, "integrity": integrity}}).encode()
                ctype = "application/json"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", hits
    finally:
        server.shutdown()


def app(tmp_path: Path, files: dict[str, str], package: dict | None = None) -> Path:
    src = tmp_path / "app"
    src.mkdir()
    (src / "package.json").write_text(json.dumps({"name": "shop", **(package or {})}))
    for name, text in files.items():
        (src / name).write_text(text)
    return src


def test_an_npm_app_gets_npm_checked_and_cached(tmp_path):
    npm = tarball({"bin/npm-cli.js": b"// npm\n", "bin/npx-cli.js": b"// npx\n"})
    src = app(tmp_path, {"package-lock.json": "{}"})
    with registry({"npm@10.9.2": (npm, sri(npm))}) as (url, hits):
        args = {
            "src": str(src),
            "registry": url,
            "cache_dir": str(tmp_path / "cache"),
            "defaults": DEFAULTS,
        }
        rc, out = run_module("package_manager", args, tmp_path)
        assert rc == 0, out
        assert (out["name"], out["version"], out["install_command"]) == ("npm", "10.9.2", "npm ci")
        assert out["commands"] == {"npm": "bin/npm-cli.js", "npx": "bin/npx-cli.js"}
        assert Path(out["archive"]).read_bytes() == npm
        assert out["archive_sha1"] == hashlib.sha1(npm).hexdigest()
        asked = len(hits)
        rc, again = run_module("package_manager", args, tmp_path)
        assert rc == 0 and again["archive"] == out["archive"]
        assert len(hits) == asked  # the second run asked the registry nothing
        Path(out["archive"]).write_bytes(b"corrupted")
        rc, third = run_module("package_manager", args, tmp_path)
        assert rc == 0 and Path(third["archive"]).read_bytes() == npm  # fetched anew
    assert sum(1 for h in hits if h.endswith(".tgz")) == 2


def test_a_pinned_pnpm_gets_exactly_its_version_and_hash(tmp_path):
    pnpm9 = tarball({"bin/pnpm.cjs": b"// pnpm 9\n"})
    pin = f"pnpm@9.15.9+sha512.{hashlib.sha512(pnpm9).hexdigest()}"
    src = app(tmp_path, {"pnpm-lock.yaml": "lockfileVersion: '9.0'\n"}, {"packageManager": pin})
    with registry({"pnpm@9.15.9": (pnpm9, sri(pnpm9))}) as (url, _):
        rc, out = run_module(
            "package_manager",
            {
                "src": str(src),
                "registry": url,
                "cache_dir": str(tmp_path / "c"),
                "defaults": DEFAULTS,
            },
            tmp_path,
        )
    assert rc == 0, out
    assert (out["version"], out["pinned"], out["dir_name"]) == ("9.15.9", True, "pnpm-9.15.9")
    assert out["commands"] == {"pnpm": "bin/pnpm.cjs"}


def test_a_tarball_that_does_not_match_its_pin_is_refused(tmp_path):
    real, forged = tarball({"bin/pnpm.cjs": b"ok"}), tarball({"bin/pnpm.cjs": b"evil"})
    pin = f"pnpm@9.15.9+sha512.{hashlib.sha512(real).hexdigest()}"
    src = app(tmp_path, {"pnpm-lock.yaml": ""}, {"packageManager": pin})
    with registry({"pnpm@9.15.9": (forged, sri(forged))}) as (url, _):
        rc, out = run_module(
            "package_manager",
            {
                "src": str(src),
                "registry": url,
                "cache_dir": str(tmp_path / "c"),
                "defaults": DEFAULTS,
            },
            tmp_path,
        )
    assert rc != 0
    assert 'package.json "packageManager" hash check failed' in out["msg"]
    assert not list((tmp_path / "c").glob("*.tgz"))


def test_an_app_without_a_lockfile_is_refused_with_the_fix(tmp_path):
    src = app(tmp_path, {})
    rc, out = run_module(
        "package_manager",
        {"src": str(src), "cache_dir": str(tmp_path / "c"), "defaults": DEFAULTS},
        tmp_path,
    )
    assert rc != 0
    assert out["msg"].startswith(f"app_src {src}: no lockfile found")
    assert "npm install" in out["msg"] and "commit the lockfile" in out["msg"]


def test_a_pin_that_disagrees_with_the_lockfile_is_refused(tmp_path):
    src = app(tmp_path, {"package-lock.json": "{}"}, {"packageManager": "pnpm@9.15.9"})
    rc, out = run_module(
        "package_manager",
        {"src": str(src), "cache_dir": str(tmp_path / "c"), "defaults": DEFAULTS},
        tmp_path,
    )
    assert rc != 0
    said = 'package.json "packageManager" says pnpm@9.15.9 but the lockfile is package-lock.json'
    assert said in out["msg"]
