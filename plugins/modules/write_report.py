#!/usr/bin/python
# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)

# The work is done by the action plugin plugins/action/write_report.py, on the control
# node; this file holds its documentation only.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: write_report
short_description: Write a report's files on the control node, with latest copies
version_added: "0.1.0"
description:
  - Writes C(<dir>/<stem>.<ext>) for every entry of O(files) and, with O(latest), the same
    content as C(<dir>/latest.<ext>) (copies, not links, so each survives being copied or
    archived on its own). Creates O(dir) when missing.
  - Runs on the control node, whatever the task's host; it never connects to the host.
    The diagnostics role writes its per-host reports and the fleet summary with it.
  - Every file is written to a temporary file in O(dir) and renamed into place, so a
    reader sees the old file or the new one, never part of one.
  - A report describes the hosts and writing it changes none of them, so the task always
    returns C(changed=false), and it writes in check mode too (a C(--check) run still
    tells what it found).
author:
  - hardenkit developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Writes the files in check mode as well; they are not part of any host.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  dir:
    description: The directory on the control node; created (with O(dir_mode)) when missing.
    type: path
    required: true
  stem:
    description:
      - The file name without extension, usually a UTC timestamp such as C(20261129T044500Z).
      - A plain name (letters, digits, C(.), C(_), C(-)), and not C(latest).
    type: str
    required: true
  files:
    description:
      - "Extension to content, for example C({json: ..., md: ...}). A missing final newline
        is added."
    type: dict
    required: true
  latest:
    description: Also write every file as C(latest.<ext>).
    type: bool
    default: true
  mode:
    description: Octal mode of the files.
    type: raw
    default: "0640"
  dir_mode:
    description: Octal mode of O(dir) when it is created.
    type: raw
    default: "0750"
  summarize:
    description:
      - Also return RV(summary), the host's row of a fleet summary, read from the C(json)
        file's content (a report of the diagnostics role) and the path of its C(md) file.
        Saves the diagnostics role a task per host.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Write the report
  hardenkit.nodeapp.write_report:
    dir: "{{ playbook_dir }}/reports/{{ inventory_hostname }}"
    stem: "{{ now(utc=true, fmt='%Y%m%dT%H%M%SZ') }}"
    files:
      json: "{{ report | to_nice_json(indent=2) }}"
      md: "{{ lookup('ansible.builtin.template', 'report.md.j2') }}"
"""

RETURN = r"""
dir:
  description: The directory written to.
  returned: success
  type: path
paths:
  description: Extension to the path written for it (not the C(latest) copy).
  returned: success
  type: dict
  sample: {json: /srv/hk/reports/web1/20261129T044500Z.json}
summary:
  description:
    - With O(summarize), the report in a few fields (verdict, counts, finding codes,
      releases, PM2 restarts, the path of the C(md) file), as the
      C(hardenkit.nodeapp.report_summary) filter returns them.
  returned: success and O(summarize)
  type: dict
"""
