#!/usr/bin/python
# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Read, stage, take over and switch an app's releases without following a link."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release
short_description: An app's releases on the host, handled by file descriptor
version_added: "0.2.0"
description:
  - Every step opens each path component with C(O_NOFOLLOW) relative to a directory it
    holds, so nothing the app user (or its build) leaves behind can redirect a root write.
  - C(read) returns the live and previous release and whether O(release_id) is finished.
    On a host laid out by an older hardenkit it also takes over C(releases/*) and
    C(shared/static) (then owned by the app user), which counts as a change.
  - C(stage) gives the build an empty C(builds/<id>) (or O(build_dir)) owned by O(user),
    creates the root-only O(log_dir), and unpacks the source into it as O(user) (root only
    reads the source, O(src) on the control node or a commit of O(git_dir)); no setuid or
    setgid bit is restored, no owner taken from the archive.
  - C(takeover) makes the built C(builds/<id>) (or O(build_dir)) root's (readable by
    O(user)'s group, writable by root alone; links leading outside, devices, FIFOs,
    sockets and files of other owners removed; setuid and setgid bits cleared), moves it
    to C(releases/<id>), checks the Next.js build (C(.next/BUILD_ID) and the manifests,
    read without following links), points the dist directory's C(cache) at O(data_dir),
    publishes the static assets into C(shared/static) and writes the environment file
    and the marker that says the release is finished.
  - C(pack) writes the finished O(release_id) as one archive, C(artifacts/<id>.tar.gz)
    (root's, 0600; the only one kept there), for the other app servers of a fleet, its
    files as they are, links as links (none followed), without the environment file and
    the marker, which each host writes itself. Returns its path, size and sha256.
  - C(switch) points C(current) at O(release_id) and C(previous) at what was live, each
    replaced atomically, and removes the releases beyond O(keep) (never the one switched
    to, the one switched from, or what C(previous) names) with their ISR route caches.
author:
  - hardenkit developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  action:
    description: The step.
    type: str
    required: true
    choices: [read, stage, takeover, switch, pack]
  app_root:
    description: The app's base directory; it must be root's and writable by root alone.
    type: path
    required: true
  release_id:
    description: The release; required except for O(action=read) without a build.
    type: str
    default: ""
  user:
    description: The app user, who builds the release and reads it.
    type: str
    default: ""
  dist_dir:
    description: Next.js build directory, relative to the release.
    type: str
    default: .next
  subdir:
    description:
      - With O(action=takeover), the directory of the build, relative to C(builds/<id>), that
        becomes the release (C(.next/standalone) for Next.js's C(output) C(standalone)); the
        rest of the build is removed. Empty for the whole build.
    type: str
    default: ""
  data_dir:
    description:
      - The app's writable data directory; the release's C(<dist_dir>/cache) links to
        C(<data_dir>/next-cache). Empty keeps no cache directory in the release.
    type: path
    default: ""
  shared_paths:
    description:
      - With O(action=takeover), paths relative to the app's directory (O(app_dir)) that
        persist across releases in O(data_dir); each is made there (the app user's, 0750) and
        linked into the release in place of whatever the build left at it.
    type: list
    elements: str
    default: []
  app_dir:
    description: The app's directory relative to the release (a monorepo's app), or empty.
    type: str
    default: ""
  required:
    description: Further paths, relative to the release, the build must have produced.
    type: list
    elements: str
    default: []
  marker:
    description: Facts recorded in the release's marker (source, Node version).
    type: dict
    default: {}
  env:
    description: The release's environment file, as its text (C(takeover)).
    type: str
    default: ""
  build_dir:
    description:
      - For C(stage) and C(takeover), the build's directory under C(builds/) (a name); empty
        for O(release_id). A name that stays the same from release to release keeps the ids
        of the app's Server Actions the same, as Next.js derives them from the path it builds
        in; the take-over moves it to C(releases/<id>) all the same.
    type: str
    default: ""
  log_dir:
    description:
      - For C(stage), a directory under O(app_root) (a name, not a path) made root's and
        readable by root alone, for the build's logs. Empty makes none.
    type: str
    default: ""
  src:
    description:
      - For C(stage), a C(.tar.gz) of the source on the control node, copied to a
        temporary file on the host and unpacked into C(builds/<id>) as O(user) (the
        action plugin does the copy).
    type: path
  checksum:
    description:
      - For C(stage) with O(src), the archive's sha256, checked on the host before anything
        is unpacked, and a mismatch refuses it (a release packed on another host, C(pack)).
    type: str
    default: ""
  git_dir:
    description:
      - For C(stage), a git repository on the host (root's) whose O(git_commit) is
        exported into C(builds/<id>) as O(user). Exclusive with O(src).
    type: path
  git_commit:
    description: For C(stage) with O(git_dir), the commit to export.
    type: str
    default: ""
  finished:
    description: For C(switch), the release is known to be finished (just taken over).
    type: bool
    default: false
  keep:
    description: For C(switch), how many releases to keep.
    type: int
    default: 5
"""

EXAMPLES = r"""
- name: Take over the build
  hardenkit.nodeapp.release:
    action: takeover
    app_root: /srv/workbot
    release_id: 3f2a9c0d1e4b
    user: workbot
    data_dir: /srv/workbot/shared/data
    required: [dist/server.js]
  no_log: true
"""

RETURN = r"""
live:
  description: The release C(current) named when the step began ("" when none).
  type: str
  returned: always
previous:
  description: The release C(previous) names after the step.
  type: str
  returned: always
finished:
  description: Whether O(release_id) has a finished, taken-over build.
  type: bool
  returned: always
switched:
  description: Whether C(current) was (or, in check mode, would be) moved.
  type: bool
  returned: when O(action=switch)
releases:
  description: Release ids, newest first.
  type: list
  elements: str
  returned: when O(action=switch)
pruned:
  description: Releases beyond O(keep) removed (in check mode, that would be).
  type: list
  elements: str
  returned: when O(action=switch)
build_id:
  description: The build's id (validated), when taken over.
  type: str
  returned: when O(action=takeover)
routes:
  description: Routes the build's manifests name.
  type: list
  elements: str
  returned: when O(action=takeover)
artifact:
  description: The archive's C(path), C(size) (bytes) and C(sha256).
  type: dict
  returned: when O(action=pack)
takeover:
  description: Counts of what was taken over and what was removed, and why.
  type: dict
  returned: when O(action=takeover) or a release was adopted
"""

import grp
import os
import pwd
import stat
import subprocess
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardenkit.nodeapp.plugins.module_utils import releasefs as rfs
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nextbuild import (
    check_next_build,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.srctree import file_digest

MARKER = ".hardenkit-release.json"
ENV_FILE = ".hardenkit.env"
STATIC = ("shared", "static", "_next", "static")


def _ids(user: str) -> tuple[int, int]:
    try:
        pw = pwd.getpwnam(user)
    except KeyError as exc:
        raise rfs.ReleaseError(f"user: {user!r} does not exist on the host") from exc
    if pw.pw_uid == 0:
        raise rfs.ReleaseError("user: the app user must not be root")
    gid = grp.getgrnam(user).gr_gid if _has_group(user) else pw.pw_gid
    return pw.pw_uid, gid


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _static_dirs(root_fd: int, uid: int, check: bool) -> tuple[bool, rfs.TakeOver]:
    """shared/static/_next/static, each level root's 0755. A tree the app user owned (an
    older layout) is taken over first, never followed through a link it planted."""
    changed = False
    report = rfs.TakeOver()
    if check and rfs.lstat_at(root_fd, "shared") is None:
        return True, report
    fd = rfs.open_at(root_fd, "shared")
    try:
        for name in STATIC[1:]:
            st = rfs.lstat_at(fd, name)
            ok = (
                st is not None
                and stat.S_ISDIR(st.st_mode)
                and st.st_uid == 0
                and stat.S_IMODE(st.st_mode) == 0o755
            )
            if ok:
                nfd = os.open(name, rfs._DIR_FLAGS, dir_fd=fd)
            elif check:
                return True, report
            else:
                if st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
                    cfd = os.open(name, rfs._DIR_FLAGS, dir_fd=fd)
                    with rfs.opened(cfd):
                        rfs.take_over(cfd, uid, 0, ("",), True, name, report)
                nfd, _ = rfs.ensure_dir(fd, name, 0, 0, 0o755)
                changed = True
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)
    return changed, report


def _adopt(
    root_fd: int, releases_fd: int, uid: int, gid: int, dist: str, data_dir: str, check: bool
) -> tuple[list[str], rfs.TakeOver]:
    """Releases an older hardenkit left owned by the app user become root's."""
    adopted: list[str] = []
    report = rfs.TakeOver()
    for name in rfs.by_age(releases_fd):
        st = rfs.lstat_at(releases_fd, name)
        if st is None or st.st_uid == 0:
            continue
        adopted.append(name)
        if check:
            continue
        fd = os.open(name, rfs._DIR_FLAGS, dir_fd=releases_fd)
        with rfs.opened(fd):
            rfs.take_over(fd, uid, gid, (f"{dist}/static",), False, name, report)
            rfs.drop_outside_links(_path(root_fd, f"releases/{name}"), report)
            # The one link that leads out, made by root: the app's runtime cache.
            _link_cache(fd, dist, data_dir, uid, gid, name)
    return adopted, report


def _path(root_fd: int, rel: str) -> str:
    return os.path.join(os.readlink(f"/proc/self/fd/{root_fd}"), rel)


def _link_cache(
    release_fd: int, dist: str, data_dir: str, uid: int, gid: int, rid: str = ""
) -> None:
    """What Next.js writes at run time lands in the data directory, never in the release:
    <dist>/cache (image optimisation, the fetch cache) links to <data_dir>/next-cache, and
    <dist>/server/route-cache (ISR's regenerated pages, in the Next.js versions that keep
    them apart from the compiled routes) to <data_dir>/next-cache/route-cache/<release>,
    the release's own (a page regenerated by one build is no page of another)."""
    if not data_dir:
        return
    _cache_dirs(
        data_dir, uid, gid, ["next-cache"] + ([f"next-cache/route-cache/{rid}"] if rid else [])
    )
    try:
        dfd = rfs.open_at(release_fd, dist)
    except FileNotFoundError:
        return
    with rfs.opened(dfd):
        _link(dfd, "cache", os.path.join(data_dir, "next-cache"))
        if rid and rfs.lstat_at(dfd, "server") is not None:
            sfd = rfs.open_at(dfd, "server")
            with rfs.opened(sfd):
                _link(sfd, "route-cache", os.path.join(data_dir, "next-cache", "route-cache", rid))


def _plain_parts(path: str, name: str) -> list[str]:
    """``path``'s names, refused unless it is a plain relative path (no empty part, . or ..);
    an empty path has none."""
    parts = path.split("/") if path else []
    if any(part in ("", ".", "..") for part in parts):
        raise rfs.ReleaseError(f"{name} must be a plain relative path (got {path!r})")
    return parts


def _shared_prefix(app_dir: str, paths: list[str], data_dir: str) -> list[str]:
    """The app's directory as parts, once the shared paths are known to be plain relative
    paths with somewhere to live (checked before the take-over changes anything)."""
    prefix = _plain_parts(app_dir, "app_dir")
    for rel in paths:
        _plain_parts(rel or ".", "shared_paths")
    if paths and not data_dir:
        raise rfs.ReleaseError("shared_paths need a data_dir to live in")
    return prefix


def _link_shared(
    release_fd: int, app_dir: str, paths: list[str], data_dir: str, uid: int, gid: int
) -> None:
    """Each shared path (relative to the app's directory) lives in the data directory,
    where it persists across releases and the app may write: made there, the app user's,
    and linked into the release in place of whatever the build left at it. Its parents in
    the release are root's directories (a link or file there is replaced by one)."""
    if not paths:
        return
    prefix = _shared_prefix(app_dir, paths, data_dir)
    _cache_dirs(data_dir, uid, gid, paths)
    for rel in paths:
        parts = prefix + rel.split("/")
        fd = os.dup(release_fd)
        try:
            for part in parts[:-1]:
                # As the take-over leaves a release's directories: root's, the app's group.
                nfd, _ = rfs.ensure_dir(fd, part, 0, gid, 0o750)
                os.close(fd)
                fd = nfd
            _link(fd, parts[-1], os.path.join(data_dir, rel))
        finally:
            os.close(fd)


def _link(dir_fd: int, name: str, target: str) -> None:
    """``name`` in the root-owned ``dir_fd`` as a link to ``target`` (whatever was there goes)."""
    try:
        if os.readlink(name, dir_fd=dir_fd) == target:
            return
    except OSError:
        pass
    rfs.remove_tree(dir_fd, name)
    os.symlink(target, name, dir_fd=dir_fd)


def _cache_dirs(data_dir: str, uid: int, gid: int, paths: list[str]) -> None:
    """Directories under the app's data directory, the app user's: made without following
    anything there (an entry that exists, of any type, is the app's business)."""
    try:
        top = os.open(data_dir, rfs._DIR_FLAGS)
    except FileNotFoundError:
        return
    with rfs.opened(top):
        for rel in paths:
            fd = os.dup(top)
            try:
                for part in rel.split("/"):
                    if rfs.lstat_at(fd, part) is None:
                        os.mkdir(part, 0o700, dir_fd=fd)
                        nfd = os.open(part, rfs._DIR_FLAGS, dir_fd=fd)
                        os.fchown(nfd, uid, gid)
                        os.fchmod(nfd, 0o750)
                    else:
                        nfd = os.open(part, rfs._DIR_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = nfd
            except OSError:
                pass  # the app made something else of it: its own business
            finally:
                os.close(fd)


def _drop_route_cache(data_dir: str, rid: str) -> None:
    """The route cache of a release that is gone, removed without following a link."""
    if not data_dir:
        return
    try:
        top = os.open(data_dir, rfs._DIR_FLAGS)
    except OSError:
        return
    with rfs.opened(top):
        try:
            fd = rfs.open_at(top, "next-cache/route-cache")
        except OSError:
            return
        with rfs.opened(fd):
            rfs.remove_tree(fd, rid)


def run(module: AnsibleModule) -> dict:
    p = module.params
    check = module.check_mode
    action = p["action"]
    root_fd = rfs.open_dir(p["app_root"])
    result: dict = {"changed": False}
    try:
        uid = gid = -1
        if p["user"]:
            uid, gid = _ids(p["user"])
        rid = rfs.check_id(p["release_id"]) if p["release_id"] else ""
        if action != "read" and not rid:
            raise rfs.ReleaseError(f"release_id is required for action={action}")
        build = p["build_dir"] or rid
        if build and not rfs.RELEASE_ID.match(build):
            raise rfs.ReleaseError(f"build_dir must be a name under builds/, got {build!r}")

        releases_fd = -1
        if check and rfs.lstat_at(root_fd, "releases") is None:
            result["changed"] = True
        else:
            releases_fd, made = rfs.ensure_dir(root_fd, "releases", 0, max(gid, 0), 0o750)
            result["changed"] |= made
        try:
            live = rfs.read_link(root_fd, "current")
            result["live"] = live
            result["previous"] = rfs.read_link(root_fd, "previous")
            result["finished"] = bool(
                rid and releases_fd >= 0 and rfs.is_finished(releases_fd, rid, MARKER)
            )

            if action == "read":
                if uid >= 0 and releases_fd >= 0:
                    adopted, report = _adopt(
                        root_fd, releases_fd, uid, gid, p["dist_dir"], p["data_dir"], check
                    )
                    sc, sreport = _static_dirs(root_fd, uid, check)
                    report.dropped += sreport.dropped
                    if adopted or sc:
                        result["changed"] = True
                        result["adopted"] = adopted
                        result["takeover"] = report.as_dict()
                    result["finished"] = (
                        bool(rid and rfs.is_finished(releases_fd, rid, MARKER))
                        if not check
                        else result["finished"]
                    )
            elif action == "stage":
                result.update(_stage(root_fd, build, uid, gid, check))
                if not check:
                    _stage_logs_and_source(module, root_fd, build, uid, gid)
            elif action == "takeover":
                result.update(_takeover(module, root_fd, releases_fd, rid, build, uid, gid))
            elif action == "pack":
                result.update(_pack(root_fd, releases_fd, rid, uid, check))
            elif action == "switch":
                if uid >= 0 and releases_fd >= 0:
                    # A rollback on a host an older hardenkit laid out, before any build.
                    adopted, report = _adopt(
                        root_fd, releases_fd, uid, gid, p["dist_dir"], p["data_dir"], check
                    )
                    if adopted:
                        result["adopted"] = adopted
                        result["takeover"] = report.as_dict()
                result.update(_switch(root_fd, releases_fd, rid, live, p, check))
                result["changed"] = result["changed"] or bool(result.get("adopted"))
        finally:
            if releases_fd >= 0:
                os.close(releases_fd)
    finally:
        os.close(root_fd)
    return result


def _stage(root_fd: int, name: str, uid: int, gid: int, check: bool) -> dict:
    if uid < 0:
        raise rfs.ReleaseError("user is required for action=stage")
    if check:
        return {"changed": True, "build_path": ""}
    bfd, _ = rfs.ensure_dir(root_fd, "builds", 0, gid, 0o750)
    with rfs.opened(bfd):
        # A failed attempt in the same directory goes first; of the others (failed builds,
        # kept for inspection) the newest stays.
        rfs.remove_tree(bfd, name)
        for old in rfs.by_age(bfd)[1:]:
            rfs.remove_tree(bfd, old)
        os.mkdir(name, 0o700, dir_fd=bfd)
        sfd = os.open(name, rfs._DIR_FLAGS, dir_fd=bfd)
        with rfs.opened(sfd):
            os.fchown(sfd, uid, gid)
            os.fchmod(sfd, 0o750)
    return {"changed": True, "build_path": _path(root_fd, f"builds/{name}")}


def _stage_logs_and_source(
    module: AnsibleModule, root_fd: int, name: str, uid: int, gid: int
) -> None:
    """The build log directory (root's, 0700) and the source, unpacked by the app user."""
    p = module.params
    if p["log_dir"]:
        if "/" in p["log_dir"] or p["log_dir"] in (".", ".."):
            raise rfs.ReleaseError(f"log_dir must be a name under app_root, got {p['log_dir']!r}")
        os.close(rfs.ensure_dir(root_fd, p["log_dir"], 0, 0, 0o700)[0])
    dest = _path(root_fd, f"builds/{name}")
    # As the app user, into its own build directory: root writes nothing there.
    # --no-overwrite-dir keeps the directory's mode as _stage made it.
    tar = ["tar", "-x", "--no-same-permissions", "--no-same-owner", "--no-overwrite-dir"]
    tar += ["-C", dest, "-f", "-"]
    as_user: dict[str, Any] = {
        "user": uid,
        "group": gid,
        "extra_groups": [],
        "env": {"PATH": "/usr/bin:/bin"},
    }
    if p["archive"]:
        if p["checksum"]:
            got = file_digest(p["archive"])
            if got != p["checksum"].lower():
                raise rfs.ReleaseError(
                    f"the archive's sha256 is {got}, not {p['checksum']}: refused, nothing unpacked"
                )
        with open(p["archive"], "rb") as source:
            done = subprocess.run(
                [*tar[:2], "-z", *tar[2:]], stdin=source, capture_output=True, **as_user
            )
        if done.returncode != 0:
            raise rfs.ReleaseError(f"unpacking the source failed: {_text(done.stderr)}")
    elif p["git_dir"]:
        if not p["git_commit"]:
            raise rfs.ReleaseError("git_commit is required with git_dir")
        git = subprocess.Popen(
            ["git", "-C", p["git_dir"], "archive", "--format=tar", "--", p["git_commit"]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert git.stdout is not None and git.stderr is not None  # both are PIPEs
        done = subprocess.run(tar, stdin=git.stdout, capture_output=True, **as_user)
        git.stdout.close()
        git_err = git.stderr.read()
        if git.wait() != 0 or done.returncode != 0:
            raise rfs.ReleaseError(
                f"exporting {p['git_commit']} failed: {_text(git_err)} {_text(done.stderr)}"
            )


ARTIFACTS = "artifacts"


def _pack(root_fd: int, releases_fd: int, rid: str, uid: int, check: bool) -> dict:
    """The finished release as one archive for the other hosts, root's alone: the only one
    kept in artifacts/ (the one of an earlier release goes). Files as root took them over,
    links stored as links; the environment file and the marker stay out (each host writes
    its own at its take-over)."""
    if uid < 0:
        # Without it, the step that opens releases/ would give it to root's group.
        raise rfs.ReleaseError("user is required for action=pack")
    if releases_fd < 0 or not rfs.is_finished(releases_fd, rid, MARKER):
        raise rfs.ReleaseError(f"release {rid} has no finished build to pack")
    name = f"{rid}.tar.gz"
    if check:
        return {"changed": True, "artifact": {}}
    afd, _ = rfs.ensure_dir(root_fd, ARTIFACTS, 0, 0, 0o700)
    with rfs.opened(afd):
        changed = False
        if rfs.lstat_at(afd, name) is None:
            rfs.remove_tree(afd, f".{name}.tmp")
            path = _path(root_fd, f"{ARTIFACTS}/.{name}.tmp")
            done = subprocess.run(
                [
                    "tar",
                    "-C",
                    _path(root_fd, f"releases/{rid}"),
                    "--numeric-owner",
                    "--owner=0",
                    "--group=0",
                    f"--exclude=./{ENV_FILE}",
                    f"--exclude=./{MARKER}",
                    # gzip's fastest level: a third of the default's time, a sixth more
                    # bytes (437 MB of release: 5.8 s, 127 MB against 17.2 s, 108 MB).
                    "--use-compress-program=gzip -1",
                    "-cf",
                    path,
                    ".",
                ],
                capture_output=True,
            )
            if done.returncode != 0:
                rfs.remove_tree(afd, f".{name}.tmp")
                raise rfs.ReleaseError(f"packing release {rid} failed: {_text(done.stderr)}")
            os.chmod(f".{name}.tmp", 0o600, dir_fd=afd, follow_symlinks=False)
            os.rename(f".{name}.tmp", name, src_dir_fd=afd, dst_dir_fd=afd)
            changed = True
        for old in os.listdir(afd):
            if old != name:
                rfs.remove_tree(afd, old)
        path = _path(root_fd, f"{ARTIFACTS}/{name}")
        size = os.stat(name, dir_fd=afd, follow_symlinks=False).st_size
    return {
        "changed": changed,
        "artifact": {"path": path, "size": size, "sha256": file_digest(path)},
    }


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").strip()[-1000:]


def _takeover(
    module: AnsibleModule, root_fd: int, releases_fd: int, rid: str, name: str, uid: int, gid: int
) -> dict:
    p = module.params
    if uid < 0:
        raise rfs.ReleaseError("user is required for action=takeover")
    if module.check_mode:
        return {"changed": True}
    dist = p["dist_dir"].strip("/")
    subdir = p["subdir"].strip("/")
    parts = _plain_parts(subdir, "subdir")
    _shared_prefix(p["app_dir"], p["shared_paths"], p["data_dir"])
    bfd = rfs.open_at(root_fd, "builds")
    with rfs.opened(bfd):
        sfd = rfs.open_at(bfd, name)
        with rfs.opened(sfd):
            owner = os.fstat(sfd).st_uid
            if owner != uid:
                raise rfs.ReleaseError(
                    f"builds/{name}: owned by uid {owner}, not the build's user ({p['user']})"
                )
            # The whole build is root's before anything of it moves: a part of it cannot
            # be swapped for a link on the way.
            public = "/".join([*parts, dist, "static"])
            report = rfs.take_over(sfd, uid, gid, (public,))
            # A root-owned leftover of an earlier take-over that never got its marker.
            rfs.remove_tree(releases_fd, rid)
            if parts:
                try:
                    pfd = rfs.open_at(sfd, "/".join(parts[:-1])) if len(parts) > 1 else os.dup(sfd)
                except FileNotFoundError:
                    pfd = -1
                if pfd < 0 or rfs.lstat_at(pfd, parts[-1]) is None:
                    raise rfs.ReleaseError(
                        f"incomplete build in builds/{name}: no {subdir} (Next.js writes it with"
                        " output: 'standalone' in next.config)"
                    )
                with rfs.opened(pfd):
                    os.rename(parts[-1], rid, src_dir_fd=pfd, dst_dir_fd=releases_fd)
        if parts:
            # What the release does not take: the build's own dependencies and sources.
            rfs.remove_tree(bfd, name)
        else:
            os.rename(name, rid, src_dir_fd=bfd, dst_dir_fd=releases_fd)
    path = _path(root_fd, f"releases/{rid}")
    rfs.drop_outside_links(path, report)
    rfd = rfs.open_at(releases_fd, rid)
    with rfs.opened(rfd):
        build = check_next_build(path, dist, p["required"])
        if not build["complete"]:
            problems = build["missing"] + build["errors"]
            raise rfs.ReleaseError(
                f"incomplete build in {path}: "
                + ", ".join(problems[:10])
                + (f" (+{len(problems) - 10} more)" if len(problems) > 10 else "")
            )
        _link_cache(rfd, dist, p["data_dir"], uid, gid, rid)
        _link_shared(rfd, p["app_dir"], p["shared_paths"], p["data_dir"], uid, gid)
        added = 0
        try:
            src = rfs.open_at(rfd, f"{dist}/static")
        except FileNotFoundError:
            src = -1
        if src >= 0:
            _static_dirs(root_fd, uid, False)
            with rfs.opened(src):
                dst = rfs.open_at(root_fd, "/".join(STATIC))
                with rfs.opened(dst):
                    added = rfs.publish(src, dst)
        rfs.write_file(rfd, ENV_FILE, p["env"].encode(), 0, gid, 0o640)
        marker = dict(p["marker"])
        marker.update(
            {
                "id": rid,
                "build_id": build["build_id"],
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "routes": build["routes"],
            }
        )
        # The marker last: it says the release is finished.
        rfs.write_file(rfd, MARKER, rfs.marker_bytes(marker), 0, gid, 0o644)
    return {
        "changed": True,
        "finished": True,
        "release_path": path,
        "build_id": build["build_id"],
        "routes": build["routes"],
        "static_added": added,
        "takeover": report.as_dict(),
    }


def _switch(root_fd: int, releases_fd: int, rid: str, live: str, p: dict, check: bool) -> dict:
    if releases_fd < 0 or not (p["finished"] or rfs.is_finished(releases_fd, rid, MARKER)):
        raise rfs.ReleaseError(
            f"release_id: release {rid} has no finished build in {p['app_root']}/releases/; "
            "refusing to switch to it"
        )
    previous = rfs.read_link(root_fd, "previous")
    switched = live != rid
    if switched and not check:
        if live and live != rid:
            rfs.point(root_fd, "previous", live)
            previous = live
        rfs.point(root_fd, "current", rid)
    elif switched and live:
        previous = live
    ordered = rfs.by_age(releases_fd)
    prune = rfs.prune_candidates(ordered, p["keep"], [rid, live, previous])
    if not check:
        for old in prune:
            rfs.remove_tree(releases_fd, old)
            _drop_route_cache(p["data_dir"], old)
    return {
        "changed": switched or bool(prune),
        "switched": switched,
        "previous": previous,
        "releases": [r for r in ordered if r not in prune],
        "pruned": prune,
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {
                "type": "str",
                "required": True,
                "choices": ["read", "stage", "takeover", "switch", "pack"],
            },
            "app_root": {"type": "path", "required": True},
            "release_id": {"type": "str", "default": ""},
            "user": {"type": "str", "default": ""},
            "dist_dir": {"type": "str", "default": ".next"},
            "subdir": {"type": "str", "default": ""},
            "data_dir": {"type": "path", "default": ""},
            "required": {"type": "list", "elements": "str", "default": []},
            "shared_paths": {"type": "list", "elements": "str", "default": []},
            "app_dir": {"type": "str", "default": ""},
            "marker": {"type": "dict", "default": {}},
            "env": {"type": "str", "default": "", "no_log": True},
            "finished": {"type": "bool", "default": False},
            "keep": {"type": "int", "default": 5},
            "log_dir": {"type": "str", "default": ""},
            "build_dir": {"type": "str", "default": ""},
            # The host's copy of src: the action plugin sets it.
            "archive": {"type": "path", "default": ""},
            "git_dir": {"type": "path", "default": ""},
            "git_commit": {"type": "str", "default": ""},
            "checksum": {"type": "str", "default": ""},
        },
        mutually_exclusive=[("archive", "git_dir")],
        supports_check_mode=True,
    )
    try:
        result = run(module)
    except (rfs.ReleaseError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
