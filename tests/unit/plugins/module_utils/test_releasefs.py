"""Releases taken over, switched and pruned by the ``release`` module, as root, against
trees an unprivileged user (``nobody`` standing in for the app user) planted links,
FIFOs, setuid files and foreign hard links in. Named after the audit's items
(shared/reviews/security-audit-2026-12-06.md): H1-H3, M1, M3, M12, L5, L10.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils import releasefs as rfs
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nextbuild import (
    check_next_build,
)
from tests.hk_testlib import run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="take-over needs root (CI runs as root)")

APP = "nobody"
SECRET = "root-only-S3CRET-marker"


def _uid() -> int:
    return pwd.getpwnam(APP).pw_uid


def _gid() -> int:
    return pwd.getpwnam(APP).pw_gid


def as_app(path: Path) -> None:
    """What the app user made: every entry under ``path`` is its own."""
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, _uid(), _gid())
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), _uid(), _gid(), follow_symlinks=False)


def tree(base: Path) -> dict[str, str]:
    """Owner, mode and content digest of everything under ``base``: a victim's state."""
    out = {}
    for p in [base, *sorted(base.rglob("*"))]:
        st = p.lstat()
        body = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
        out[str(p)] = f"{st.st_uid}:{st.st_gid}:{oct(st.st_mode)}:{hash(body)}"
    return out


@pytest.fixture
def base():
    """A root-owned scratch directory the app user can traverse (as /srv is)."""
    path = Path(tempfile.mkdtemp(prefix="hk-release-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def victim(base: Path) -> Path:
    """Root's files outside the app: what a planted link aims at."""
    v = base / "victim"
    (v / "private").mkdir(parents=True)
    (v / "private").chmod(0o700)
    (v / "shadow").write_text(SECRET + "\n")
    (v / "shadow").chmod(0o600)
    (v / "private" / "readable").write_text(SECRET + " public\n")
    (v / "private" / "readable").chmod(0o644)
    (v / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (v / "passwd").chmod(0o644)
    return v


def _app_root(base: Path, name: str) -> Path:
    """An app_root as the role leaves it: shared/cache, and shared/data the app user's."""
    root = base / name
    (root / "shared" / "cache").mkdir(parents=True)
    (root / "shared" / "data").mkdir()
    os.chown(root / "shared" / "data", _uid(), _gid())
    return root


@pytest.fixture
def app_root(base: Path) -> Path:
    return _app_root(base, "app")


def module(action: str, app_root: Path, tmp_path: Path, **kw) -> tuple[int, dict]:
    args = {"action": action, "app_root": str(app_root), "user": APP, **kw}
    return run_module("release", args, tmp_path)


def stage(app_root: Path, tmp_path: Path, rid: str) -> Path:
    rc, out = module("stage", app_root, tmp_path, release_id=rid)
    assert rc == 0, out
    path = app_root / "builds" / rid
    assert path.stat().st_uid == _uid()
    return path


def fake_build(rel: Path, build_id: str = "b1d_abc-123") -> None:
    """What `next build` leaves: BUILD_ID, a manifest and its route file, static assets."""
    (rel / ".next" / "server" / "app").mkdir(parents=True, exist_ok=True)
    (rel / ".next" / "static" / "chunks").mkdir(parents=True, exist_ok=True)
    (rel / ".next" / "cache" / "webpack").mkdir(parents=True, exist_ok=True)
    (rel / ".next" / "BUILD_ID").write_text(build_id)
    (rel / ".next" / "server" / "app-paths-manifest.json").write_text(
        json.dumps({"/page": "app/page.js"})
    )
    (rel / ".next" / "server" / "app" / "page.js").write_text("module.exports = 1")
    (rel / ".next" / "static" / "chunks" / "main-abc.js").write_text("console.log(1)")
    (rel / ".next" / "cache" / "webpack" / "x.pack").write_text("cache")
    (rel / "server.js").write_text("require('http')")
    (rel / "server.js").chmod(0o755)
    (rel / "node_modules" / ".pnpm" / "next@1" / "node_modules" / "next").mkdir(parents=True)
    (rel / "node_modules" / ".pnpm" / "next@1" / "node_modules" / "next" / "index.js").write_text(
        "1"
    )
    os.symlink(".pnpm/next@1/node_modules/next", rel / "node_modules" / "next")


def takeover(app_root: Path, tmp_path: Path, rid: str, **kw) -> tuple[int, dict]:
    kw.setdefault("data_dir", str(app_root / "shared" / "data"))
    kw.setdefault("env", 'SECRET_KEY="value"\n')
    kw.setdefault("required", ["server.js", "node_modules/next/index.js"])
    return module("takeover", app_root, tmp_path, release_id=rid, **kw)


def built(app_root: Path, tmp_path: Path, rid: str, **plant) -> tuple[int, dict]:
    rel = stage(app_root, tmp_path, rid)
    fake_build(rel)
    for name, target in plant.items():
        os.symlink(target, rel / name.replace("__", "/"))
    as_app(rel)
    return takeover(app_root, tmp_path, rid)


# --- the take-over ----------------------------------------------------------------------------


def test_takeover_makes_the_release_roots_and_read_only_for_the_app(app_root, tmp_path):
    rc, out = built(app_root, tmp_path, "r1")
    assert rc == 0, out
    rel = app_root / "releases" / "r1"
    assert not (app_root / "builds" / "r1").exists()
    for p in [rel, *rel.rglob("*")]:
        st = p.lstat()
        assert st.st_uid == 0, p
        if not stat.S_ISLNK(st.st_mode):
            assert st.st_mode & 0o022 == 0, p
            assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), p
    assert stat.S_IMODE((rel / "server.js").stat().st_mode) == 0o750
    assert stat.S_IMODE((rel / ".next" / "BUILD_ID").stat().st_mode) == 0o640
    assert (rel / ".next" / "BUILD_ID").stat().st_gid == _gid()
    marker = json.loads((rel / ".hardenkit-release.json").read_text())
    assert marker["build_id"] == "b1d_abc-123"
    assert marker["routes"] == ["/page"]
    env = rel / ".hardenkit.env"
    assert (env.stat().st_uid, env.stat().st_gid, stat.S_IMODE(env.stat().st_mode)) == (
        0,
        _gid(),
        0o640,
    )
    assert "value" not in json.dumps(out)


def test_l5_the_app_user_cannot_write_its_release_its_assets_or_its_env(app_root, tmp_path):
    rc, out = built(app_root, tmp_path, "r1")
    assert rc == 0, out
    rel = app_root / "releases" / "r1"
    static = app_root / "shared" / "static" / "_next" / "static" / "chunks" / "main-abc.js"
    assert static.read_text() == "console.log(1)"
    assert stat.S_IMODE(static.stat().st_mode) == 0o644
    for target in [rel / "server.js", rel / ".hardenkit.env", static, rel / "new-file"]:
        proc = subprocess.run(
            ["runuser", "-u", APP, "--", "sh", "-c", f"echo pwned >> '{target}'"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode != 0, target
    proc = subprocess.run(
        ["runuser", "-u", APP, "--", "cat", str(rel / ".hardenkit.env")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "SECRET_KEY" in proc.stdout
    # The runtime cache is the data directory's, the app's to write.
    cache = rel / ".next" / "cache"
    assert cache.is_symlink()
    assert os.readlink(cache) == str(app_root / "shared" / "data" / "next-cache")
    route_cache = rel / ".next" / "server" / "route-cache"
    assert os.readlink(route_cache) == str(
        app_root / "shared" / "data" / "next-cache" / "route-cache" / "r1"
    )
    proc = subprocess.run(
        ["runuser", "-u", APP, "--", "mkdir", "-p", str(route_cache / "isr")], check=False
    )
    assert proc.returncode == 0
    made = (app_root / "shared" / "data" / "next-cache").stat()
    assert (made.st_uid, stat.S_IMODE(made.st_mode)) == (_uid(), 0o750)
    proc = subprocess.run(
        ["runuser", "-u", APP, "--", "mkdir", "-p", str(cache / "images")], check=False
    )
    assert proc.returncode == 0 and (cache / "images").is_dir()


def test_h2_takeover_never_writes_through_links_the_build_planted(app_root, victim, tmp_path):
    before = tree(victim)
    rc, out = built(
        app_root,
        tmp_path,
        "r1",
        **{
            ".hardenkit.env.new": str(victim / "profile.sh"),
            ".hardenkit.env": str(victim / "passwd"),
            ".hardenkit-release.json": str(victim / "shadow"),
            "._.hardenkit.env.hk-new": str(victim / "cron"),
            "..hardenkit-release.json.hk-new": str(victim / "passwd"),
        },
    )
    assert rc == 0, out
    assert tree(victim) == before
    assert not (victim / "profile.sh").exists() and not (victim / "cron").exists()
    rel = app_root / "releases" / "r1"
    for name in (".hardenkit.env", ".hardenkit-release.json"):
        st = (rel / name).lstat()
        assert stat.S_ISREG(st.st_mode) and st.st_uid == 0
    assert any(".hardenkit.env: link" in d for d in out["takeover"]["dropped"])


@pytest.mark.parametrize("how", ["link", "link_dir", "not_an_id"])
def test_h3_build_id_is_never_read_through_a_link_nor_reported_when_not_an_id(
    app_root, victim, tmp_path, how
):
    rel = stage(app_root, tmp_path, "r1")
    fake_build(rel)
    if how == "link":
        (rel / ".next" / "BUILD_ID").unlink()
        os.symlink(str(victim / "shadow"), rel / ".next" / "BUILD_ID")
    elif how == "link_dir":
        shutil.rmtree(rel / ".next" / "server")
        (victim / "server").mkdir()
        (victim / "server" / "app-paths-manifest.json").write_text(json.dumps({SECRET: "x"}))
        os.symlink(str(victim / "server"), rel / ".next" / "server")
    else:
        (rel / ".next" / "BUILD_ID").write_text("root:$y$j9T$" + SECRET + ":19000:0:99999:7:::")
    as_app(rel)
    rc, out = takeover(app_root, tmp_path, "r1")
    assert rc != 0
    assert SECRET not in json.dumps(out)
    assert "incomplete build" in out["msg"]
    assert not (app_root / "releases" / "r1" / ".hardenkit-release.json").exists()


def test_h3_check_next_build_refuses_a_linked_or_odd_build_id(tmp_path, victim):
    rel = tmp_path / "rel"
    fake_build(rel)
    (rel / ".next" / "BUILD_ID").unlink()
    os.symlink(str(victim / "shadow"), rel / ".next" / "BUILD_ID")
    result = check_next_build(str(rel))
    assert result["build_id"] is None and not result["complete"]
    assert SECRET not in json.dumps(result)
    (rel / ".next" / "BUILD_ID").unlink()
    os.mkfifo(rel / ".next" / "BUILD_ID")
    result = check_next_build(str(rel))  # a FIFO never blocks the read
    assert result["build_id"] is None and any("not a regular file" in e for e in result["errors"])


def test_h3_the_diagnosis_reads_the_live_build_id_without_following_links(tmp_path, victim):
    from ansible_collections.hardenkit.nodeapp.plugins.module_utils.diagnosis import _reader_in
    from ansible_collections.hardenkit.nodeapp.plugins.module_utils.hostfacts import (
        build_integrity,
    )

    rel = tmp_path / "releases" / "r1"
    fake_build(rel)
    (rel / ".next" / "BUILD_ID").unlink()
    os.symlink(str(victim / "shadow"), rel / ".next" / "BUILD_ID")
    os.symlink("releases/r1", tmp_path / "current")
    current = str(tmp_path / "current")
    result = build_integrity(current, os.path.exists, _reader_in(current))
    assert result["build_id"] is None and not result["ok"]
    assert SECRET not in json.dumps(result)


def test_m3_a_static_directory_linked_elsewhere_is_not_published(app_root, victim, tmp_path):
    rel = stage(app_root, tmp_path, "r1")
    fake_build(rel)
    shutil.rmtree(rel / ".next" / "static")
    os.symlink(str(victim / "private"), rel / ".next" / "static")
    as_app(rel)
    rc, out = takeover(app_root, tmp_path, "r1")
    assert rc == 0, out
    published = list((app_root / "shared" / "static").rglob("*"))
    assert all(SECRET not in p.read_text() for p in published if p.is_file())
    assert not (app_root / "shared" / "static" / "_next" / "static" / "readable").exists()
    assert stat.S_IMODE((victim / "private").stat().st_mode) == 0o700


def test_m3_a_linked_asset_is_dropped_and_a_foreign_hard_link_never_remoded(
    app_root, victim, tmp_path
):
    rel = stage(app_root, tmp_path, "r1")
    fake_build(rel)
    os.symlink(str(victim / "passwd"), rel / ".next" / "static" / "chunks" / "leak.js")
    os.link(victim / "shadow", rel / ".next" / "static" / "chunks" / "hard.js")
    as_app(rel)
    os.chown(rel / ".next" / "static" / "chunks" / "hard.js", 0, 0)  # root's inode, linked in
    before = tree(victim)
    rc, out = takeover(app_root, tmp_path, "r1")
    assert rc == 0, out
    assert tree(victim) == before
    chunks = app_root / "shared" / "static" / "_next" / "static" / "chunks"
    assert sorted(p.name for p in chunks.iterdir()) == ["main-abc.js"]
    dropped = "\n".join(out["takeover"]["dropped"])
    assert "leak.js" in dropped and "hard.js" in dropped


def test_l10_takeover_clears_setuid_and_removes_fifos_and_devices(app_root, tmp_path):
    rel = stage(app_root, tmp_path, "r1")
    fake_build(rel)
    (rel / "tool").write_text("#!/bin/sh\n")
    os.mkfifo(rel / "fifo")
    (rel / "sgid-dir").mkdir()
    as_app(rel)
    os.chmod(rel / "tool", 0o6755)
    os.chmod(rel / "sgid-dir", 0o2775)
    try:
        os.mknod(rel / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.chown(rel / "null", _uid(), _gid())
    except PermissionError:
        pass  # a container without CAP_MKNOD: the FIFO stands for it
    rc, out = takeover(app_root, tmp_path, "r1")
    assert rc == 0, out
    final = app_root / "releases" / "r1"
    assert stat.S_IMODE((final / "tool").stat().st_mode) == 0o750
    assert stat.S_IMODE((final / "sgid-dir").stat().st_mode) == 0o750
    assert not (final / "fifo").exists() and not (final / "null").exists()


def test_a_file_the_build_linked_under_several_names_stays_under_each(app_root, tmp_path):
    """pnpm links identical files of several packages to one inode of its store: the
    second name meets a file already root's, and must keep it (and a published asset
    stays readable whatever order its names come in)."""
    rel = stage(app_root, tmp_path, "r1")
    fake_build(rel)
    pkgs = rel / "node_modules" / ".pnpm"
    (pkgs / "a" / "LICENSE").parent.mkdir(parents=True)
    (pkgs / "a" / "LICENSE").write_text("MIT")
    (pkgs / "b").mkdir()
    os.link(pkgs / "a" / "LICENSE", pkgs / "b" / "LICENSE")
    os.link(pkgs / "a" / "LICENSE", pkgs / "z-LICENSE")
    os.link(rel / ".next" / "static" / "chunks" / "main-abc.js", pkgs / "0-main.js")
    as_app(rel)
    rc, out = takeover(app_root, tmp_path, "r1")
    assert rc == 0, out
    assert out["takeover"]["dropped"] == []
    final = app_root / "releases" / "r1" / "node_modules" / ".pnpm"
    for p in (final / "a" / "LICENSE", final / "b" / "LICENSE", final / "z-LICENSE"):
        assert p.read_text() == "MIT" and p.stat().st_uid == 0
    asset = app_root / "shared" / "static" / "_next" / "static" / "chunks" / "main-abc.js"
    assert stat.S_IMODE(asset.stat().st_mode) == 0o644


def test_links_inside_the_release_stay_and_links_escaping_through_them_go(app_root, tmp_path):
    rel = stage(app_root, tmp_path, "r1")
    fake_build(rel)
    os.symlink(".", rel / "s")
    os.symlink("s/s/..", rel / "t")  # physically the release's parent
    os.symlink("../../../../etc", rel / ".next" / "server" / "up")
    as_app(rel)
    rc, out = takeover(app_root, tmp_path, "r1")
    assert rc == 0, out
    final = app_root / "releases" / "r1"
    assert (final / "s").is_symlink() and (final / "node_modules" / "next").is_symlink()
    assert (final / "node_modules" / "next" / "index.js").read_text() == "1"
    assert not (final / "t").is_symlink() and not (final / "t").exists()
    assert not (final / ".next" / "server" / "up").exists()


def test_takeover_refuses_a_build_directory_the_app_user_does_not_own(app_root, tmp_path):
    rel = stage(app_root, tmp_path, "r1")
    fake_build(rel)  # root's files in the app user's directory: dropped, so incomplete
    rc, out = takeover(app_root, tmp_path, "r1")
    assert rc != 0 and "incomplete build" in out["msg"], out
    rel = stage(app_root, tmp_path, "r2")
    os.chown(rel, 0, 0)
    rc, out = takeover(app_root, tmp_path, "r2")
    assert rc != 0 and "not the build's user" in out["msg"]


def test_m1_stage_removes_a_failed_attempt_without_following_its_links(app_root, victim, tmp_path):
    rel = stage(app_root, tmp_path, "r1")
    (rel / "sub").mkdir()
    os.symlink(str(victim / "private"), rel / "sub" / "dir-link")
    os.symlink(str(victim / "shadow"), rel / "file-link")
    as_app(rel)
    before = tree(victim)
    again = stage(app_root, tmp_path, "r1")
    assert list(again.iterdir()) == []
    assert tree(victim) == before
    assert (app_root / "builds").stat().st_uid == 0


# --- an older layout: releases and shared/static the app user owned -------------------------


def test_h1_a_link_the_app_planted_in_shared_static_is_not_followed(app_root, victim, tmp_path):
    static = app_root / "shared" / "static"
    (static / "_next.old" / "static").mkdir(parents=True)
    os.symlink(str(victim / "private"), static / "_next")
    (app_root / "releases" / "old1" / ".next").mkdir(parents=True)
    (app_root / "releases" / "old1" / ".next" / "cache").mkdir()
    os.symlink(str(victim / "passwd"), app_root / "releases" / "old1" / "passwd")
    as_app(static)
    as_app(app_root / "releases")
    before = tree(victim)
    rc, out = module(
        "read", app_root, tmp_path, release_id="r1", data_dir=str(app_root / "shared" / "data")
    )
    assert rc == 0, out
    assert out["changed"] and out["adopted"] == ["old1"]
    assert tree(victim) == before
    for d in ("", "_next", "_next/static"):
        st = (static / d).lstat()
        assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755
    old = app_root / "releases" / "old1"
    assert old.stat().st_uid == 0 and not (old / "passwd").is_symlink()
    assert (old / ".next" / "cache").is_symlink()
    # Nothing left to do: a second read changes nothing.
    rc, out = module("read", app_root, tmp_path, release_id="r1")
    assert rc == 0 and not out["changed"], out


# --- switch and prune -------------------------------------------------------------------------


def test_switch_points_current_and_previous_and_refuses_an_unfinished_release(app_root, tmp_path):
    for rid in ("r1", "r2"):
        rc, out = built(app_root, tmp_path, rid)
        assert rc == 0, out
    rc, out = module("switch", app_root, tmp_path, release_id="r1")
    assert rc == 0 and out["switched"] and out["live"] == "", out
    rc, out = module("switch", app_root, tmp_path, release_id="r2", _ansible_check_mode=True)
    assert rc == 0 and out["changed"] and os.readlink(app_root / "current") == "releases/r1"
    rc, out = module("switch", app_root, tmp_path, release_id="r2")
    assert rc == 0 and out["live"] == "r1" and out["previous"] == "r1", out
    assert os.readlink(app_root / "current") == "releases/r2"
    assert os.readlink(app_root / "previous") == "releases/r1"
    rc, out = module("switch", app_root, tmp_path, release_id="r2")
    assert rc == 0 and not out["changed"]
    stage(app_root, tmp_path, "r3")
    (app_root / "releases" / "r3").mkdir()
    rc, out = module("switch", app_root, tmp_path, release_id="r3")
    assert rc != 0 and "no finished build" in out["msg"]
    assert os.readlink(app_root / "current") == "releases/r2"


def test_m12_pruning_never_removes_the_release_previous_names(app_root, tmp_path):
    for rid in ("r1", "r2"):
        assert built(app_root, tmp_path, rid)[0] == 0
        assert module("switch", app_root, tmp_path, release_id=rid)[0] == 0
    # Newer failed attempts fill the keep window.
    for n, rid in enumerate(("f3", "f4", "f5")):
        (app_root / "releases" / rid).mkdir()
        t = (app_root / "releases" / "r2").stat().st_mtime + 10 + n
        os.utime(app_root / "releases" / rid, (t, t))
    rc, out = module(
        "switch", app_root, tmp_path, release_id="r2", keep=2, _ansible_check_mode=True
    )
    assert rc == 0 and out["pruned"] == ["f3"] and (app_root / "releases" / "f3").is_dir(), out
    rc, out = module("switch", app_root, tmp_path, release_id="r2", keep=2)
    assert rc == 0, out
    assert out["pruned"] == ["f3"] and out["releases"] == ["f5", "f4", "r2", "r1"]
    assert sorted(p.name for p in (app_root / "releases").iterdir()) == ["f4", "f5", "r1", "r2"]


@pytest.mark.parametrize(
    ("ids", "keep", "protect", "expected"),
    [
        (["a", "b", "c", "d"], 2, ["a"], ["c", "d"]),
        (["a", "b", "c", "d"], 2, ["a", "d"], ["c"]),
        (["a", "b"], 5, ["a"], []),
        (["a", "b", "c"], 0, ["", "b"], ["a", "c"]),
    ],
)
def test_m12_prune_candidates(ids, keep, protect, expected):
    assert rfs.prune_candidates(ids, keep, protect) == expected


def test_the_app_root_must_be_roots(base, tmp_path):
    root = base / "loose"
    root.mkdir()
    os.chown(root, _uid(), _gid())
    rc, out = module("read", root, tmp_path)
    assert rc != 0 and "owned by root" in out["msg"]


@pytest.mark.parametrize("rid", ["../etc", "a/b", "", ".hidden", "x" * 65, "a\nb"])
def test_release_ids_are_names(rid):
    with pytest.raises(rfs.ReleaseError):
        rfs.check_id(rid)


def test_write_file_is_idempotent_and_replaces_a_link_not_its_target(base, victim):
    d = base / "d"
    d.mkdir()
    os.symlink(str(victim / "passwd"), d / "f")
    before = tree(victim)
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert rfs.write_file(fd, "f", b"new\n", 0, 0, 0o644)
        assert not rfs.write_file(fd, "f", b"new\n", 0, 0, 0o644)
        assert rfs.write_file(fd, "f", b"new\n", 0, 0, 0o600)
    finally:
        os.close(fd)
    assert tree(victim) == before
    assert (d / "f").read_text() == "new\n" and not (d / "f").is_symlink()


def test_pruning_removes_a_release_route_cache_without_following_the_apps_links(
    app_root, victim, tmp_path
):
    for rid in ("r1", "r2", "r3"):
        assert built(app_root, tmp_path, rid)[0] == 0
        assert module("switch", app_root, tmp_path, release_id=rid)[0] == 0
    caches = app_root / "shared" / "data" / "next-cache" / "route-cache"
    assert sorted(p.name for p in caches.iterdir()) == ["r1", "r2", "r3"]
    (caches / "r1" / "isr.html").write_text("old page")
    os.symlink(str(victim / "private"), caches / "r1" / "link")
    as_app(caches)
    before = tree(victim)
    rc, out = module(
        "switch",
        app_root,
        tmp_path,
        release_id="r3",
        keep=2,
        data_dir=str(app_root / "shared" / "data"),
    )
    assert rc == 0 and out["pruned"] == ["r1"], out
    assert sorted(p.name for p in caches.iterdir()) == ["r2", "r3"]
    assert tree(victim) == before
    # The app made route-cache a link to root's files: pruning leaves it, and them, alone.
    shutil.rmtree(caches)
    (victim / "private" / "r0").mkdir()
    os.symlink(str(victim / "private"), caches)
    (app_root / "releases" / "r0").mkdir()
    os.utime(app_root / "releases" / "r0", (1, 1))
    before = tree(victim)
    rc, out = module(
        "switch",
        app_root,
        tmp_path,
        release_id="r3",
        keep=2,
        data_dir=str(app_root / "shared" / "data"),
    )
    assert rc == 0 and out["pruned"] == ["r0"], out
    assert tree(victim) == before


def test_stage_keeps_only_the_newest_failed_build(app_root, tmp_path):
    for n, rid in enumerate(("f1", "f2", "f3")):
        rel = stage(app_root, tmp_path, rid)
        os.utime(rel, (1000 + n, 1000 + n))
    stage(app_root, tmp_path, "r4")
    assert sorted(p.name for p in (app_root / "builds").iterdir()) == ["f3", "r4"]


def test_releases_built_in_one_build_dir_each_become_their_own_release(app_root, tmp_path):
    """The role builds every release in builds/build (Next.js derives Server Action ids from
    the path it builds in): each take-over moves it to releases/<id>, and the next stage
    starts it anew."""
    for rid in ("s1", "s2"):
        rc, out = module("stage", app_root, tmp_path, release_id=rid, build_dir="build")
        assert rc == 0 and out["build_path"] == str(app_root / "builds" / "build"), out
        rel = app_root / "builds" / "build"
        fake_build(rel, build_id=f"id-{rid}")
        as_app(rel)
        rc, out = takeover(app_root, tmp_path, rid, build_dir="build")
        assert rc == 0 and out["build_id"] == f"id-{rid}", out
        assert not rel.exists()
    assert sorted(p.name for p in (app_root / "releases").iterdir()) == ["s1", "s2"]


@pytest.mark.parametrize("bad", ["../x", "a/b", ".", ".hidden"])
def test_a_build_dir_that_is_no_name_is_refused(app_root, tmp_path, bad):
    rc, out = module("stage", app_root, tmp_path, release_id="s3", build_dir=bad)
    assert rc != 0 and "build_dir must be a name" in out["msg"], out
    assert not (app_root / "builds").exists()


# --- output: 'standalone' -------------------------------------------------------------------


def test_a_standalone_build_becomes_the_release_without_the_build_tree(app_root, tmp_path):
    """`next build` with output: 'standalone' writes a server and the modules it needs in
    .next/standalone; the build's script copied public/ and .next/static into it. Only that
    becomes the release: no dev dependency, no source runs."""
    build = stage(app_root, tmp_path, "s1")
    fake_build(build)
    standalone = build / ".next" / "standalone"
    fake_build(standalone)
    (standalone / "public").mkdir()
    (standalone / "public" / "robots.txt").write_text("User-agent: *")
    (build / "node_modules" / "typescript").mkdir(parents=True)
    (build / "app" / "page.tsx").parent.mkdir()
    (build / "app" / "page.tsx").write_text("export default 1")
    as_app(build)
    rc, out = takeover(app_root, tmp_path, "s1", subdir=".next/standalone")
    assert rc == 0, out
    rel = app_root / "releases" / "s1"
    assert not (app_root / "builds" / "s1").exists()
    assert (rel / "server.js").is_file() and (rel / "public" / "robots.txt").is_file()
    assert not (rel / "node_modules" / "typescript").exists() and not (rel / "app").exists()
    for p in [rel, *rel.rglob("*")]:
        assert p.lstat().st_uid == 0, p
    assert (rel / ".hardenkit-release.json").is_file()
    static = app_root / "shared" / "static" / "_next" / "static" / "chunks" / "main-abc.js"
    assert static.read_text() == "console.log(1)"
    assert stat.S_IMODE(static.stat().st_mode) == 0o644


def test_a_build_without_its_standalone_directory_is_refused(app_root, tmp_path):
    build = stage(app_root, tmp_path, "s2")
    fake_build(build)
    as_app(build)
    rc, out = takeover(app_root, tmp_path, "s2", subdir=".next/standalone")
    assert rc != 0
    assert "no .next/standalone" in out["msg"] and "output: 'standalone'" in out["msg"]
    assert not (app_root / "releases" / "s2").exists()


@pytest.mark.parametrize("subdir", ["../x", ".next/../../etc", "a//b"])
def test_a_subdir_leading_elsewhere_is_refused(app_root, tmp_path, subdir):
    build = stage(app_root, tmp_path, "s3")
    fake_build(build)
    as_app(build)
    rc, out = takeover(app_root, tmp_path, "s3", subdir=subdir)
    assert rc != 0 and "subdir must be a plain relative path" in out["msg"]


# --- stage: the build log directory and the source, unpacked by the app user ---------------


def _archive(path: Path, members: dict[str, tuple[bytes, int, int]]) -> Path:
    """A .tar.gz whose members have the given content, mode and owner uid."""
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, (body, mode, uid) in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(body), mode, uid, uid
            tar.addfile(info, io.BytesIO(body))
    return path


def test_stage_unpacks_the_source_as_the_app_user_and_makes_the_log_dir(app_root, tmp_path):
    archive = _archive(
        tmp_path / "src.tar.gz",
        {
            "package.json": (b'{"name": "shop"}', 0o644, 0),
            "app/page.tsx": (b"export default 1", 0o644, 0),
            "bin/tool": (b"#!/bin/sh\n", 0o6755, 0),  # setuid and setgid: never restored
        },
    )
    rc, out = module(
        "stage", app_root, tmp_path, release_id="u1", log_dir="build-logs", archive=str(archive)
    )
    assert rc == 0 and out["changed"], out
    build = app_root / "builds" / "u1"
    assert (build / "package.json").read_text() == '{"name": "shop"}'
    for p in [build, *build.rglob("*")]:
        assert (p.lstat().st_uid, p.lstat().st_gid) == (_uid(), _gid()), p
        assert not p.lstat().st_mode & (stat.S_ISUID | stat.S_ISGID), p
    assert stat.S_IMODE(build.stat().st_mode) == 0o750  # --no-overwrite-dir
    logs = (app_root / "build-logs").stat()
    assert (logs.st_uid, logs.st_gid, stat.S_IMODE(logs.st_mode)) == (0, 0, 0o700)


def test_stage_refuses_a_log_dir_that_is_a_path_and_a_source_that_is_no_archive(app_root, tmp_path):
    rc, out = module("stage", app_root, tmp_path, release_id="u2", log_dir="../logs")
    assert rc != 0 and "log_dir must be a name under app_root" in out["msg"]
    bad = tmp_path / "not.tar.gz"
    bad.write_text("plain text")
    rc, out = module("stage", app_root, tmp_path, release_id="u3", archive=str(bad))
    assert rc != 0 and out["msg"].startswith("unpacking the source failed"), out


def test_stage_exports_a_commit_as_the_app_user(app_root, base, tmp_path):
    repo = base / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "package.json").write_text('{"name": "shop"}')
    (repo / "untracked.txt").write_text("not in the commit")
    subprocess.run([*git, "add", "package.json"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    rc, out = module(
        "stage", app_root, tmp_path, release_id="g1", git_dir=str(repo), git_commit=commit
    )
    assert rc == 0, out
    build = app_root / "builds" / "g1"
    assert sorted(p.name for p in build.iterdir()) == ["package.json"]
    assert (build / "package.json").stat().st_uid == _uid()
    rc, out = module(
        "stage", app_root, tmp_path, release_id="g2", git_dir=str(repo), git_commit="f" * 40
    )
    assert rc != 0 and out["msg"].startswith(f"exporting {'f' * 40} failed"), out


# --- shared paths (issue 19) ------------------------------------------------------------------


def _built_with_shared(app_root: Path, tmp_path: Path, rid: str, app_dir: str = "", **kw):
    rel = stage(app_root, tmp_path, rid)
    fake_build(rel)
    app = rel / app_dir if app_dir else rel
    (app / "public" / "uploads").mkdir(parents=True, exist_ok=True)
    (app / "public" / "uploads" / ".gitkeep").write_text("")
    (app / "public" / "logo.svg").write_text("<svg/>")
    os.symlink("public", app / "data")  # the build's own link, where a shared path goes
    as_app(rel)
    return takeover(
        app_root, tmp_path, rid, shared_paths=["public/uploads", "data"], app_dir=app_dir, **kw
    )


def test_shared_paths_persist_in_the_data_dir_across_releases_and_pruning(app_root, tmp_path):
    data = app_root / "shared" / "data"
    rc, out = _built_with_shared(app_root, tmp_path, "r1")
    assert rc == 0, out
    rel = app_root / "releases" / "r1"
    assert os.readlink(rel / "public" / "uploads") == str(data / "public" / "uploads")
    assert os.readlink(rel / "data") == str(data / "data")
    assert (rel / "public" / "logo.svg").read_text() == "<svg/>"
    assert (rel / "public").lstat().st_uid == 0
    for shared in (data / "public" / "uploads", data / "data"):
        st = shared.lstat()
        assert stat.S_ISDIR(st.st_mode) and st.st_uid == _uid(), shared
        assert stat.S_IMODE(st.st_mode) == 0o750
    # What the app writes there stays through the next releases, their switches and pruning.
    (data / "public" / "uploads" / "photo.jpg").write_text("jpeg")
    as_app(data)
    for rid in ("r2", "r3"):
        assert _built_with_shared(app_root, tmp_path, rid)[0] == 0
        assert module("switch", app_root, tmp_path, release_id=rid, keep=2)[0] == 0
    assert not (app_root / "releases" / "r1").exists()
    assert (app_root / "current" / "public" / "uploads" / "photo.jpg").read_text() == "jpeg"
    assert not (data / "public" / "uploads" / ".gitkeep").exists()


def test_a_monorepo_apps_shared_paths_are_linked_in_its_own_directory(app_root, tmp_path):
    rc, out = _built_with_shared(app_root, tmp_path, "r1", app_dir="apps/web")
    assert rc == 0, out
    rel = app_root / "releases" / "r1" / "apps" / "web"
    data = app_root / "shared" / "data"
    assert os.readlink(rel / "public" / "uploads") == str(data / "public" / "uploads")


def test_shared_paths_never_make_anything_through_the_apps_links(app_root, victim, tmp_path):
    data = app_root / "shared" / "data"
    os.symlink(str(victim / "private"), data / "public")
    os.chown(data / "public", _uid(), _gid(), follow_symlinks=False)
    before = tree(victim)
    rc, out = _built_with_shared(app_root, tmp_path, "r1")
    assert rc == 0, out
    assert tree(victim) == before
    # The release links where the path belongs; that the app made it lead elsewhere is
    # the app's own business, for root never writes through it.
    rel = app_root / "releases" / "r1"
    assert os.readlink(rel / "public" / "uploads") == str(data / "public" / "uploads")


@pytest.mark.parametrize("bad", ["../up", "/abs", "a/./b"])
def test_a_shared_path_leading_elsewhere_is_refused(app_root, tmp_path, bad):
    rel = stage(app_root, tmp_path, "r1")
    fake_build(rel)
    as_app(rel)
    rc, out = takeover(app_root, tmp_path, "r1", shared_paths=[bad])
    assert rc != 0 and "shared_paths" in out["msg"], out
    # Refused before the take-over changed anything: the build is still the app user's.
    assert (app_root / "builds" / "r1").stat().st_uid == _uid()
    assert not (app_root / "releases" / "r1").exists()


# --- one build for the fleet (issue 19): pack on the host that built, ship to the others --------


@pytest.fixture
def other_root(base: Path) -> Path:
    """A second app server's app_root (here beside the first: another directory)."""
    return _app_root(base, "other")


def test_a_packed_release_is_taken_over_on_another_host_as_if_built_there(
    app_root, other_root, tmp_path
):
    assert _built_with_shared(app_root, tmp_path, "r1")[0] == 0
    rc, out = module("pack", app_root, tmp_path, release_id="r1", user="")
    assert rc != 0 and "user is required" in out["msg"], out
    rc, out = module("pack", app_root, tmp_path, user=APP, release_id="r1")
    assert rc == 0 and out["changed"], out
    # releases/ keeps the app's group: the app user still reaches its release.
    assert (app_root / "releases").stat().st_gid == _gid()
    art = out["artifact"]
    path = Path(art["path"])
    assert path == app_root / "artifacts" / "r1.tar.gz"
    st = path.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
    assert art["size"] == st.st_size and len(art["sha256"]) == 64
    names = subprocess.run(
        ["tar", "-tzf", str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "./.next/BUILD_ID" in names and "./server.js" in names
    assert not any(n.endswith((".hardenkit.env", ".hardenkit-release.json")) for n in names)
    # Packing again changes nothing; the checksum is the same.
    rc, again = module("pack", app_root, tmp_path, user=APP, release_id="r1")
    assert rc == 0 and not again["changed"] and again["artifact"] == art
    # The other host: staged from the archive (checked), taken over like its own build.
    rc, out = module(
        "stage", other_root, tmp_path, release_id="r1", archive=str(path), checksum=art["sha256"]
    )
    assert rc == 0, out
    assert (other_root / "builds" / "r1").stat().st_uid == _uid()
    rc, out = takeover(
        other_root,
        tmp_path,
        "r1",
        data_dir=str(other_root / "shared" / "data"),
        shared_paths=["public/uploads", "data"],
    )
    assert rc == 0 and out["build_id"] == "b1d_abc-123", out
    rel = other_root / "releases" / "r1"
    assert all(p.lstat().st_uid == 0 for p in [rel, *rel.rglob("*")])
    # Its own links into its own data directory, its own environment file and marker.
    data = other_root / "shared" / "data"
    assert os.readlink(rel / ".next" / "cache") == str(data / "next-cache")
    assert os.readlink(rel / "public" / "uploads") == str(data / "public" / "uploads")
    assert (rel / ".hardenkit.env").read_text() == 'SECRET_KEY="value"\n'
    assert json.loads((rel / ".hardenkit-release.json").read_text())["id"] == "r1"


def test_an_archive_whose_checksum_differs_is_refused_before_unpacking(
    app_root, other_root, tmp_path
):
    assert built(app_root, tmp_path, "r1")[0] == 0
    rc, out = module("pack", app_root, tmp_path, user=APP, release_id="r1")
    art = out["artifact"]
    rc, out = module(
        "stage", other_root, tmp_path, release_id="r1", archive=art["path"], checksum="0" * 64
    )
    assert rc != 0 and "sha256" in out["msg"] and "nothing unpacked" in out["msg"], out
    assert list((other_root / "builds" / "r1").iterdir()) == []


def test_only_a_finished_release_is_packed_and_only_the_newest_archive_kept(app_root, tmp_path):
    stage(app_root, tmp_path, "r0")
    (app_root / "releases").mkdir(exist_ok=True)
    (app_root / "releases" / "r0").mkdir()
    rc, out = module("pack", app_root, tmp_path, user=APP, release_id="r0")
    assert rc != 0 and "no finished build" in out["msg"], out
    for rid in ("r1", "r2"):
        assert built(app_root, tmp_path, rid)[0] == 0
        assert module("pack", app_root, tmp_path, user=APP, release_id=rid)[0] == 0
    assert [p.name for p in (app_root / "artifacts").iterdir()] == ["r2.tar.gz"]
