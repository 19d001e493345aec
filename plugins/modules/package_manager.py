#!/usr/bin/python
# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: package_manager
short_description: Which package manager an app uses, fetched and checked on the control node
version_added: "0.2.0"
description:
  - Runs on the control node (delegated to C(localhost)). Reads the app's source directory
    O(src) (its lockfile, C(package.json)'s C(packageManager), C(.yarnrc.yml), the head of
    C(yarn.lock)) and decides the package manager and its frozen install command. Lockfiles
    of different managers, a C(packageManager) that disagrees with the lockfile, or no
    lockfile fail with the file named and the fix.
  - The version is C(packageManager)'s when it names one, else the kit's default for that
    manager (O(defaults)). The manager's npm-registry tarball is downloaded once into
    O(cache_dir) and checked against the registry's integrity and, when given,
    C(packageManager)'s hash (corepack's; for yarn 2+ it covers C(bin/yarn.js)). A cached
    tarball is checked again before each use, against the integrity kept beside it, so a
    steady run asks the registry nothing; one that fails is downloaded anew.
  - Several versions coexist, each installed on a host in a directory of its own
    (RV(dir_name)), never into the app user's home at build time.
author:
  - hardenkit developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Downloads into the control node's cache in check mode too; changes no host.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  src:
    description: The app's source directory on the control node.
    type: path
    required: true
  registry:
    description: The npm registry.
    type: str
    default: https://registry.npmjs.org/
  cache_dir:
    description: Where downloaded tarballs are kept on the control node.
    type: path
    required: true
  defaults:
    description: The version of each manager when C(packageManager) names none (keys
      C(pnpm), C(npm), C(yarn) (classic), C(yarn_berry), C(bun)).
    type: dict
    required: true
  arch:
    description: The hosts' architecture, for bun's native build.
    type: str
    choices: [x64, arm64]
    default: x64
"""

EXAMPLES = r"""
- name: Find and fetch the app's package manager
  hardenkit.nodeapp.package_manager:
    src: "{{ app_src }}"
    cache_dir: ~/.cache/hardenkit
    defaults: {pnpm: 10.34.8, npm: 10.9.2, yarn: 1.22.22, yarn_berry: 4.5.3, bun: 1.1.38}
  delegate_to: localhost
  register: pm
"""

RETURN = r"""
name:
  description: npm, pnpm, yarn or bun.
  returned: success
  type: str
flavour:
  description: classic or berry for yarn, else null.
  returned: success
  type: str
version:
  description: The version installed.
  returned: success
  type: str
pinned:
  description: Whether the version comes from C(packageManager).
  returned: success
  type: bool
lockfile:
  description: The lockfile the install is frozen to.
  returned: success
  type: str
install_command:
  description: The frozen install (C(npm ci), C(pnpm install --frozen-lockfile), ...).
  returned: success
  type: str
archive:
  description: The checked tarball on the control node.
  returned: success
  type: str
archive_sha1:
  description: Its SHA-1, for M(hardenkit.nodeapp.drift).
  returned: success
  type: str
dir_name:
  description: The manager's directory name on a host (C(pnpm-9.15.9)).
  returned: success
  type: str
commands:
  description: Each command the manager provides and the file in the tarball it runs
    (with node, unless RV(native)).
  returned: success
  type: dict
native:
  description: True for bun, a native executable.
  returned: success
  type: bool
warnings_found:
  description: What the detection noticed (a lockfile ignored for packageManager's).
  returned: success
  type: list
  elements: str
"""

import hashlib
import io
import json
import os
import tarfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pkgmanager import (
    check_integrity,
    detect,
    entry_point,
    pm_hashed_file,
    registry_package,
    tarball_url,
)

ARGUMENT_SPEC = {
    "src": {"type": "path", "required": True},
    "registry": {"type": "str", "default": "https://registry.npmjs.org/"},
    "cache_dir": {"type": "path", "required": True},
    "defaults": {"type": "dict", "required": True},
    "arch": {"type": "str", "choices": ["x64", "arm64"], "default": "x64"},
}
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


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    src = p["src"]
    raw = _read(os.path.join(src, "package.json"))
    if raw is None:
        module.fail_json(msg=f"app_src {src} has no package.json")
    try:
        package_json = json.loads(raw)
        found = detect(
            os.listdir(src), package_json,
            yarnrc=_read(os.path.join(src, ".yarnrc.yml")),
            yarn_lock_head=_read(os.path.join(src, "yarn.lock"), 2048),
        )
        name, flavour = found["name"], found["flavour"]
        key = "yarn_berry" if flavour == "berry" else name
        version = found["version"] or str(p["defaults"].get(key) or "")
        if not version:
            module.fail_json(msg=f"no default version for {key}: set it in the defaults option")
        package = registry_package(name, flavour, version, p["arch"])
        entry = entry_point(name, flavour, version)
    except ValueError as exc:
        module.fail_json(msg=f"app_src {src}: {exc}")
    except json.JSONDecodeError as exc:
        module.fail_json(msg=f"app_src {src}: package.json is not valid JSON: {exc}")
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
            meta = json.load(open_url(f"{registry}/{package.replace('/', '%2F')}/{version}",
                                      headers={"Accept": "application/json"}, timeout=60))
            integrity = (meta.get("dist") or {}).get("integrity")
            url = (meta.get("dist") or {}).get("tarball") or tarball_url(registry, package,
                                                                          version)
        except Exception as exc:
            module.fail_json(
                msg=f"cannot read {package}@{version} from the registry {registry}: {exc}")
        try:
            data = open_url(url, timeout=300).read()
        except Exception as exc:
            module.fail_json(msg=f"cannot download {url}: {exc}")
        try:
            check(data, integrity)
        except ValueError as exc:
            module.fail_json(msg=f"{package}@{version} from {url}: {exc}")
        record = (integrity or "").encode()
        for path, content in ((archive, data), (f"{archive}.integrity", record)):
            tmp = f"{path}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(content)
            os.replace(tmp, path)
    module.exit_json(
        changed=False,
        name=name,
        flavour=flavour,
        version=version,
        pinned=pinned,
        lockfile=found["lockfile"],
        install_command=found["install_command"],
        yarn_path=found["yarn_path"],
        archive=archive,
        archive_sha1=hashlib.sha1(data).hexdigest(),
        dir_name=f"{name}{'-berry' if flavour == 'berry' else ''}-{version}",
        commands={name: entry, **EXTRA_COMMANDS.get(name, {})},
        native=name == "bun",
        warnings_found=found["warnings"],
    )


if __name__ == "__main__":
    main()
