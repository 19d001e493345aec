"""Hash an application source tree the way a release id needs it.

Pure functions: a tree is walked once, files excluded like ``tar --exclude`` (an entry
matches any run of whole path components), and each file contributes its relative path,
its executable bit and its content hash. Two trees with the same files hash the same,
wherever they live and whatever their mtimes.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping


def is_excluded(relpath: str, excludes: Iterable[str]) -> bool:
    """True if an exclude entry matches a run of whole components of ``relpath``."""
    parts = relpath.strip("/").split("/")
    for entry in excludes:
        pattern = [p for p in entry.strip("/").split("/") if p and p != "."]
        if not pattern:
            continue
        n = len(pattern)
        for i in range(len(parts) - n + 1):
            if parts[i : i + n] == pattern:
                return True
    return False


def tree_entries(root: str, excludes: Iterable[str]) -> list[tuple[str, str]]:
    """Sorted ``(relpath, digest)`` pairs for every file and symlink under ``root``."""
    excludes = list(excludes)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"source directory {root!r} does not exist")
    entries: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        dirnames[:] = sorted(
            d for d in dirnames if not is_excluded(os.path.join(rel_dir, d), excludes)
        )
        for name in sorted(filenames):
            rel = os.path.join(rel_dir, name)
            if is_excluded(rel, excludes):
                continue
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                digest = "link:" + os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                digest = _file_digest(path) + (":x" if st.st_mode & 0o111 else "")
            else:
                continue
            entries.append((rel, digest))
    entries.sort()
    return entries


def _file_digest(path: str) -> str:
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
