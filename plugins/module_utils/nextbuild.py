"""Is a Next.js build complete? Pure checks over a release directory.

The incident's ``.next`` had a BUILD_ID but lacked route files (ENOENT on ``page.js``,
``_document.js``, ``api/health/route.js``): a build is only complete when every file
its own manifests name is present.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

Reader = Callable[[str], str]
Exists = Callable[[str], bool]


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def check_next_build(
    release_dir: str,
    dist_dir: str = ".next",
    required: list[str] | None = None,
    read: Reader = _read,
    exists: Exists = os.path.exists,
) -> dict:
    """Return ``{complete, build_id, routes, missing, errors}`` for a release.

    ``required`` lists further paths (relative to the release) that must exist, such as the
    script PM2 runs. Manifests that cannot be parsed are errors, not empty route lists.
    """
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
