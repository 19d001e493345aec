#!/usr/bin/python
# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: restore_processes
short_description: Start again the processes a failed run stopped, as they ran
version_added: "0.2.0"
description:
  - Reads the record M(hardenkit.nodeapp.reap_processes) wrote (its O(record) option)
    before it stopped an app's processes, and starts again each process tree that served
    (something in it listened on a TCP port when it was stopped), from the top of the tree,
    with the same command line, working directory, user, groups and environment, its
    output appended to the same files, in a session of its own. A tree that served
    nothing (a watcher, a copy that lost the port with EADDRINUSE) is left stopped and
    reported.
  - The user's rights are taken before the directory and the output files are opened.
  - Afterwards the record is removed, so nothing is started twice.
author:
  - hardenkit developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what it would start, and starts nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
    details: Linux only.
options:
  record:
    description: The record written by M(hardenkit.nodeapp.reap_processes).
    type: path
    required: true
"""

EXAMPLES = r"""
- name: Start again what this run stopped
  hardenkit.nodeapp.restore_processes:
    record: /run/hardenkit/workbot/stopped-1765000000.json
"""

RETURN = r"""
started:
  description: Each process started again, its old and new pid and the ports it served.
  returned: always
  type: list
  elements: dict
not_started:
  description: Each recorded process tree left stopped, with why.
  returned: always
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.restore import (
    describe,
    read_record,
    start,
    to_restart,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={"record": {"type": "path", "required": True}}, supports_check_mode=True
    )
    path = module.params["record"]
    try:
        entries = read_record(path)
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"cannot read {path}: {exc}")
    todo, skipped = to_restart(entries)
    started, failed = [], []
    for entry in todo:
        info = {**describe(entry), "served": entry["served"]}
        if module.check_mode:
            started.append(info)
            continue
        try:
            started.append({**info, "new_pid": start(entry)})
        except OSError as exc:
            failed.append({**info, "why": str(exc)})
    if not module.check_mode and entries:
        os.unlink(path)
    if failed:
        why = "; ".join(f"{f['cmdline']}: {f['why']}" for f in failed)
        module.fail_json(
            msg=f"could not start again: {why}",
            changed=bool(started),
            started=started,
            not_started=skipped + failed,
        )
    module.exit_json(changed=bool(started), started=started, not_started=skipped)


if __name__ == "__main__":
    main()
