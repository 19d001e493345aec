"""Release naming (module_utils/srctree.py): the pure helpers behind the roles, and app_src
as a git work tree."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.srctree import (
    GitError,
    git_changes,
    git_files,
    is_excluded,
    release_id,
    source_files,
    tree_entries,
    tree_hash,
)


@pytest.mark.parametrize(
    ("path", "excludes", "expected"),
    [
        ("node_modules/next/index.js", ["node_modules"], True),
        ("app/node_modules/x.js", ["node_modules"], True),
        ("app/page.tsx", ["node_modules", ".next"], False),
        (".next/BUILD_ID", [".next"], True),
        ("public/big/file.bin", ["public/big"], True),
        ("public/bigger.bin", ["public/big"], False),
        ("dist/server.js", ["./dist"], True),
        ("distant/file", ["dist"], False),
        ("app/page.tsx", [""], False),
    ],
)
def test_is_excluded(path, excludes, expected):
    assert is_excluded(path, excludes) is expected


def write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def test_tree_hash_depends_on_content_not_on_location(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        write(root, "package.json", '{"name": "x"}')
        write(root, "app/page.tsx", "export default 1")
    write(b, "node_modules/big.js", "ignored")
    assert tree_hash(str(a), ["node_modules"]) == tree_hash(str(b), ["node_modules"])
    write(b, "app/page.tsx", "export default 2")
    assert tree_hash(str(a), ["node_modules"]) != tree_hash(str(b), ["node_modules"])


def test_tree_hash_sees_the_executable_bit_and_symlinks(tmp_path: Path):
    write(tmp_path, "run.sh", "echo hi", 0o644)
    before = tree_hash(str(tmp_path), [])
    os.chmod(tmp_path / "run.sh", 0o755)
    assert tree_hash(str(tmp_path), []) != before
    with_exec = tree_hash(str(tmp_path), [])
    os.symlink("run.sh", tmp_path / "link")
    assert tree_hash(str(tmp_path), []) != with_exec


def test_tree_hash_of_a_missing_directory_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tree_hash(str(tmp_path / "nope"), [])


def test_release_id_changes_with_every_input_and_hides_env_values():
    base = release_id("tree:abc", "pnpm build", {"A": "secret"})
    assert len(base) == 12
    assert release_id("tree:abc", "pnpm build", {"A": "secret"}) == base
    assert release_id("tree:abd", "pnpm build", {"A": "secret"}) != base
    assert release_id("tree:abc", "pnpm run build", {"A": "secret"}) != base
    assert release_id("tree:abc", "pnpm build", {"A": "other"}) != base
    assert release_id("tree:abc", "pnpm build", {"A": "secret"}, {"node": "20"}) != base
    assert "secret" not in base


# --- app_src as a git work tree: what git tracks ships, and names the release ---------------

EXCLUDES = ["node_modules", ".next", ".git", "dist", ".env*.local"]
ODD = "odd name\nwith \\ and -dash"


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=dev@example.test", "-c", "user.name=Dev",
         "-c", "commit.gpgsign=false", "-c", "protocol.file.allow=always",
         "-C", str(root), *args],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def git_app(root: Path) -> Path:
    """A work tree with every kind of file: committed, staged, ignored, untracked, modified
    and deleted (and a committed .env.local, which app_src_exclude still keeps home)."""
    git(root.parent, "init", "-q", root.name)
    write(root, ".gitignore", "*.log\nbuild/\n")
    write(root, "package.json", "{}")
    write(root, "app/page.tsx", "export default 1")
    write(root, "run.sh", "echo hi", 0o755)
    write(root, "modified.txt", "v1")
    write(root, "deleted.txt", "gone soon")
    write(root, ".env.local", "NEXT_PUBLIC_X=leak")
    write(root, ODD, "odd")
    os.symlink("run.sh", root / "link")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    write(root, "staged.txt", "staged")
    git(root, "add", "staged.txt")
    write(root, "debug.log", "ignored")
    write(root, "build/out.js", "ignored")
    write(root, "notes.txt", "untracked")
    write(root, "modified.txt", "v2")
    (root / "deleted.txt").unlink()
    return root


TRACKED = sorted(
    [".gitignore", "package.json", "app/page.tsx", "run.sh", "modified.txt", ODD, "link",
     "staged.txt"]
)  # fmt: skip


def test_a_git_work_tree_is_what_git_tracks(tmp_path: Path):
    root = git_app(tmp_path / "app")
    assert git_files(str(root), EXCLUDES) == TRACKED
    assert source_files(str(root), EXCLUDES) == TRACKED
    entries = dict(tree_entries(str(root), EXCLUDES))
    assert sorted(entries) == TRACKED
    # the work tree's content, as it is on disk (not the committed one)
    plain = tree_entries(str(tmp_path / "app"), [])
    assert entries["modified.txt"] == dict(plain)["modified.txt"]
    assert entries["link"] == "link:run.sh"
    assert entries["run.sh"].endswith(":x")
    # without excludes, the committed .env.local would count
    assert ".env.local" in git_files(str(root), [])


def test_ignored_and_untracked_files_do_not_change_the_identity(tmp_path: Path):
    root = git_app(tmp_path / "app")
    before = tree_hash(str(root), EXCLUDES)
    write(root, "debug.log", "other")
    write(root, "build/more.js", "x")
    write(root, "notes.txt", "other")
    write(root, "scratch/new.ts", "x")
    write(root, ".env.local", "NEXT_PUBLIC_X=other")
    assert tree_hash(str(root), EXCLUDES) == before
    # a tracked file's change does, committed or not, and so does a newly staged file
    write(root, "app/page.tsx", "export default 2")
    changed = tree_hash(str(root), EXCLUDES)
    assert changed != before
    git(root, "add", "notes.txt")
    assert tree_hash(str(root), EXCLUDES) != changed


def test_uncommitted_changes_are_named(tmp_path: Path):
    root = git_app(tmp_path / "app")
    assert git_changes(str(root), EXCLUDES) == ["deleted.txt", "modified.txt", "staged.txt"]
    # a change to an excluded file ships nowhere; ignored and untracked files are no change
    write(root, ".env.local", "NEXT_PUBLIC_X=other")
    assert ".env.local" not in git_changes(str(root), EXCLUDES)
    assert ".env.local" in git_changes(str(root))
    git(root, "mv", "run.sh", "start.sh")
    assert "start.sh" in git_changes(str(root), EXCLUDES)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "all")
    assert git_changes(str(root), EXCLUDES) == []


def test_a_clean_work_tree_hashes_like_the_same_files_without_git(tmp_path: Path):
    root = tmp_path / "app"
    git(tmp_path, "init", "-q", "app")
    write(root, "package.json", "{}")
    write(root, "run.sh", "echo", 0o755)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    assert git_files(str(copy), EXCLUDES) is None
    assert tree_hash(str(root), EXCLUDES) == tree_hash(str(copy), EXCLUDES)


def test_without_git_every_file_counts_as_before(tmp_path: Path, monkeypatch):
    root = git_app(tmp_path / "app")
    walked = {"debug.log", "build/out.js", "notes.txt", *TRACKED}
    # not a work tree: a copy without .git
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    assert git_files(str(copy), EXCLUDES) is None
    assert git_changes(str(copy), EXCLUDES) == []
    assert set(source_files(str(copy), EXCLUDES)) == walked
    # an empty .git is no work tree either, even inside another repository's
    (root / "sub" / ".git").mkdir(parents=True)
    write(root, "sub/a.txt", "a")
    assert source_files(str(root / "sub"), EXCLUDES) == ["a.txt"]
    # git not installed
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert git_files(str(root), EXCLUDES) is None
    assert git_changes(str(root), EXCLUDES) == []
    assert set(source_files(str(root), EXCLUDES)) == walked | {"sub/a.txt"}


def test_checked_out_submodules_ship_and_a_submodule_is_a_work_tree(tmp_path: Path):
    lib = tmp_path / "lib"
    git(tmp_path, "init", "-q", "lib")
    write(lib, "index.js", "module.exports = 1")
    git(lib, "add", "-A")
    git(lib, "commit", "-qm", "lib")
    root = tmp_path / "app"
    git(tmp_path, "init", "-q", "app")
    write(root, "package.json", "{}")
    git(root, "add", "package.json")
    git(root, "submodule", "-q", "add", str(lib), "vendor/lib")
    git(root, "commit", "-qm", "app")
    assert git_files(str(root), EXCLUDES) == [".gitmodules", "package.json", "vendor/lib/index.js"]
    assert git_files(str(root / "vendor" / "lib"), EXCLUDES) == ["index.js"]  # .git is a file
    write(root, "vendor/lib/index.js", "module.exports = 2")
    assert git_changes(str(root), EXCLUDES) == ["vendor/lib"]
    # a submodule not checked out is an empty directory: nothing of it ships
    git(tmp_path, "clone", "-q", str(root), "clone")
    assert git_files(str(tmp_path / "clone"), EXCLUDES) == [".gitmodules", "package.json"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the tree to another user")
def test_a_work_tree_git_refuses_is_an_error_not_every_file(tmp_path: Path, monkeypatch):
    root = git_app(tmp_path / "app")
    empty_config = tmp_path / "gitconfig"
    empty_config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty_config))
    subprocess.run(["chown", "-R", "65534:65534", str(root)], check=True)
    with pytest.raises(GitError, match="dubious ownership"):
        tree_hash(str(root), EXCLUDES)
