"""Is a Next.js build complete? Pure checks over a release directory.

The incident's ``.next`` had a BUILD_ID but lacked route files (ENOENT on ``page.js``,
``_document.js``, ``api/health/route.js``): a build is only complete when every file
its own manifests name is present.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable

Reader = Callable[[str], str]
Exists = Callable[[str], bool]

# What `next build` writes (a nanoid, or generateBuildId's value): checked before it goes
# into a marker or a report, so a BUILD_ID that is some other file's text never does.
BUILD_ID = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
MAX_MANIFEST = 16 << 20


def read_inside(base: str, limit: int = MAX_MANIFEST) -> Reader:
    """A reader for files of the release ``base`` that refuses what lies outside it (the
    directories on the way resolved, and checked to stay inside) and never follows a link
    in the last component: a build cannot make root read ``/etc/shadow`` as its BUILD_ID.
    Only regular files of at most ``limit`` bytes are read."""
    real_base = os.path.realpath(base)

    def read(path: str) -> str:
        parent = os.path.realpath(os.path.dirname(path))
        if parent != real_base and not parent.startswith(real_base + os.sep):
            raise OSError(f"{path} leads outside {base}")
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
        fd = os.open(os.path.join(parent, os.path.basename(path)), flags)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{os.path.basename(path)} is not a regular file")
            if st.st_size > limit:
                raise OSError(f"{os.path.basename(path)} is larger than {limit} bytes")
            return os.read(fd, limit + 1)[:limit].decode("utf-8", errors="replace")
        finally:
            os.close(fd)

    return read


def check_next_build(
    release_dir: str,
    dist_dir: str = ".next",
    required: list[str] | None = None,
    read: Reader | None = None,
    exists: Exists = os.path.exists,
) -> dict:
    """Return ``{complete, build_id, routes, missing, errors}`` for a release.

    ``required`` lists further paths (relative to the release) that must exist, such as the
    script PM2 runs. Manifests that cannot be parsed are errors, not empty route lists.
    """
    read = read or read_inside(release_dir)
    base = os.path.join(release_dir, dist_dir)
    missing: list[str] = []
    errors: list[str] = []
    routes: list[str] = []
    build_id = None

    id_path = os.path.join(base, "BUILD_ID")
    if exists(id_path):
        try:
            build_id = read(id_path).strip() or None
        except OSError as exc:
            errors.append(f"{dist_dir}/BUILD_ID: {exc}")
        if build_id and not BUILD_ID.match(build_id):
            errors.append(f"{dist_dir}/BUILD_ID: not a build id (letters, digits, - and _)")
            build_id = None
    if not build_id:
        missing.append(f"{dist_dir}/BUILD_ID")

    server = os.path.join(base, "server")
    for manifest in ("app-paths-manifest.json", "pages-manifest.json"):
        path = os.path.join(server, manifest)
        if not exists(path):
            if manifest == "app-paths-manifest.json" and not exists(
                os.path.join(server, "pages-manifest.json")
            ):
                missing.append(f"{dist_dir}/server/{manifest}")
            continue
        try:
            entries = json.loads(read(path))
        except (OSError, ValueError) as exc:
            errors.append(f"{dist_dir}/server/{manifest}: {exc}")
            continue
        if not isinstance(entries, dict):
            errors.append(f"{dist_dir}/server/{manifest}: not a JSON object")
            continue
        for route, rel in sorted(entries.items()):
            routes.append(route)
            if not isinstance(rel, str):
                continue
            if not exists(os.path.join(server, rel)):
                missing.append(f"{dist_dir}/server/{rel}")

    for rel in required or []:
        if not exists(os.path.join(release_dir, rel)):
            missing.append(rel)

    return {
        "complete": not missing and not errors,
        "build_id": build_id,
        "routes": routes,
        "missing": missing,
        "errors": errors,
    }
