#!/usr/bin/python
# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: reap_processes
short_description: Stop stray processes of an app (dev servers, watchers) within a scope
version_added: "0.1.0"
description:
  - Finds processes whose command line matches one of O(patterns), that run a dev server
    or watcher and that are in scope, sends them O(signal), waits up to O(timeout)
    seconds and sends C(SIGKILL) to those still running.
  - A pattern match alone never selects a process. The process must run a dev server or
    watcher, read from its argument tokens as the diagnosis reads them (C(tsx watch),
    C(next dev), C(nodemon), C(ts-node-dev), C(npm/pnpm/yarn [run] dev), C(node --watch),
    also behind C(sh -c), C(npx), C(env)); a pattern that only appears in its arguments
    (C(vim nodemon.json), C(grep -rn "next dev" .)) is not enough. See
    O(require_dev_tool).
  - It must also be in scope. With O(scope_users), its user must be listed. With
    O(scope_paths), O(scope_package_name) or O(scope_port), its cwd must be under a scope
    path, or its cwd's C(package.json) must have that name (for the users in
    O(scope_package_users) when given), or it must listen on that port. When both kinds
    are given, both must hold.
  - Never touched, whatever matches, PID 1, this module's own process and its
    ancestors (the shell, sudo, sshd that run it) and a PM2 daemon. They are reported as
    left alone with the reason.
  - Before every signal (the first one and C(SIGKILL)) the pid's current start time is
    compared with the one read when the processes were listed. A pid that is gone, or that
    now belongs to another process (the pid was reused), is not signalled; before the
    first signal it is reported with C(how=exited). Where the kernel has pidfds (Linux
    5.3+), each process is also pinned by one before that check and signalled through it,
    so its pid cannot change hands between the check and the signal; elsewhere only the
    start-time check guards.
author:
  - hardenkit developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what it would stop, and stops nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
    details: Linux only; reads C(/proc).
options:
  patterns:
    description: Python regular expressions searched in each process's command line
      (arguments joined with spaces).
    type: list
    elements: str
    required: true
  scope_users:
    description: Only processes of these users.
    type: list
    elements: str
  scope_paths:
    description: Only processes whose working directory is under one of these directories.
      C(/) is refused.
    type: list
    elements: path
  scope_package_name:
    description: Processes whose cwd's C(package.json) has this C(name) are in scope.
    type: str
  scope_package_users:
    description:
      - Only these users' processes are in scope by O(scope_package_name) (any user's
        when not given). Any user can name a C(package.json) like the app (C(web),
        C(app)); list the app's user, C(root) and the owners of its checkouts.
      - Does not narrow the O(scope_paths) and O(scope_port) scopes (O(scope_users) does).
    type: list
    elements: str
  scope_port:
    description: A process listening on this TCP port is in scope.
    type: int
  signal:
    description: The first signal sent. C(SIGINT) suits a dev server that only cleans
      up on Ctrl-C.
    type: str
    choices: [SIGTERM, SIGINT, SIGHUP]
    default: SIGTERM
  timeout:
    description: Seconds to wait after O(signal) before C(SIGKILL).
    type: int
    default: 10
  record:
    description:
      - A root-only file (mode C(0600), its directory C(0700)) where, before the first
        signal, each process to stop is added with how it ran (command line, directory,
        user, groups, environment, output files, the ports it listened on), so that
        M(hardenkit.nodeapp.restore_processes) can start it again should the run fail.
        Holds the environment, secrets included. Not written in check mode.
    type: path
  kill_after_timeout:
    description: Send C(SIGKILL) to processes still running after O(timeout). If false,
      they are reported as failures.
    type: bool
    default: true
  require_dev_tool:
    description: A process must run a dev server or watcher (see above). False asks,
      instead, that a pattern match the whole command line, for freeing the app port from
      whatever of the app's holds it (the app's own server, a stray), whose exact command
      line is the pattern. A command that only mentions another's is never selected.
    type: bool
    default: true
seealso:
  - module: hardenkit.nodeapp.diagnose
"""

EXAMPLES = r"""
- name: Stop this app's dev servers and watchers
  hardenkit.nodeapp.reap_processes:
    patterns:
      - '\btsx(/dist/cli\.m?js)? watch\b'
      - '\bnext(/dist/bin/next)? dev\b'
      - '\bnodemon\b'
      - '\bts-node-dev\b'
    scope_paths:
      - /srv/workbot
      - /workspace/projects
    scope_package_name: workbot
    scope_package_users: [workbot, root]
    scope_port: 5000
    timeout: 15
  become: true
  register: reaped

- name: Only the app user's watchers, check mode
  hardenkit.nodeapp.reap_processes:
    patterns: ['nodemon']
    scope_users: [workbot]
  check_mode: true
"""

RETURN = r"""
stopped:
  description: Processes stopped (in check mode, those that would be stopped).
  returned: always
  type: list
  elements: dict
  contains:
    pid:
      description: Process id.
      type: int
    user:
      description: Its user.
      type: str
    cwd:
      description: Its working directory (null if unreadable).
      type: str
    cmdline:
      description: Its command line, secrets masked.
      type: str
    start_time:
      description: When it started (epoch seconds), as read when the processes were listed.
      type: float
    tool:
      description: The dev server or watcher it runs (C(tsx watch), C(pnpm dev)...);
        absent for a process selected with O(require_dev_tool=false).
      type: str
    how:
      description: C(SIGTERM)/C(SIGINT)/C(SIGHUP) (exited after it), C(SIGKILL), C(exited)
        (gone, or its pid reused by another process, before being signalled, so nothing
        was sent) or C(check_mode).
      type: str
  sample:
    - {pid: 944, user: root, cwd: /workspace/projects, how: SIGTERM, tool: tsx watch,
       start_time: 1770596040.0,
       cmdline: "node /workspace/projects/node_modules/.bin/../tsx/dist/cli.mjs watch server.ts"}
left_alone:
  description:
    - Processes that matched a pattern but were left alone, each with C(reason).
    - Not called C(skipped), which Ansible reads as "the task was skipped".
  returned: always
  type: list
  elements: dict
  sample:
    - pid: 812
      user: alice
      cwd: /home/alice/other
      reason: "out of scope: cwd /home/alice/other not under scope_paths"
      cmdline: node /home/alice/other/node_modules/.bin/next dev
not_stopped:
  description: Processes that could not be stopped, each with C(error). The task fails
    when this is not empty.
  returned: always
  type: list
  elements: dict
"""

import os
import signal
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import (
    attach_owners,
    collect_processes,
    read_listeners,
    socket_owners,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.reap import (
    compile_patterns,
    select_targets,
    terminate,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.restore import (
    append_record,
    snapshot,
)

ARGUMENT_SPEC = {
    "patterns": {"type": "list", "elements": "str", "required": True},
    "scope_users": {"type": "list", "elements": "str"},
    "scope_paths": {"type": "list", "elements": "path"},
    "scope_package_name": {"type": "str"},
    "scope_package_users": {"type": "list", "elements": "str"},
    "scope_port": {"type": "int"},
    "signal": {"type": "str", "choices": ["SIGTERM", "SIGINT", "SIGHUP"], "default": "SIGTERM"},
    "timeout": {"type": "int", "default": 10},
    "kill_after_timeout": {"type": "bool", "default": True},
    "require_dev_tool": {"type": "bool", "default": True},
    "record": {"type": "path"},
}
REQUIRED_ONE_OF = [["scope_users", "scope_paths", "scope_package_name", "scope_port"]]


def check_params(params: dict) -> None:
    """What the argument spec cannot say; ``ValueError`` names the bad option."""
    if not params["patterns"]:
        raise ValueError("patterns must list at least one regular expression")
    for idx, path in enumerate(params["scope_paths"] or []):
        if not path.startswith("/"):
            raise ValueError(f"scope_paths[{idx}] must be an absolute path, got {path!r}")
        if os.path.normpath(path) == "/":
            raise ValueError(f"scope_paths[{idx}] is '/', which would put every process in scope")
    if not 0 <= params["timeout"] <= 600:
        raise ValueError(f"timeout must be 0-600 seconds, got {params['timeout']}")
    port = params["scope_port"]
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"scope_port must be a TCP port 1-65535, got {port}")


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True
    )
    p = module.params
    try:
        check_params(p)
        patterns = compile_patterns(p["patterns"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    try:
        procs = collect_processes()
        listeners = []
        if p["scope_port"]:
            listeners = [lst for lst in read_listeners() if lst.port == p["scope_port"]]
            attach_owners(listeners, socket_owners([lst.inode for lst in listeners], list(procs)))
        targets, skipped = select_targets(
            procs,
            patterns,
            scope_users=p["scope_users"],
            scope_paths=p["scope_paths"],
            package_name=p["scope_package_name"],
            port=p["scope_port"],
            listeners=listeners,
            self_pid=os.getpid(),
            package_users=p["scope_package_users"],
            require_dev_tool=p["require_dev_tool"],
        )
        if module.check_mode:
            stopped = [{**t, "how": "check_mode"} for t in targets]
            module.exit_json(
                changed=bool(stopped), stopped=stopped, left_alone=skipped, not_stopped=[]
            )
        if p["record"] and targets:
            every = read_listeners()
            attach_owners(every, socket_owners([lst.inode for lst in every], list(procs)))
            append_record(p["record"], snapshot([t["pid"] for t in targets], procs, every))
        stopped, failed = terminate(
            targets,
            timeout=p["timeout"],
            first_signal=signal.Signals[p["signal"]],
            escalate=p["kill_after_timeout"],
        )
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"reap_processes failed: {exc}", exception=traceback.format_exc())
    # "exited" entries were gone before any signal: nothing was changed for them.
    changed = any(s["how"] != "exited" for s in stopped)
    if failed:
        module.fail_json(
            msg=f"{len(failed)} process(es) could not be stopped: "
            + "; ".join(f"pid {f['pid']}: {f['error']}" for f in failed),
            changed=changed,
            stopped=stopped,
            left_alone=skipped,
            not_stopped=failed,
        )
    module.exit_json(changed=changed, stopped=stopped, left_alone=skipped, not_stopped=failed)


if __name__ == "__main__":
    main()
