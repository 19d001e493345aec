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
    write (O(paths[].template), O(paths[].file), O(paths[].content)). A wrong hash only
    makes the role run its task, which then finds nothing to change. Other keys of an entry
    (such as C(validate), for the role's write task) stay on the control node.
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
      template:
        description:
          - A template of the role that writes the file. The action plugin renders it on the
            control node, as C(lookup('ansible.builtin.template')) does, and compares its
            SHA-1; only the digest reaches the host. One of O(paths[].template),
            O(paths[].file), O(paths[].content) and O(paths[].sha1) at most.
          - So an entry states a file once (path, template, owner, group, mode) for both
            this check and the task that writes it.
        type: str
      template_vars:
        description: Variables of O(paths[].template) alone, as the template lookup takes them.
        type: dict
      file:
        description: A file of the role that is copied there, compared by SHA-1 likewise.
        type: str
      content:
        description: The file's wanted text, compared by SHA-1 likewise.
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
  users:
    description:
      - System accounts the role wants, compared with the host's user database; the role's
        C(user) task then runs only for a name returned in RV(users_drift).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The user name.
        type: str
        required: true
      group:
        description: The primary group's name; not compared when omitted.
        type: str
      comment:
        description: The GECOS field; not compared when omitted.
        type: str
      home:
        description: The home directory; not compared when omitted.
        type: str
      shell:
        description: The login shell; not compared when omitted.
        type: str
  groups:
    description: Group names the role wants; the missing ones are returned in RV(groups_drift).
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
        template: watchdog.json.j2
        owner: root
        group: root
        mode: "0600"
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
users_drift:
  description: The users of O(users) that are missing or differ, in the order given.
  returned: success
  type: list
  elements: str
user_reasons:
  description: Per drifted user, what differs (C(missing), C(group), C(comment), C(home), C(shell)).
  returned: success
  type: dict
  sample: {workbot: [shell]}
groups_drift:
  description: The groups of O(groups) the host does not know, in the order given.
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
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.fsdrift import (
    account_reasons,
    drift,
    groups_missing,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "units": {"type": "list", "elements": "str", "default": []},
    "groups": {"type": "list", "elements": "str", "default": []},
    "users": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "name": {"type": "str", "required": True},
            "group": {"type": "str"},
            "comment": {"type": "str"},
            "home": {"type": "str"},
            "shell": {"type": "str"},
        },
    },
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
    user_reasons = {}
    for want in module.params["users"]:
        found = account_reasons(want)
        if found:
            user_reasons[want["name"]] = found
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
        users_drift=list(user_reasons),
        user_reasons=user_reasons,
        groups_drift=groups_missing(module.params["groups"]),
    )


if __name__ == "__main__":
    main()
