"""hardenkit.nodeapp.node_release against a Node.js mirror served on loopback in nodejs.org's
dist/ layout: the version from the operator or the app, the build fetched once and checked
against SHASUMS256.txt, the release list cached, and each refusal."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.hk_testlib import run_module

BOTH = ["linux-x64", "linux-arm64", "osx-arm64-tar", "win-x64-zip"]

# (version, LTS codename or False, files): 24 and 23 are current releases newer than the
# newest LTS (22.12.0, Jod); 18 has no linux-arm64 build.
RELEASES = [
    ("24.2.0", False, BOTH),
    ("23.11.1", False, BOTH),
    ("22.12.0", "Jod", BOTH),
    ("22.1.0", False, BOTH),
    ("21.7.3", False, BOTH),
    ("20.18.1", "Iron", BOTH),
    ("18.20.5", "Hydrogen", ["linux-x64", "win-x64-zip"]),
]
NEWEST_LTS = "22.12.0"


def build(version: str, arch: str = "linux-x64") -> bytes:
    """The bytes the mirror serves as a build (the module only hashes them)."""
    return f"node {version} {arch}\n".encode() * 64


def tarball(version: str, arch: str = "linux-x64") -> str:
    return f"node-v{version}-{arch}.tar.xz"


class Mirror:
    """A nodejs.org dist/ tree as ``files`` ({request path: body}, editable while it runs);
    ``hits`` records each request's path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: list[str] = []
        self.url = ""
        index = []
        for version, lts, files in RELEASES:
            index.append(
                {
                    "version": f"v{version}",
                    "date": "2024-12-03",
                    "files": files,
                    "lts": lts,
                    "security": False,
                }
            )
            sums = []
            for arch in ("linux-x64", "linux-arm64"):
                if arch in files:
                    data = build(version, arch)
                    self.files[f"/v{version}/{tarball(version, arch)}"] = data
                    sums.append(f"{hashlib.sha256(data).hexdigest()}  {tarball(version, arch)}")
            sums.append(f"{'0' * 64}  node-v{version}.tar.gz")
            self.files[f"/v{version}/SHASUMS256.txt"] = ("\n".join(sums) + "\n").encode()
        self.files["/index.json"] = json.dumps(index).encode()

    def path(self, version: str, arch: str = "linux-x64") -> str:
        return f"/v{version}/{tarball(version, arch)}"

    def downloads(self) -> list[str]:
        """The requests for builds, in order."""
        return [h for h in self.hits if h.endswith(".tar.xz")]


@contextmanager
def serve():
    mirror = Mirror()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            mirror.hits.append(self.path)
            body = mirror.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    mirror.url = f"http://127.0.0.1:{server.server_port}/"
    try:
        yield mirror
    finally:
        server.shutdown()
        server.server_close()


def node_release(mirror: Mirror, tmp_path: Path, **args) -> tuple[int, dict]:
    args = {
        "mirror": mirror.url,
        "architecture": "x86_64",
        "cache_dir": str(tmp_path / "cache"),
        **args,
    }
    return run_module("node_release", args, tmp_path)


def app(tmp_path: Path, files: dict[str, str], package: dict | None = None) -> Path:
    src = tmp_path / "app"
    src.mkdir(exist_ok=True)
    (src / "package.json").write_text(json.dumps({"name": "shop", **(package or {})}))
    for name, text in files.items():
        (src / name).write_text(text)
    return src


def warning_texts(out: dict) -> list[str]:
    """The module's warnings as text: plain strings before ansible-core 2.19, then
    ``{"event": {"msg": ...}, "__ansible_type": "WarningSummary"}``."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in out.get("warnings", [])]


def cached_index(tmp_path: Path) -> Path:
    (index,) = (tmp_path / "cache").glob("*/index.json")
    return index


# --- which version ------------------------------------------------------------------------


def test_no_spec_anywhere_gets_the_newest_lts_checked_and_cached(tmp_path):
    with serve() as mirror:
        rc, out = node_release(mirror, tmp_path)
    assert rc == 0, out
    assert out["version"] == NEWEST_LTS  # not 24.2.0, the newer current release
    assert (out["major"], out["lts"], out["spec"]) == (22, "jod", None)
    assert out["source"] == "the newest LTS"
    assert (out["arch"], out["dir_name"]) == ("linux-x64", f"v{NEWEST_LTS}-linux-x64")
    archive = Path(out["archive"])
    assert archive.name == tarball(NEWEST_LTS)
    assert archive.is_relative_to(tmp_path / "cache")
    assert archive.read_bytes() == build(NEWEST_LTS)
    assert out["sha256"] == hashlib.sha256(build(NEWEST_LTS)).hexdigest()
    assert out["url"] == f"{mirror.url}v{NEWEST_LTS}/{tarball(NEWEST_LTS)}"
    assert out["changed"] is False
    assert mirror.hits == ["/index.json", f"/v{NEWEST_LTS}/SHASUMS256.txt", mirror.path(NEWEST_LTS)]


def test_the_version_option_as_major_exact_and_range(tmp_path):
    with serve() as mirror:
        rc, major = node_release(mirror, tmp_path, version="22")
        assert rc == 0, major
        rc, exact = node_release(mirror, tmp_path, version="22.1.0")
        assert rc == 0, exact
        rc, ranged = node_release(mirror, tmp_path, version=">=20.9.0")
        assert rc == 0, ranged
        rc, newest = node_release(mirror, tmp_path, version="node", fetch=False)
        assert rc == 0, newest
    assert (major["version"], major["spec"], major["source"]) == (
        "22.12.0",
        "22",
        "node_runtime_version",
    )
    assert (exact["version"], exact["lts"], exact["spec"]) == ("22.1.0", None, "22.1.0")
    assert Path(exact["archive"]).read_bytes() == build("22.1.0")
    # A range prefers the newest LTS it allows to the newer current 24.2.0.
    assert (ranged["version"], ranged["lts"]) == (NEWEST_LTS, "jod")
    assert newest["version"] == "24.2.0"


def test_the_spec_comes_from_the_option_then_nvmrc_node_version_and_engines(tmp_path):
    src = app(
        tmp_path,
        {".nvmrc": "# the LTS line we test on\nlts/jod\n", ".node-version": "20\n"},
        {"engines": {"node": "^18.17.0"}},
    )
    with serve() as mirror:
        seen = []
        for remove in (None, "option", ".nvmrc", ".node-version", "package.json"):
            if remove in (".nvmrc", ".node-version"):
                (src / remove).unlink()
            elif remove == "package.json":
                (src / "package.json").write_text('{"name": "shop"}')
            version = "21" if remove is None else ""
            rc, out = node_release(mirror, tmp_path, version=version, app_dir=str(src), fetch=False)
            assert rc == 0, out
            seen.append((out["source"], out["spec"], out["version"]))
    assert seen == [
        ("node_runtime_version", "21", "21.7.3"),
        (".nvmrc", "lts/jod", NEWEST_LTS),
        (".node-version", "20", "20.18.1"),
        ("package.json engines.node", "^18.17.0", "18.20.5"),
        ("the newest LTS", None, NEWEST_LTS),
    ]


def test_a_monorepo_app_falls_back_to_the_workspace_root(tmp_path):
    root = app(tmp_path, {".nvmrc": "20\n"})
    web = root / "apps" / "web"
    web.mkdir(parents=True)
    (web / "package.json").write_text('{"name": "web"}')
    with serve() as mirror:
        rc, from_root = node_release(
            mirror, tmp_path, app_dir=str(web), workspace_dir=str(root), fetch=False
        )
        (web / ".node-version").write_text("18\n")
        rc2, own = node_release(
            mirror, tmp_path, app_dir=str(web), workspace_dir=str(root), fetch=False
        )
    assert rc == 0 and (from_root["source"], from_root["version"]) == (".nvmrc", "20.18.1")
    assert rc2 == 0 and (own["source"], own["version"]) == (".node-version", "18.20.5")


def test_a_spec_no_release_satisfies_fails_naming_its_source(tmp_path):
    src = app(tmp_path, {".nvmrc": "19\n"})
    with serve() as mirror:
        rc, nvmrc = node_release(mirror, tmp_path, app_dir=str(src))
        rc2, option = node_release(mirror, tmp_path, version="99", app_dir=str(src))
        (src / ".nvmrc").write_text("lts/argon-not-a-line\n")
        rc3, alias = node_release(mirror, tmp_path, app_dir=str(src))
    assert rc != 0 and nvmrc["failed"] is True
    assert f".nvmrc in {src}" in nvmrc["msg"] and "'19'" in nvmrc["msg"]
    assert "24.2.0" in nvmrc["msg"]  # lists the newest releases there are
    assert rc2 != 0 and option["failed"] is True
    assert option["msg"].startswith("node_runtime_version asks for Node.js '99'")
    assert rc3 != 0 and alias["failed"] is True
    assert f".nvmrc in {src}" in alias["msg"] and "jod" in alias["msg"]
    assert not list((tmp_path / "cache").rglob("*.tar.xz"))


def test_invalid_package_json_fails_naming_it(tmp_path):
    src = app(tmp_path, {})
    (src / "package.json").write_text('{"name": "shop",')
    with serve() as mirror:
        rc, out = node_release(mirror, tmp_path, app_dir=str(src))
    assert rc != 0 and out["failed"] is True
    assert f"{src}/package.json is not valid JSON" in out["msg"]
    assert mirror.hits == []


def test_the_architecture_picks_the_build(tmp_path):
    with serve() as mirror:
        rc, arm = node_release(mirror, tmp_path, architecture="aarch64")
        assert rc == 0, arm
        rc2, old = node_release(mirror, tmp_path, architecture="aarch64", version="18")
        asked = list(mirror.hits)
        rc3, s390 = node_release(mirror, tmp_path, architecture="s390x")
    assert (arm["arch"], arm["dir_name"]) == ("linux-arm64", f"v{NEWEST_LTS}-linux-arm64")
    assert Path(arm["archive"]).name == tarball(NEWEST_LTS, "linux-arm64")
    assert Path(arm["archive"]).read_bytes() == build(NEWEST_LTS, "linux-arm64")
    assert mirror.downloads() == [mirror.path(NEWEST_LTS, "linux-arm64")]
    # 18.20.5 has no linux-arm64 build: refused before any download.
    assert rc2 != 0 and "no release it allows (18.20.5)" in old["msg"]
    assert "linux-arm64" in old["msg"]
    assert rc3 != 0 and s390["failed"] is True
    assert "'s390x'" in s390["msg"] and "x86_64 (linux-x64)" in s390["msg"]
    assert mirror.hits == asked  # an unknown architecture asks the mirror nothing


def test_without_fetch_only_the_version_is_decided(tmp_path):
    with serve() as mirror:
        rc, out = node_release(mirror, tmp_path, version="22", fetch=False)
    assert rc == 0, out
    assert (out["version"], out["lts"], out["dir_name"]) == ("22.12.0", "jod", "v22.12.0-linux-x64")
    assert out["archive"] is None and out["sha256"] is None
    assert mirror.hits == ["/index.json"]
    assert not list((tmp_path / "cache").rglob("*.tar.xz"))


# --- caching ------------------------------------------------------------------------------


def test_a_cached_exact_build_asks_the_mirror_nothing_and_a_damaged_one_is_fetched_again(
    tmp_path,
):
    with serve() as mirror:
        rc, first = node_release(mirror, tmp_path, version="v20.18.1")
        assert rc == 0, first
        assert mirror.downloads() == [mirror.path("20.18.1")]
        mirror.hits.clear()
        rc, again = node_release(mirror, tmp_path, version="20.18.1")
        assert rc == 0, again
        assert mirror.hits == []
        assert (again["archive"], again["sha256"]) == (first["archive"], first["sha256"])
        assert again["version"] == "20.18.1" and again["lts"] is None  # the index was not read

        Path(first["archive"]).write_bytes(b"damaged on disk")
        rc, third = node_release(mirror, tmp_path, version="20.18.1")
        assert rc == 0, third
    assert mirror.hits == ["/v20.18.1/SHASUMS256.txt", mirror.path("20.18.1")]
    assert Path(third["archive"]).read_bytes() == build("20.18.1")
    assert third["sha256"] == first["sha256"]


def test_the_release_list_is_cached_for_index_max_age(tmp_path):
    with serve() as mirror:
        rc, first = node_release(mirror, tmp_path, version="22")
        assert rc == 0, first
        mirror.hits.clear()
        rc, cached = node_release(mirror, tmp_path, version="22")
        assert rc == 0, cached
        assert mirror.hits == []  # neither the index nor the (cached) build
        rc, expired = node_release(mirror, tmp_path, version="22", index_max_age=0)
        assert rc == 0, expired
    assert mirror.hits == ["/index.json"]
    assert cached["version"] == expired["version"] == "22.12.0"


def test_a_stale_index_is_used_with_a_warning_when_the_mirror_cannot_give_one(tmp_path):
    with serve() as mirror:
        rc, first = node_release(mirror, tmp_path, version="20", fetch=False)
        assert rc == 0, first
        hour_ago = time.time() - 7200
        os.utime(cached_index(tmp_path), (hour_ago, hour_ago))
        del mirror.files["/index.json"]
        rc, stale = node_release(mirror, tmp_path, version="20", fetch=False)
    assert rc == 0, stale
    assert stale["version"] == "20.18.1"
    assert mirror.hits == ["/index.json", "/index.json"]  # it did try again
    assert "warnings" not in first
    (warning,) = warning_texts(stale)
    assert f"cannot read {mirror.url}index.json" in warning
    assert "using the copy read 7" in warning


def test_no_index_and_no_copy_fails_naming_node_runtime_mirror(tmp_path):
    with serve() as mirror:
        del mirror.files["/index.json"]
        rc, out = node_release(mirror, tmp_path)
    assert rc != 0 and out["failed"] is True
    assert f"cannot read the Node.js release list {mirror.url}index.json" in out["msg"]
    assert "set node_runtime_mirror" in out["msg"]


# --- a mirror not to be trusted -----------------------------------------------------------


def test_a_build_that_does_not_match_shasums_is_refused_and_not_kept(tmp_path):
    with serve() as mirror:
        mirror.files[mirror.path(NEWEST_LTS)] = b"not what SHASUMS256.txt says"
        rc, out = node_release(mirror, tmp_path)
    assert rc != 0 and out["failed"] is True
    assert "sha256" in out["msg"]
    assert hashlib.sha256(build(NEWEST_LTS)).hexdigest() in out["msg"]
    cache = tmp_path / "cache"
    assert not [p for p in cache.rglob("*") if tarball(NEWEST_LTS) in p.name]


def test_shasums_without_the_build_is_refused(tmp_path):
    with serve() as mirror:
        sums = mirror.files["/v22.12.0/SHASUMS256.txt"].decode().splitlines()
        mirror.files["/v22.12.0/SHASUMS256.txt"] = "\n".join(
            line for line in sums if "linux-x64" not in line
        ).encode()
        rc, out = node_release(mirror, tmp_path, version="22")
    assert rc != 0 and out["failed"] is True
    assert f"lists no {tarball('22.12.0')}" in out["msg"]
    assert mirror.downloads() == []
    assert not list((tmp_path / "cache").rglob("*.tar.xz"))


def test_the_mirror_url_works_with_and_without_a_trailing_slash(tmp_path):
    with serve() as mirror:
        bare = mirror.url.rstrip("/")
        rc, without = run_module(
            "node_release",
            {
                "mirror": bare,
                "architecture": "x86_64",
                "cache_dir": str(tmp_path / "a"),
                "version": "20",
            },
            tmp_path,
        )
        assert rc == 0, without
        rc, with_slash = run_module(
            "node_release",
            {
                "mirror": bare + "/",
                "architecture": "x86_64",
                "cache_dir": str(tmp_path / "b"),
                "version": "20",
            },
            tmp_path,
        )
        assert rc == 0, with_slash
    once = ["/index.json", "/v20.18.1/SHASUMS256.txt", mirror.path("20.18.1")]
    assert mirror.hits == once + once  # never //index.json
    assert without["url"] == with_slash["url"] == f"{bare}{mirror.path('20.18.1')}"
    assert Path(without["archive"]).read_bytes() == Path(with_slash["archive"]).read_bytes()
