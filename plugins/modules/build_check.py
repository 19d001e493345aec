#!/usr/bin/python
"""Check that a Next.js release directory holds a complete build."""

from __future__ import annotations

DOCUMENTATION = r"""
module: build_check
author: hardenkit developers
short_description: Check that a Next.js build is complete
description:
  - Reads C(.next/BUILD_ID) and the server manifests (C(app-paths-manifest.json),
    C(pages-manifest.json)) of a release and checks that every route file they name exists,
    plus any further required paths (such as the script PM2 runs).
  - Read-only; fails when the build is incomplete unless O(fail_on_incomplete=false).
options:
  path:
    description: The release directory.
    type: path
    required: true
  dist_dir:
    description: Next.js build directory, relative to O(path).
    type: str
    default: .next
  required:
    description: Further paths, relative to O(path), that must exist.
    type: list
    elements: str
    default: []
  fail_on_incomplete:
    description: Fail when anything is missing.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
"""

EXAMPLES = r"""
- name: Check the new release's build
  hardenkit.nodeapp.build_check:
    path: /srv/workbot/releases/3f2a9c0d1e4b
    required: [dist/server.js]
"""

RETURN = r"""
complete:
  description: Whether the build is complete.
  type: bool
  returned: always
build_id:
  description: The build's C(BUILD_ID), or null.
  type: str
  returned: always
routes:
  description: Routes named by the manifests.
  type: list
  elements: str
  returned: always
missing:
  description: Paths that should exist and do not.
  type: list
  elements: str
  returned: always
errors:
  description: Manifests that could not be read or parsed.
  type: list
  elements: str
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nextbuild import check_next_build


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "dist_dir": {"type": "str", "default": ".next"},
            "required": {"type": "list", "elements": "str", "default": []},
            "fail_on_incomplete": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    if not os.path.isdir(path):
        module.fail_json(msg=f"path: release directory {path} does not exist")
    result = check_next_build(path, module.params["dist_dir"], module.params["required"])
    if module.params["fail_on_incomplete"] and not result["complete"]:
        problems = result["missing"] + result["errors"]
        module.fail_json(
            msg=f"incomplete build in {path}: "
            + ", ".join(problems[:10])
            + (f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""),
            changed=False,
            **result,
        )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
