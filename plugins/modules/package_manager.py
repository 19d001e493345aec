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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pkgfetch import fetch

ARGUMENT_SPEC = {
    "src": {"type": "path", "required": True},
    "registry": {"type": "str", "default": "https://registry.npmjs.org/"},
    "cache_dir": {"type": "path", "required": True},
    "defaults": {"type": "dict", "required": True},
    "arch": {"type": "str", "choices": ["x64", "arm64"], "default": "x64"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        module.exit_json(**fetch(module.params))
    except ValueError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
