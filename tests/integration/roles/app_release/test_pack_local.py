"""L11: developers' .env*.local files never leave the control node: the archive copied to
the host (pack_local.yml's tar, run here by bash as the role renders it) holds what the
release id (the source_hash lookup: tests/unit/plugins/lookup/test_source_hash.py) counts,
and no .env*.local.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

from ansible_collections.hardenkit.nodeapp.plugins.lookup.source_hash import (
    glob_excluded,
    source_manifest,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.srctree import tree_entries
from tests.unit.plugins.lookup.test_source_hash import (
    EXCLUDE,
    LOCAL_ENV,
    ODD,
    app_tree,
    git_app,
    pack_local_task,
    render,
)


def pack(src: Path, cache: Path) -> tuple[Path, set[str]]:
    """pack_local.yml's pack step, rendered by Ansible and run by bash (with the standard
    input the task gives it): the archive and the files in it."""
    task = pack_local_task("Pack app_src on the control node")
    args = task["ansible.builtin.shell"]
    cmd = render(args["cmd"], src)
    manifest = source_manifest(str(src), EXCLUDE)
    assert args["stdin_add_newline"] is False
    stdin = render(args["stdin"], src) if manifest["git"] else ""
    assert stdin == manifest["tar_list"]
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    result = subprocess.run(
        ["bash", "-c", cmd], input=stdin.encode(), capture_output=True, env=env, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with tarfile.open(result.stdout.decode()) as tar:
        members = tar.getmembers()
    assert all(m.uid == 0 and m.gid == 0 and not m.mode & 0o6000 for m in members)
    return Path(result.stdout.decode()), {
        m.name.removeprefix("./") for m in members if m.isfile() or m.issym()
    }


def test_l11_tar_with_the_default_excludes_drops_env_local(tmp_path):
    """The archive holds the files source_hash counts, and no .env*.local."""
    src = app_tree(tmp_path / "src", local_env=True)
    _, packed = pack(src, tmp_path / "cache")
    assert not any(name.endswith(".local") for name in packed), packed
    assert {".env", ".env.production", "apps/web/app/page.tsx"} <= packed
    hashed = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    hashed = {
        p
        for p in hashed
        if not p.startswith(("node_modules/", ".next/")) and not glob_excluded(p, [".env*.local"])
    }
    assert packed == hashed
    assert packed == {rel for rel, _ in tree_entries(str(src), EXCLUDE)}


def test_a_git_work_tree_ships_exactly_what_names_the_release(tmp_path):
    src = git_app(tmp_path / "src")
    archive, packed = pack(src, tmp_path / "cache")
    identity = {rel for rel, _ in tree_entries(str(src), EXCLUDE)}
    assert packed == identity
    assert packed == set(source_manifest(str(src), EXCLUDE)["files"])
    assert set(ODD) | {"staged.ts", ".gitignore", "package.json", "apps/web/app/page.tsx"} <= packed
    assert not packed & {"debug.log", "notes.txt", "gone.txt", *LOCAL_ENV}, packed
    assert not any(name.startswith(("node_modules/", ".next/", ".git/")) for name in packed)
    with tarfile.open(archive) as tar:
        page = tar.extractfile("app/page.tsx").read()
        odd = tar.extractfile("odd\nname").read()
    assert page == b"export default () => 1\n"  # the work tree's, not the commit's
    assert odd == b"odd\nname"
    # the same release id: the archive is reused as it is
    before = archive.read_bytes()
    (src / "package.json").write_text('{"changed": true}')
    again, _ = pack(src, tmp_path / "cache")
    assert again == archive and archive.read_bytes() == before
