#!/usr/bin/python
# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: boot_hooks
short_description: Find the boot hooks that start a dev server, and which are an app's
version_added: "0.2.0"
description:
  - Reads the lines that run a command when the host starts and keeps those that match
    O(dev_regex) - systemd units' C(ExecStart=), C(ExecStartPre=) and C(ExecStartPost=)
    lines (the C(*.service) files of O(unit_dir)), C(@reboot) crontab lines of any user
    (the files of O(cron_dirs), the crontabs in O(hook_files)) and C(rc.local) lines.
  - Each hook has the directories it runs in or names, in order - a unit's
    C(WorkingDirectory=) (C(~) is its C(User=)'s home, from the passwd database; C(/)
    without one), a crontab line's user's home, C(/) for C(rc.local); then every absolute
    path its command names (C(cd /srv/app), C(node /opt/x/server.js)).
  - A hook is the app's when the first of its directories that is the app's is under one
    of O(scope_paths) (scope C(cwd)), or holds a C(package.json) (a regular file holding
    a JSON object) whose C(name) is O(package_name) (scope C(package)). This is the rule
    a dev process's working directory is judged by.
  - Regular files only; links, hidden files in the directories and files that cannot be
    read are left out. Nothing is changed.
author:
  - hardenkit developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Only reads; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  unit_dir:
    description: Directory of the systemd units to look at (not a link to one).
    type: path
    required: true
  cron_dirs:
    description:
      - Crontab directories (those that do not exist, or are links, are left out).
      - The first is the per-user spool (C(/var/spool/cron/crontabs)), whose files are
        named after their user and have no user field; in the others (C(/etc/cron.d))
        a line's second word is its user.
    type: list
    elements: path
    default: []
  hook_files:
    description:
      - Further files read whole. One named C(rc.local) is read as C(/etc/rc.local)
        (every line that is not a comment runs as root in C(/)); the others as system
        crontabs with a user field (C(/etc/crontab)).
    type: list
    elements: path
    default: []
  dev_regex:
    description: Python regular expression searched in each line; a hook is a line it
      matches.
    type: str
    required: true
  env_regex:
    description:
      - Python regular expression of a C(NAME=value) assignment in a command; group 1 is
        what precedes it, group 2 the name. The value is replaced by C(***) in the
        returned C(command), which is then masked for credentials and secret options.
    type: str
    required: true
  scope_paths:
    description: The app's directories (its root, old checkouts). C(/) is refused.
    type: list
    elements: path
    required: true
  package_name:
    description: The app's C(package.json) name; empty for no package scope.
    type: str
    default: ""
seealso:
  - module: hardenkit.nodeapp.reap_processes
notes:
  - The returned C(line) is the hook's line verbatim and may hold secrets (C(DATABASE_URL)
    with a password); use C(no_log) on the task.
"""

EXAMPLES = r"""
- name: Find the boot hooks and decide which are the app's
  hardenkit.nodeapp.boot_hooks:
    unit_dir: /etc/systemd/system
    cron_dirs: [/var/spool/cron/crontabs, /etc/cron.d]
    hook_files: [/etc/crontab, /etc/rc.local]
    dev_regex: '(?:\bnext(/dist/bin/next)?\s+dev\b)|(?:\bnodemon\b)'
    env_regex: '(^|[\s;&|(])([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|''[^'']*''|[^\s;&|)]*)'
    scope_paths: [/srv/workbot, /home/bob/shop]
    package_name: workbot
  become: true
  register: hooks
  no_log: true
"""

RETURN = r"""
app_hooks:
  description: The app's hooks, in the order read (units, then the crontab directories,
    then O(hook_files)).
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: C(systemd), C(cron) or C(rc.local).
      type: str
    file:
      description: The file that holds it.
      type: str
    unit:
      description: The unit's name for C(systemd), else empty.
      type: str
    user:
      description: Who runs it.
      type: str
    line:
      description: The line verbatim, secrets included.
      type: str
    command:
      description: What it runs, C(NAME=value) values and secrets masked.
      type: str
    dirs:
      description: The directories it runs in or names, without repeats.
      type: list
      elements: str
    scope:
      description: Why it is the app's, C(cwd) or C(package); empty in RV(other_hooks).
      type: str
    owner:
      description: The file's owner (its uid when it has no name).
      type: str
    group:
      description: The file's group (its gid when it has no name).
      type: str
    mode:
      description: The file's permissions, in octal (C(0600)).
      type: str
  sample:
    - kind: cron
      file: /var/spool/cron/crontabs/bob
      unit: ""
      user: bob
      line: "@reboot cd /home/bob/shop && DATABASE_URL=postgres://u:pw@h/db pnpm dev"
      command: "cd /home/bob/shop && DATABASE_URL=*** pnpm dev"
      dirs: [/home/bob, /home/bob/shop]
      scope: cwd
      owner: bob
      group: crontab
      mode: "0600"
other_hooks:
  description: The other hooks, as in RV(app_hooks), with an empty C(scope).
  returned: always
  type: list
  elements: dict
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.hooks import (
    collect,
    package_names,
    split_hooks,
)

ARGUMENT_SPEC = {
    "unit_dir": {"type": "path", "required": True},
    "cron_dirs": {"type": "list", "elements": "path", "default": []},
    "hook_files": {"type": "list", "elements": "path", "default": []},
    "dev_regex": {"type": "str", "required": True},
    "env_regex": {"type": "str", "required": True},
    "scope_paths": {"type": "list", "elements": "path", "required": True},
    "package_name": {"type": "str", "default": ""},
}


def check_params(params: dict) -> None:
    """What the argument spec cannot say; ``ValueError`` names the bad option."""
    for name in ("dev_regex", "env_regex"):
        if not params[name]:
            raise ValueError(f"{name} must not be empty")
        try:
            re.compile(params[name])
        except re.error as exc:
            raise ValueError(f"{name} is not a valid regular expression: {exc}") from exc
    if re.compile(params["env_regex"]).groups < 2:
        raise ValueError("env_regex must have two groups (what precedes NAME, and NAME)")
    for idx, path in enumerate(params["scope_paths"]):
        if not path.startswith("/"):
            raise ValueError(f"scope_paths[{idx}] must be an absolute path, got {path!r}")
        if os.path.normpath(path) in ("/", "//"):
            raise ValueError(f"scope_paths[{idx}] is '/', which would make every hook the app's")


def find_hooks(params: dict) -> dict[str, list]:
    """The module's result: ``app_hooks`` and ``other_hooks``."""
    hooks = collect(
        params["unit_dir"], params["cron_dirs"], params["hook_files"], params["dev_regex"]
    )
    app, other = split_hooks(
        hooks,
        params["scope_paths"],
        params["package_name"],
        package_names(hooks),
        params["env_regex"],
    )
    return {"app_hooks": app, "other_hooks": other}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        check_params(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **find_hooks(module.params))


if __name__ == "__main__":
    main()
