# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Decide an app's Node.js release and fetch its official build, on the control node.

Shared by the module ``hardenkit.nodeapp.node_release`` (documented there) and its action
plugin, which runs this in the controller's worker instead of shipping a module: a steady
run's decision costs milliseconds. :mod:`nodeversion` does the version logic; this module
reads the app's files, the mirror's index (cached) and the build (checked, cached).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from typing import Any

from ansible.module_utils.urls import open_url

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nodeversion import (
    clean_spec,
    host_arch,
    parse_index,
    parse_shasums,
    pick_spec,
    resolve,
    tarball_name,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.srctree import file_digest

_EXACT = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except (FileNotFoundError, IsADirectoryError):
        return None


def _sha256(path: str) -> str | None:
    try:
        return file_digest(path)
    except FileNotFoundError:
        return None


def _write(path: str, data: bytes) -> None:
    """Atomically: forks of the same run may fetch the same file at once."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _cached(archive: str) -> str | None:
    """The sum of a cached build that still matches the one recorded with it."""
    recorded = (_read(f"{archive}.sha256") or "").strip()
    if recorded and _sha256(archive) == recorded:
        return recorded
    return None


def app_specs(app_dir: str) -> tuple[str | None, str | None, str | None]:
    """The app's ``.nvmrc``, ``.node-version`` and ``engines.node`` (None where absent)."""
    if not app_dir:
        return None, None, None
    raw = _read(os.path.join(app_dir, "package.json"))
    engines = None
    if raw is not None:
        try:
            package = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{app_dir}/package.json is not valid JSON: {exc}") from None
        node = ((package.get("engines") or {}) if isinstance(package, dict) else {}).get("node")
        engines = node if isinstance(node, str) else None
    return (
        _read(os.path.join(app_dir, ".nvmrc")),
        _read(os.path.join(app_dir, ".node-version")),
        engines,
    )


def release(p: dict[str, Any], warn: Callable[[str], None]) -> dict[str, Any]:
    """The module's result for the options ``p``; ``ValueError`` with the message to show
    on failure."""
    mirror = p["mirror"].rstrip("/")
    arch = host_arch(p["architecture"])
    # A monorepo app: its own files first, else the workspace root's (.nvmrc sits there).
    app_dir = p["app_dir"]
    specs = app_specs(app_dir)
    if not any(specs) and p.get("workspace_dir"):
        app_dir = p["workspace_dir"]
        specs = app_specs(app_dir)
    spec, source = pick_spec(p["version"], *specs)
    own_file = source not in ("node_runtime_version", "the newest LTS")
    where = f" in {app_dir}" if own_file else ""

    # One cache per mirror: two mirrors may disagree on what a version holds.
    cache = os.path.join(p["cache_dir"], hashlib.sha1(mirror.encode()).hexdigest()[:12])
    os.makedirs(cache, exist_ok=True)

    def result(
        version: str, lts: str | None, archive: str | None, sha256: str | None
    ) -> dict[str, Any]:
        return {
            "changed": False,
            "version": version,
            "major": int(version.split(".")[0]),
            "lts": lts,
            "spec": clean_spec(spec) or None,
            "source": source,
            "arch": arch,
            "archive": archive,
            "sha256": sha256,
            "dir_name": f"v{version}-{arch}",
            "url": f"{mirror}/v{version}/{tarball_name(version, arch)}",
        }

    # An exact version already fetched needs no index.
    exact = _EXACT.fullmatch(clean_spec(spec) if spec else "")
    if exact:
        version = ".".join(exact.groups())
        archive = os.path.join(cache, tarball_name(version, arch))
        sha256 = _cached(archive)
        if sha256:
            return result(version, None, archive, sha256)

    # Forks of one run wait for each other here instead of fetching the same files.
    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index_path = os.path.join(cache, "index.json")
        try:
            age = time.time() - os.stat(index_path).st_mtime
        except FileNotFoundError:
            age = None
        if age is None or age > p["index_max_age"]:
            try:
                _write(index_path, open_url(f"{mirror}/index.json", timeout=60).read())
            except Exception as exc:
                if age is None:
                    raise ValueError(
                        f"cannot read the Node.js release list {mirror}/index.json ({exc});"
                        " set node_runtime_mirror to a reachable copy of"
                        " https://nodejs.org/dist/"
                    ) from None
                warn(
                    f"cannot read {mirror}/index.json ({exc}); using the copy read {int(age)} s ago"
                )
        try:
            releases = parse_index(json.loads(_read(index_path) or "[]"))
        except (json.JSONDecodeError, AttributeError, TypeError) as exc:
            os.unlink(index_path)
            raise ValueError(f"{mirror}/index.json is not a Node.js release list: {exc}") from None
        chosen = resolve(spec, releases, source=f"{source}{where}", arch=arch)
        version = chosen["version"]
        if not p["fetch"]:
            return result(version, chosen["lts"], None, None)
        name = tarball_name(version, arch)
        archive = os.path.join(cache, name)
        sha256 = _cached(archive)
        if sha256:
            return result(version, chosen["lts"], archive, sha256)
        sums_url = f"{mirror}/v{version}/SHASUMS256.txt"
        try:
            sums = parse_shasums(open_url(sums_url, timeout=60).read().decode("utf-8", "replace"))
        except Exception as exc:
            raise ValueError(f"cannot read {sums_url}: {exc}") from None
        if name not in sums:
            raise ValueError(
                f"{sums_url} lists no {name}: the mirror {mirror} has no"
                f" {arch} .tar.xz build of Node.js {version}"
            )
        url = f"{mirror}/v{version}/{name}"
        try:
            data = open_url(url, timeout=600).read()
        except Exception as exc:
            raise ValueError(f"cannot download {url}: {exc}") from None
        got = hashlib.sha256(data).hexdigest()
        if got != sums[name]:
            raise ValueError(
                f"{url} has sha256 {got}, but {sums_url} says {sums[name]}:"
                " the download is corrupt or the mirror is not to be trusted"
            )
        _write(archive, data)
        _write(f"{archive}.sha256", f"{got}\n".encode())
        return result(version, chosen["lts"], archive, got)
