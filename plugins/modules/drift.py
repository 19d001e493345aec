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
    required: true
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
"""

import grp
import hashlib
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = {
    "paths": {
        "type": "list",
        "elements": "dict",
        "required": True,
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
    }
}

_KIND = {"file": stat.S_ISREG, "directory": stat.S_ISDIR, "link": stat.S_ISLNK}


def _id_of(name: str, lookup, attr: str) -> int | None:
    if name.isdigit():
        return int(name)
    try:
        return getattr(lookup(name), attr)
    except KeyError:
        return None


def _sha1(path: str) -> str:
    digest = hashlib.sha1()  # what the control node's hash('sha1') computes
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def reasons_for(want: dict) -> list[str]:
    """What differs between ``want`` and the host; empty when nothing does."""
    path = want["path"]
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return [] if want["state"] == "absent" else ["missing"]
    except OSError:
        return ["unreadable"]
    if want["state"] == "absent":
        return ["present"]
    if not _KIND[want["state"]](st.st_mode):
        return ["type"]
    out = []
    if want.get("owner") is not None:
        uid = _id_of(str(want["owner"]), pwd.getpwnam, "pw_uid")
        if uid != st.st_uid:
            out.append("owner")
    if want.get("group") is not None:
        gid = _id_of(str(want["group"]), grp.getgrnam, "gr_gid")
        if gid != st.st_gid:
            out.append("group")
    if want.get("mode") is not None and want["state"] != "link":
        text = str(want["mode"])
        if isinstance(want["mode"], int):  # YAML 0644 without quotes is decimal 420
            wanted_mode = want["mode"]
        elif text.isdigit() and all(c in "01234567" for c in text):
            wanted_mode = int(text, 8)
        else:
            wanted_mode = None
        if wanted_mode != stat.S_IMODE(st.st_mode):
            out.append("mode")
    if want["state"] == "link" and want.get("src") is not None and os.readlink(path) != want["src"]:
        out.append("target")
    if want["state"] == "file" and want.get("sha1"):
        try:
            if _sha1(path) != want["sha1"].lower():
                out.append("content")
        except OSError:
            out.append("unreadable")
    return out


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    for i, want in enumerate(module.params["paths"]):
        if not os.path.isabs(want["path"]):
            module.fail_json(msg=f"paths[{i}].path must be absolute (got {want['path']!r})")
    reasons = {}
    for want in module.params["paths"]:
        found = reasons_for(want)
        if found:
            reasons.setdefault(want["path"], []).extend(found)
    module.exit_json(changed=False, drift=list(reasons), reasons=reasons)


if __name__ == "__main__":
    main()
