#!/usr/bin/python
# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)

# The work is done by the action plugin plugins/action/build_step.py, which starts the
# command on the host and follows it from the control node; this file holds its
# documentation only.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: build_step
short_description: Run a long install or build step on the host, showing it is alive
version_added: "0.2.0"
description:
  - Starts O(argv) on the host in the background, in a session of its own, with O(stdin)
    on its standard input (handed over on the connection, never written to a file or put
    on a command line), its output appended to O(log), which the step's caller keeps.
  - Follows it from the control node. Every O(interval) seconds it prints the elapsed time
    and the log's latest line (control sequences removed, secrets and credentials masked),
    so a step of minutes is not silent; the log's path is printed when the step starts.
  - Fails when the step exits non-zero, with the last O(tail_lines) lines of the log.
author:
  - hardenkit developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: none
    details: Skipped in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  argv:
    description: The command and its arguments.
    type: list
    elements: str
    required: true
  stdin:
    description: What the command reads on its standard input.
    type: str
    default: ""
  log:
    description: The file on the host the output is appended to (its directory must exist).
    type: path
    required: true
  label:
    description: The step's name in the progress lines.
    type: str
    required: true
  timeout:
    description: Seconds after which the step counts as hung (the command should end
      itself sooner, for example by systemd's C(RuntimeMaxSec=)).
    type: int
    required: true
  interval:
    description: Seconds between progress lines.
    type: int
    default: 30
  secrets:
    description: Values masked in every line printed or returned.
    type: list
    elements: str
    default: []
  tail_lines:
    description: How many of the log's last lines the result carries.
    type: int
    default: 60
"""

EXAMPLES = r"""
- name: Build
  hardenkit.nodeapp.build_step:
    argv: [systemd-run, --wait, --pipe, --uid=shop, /bin/bash, -c, 'eval "$(cat)" && npm run build']
    stdin: "export NODE_ENV=production\n"
    log: /srv/shop/build-logs/20261206T101500Z-ab12cd34.log
    label: Build of shop
    timeout: 1800
"""

RETURN = r"""
rc:
  description: The step's exit status.
  returned: when it ended
  type: int
stdout:
  description: The log's last lines, cleaned and masked.
  returned: when it ended
  type: str
log:
  description: The log's path on the host.
  returned: always
  type: str
elapsed:
  description: Seconds the step took.
  returned: when it ended
  type: float
"""
