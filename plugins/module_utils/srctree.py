"""Hash an application source tree the way a release id needs it.

A tree's files are listed once, files excluded like ``tar --exclude`` (an entry matches any
run of whole path components; one with ``*``, ``?`` or ``[...]`` is a shell pattern), and each
file contributes its relative path, its executable bit and its content hash. Two trees with
the same files hash the same, wherever they live and whatever their mtimes.

A tree at the top of a git work tree (``.git``, a directory, or a file for a worktree or a
submodule) holds the files git tracks: ``git ls-files --cached`` (committed or staged, those
of checked-out submodules included) that exist in the work tree, as they are on disk; an
ignored or untracked file is no part of it. Without git, or outside a work tree: every file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Mapping

GLOB_CHARS = frozenset("*?[")
# Variables that would point git at another repository or index than the tree's own.
_GIT_REDIRECTS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")


class GitError(OSError):
    """git runs but cannot read a work tree that is there (e.g. "dubious ownership")."""


def glob_excluded(relpath: str, patterns: Iterable[str]) -> bool:
    """True if a shell pattern matches a run of whole components of ``relpath`` (tar's
    unanchored, wildcards-match-slash exclusion: a matching directory drops its files)."""
    parts = relpath.strip("/").split("/")
    for pattern in patterns:
        pattern = pattern.strip("/")
        if pattern.startswith("./"):
            pattern = pattern[2:]
        for i in range(len(parts)):
            for j in range(i + 1, len(parts) + 1):
                if fnmatch.fnmatchcase("/".join(parts[i:j]), pattern):
                    return True
    return False


def is_excluded(relpath: str, excludes: Iterable[str]) -> bool:
    """True if an exclude entry matches a run of whole components of ``relpath``; an entry
    with ``*``, ``?`` or ``[...]`` matches as a shell pattern (see ``glob_excluded``)."""
    parts = relpath.strip("/").split("/")
    for entry in excludes:
        if GLOB_CHARS & set(entry):
            if glob_excluded(relpath, [entry]):
                return True
            continue
        pattern = [p for p in entry.strip("/").split("/") if p and p != "."]
        if not pattern:
            continue
        n = len(pattern)
        for i in range(len(parts) - n + 1):
            if parts[i : i + n] == pattern:
                return True
    return False


def _git(root: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_REDIRECTS}
    # C messages (matched below); no optional lock taken, so `git status` never writes the
    # index of the developer's checkout.
    env |= {"LC_ALL": "C", "LANGUAGE": "C", "GIT_OPTIONAL_LOCKS": "0"}
    return subprocess.run(
        ["git", "-C", root, *args],
        capture_output=True,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _git_output(root: str, *args: str) -> bytes:
    result = _git(root, *args)
    if result.returncode != 0:
        message = os.fsdecode(result.stderr).strip()
        raise GitError(f"git {' '.join(args)} in {root!r} failed: {message}")
    return result.stdout


def is_git_work_tree(root: str) -> bool:
    """True if ``root`` is the top of a git work tree and git is installed.

    False without ``root/.git``, without git, or when git finds no work tree there (an empty
    ``.git``, a worktree whose repository is gone, a subdirectory of another repository).
    Raises GitError when git refuses a work tree that is there, e.g. one owned by another
    user ("dubious ownership": see git's safe.directory): shipping every file instead would
    ship the ignored ones.
    """
    if not os.path.lexists(os.path.join(root, ".git")) or shutil.which("git") is None:
        return False
    result = _git(root, "rev-parse", "--is-inside-work-tree", "--show-prefix")
    if result.returncode != 0:
        message = os.fsdecode(result.stderr).strip()
        if "not a git repository" in message:
            return False
        raise GitError(f"git cannot read the work tree {root!r}: {message}")
    lines = os.fsdecode(result.stdout).split("\n")
    return lines[0] == "true" and len(lines) > 1 and lines[1] == ""


def git_files(root: str, excludes: Iterable[str]) -> list[str] | None:
    """Sorted paths, relative to ``root``, of the files git tracks there, minus ``excludes``.

    ``git ls-files -z --cached --recurse-submodules``: committed and staged files (those of
    checked-out submodules included), never ignored or untracked ones. Only regular files and
    symlinks present in the work tree count: a tracked file deleted there is skipped. None
    when ``root`` is not the top of a git work tree (see ``is_git_work_tree``).
    """
    if not is_git_work_tree(root):
        return None
    excludes = list(excludes)
    out = _git_output(root, "ls-files", "-z", "--cached", "--recurse-submodules")
    files = set()
    for raw in out.split(b"\0"):
        if not raw:
            continue
        rel = os.fsdecode(raw)
        if is_excluded(rel, excludes):
            continue
        try:
            mode = os.lstat(os.path.join(root, rel)).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
            files.add(rel)
    return sorted(files)


def git_changes(root: str, excludes: Iterable[str] = ()) -> list[str]:
    """Sorted paths of the uncommitted changes to tracked files of the work tree at ``root``
    (modified, staged, deleted, renamed: ``git status --porcelain=v1 --untracked-files=no``),
    minus ``excludes`` (they never ship). Empty when ``root`` is not the top of a work tree.
    """
    if not is_git_work_tree(root):
        return []
    excludes = list(excludes)
    out = _git_output(root, "status", "--porcelain=v1", "-z", "--untracked-files=no")
    fields = out.split(b"\0")
    paths = set()
    i = 0
    while i < len(fields):
        field = fields[i]
        i += 1
        if len(field) < 4:
            continue
        xy, rel = field[:2], os.fsdecode(field[3:])
        if xy[:1] in (b"R", b"C") or xy[1:] in (b"R", b"C"):
            i += 1  # the path it was renamed or copied from
        if not is_excluded(rel, excludes):
            paths.add(rel)
    return sorted(paths)


def _walk_files(root: str, excludes: list[str]) -> list[str]:
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        dirnames[:] = sorted(
            d for d in dirnames if not is_excluded(os.path.join(rel_dir, d), excludes)
        )
        for name in filenames:
            rel = os.path.join(rel_dir, name)
            if is_excluded(rel, excludes):
                continue
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                files.append(rel)
    return sorted(files)


def source_files(root: str, excludes: Iterable[str]) -> list[str]:
    """Sorted relative paths of the files that make up the source at ``root``: the tracked
    ones (``git_files``) at the top of a git work tree, else every file and symlink."""
    excludes = list(excludes)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"source directory {root!r} does not exist")
    files = git_files(root, excludes)
    return _walk_files(root, excludes) if files is None else files


def tree_entries(root: str, excludes: Iterable[str]) -> list[tuple[str, str]]:
    """Sorted ``(relpath, digest)`` pairs for the files of ``source_files(root, excludes)``."""
    entries: list[tuple[str, str]] = []
    for rel in source_files(root, excludes):
        path = os.path.join(root, rel)
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            digest = "link:" + os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            digest = file_digest(path) + (":x" if st.st_mode & 0o111 else "")
        else:
            continue
        entries.append((rel, digest))
    entries.sort()
    return entries


def file_digest(path: str) -> str:
    """A file's sha256, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_hash(root: str, excludes: Iterable[str]) -> str:
    """sha256 of a source tree (see module docstring)."""
    h = hashlib.sha256()
    for rel, digest in tree_entries(root, excludes):
        h.update(f"{rel}\0{digest}\n".encode())
    return h.hexdigest()


def release_id(
    source: str,
    build_command: str,
    build_env: Mapping[str, str],
    extra: Mapping[str, str] | None = None,
    length: int = 12,
) -> str:
    """Release id: a hash of the source identity, build command, build env and extras.

    Environment values enter only through the hash, so the id reveals none of them.
    """
    doc = {
        "source": source,
        "build_command": build_command,
        "env": {k: str(v) for k, v in sorted(build_env.items())},
        "extra": {k: str(v) for k, v in sorted((extra or {}).items())},
    }
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return digest[:length]
