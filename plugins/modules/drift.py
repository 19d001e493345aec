#!/usr/bin/python
# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: drift
short_description: Which of a role's files and directories differ from what the role wants
version_added: "0.1.0"
description:
  - Compares each entry of O(paths) with the host, in one module run, and returns the
    paths that differ (missing, another type, owner, group, mode, content or link target).
  - A role reads this first, then runs its C(file), C(copy) and C(template) tasks only for
    the paths returned. On a host where nothing drifted, the role costs one module run
    instead of one or two per file (about 0.4 s each on the default strategy).
  - Read-only. It changes nothing, always returns C(changed=false) and runs the same in
    check mode, so check mode still reports exactly what a run would change.
  - Content is compared by SHA-1, which the control node computes from what the task would
    write (C(lookup('ansible.builtin.template', ...) | hash('sha1'))). A wrong hash only
    makes the role run its task, which then finds nothing to change.
  - A mode that is not octal (C(u=rwx)), an owner or group unknown on the host, or an
    unreadable file count as drift, so the task decides.
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
  paths:
    description: What the role wants, one entry per path.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path on the host.
        type: path
        required: true
      state:
        description:
          - C(link) is compared by its target (O(paths[].src)), not followed.
          - C(absent) drifts when anything exists at the path (reason C(present)).
        type: str
        choices: [file, directory, link, absent]
        default: file
      owner:
        description: User name or uid; not compared when omitted.
        type: str
      group:
        description: Group name or gid; not compared when omitted.
        type: str
      mode:
        description: Octal mode such as C("0644"); not compared when omitted.
        type: raw
      sha1:
        description: SHA-1 of the wanted content of a file; not compared when omitted.
        type: str
      src:
        description: The wanted target of a link.
        type: str
  units:
    description:
      - systemd units the role wants started and enabled at boot, read with
        C(systemctl is-active) and C(systemctl is-enabled). The role's C(systemd_service)
        task then runs only for a unit returned in RV(units_drift) (or after it changed the
        unit's file, which needs a daemon reload).
      - A unit that is activating, or that systemctl cannot read, counts as drift, so the
        task decides.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Read what the watchdog installs
  hardenkit.nodeapp.drift:
    paths:
      - {path: /etc/hardenkit/watchdog, state: directory, owner: root, group: root, mode: "0700"}
      - path: /etc/hardenkit/watchdog/watchdog.json
        owner: root
        group: root
        mode: "0600"
        sha1: "{{ lookup('ansible.builtin.template', 'watchdog.json.j2') | hash('sha1') }}"
  register: watchdog_drift

- name: Write the watchdog's settings
  ansible.builtin.template:
    src: watchdog.json.j2
    dest: /etc/hardenkit/watchdog/watchdog.json
    mode: "0600"
  when: watchdog_drift.drift is contains('/etc/hardenkit/watchdog/watchdog.json')
"""

RETURN = r"""
drift:
  description: The paths that differ, in the order given.
  returned: success
  type: list
  elements: str
reasons:
  description: Per drifted path, what differs (C(missing), C(present), C(type), C(owner),
    C(group), C(mode), C(content), C(target), C(unreadable)).
  returned: success
  type: dict
  sample: {/etc/hardenkit/watchdog/watchdog.json: [content]}
units_drift:
  description: The units of O(units) that are not both active and enabled, in the order given.
  returned: success
  type: list
  elements: str
unit_reasons:
  description: Per drifted unit, what differs (C(inactive), C(disabled)), with systemctl's word.
  returned: success
  type: dict
  sample: {pm2-workbot.service: ["inactive: failed"]}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.fsdrift import drift

ARGUMENT_SPEC = {
    "units": {"type": "list", "elements": "str", "default": []},
    "paths": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "path": {"type": "path", "required": True},
            "state": {
                "type": "str",
                "choices": ["file", "directory", "link", "absent"],
                "default": "file",
            },
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "mode": {"type": "raw"},
            "sha1": {"type": "str"},
            "src": {"type": "str"},
        },
    },
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    for i, want in enumerate(module.params["paths"]):
        if not os.path.isabs(want["path"]):
            module.fail_json(msg=f"paths[{i}].path must be absolute (got {want['path']!r})")
    try:
        reasons = drift(module.params["paths"])
    except OSError as exc:  # a link that vanished between lstat and readlink
        module.fail_json(msg=f"drift could not read the host: {exc}")
    unit_reasons = {}
    if module.params["units"]:
        systemctl = module.get_bin_path("systemctl")
        for unit in module.params["units"]:
            if systemctl is None:
                unit_reasons[unit] = ["inactive: no systemctl"]
                continue
            why = []
            for verb, wrong in (("is-active", "inactive"), ("is-enabled", "disabled")):
                rc, out, _ = module.run_command([systemctl, verb, "--", unit])
                if rc != 0:
                    why.append(f"{wrong}: {out.strip() or 'unknown'}")
            if why:
                unit_reasons[unit] = why
    module.exit_json(
        changed=False,
        drift=list(reasons),
        reasons=reasons,
        units_drift=list(unit_reasons),
        unit_reasons=unit_reasons,
    )


if __name__ == "__main__":
    main()
