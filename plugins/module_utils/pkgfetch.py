# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Find an app's package manager and fetch its tarball, on the control node.

Shared by the module ``hardenkit.nodeapp.package_manager`` (documented there) and its
action plugin, which runs this in the controller's worker instead of shipping a module to
localhost: a steady run's step costs milliseconds. :mod:`pkgmanager` does the decisions.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from typing import Any

from ansible.module_utils.urls import open_url

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pkgmanager import (
    check_integrity,
    detect,
    entry_point,
    pm_hashed_file,
    registry_package,
    tarball_url,
)

# Other commands a manager's tarball provides beside its entry point.
EXTRA_COMMANDS = {"npm": {"npx": "bin/npx-cli.js"}}


def _read(path: str, limit: int | None = None) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(limit) if limit else fh.read()
    except FileNotFoundError:
        return None


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _member(data: bytes, name: str) -> bytes | None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        try:
            member = tar.extractfile(f"package/{name}")
        except KeyError:
            return None
        return member.read() if member else None


def fetch(p: dict[str, Any]) -> dict[str, Any]:
    """The module's result for the options ``p``; ``ValueError`` with the message to show
    on failure."""
    src = p["src"]
    raw = _read(os.path.join(src, "package.json"))
    if raw is None:
        raise ValueError(f"app_src {src} has no package.json")
    try:
        package_json = json.loads(raw)
        found = detect(
            os.listdir(src),
            package_json,
            yarnrc=_read(os.path.join(src, ".yarnrc.yml")),
            yarn_lock_head=_read(os.path.join(src, "yarn.lock"), 2048),
        )
        name, flavour = found["name"], found["flavour"]
        key = "yarn_berry" if flavour == "berry" else name
        version = found["version"] or str(p["defaults"].get(key) or "")
        if not version:
            raise ValueError(f"no default version for {key}: set it in the defaults option")
        package = registry_package(name, flavour, version, p["arch"])
        entry = entry_point(name, flavour, version)
    except json.JSONDecodeError as exc:
        raise ValueError(f"app_src {src}: package.json is not valid JSON: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"app_src {src}: {exc}") from None
    pinned = found["version"] is not None

    os.makedirs(p["cache_dir"], exist_ok=True)
    archive = os.path.join(p["cache_dir"], f"{package.replace('/', '+')}-{version}.tgz")
    registry = p["registry"].rstrip("/")
    hashed = pm_hashed_file(name, flavour)

    def check(data: bytes, integrity: str | None) -> None:
        pm_data = _member(data, hashed) if hashed and found["hash_hex"] else None
        check_integrity(data, integrity, found["hash_algo"], found["hash_hex"], pm_data=pm_data)

    # The cache first, checked against the integrity the registry gave when it was
    # downloaded (kept beside it): a steady run asks the registry nothing. A cached file
    # that fails its check is downloaded anew.
    data = None
    cached, recorded = _read_bytes(archive), _read(f"{archive}.integrity")
    if cached is not None and recorded:
        try:
            check(cached, recorded.strip())
            data = cached
        except ValueError:
            data = None
    if data is None:
        try:
            meta = json.load(
                open_url(
                    f"{registry}/{package.replace('/', '%2F')}/{version}",
                    headers={"Accept": "application/json"},
                    timeout=60,
                )
            )
            integrity = (meta.get("dist") or {}).get("integrity")
            url = (meta.get("dist") or {}).get("tarball") or tarball_url(registry, package, version)
        except Exception as exc:
            raise ValueError(
                f"cannot read {package}@{version} from the registry {registry}: {exc}"
            ) from None
        try:
            data = open_url(url, timeout=300).read()
        except Exception as exc:
            raise ValueError(f"cannot download {url}: {exc}") from None
        try:
            check(data, integrity)
        except ValueError as exc:
            raise ValueError(f"{package}@{version} from {url}: {exc}") from None
        record = (integrity or "").encode()
        for path, content in ((archive, data), (f"{archive}.integrity", record)):
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(content)
            os.replace(tmp, path)
    return {
        "changed": False,
        "name": name,
        "flavour": flavour,
        "version": version,
        "pinned": pinned,
        "lockfile": found["lockfile"],
        "install_command": found["install_command"],
        "yarn_path": found["yarn_path"],
        "archive": archive,
        "archive_sha1": hashlib.sha1(data).hexdigest(),
        "dir_name": f"{name}{'-berry' if flavour == 'berry' else ''}-{version}",
        "commands": {name: entry, **EXTRA_COMMANDS.get(name, {})},
        "native": name == "bun",
        "warnings_found": found["warnings"],
    }
