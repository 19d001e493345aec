# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Releases on the host, handled by file descriptor (module ``release``).

A build runs as the unprivileged app user in ``builds/<id>``; everything it leaves there is
untrusted. Root never acts on such a tree by path: every step here opens each component
with ``O_NOFOLLOW`` relative to a directory it already holds, takes a directory over
(``fchown`` to root) *before* it lists it, so the entries it then reads cannot change
under it, and only then looks at them. A finished release is owned by root, readable by
the app's group, writable by nobody else; no link in it leads outside it, and it holds no
setuid/setgid bit, device, FIFO or socket.

Layout under ``app_root`` (root-owned): ``builds/<id>`` (the build's staging directory,
the app user's while it builds), ``releases/<id>`` (taken over), ``current`` and
``previous`` (links to ``releases/<id>``), ``shared/static`` (root-owned, the hashed
assets of every kept release, hard links of the releases' own files).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

RELEASE_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
BUILD_ID = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted under a regular file's name never blocks.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
MAX_READ = 16 << 20


class ReleaseError(Exception):
    """A step refused or failed; the message names the path and the reason."""


@dataclass
class TakeOver:
    """What a take-over did: counts, and what it removed from the tree and why."""

    files: int = 0
    dirs: int = 0
    links: int = 0
    dropped: list[str] = field(default_factory=list)
    # Inodes this take-over made root's: a file the build hard-linked twice (pnpm links
    # identical files of several packages to one inode of its store) is root's by its
    # second name, and stays.
    # The value: whether any of its names is public (a published asset stays readable).
    taken: dict[tuple[int, int], bool] = field(default_factory=dict)

    def drop(self, rel: str, why: str) -> None:
        if len(self.dropped) < 200:
            self.dropped.append(f"{rel}: {why}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "dirs": self.dirs,
            "links": self.links,
            "dropped": list(self.dropped),
        }


def check_id(release_id: str) -> str:
    if not RELEASE_ID.match(release_id or ""):
        raise ReleaseError(f"release id {release_id!r} is not a release name")
    return release_id


@contextlib.contextmanager
def opened(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def open_dir(path: str) -> int:
    """The app root, by its path: it and what leads to it are root's (checked)."""
    fd = os.open(path, _DIR_FLAGS)
    st = os.fstat(fd)
    if st.st_uid != 0 or st.st_mode & 0o022:
        os.close(fd)
        raise ReleaseError(f"{path} must be owned by root and writable by root alone")
    return fd


def open_at(dir_fd: int, rel: str, directory: bool = True) -> int:
    """``rel`` under ``dir_fd``, every component opened without following a link."""
    fd = os.dup(dir_fd)
    parts = [p for p in rel.split("/") if p and p != "."]
    if ".." in parts:
        os.close(fd)
        raise ReleaseError(f"{rel}: '..' is not allowed")
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = _DIR_FLAGS if (directory or not last) else _FILE_FLAGS
            nfd = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except OSError:
        os.close(fd)
        raise
    return fd


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def ensure_dir(parent_fd: int, name: str, uid: int, gid: int, mode: int) -> tuple[int, bool]:
    """``name`` under ``parent_fd`` as a directory with this owner and mode; returns
    ``(fd, changed)``. A link or a non-directory there is removed first (only ever in a
    directory root holds), never followed."""
    changed = False
    st = lstat_at(parent_fd, name)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        changed, st = True, None
    if st is None:
        os.mkdir(name, mode, dir_fd=parent_fd)
        changed = True
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.fchown(fd, uid, gid)
        changed = True
    if stat.S_IMODE(st.st_mode) != mode:
        os.fchmod(fd, mode)
        changed = True
    return fd, changed


def remove_tree(parent_fd: int, name: str) -> bool:
    """Remove ``name`` (any type) under ``parent_fd`` without following a link."""
    st = lstat_at(parent_fd, name)
    if st is None:
        return False
    if stat.S_ISDIR(st.st_mode):
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        with opened(fd):
            # Root's from here on, so nothing can be added while it empties.
            os.fchown(fd, 0, 0)
            os.fchmod(fd, 0o700)
            for entry in os.listdir(fd):
                remove_tree(fd, entry)
        os.rmdir(name, dir_fd=parent_fd)
    else:
        os.unlink(name, dir_fd=parent_fd)
    return True


def _mode_for(st_mode: int, is_dir: bool, public: bool) -> int:
    executable = is_dir or bool(st_mode & stat.S_IXUSR)
    if public:
        return 0o755 if executable else 0o644
    return 0o750 if executable else 0o640


def take_over(
    fd: int,
    owner: int,
    gid: int,
    public: tuple[str, ...] = (),
    keep_root_owned: bool = False,
    rel: str = "",
    out: TakeOver | None = None,
) -> TakeOver:
    """Make the directory ``fd`` (and everything under it) root's, readable by ``gid``.

    Each directory is chowned before it is listed: from then on only root can change its
    entries, and what is read next is what stays. Entries owned by anyone but ``owner``
    (the build's user) are removed, not adopted: a build cannot hard-link a file of
    root's into the tree and have it re-moded (``keep_root_owned`` keeps root's files as
    they are, for a tree root wrote into before). FIFOs, sockets and devices are removed;
    setuid, setgid and sticky bits and write access for anyone but root go. Paths under
    ``public`` (relative, e.g. ``.next/static``) become world-readable: Nginx serves them.
    Links are counted here and checked by :func:`drop_outside_links` once the tree is
    root's.
    """
    out = out if out is not None else TakeOver()
    st = os.fstat(fd)
    if st.st_uid != 0:
        if st.st_uid != owner:
            raise ReleaseError(f"{rel or '.'}: owned by uid {st.st_uid}, not the build's user")
        os.fchown(fd, 0, gid)
    elif st.st_gid != gid:
        os.fchown(fd, 0, gid)
    is_public = _is_public(rel, public)
    os.fchmod(fd, _mode_for(st.st_mode, True, is_public))
    out.dirs += 1
    for name in os.listdir(fd):
        child = f"{rel}/{name}" if rel else name
        est = lstat_at(fd, name)
        if est is None:
            continue
        kind = stat.S_IFMT(est.st_mode)
        foreign = est.st_uid not in ((owner, 0) if keep_root_owned else (owner,))
        if kind == stat.S_IFLNK:
            if est.st_uid != 0:
                os.chown(name, 0, gid, dir_fd=fd, follow_symlinks=False)
            out.links += 1
        elif kind == stat.S_IFDIR:
            if foreign:
                remove_tree(fd, name)
                out.drop(child, f"directory owned by uid {est.st_uid}")
                continue
            cfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            with opened(cfd):
                take_over(cfd, owner, gid, public, keep_root_owned, child, out)
        elif kind == stat.S_IFREG:
            if foreign and (est.st_dev, est.st_ino) not in out.taken:
                os.unlink(name, dir_fd=fd)
                out.drop(child, f"file owned by uid {est.st_uid}")
                continue
            _take_file(fd, name, gid, _is_public(child, public), out.taken)
            out.files += 1
        else:
            os.unlink(name, dir_fd=fd)
            out.drop(child, "not a regular file, directory or link")
    return out


def _take_file(
    dir_fd: int, name: str, gid: int, public: bool, taken: dict[tuple[int, int], bool]
) -> None:
    """Make one file root's, readable by ``gid`` (by everyone when ``public``)."""
    ffd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    with opened(ffd):
        st = os.fstat(ffd)
        if not stat.S_ISREG(st.st_mode):
            raise ReleaseError(f"{name}: changed type while being taken over")
        key = (st.st_dev, st.st_ino)
        if st.st_uid == 0 and key not in taken:
            # Root's before this walk (a tree root wrote into): only ever narrowed.
            want = _mode_for(st.st_mode, False, public)
            if stat.S_IMODE(st.st_mode) & ~want:
                os.fchmod(ffd, stat.S_IMODE(st.st_mode) & want)
            return
        if st.st_uid != 0:
            # chown first: it clears setuid/setgid, and the owner can no longer chmod.
            os.fchown(ffd, 0, gid)
        # One inode under several names: public if any of them is.
        taken[key] = public = public or taken.get(key, False)
        want = _mode_for(os.fstat(ffd).st_mode, False, public)
        if stat.S_IMODE(os.fstat(ffd).st_mode) != want:
            os.fchmod(ffd, want)


def _is_public(rel: str, public: tuple[str, ...]) -> bool:
    return any(p == "" or rel == p or rel.startswith(p + "/") for p in public)


def drop_outside_links(path: str, out: TakeOver | None = None) -> TakeOver:
    """Remove every link under the root-owned tree ``path`` that resolves outside it
    (absolute links included: the tree moves). Resolution is physical (``realpath``), so
    ``s -> .`` then ``t -> s/s/..`` is seen leaving the tree."""
    out = out if out is not None else TakeOver()
    base = os.path.realpath(path)
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                continue
            target = os.readlink(full)
            try:
                resolved = os.path.realpath(full, strict=False)
            except (OSError, RuntimeError):
                resolved = ""
            inside = resolved == base or resolved.startswith(base + os.sep)
            if os.path.isabs(target) or not inside:
                os.unlink(full)
                out.drop(os.path.relpath(full, base), f"link to {target} leads outside")
    return out


def read_regular(dir_fd: int, rel: str, limit: int = MAX_READ) -> bytes:
    """A regular file under ``dir_fd``, no component followed through a link; at most
    ``limit`` bytes, else an error (never a truncated read)."""
    fd = open_at(dir_fd, rel, directory=False)
    with opened(fd):
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReleaseError(f"{rel}: not a regular file")
        if st.st_size > limit:
            raise ReleaseError(f"{rel}: larger than {limit} bytes")
        chunks, total = [], 0
        while True:
            block = os.read(fd, 1 << 16)
            if not block:
                break
            total += len(block)
            if total > limit:
                raise ReleaseError(f"{rel}: larger than {limit} bytes")
            chunks.append(block)
        return b"".join(chunks)


def write_file(dir_fd: int, name: str, data: bytes, uid: int, gid: int, mode: int) -> bool:
    """Write ``name`` in the root-owned directory ``dir_fd`` whole (a new file renamed into
    place); False when it already holds exactly this, with this owner and mode."""
    try:
        fd = open_at(dir_fd, name, directory=False)
    except OSError:
        fd = -1
    if fd >= 0:
        with opened(fd):
            st = os.fstat(fd)
            same = (
                stat.S_ISREG(st.st_mode)
                and (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, mode)
                and st.st_size == len(data)
                and os.pread(fd, len(data) + 1, 0) == data
            )
        if same:
            return False
    tmp = f".{name}.hk-new"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=dir_fd)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    wfd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
    try:
        with opened(wfd):
            os.fchown(wfd, uid, gid)
            os.fchmod(wfd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(wfd, view) :]
            os.fsync(wfd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    return True


def publish(src_fd: int, dst_fd: int, rel: str = "") -> int:
    """Hard-link every regular file of the root-owned tree ``src_fd`` into the root-owned
    ``dst_fd``, keeping what is there (hashed names: the same name is the same file).
    Links in the source are skipped. Returns how many files were added."""
    added = 0
    for name in os.listdir(src_fd):
        st = lstat_at(src_fd, name)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            sfd = os.open(name, _DIR_FLAGS, dir_fd=src_fd)
            with opened(sfd):
                dfd, _ = ensure_dir(dst_fd, name, 0, 0, 0o755)
                with opened(dfd):
                    added += publish(sfd, dfd, f"{rel}/{name}")
        elif stat.S_ISREG(st.st_mode):
            if lstat_at(dst_fd, name) is not None:
                continue
            try:
                os.link(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
                continue
            added += 1
    return added


def read_link(dir_fd: int, name: str) -> str:
    """The release id a ``current``/``previous`` link names, or "" when there is none."""
    try:
        target = os.readlink(name, dir_fd=dir_fd)
    except (FileNotFoundError, OSError):
        return ""
    return os.path.basename(target.rstrip("/"))


def point(dir_fd: int, name: str, release_id: str) -> None:
    """``name`` -> ``releases/<id>``, replaced atomically (a new link renamed over it)."""
    tmp = f".{name}.hk"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=dir_fd)
    os.symlink(f"releases/{release_id}", tmp, dir_fd=dir_fd)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def is_finished(releases_fd: int, release_id: str, marker: str) -> bool:
    """A taken-over release (root's directory) holding a regular, root-owned marker."""
    st = lstat_at(releases_fd, release_id)
    if st is None or not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
        return False
    try:
        mst = os.stat(f"{release_id}/{marker}", dir_fd=releases_fd, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(mst.st_mode) and mst.st_uid == 0


def by_age(releases_fd: int) -> list[str]:
    """Release directories, newest first (ties by name, for a stable order)."""
    found = []
    for name in os.listdir(releases_fd):
        st = lstat_at(releases_fd, name)
        if st is not None and stat.S_ISDIR(st.st_mode) and RELEASE_ID.match(name):
            found.append((st.st_mtime, name))
    return [name for _, name in sorted(found, key=lambda t: (-t[0], t[1]))]


def prune_candidates(by_age_ids: list[str], keep: int, protect: list[str]) -> list[str]:
    """Releases beyond the newest ``keep``; never one of ``protect`` (the release switched
    to, the one live before it, and whatever ``previous`` names: rollback's target)."""
    kept = {p for p in protect if p}
    return [r for r in by_age_ids[max(keep, 0) :] if r not in kept]


def marker_bytes(marker: dict[str, Any]) -> bytes:
    return (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode()
