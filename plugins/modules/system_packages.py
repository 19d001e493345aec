#!/usr/bin/python
# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)

# The work is done by the action plugin plugins/action/system_packages.py; this file holds
# its documentation only.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: system_packages
short_description: Install the Debian packages a role needs, asking dpkg first
version_added: "0.1.0"
description:
  - Asks C(dpkg-query) which of O(names) are installed, then runs M(ansible.builtin.apt)
    (with C(update_cache) and O(cache_valid_time)) for the missing ones only.
  - On a host that has them all it costs one command (about 0.1 s) where C(apt) alone
    opens its package cache (about 1 s), and reports C(changed=false).
  - A name with a version or a release (C(nginx=1.22.1-9), C(nginx/bookworm)) always goes
    to apt, which decides.
  - In check mode it reports what it would install and installs nothing.
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
    platforms: debian
options:
  names:
    description: Debian package names.
    type: list
    elements: str
    required: true
  cache_valid_time:
    description: Update apt's cache first when it is older than this many seconds.
    type: int
    default: 3600
  install_recommends:
    description:
      - Whether apt installs the packages' recommended packages too; unset, the host's apt
        settings decide.
    type: bool
"""

EXAMPLES = r"""
- name: Install Nginx
  hardenkit.nodeapp.system_packages:
    names: [nginx]
"""

RETURN = r"""
missing:
  description: The names dpkg did not list as installed (what apt was asked for).
  returned: always
  type: list
  elements: str
  sample: [nginx]
versions:
  description: Each installed package of O(names) and its Debian version, read after apt ran.
  returned: always
  type: dict
  sample: {nginx: 1.22.1-9}
"""

# The action plugin validates its arguments with this spec.
ARGUMENT_SPEC = {
    "names": {"type": "list", "elements": "str", "required": True},
    "cache_valid_time": {"type": "int", "default": 3600},
    "install_recommends": {"type": "bool"},
}
