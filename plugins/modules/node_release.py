#!/usr/bin/python
# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_release
short_description: Which official Node.js build an app gets, fetched and checked on the control node
version_added: "0.2.0"
description:
  - Runs on the control node (delegated to C(localhost)). Decides the Node.js version from,
    in this order, O(version) (the operator's C(node_runtime_version)), the app's C(.nvmrc),
    its C(.node-version) and C(engines.node) in its C(package.json) (read from O(app_dir));
    with none of them, the newest LTS release.
  - A spec is an exact version (C(22.11.0)), a major or minor (C(22), C(v22.11)), an nvm
    alias (C(lts/*), C(lts/jod), C(lts/-1), C(node)) or a semver range (C(>=20.9.0)); a range
    takes the newest LTS release it allows. A spec no release satisfies fails, naming the
    file or variable it came from and the newest releases there are.
  - The release list is the mirror's C(index.json) (nodejs.org's C(dist/) layout), kept in
    O(cache_dir) for O(index_max_age) seconds. The build for the host's architecture
    (C(node-vX.Y.Z-linux-x64.tar.xz)) is downloaded once and its sha256 checked against the
    release's C(SHASUMS256.txt); a cached build is hashed again before each use and kept
    with its sum, so a steady run with an exact version asks the mirror nothing.
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
  version:
    description: The operator's version spec (C(node_runtime_version)); empty to let the app decide.
    type: str
    default: ""
  app_dir:
    description: The app's source directory on the control node; empty when it has none here
      (a source from git).
    type: path
    default: ""
  workspace_dir:
    description: The workspace root of a monorepo app (O(app_dir) is then a directory in it),
      whose files count when O(app_dir) has none of its own; empty for an app of its own.
    type: path
    default: ""
  mirror:
    description: The download base, in the layout of C(https://nodejs.org/dist/).
    type: str
    default: https://nodejs.org/dist/
  architecture:
    description: The host's architecture as Ansible names it (C(x86_64), C(aarch64)).
    type: str
    required: true
  cache_dir:
    description: Where the index and the builds are kept on the control node.
    type: path
    required: true
  index_max_age:
    description: Seconds a downloaded C(index.json) is used before it is read again.
    type: int
    default: 3600
  fetch:
    description: Download and check the build; false to decide the version only (the
      validation before a run, which needs no host).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Decide and fetch the app's Node.js
  hardenkit.nodeapp.node_release:
    version: "{{ node_runtime_version }}"
    app_dir: "{{ app_src }}"
    architecture: "{{ ansible_facts.architecture }}"
    cache_dir: ~/.cache/hardenkit/node
  delegate_to: localhost
  register: node
"""

RETURN = r"""
version:
  description: The release, without a leading v.
  returned: success
  type: str
  sample: 22.23.5
major:
  description: Its major version.
  returned: success
  type: int
lts:
  description: Its LTS codename in lower case, or null; null too when the index was not read.
  returned: success
  type: str
spec:
  description: The spec that decided it, or null for the newest LTS.
  returned: success
  type: str
source:
  description: Where the spec came from (C(node_runtime_version), C(.nvmrc), C(.node-version),
    C(package.json engines.node), C(the newest LTS)).
  returned: success
  type: str
arch:
  description: The build's platform name (C(linux-x64), C(linux-arm64)).
  returned: success
  type: str
archive:
  description: The checked build on the control node (null without O(fetch)).
  returned: success
  type: str
sha256:
  description: Its sha256 (null without O(fetch)).
  returned: success
  type: str
dir_name:
  description: A directory name for this build on a host (C(v22.23.5-linux-x64)).
  returned: success
  type: str
url:
  description: Where the build is downloaded from.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nodefetch import release

ARGUMENT_SPEC = {
    "version": {"type": "str", "default": ""},
    "app_dir": {"type": "path", "default": ""},
    "workspace_dir": {"type": "path", "default": ""},
    "mirror": {"type": "str", "default": "https://nodejs.org/dist/"},
    "architecture": {"type": "str", "required": True},
    "cache_dir": {"type": "path", "required": True},
    "index_max_age": {"type": "int", "default": 3600},
    "fetch": {"type": "bool", "default": True},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        module.exit_json(**release(module.params, module.warn))
    except ValueError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
