#!/usr/bin/python
# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sandbox
short_description: Which of a service's sandbox settings this host can apply
version_added: "0.2.0"
description:
  - Starts a throw-away transient unit (C(systemd-run --wait), running C(/bin/true)) as
    O(user) with all of O(settings). On a host that accepts them, that one unit is all.
  - Otherwise it adds the settings one at a time, in their order, and leaves out each one
    that makes the unit fail with those kept before it (where two cannot be applied
    together, the later one goes). Each one left out is returned with systemd's exit status
    (C(217/USER)) and the message systemd logged for it.
  - Some hosts cannot apply every protection. Where root lacks C(CAP_SYS_PTRACE) (some
    container and LXC hosts) C(PrivateUsers=yes) with C(ProtectProc=invisible) fails with
    C(217/USER), and a unit that has both never starts.
  - With O(cache), the result is kept in that file (root's alone) beside what it depends
    on (the settings, the user, the kernel, systemd, root's capabilities and the boot), and
    a later run with all of them the same starts no unit. Put it under C(/run), so that a
    boot starts afresh.
  - Changes nothing on the host (the units are transient and collected), so it runs the
    same in check mode (which reads the cache but does not write it). When O(user) does not
    exist yet (check mode on a new host), it returns O(settings) unprobed, with
    C(probed=false).
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
    details: Linux with systemd.
options:
  settings:
    description: Unit settings (C(Key=value)), in the order of preference.
    type: list
    elements: str
    required: true
  user:
    description: The user (and group of that name) the service runs as.
    type: str
    required: true
  unit_prefix:
    description: Name of the throw-away units, followed by a number.
    type: str
    default: hardenkit-sandbox-probe
  cache:
    description: File that keeps the result for later runs; empty to probe every time.
    type: path
    default: ""
"""

EXAMPLES = r"""
- name: Find which sandbox settings this host can apply
  hardenkit.nodeapp.sandbox:
    settings: [PrivateUsers=yes, ProtectProc=invisible]
    user: web
  register: fit
"""

RETURN = r"""
settings:
  description: The settings the host accepts, in their order.
  returned: always
  type: list
  elements: str
dropped:
  description: Each setting left out, with systemd's exit status and log message.
  returned: always
  type: list
  elements: dict
  sample: [{"setting": "PrivateUsers=yes", "status": "217/USER",
            "message": "Failed to set up user namespacing: No such file or directory"}]
probes:
  description: How many throw-away units were started.
  returned: always
  type: int
probed:
  description: False when O(user) does not exist yet and nothing was probed.
  returned: always
  type: bool
cached:
  description: True when the result came from O(cache) and no unit was started.
  returned: always
  type: bool
"""

import hashlib
import json
import os
import pwd
from collections.abc import Sequence

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.sandbox import fit

ARGUMENT_SPEC = {
    "settings": {"type": "list", "elements": "str", "required": True},
    "user": {"type": "str", "required": True},
    "unit_prefix": {"type": "str", "default": "hardenkit-sandbox-probe"},
    "cache": {"type": "path", "default": ""},
}


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def cache_key(settings: list[str], user: str) -> str:
    """What the fit depends on: a change of any of them probes again."""
    entry = pwd.getpwnam(user)
    systemd = ""
    for path in ("/usr/lib/systemd/systemd", "/lib/systemd/systemd"):
        try:
            st = os.stat(path)
            systemd = f"{path}:{st.st_size}:{st.st_mtime_ns}"
            break
        except OSError:
            continue
    caps = [
        ln
        for ln in _read("/proc/self/status").splitlines()
        if ln.startswith(("CapBnd:", "CapEff:"))
    ]
    parts = [
        json.dumps(settings),
        user,
        str(entry.pw_uid),
        str(entry.pw_gid),
        os.uname().release,
        _read("/proc/sys/kernel/random/boot_id").strip(),
        systemd,
        *caps,
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    settings, user = module.params["settings"], module.params["user"]
    try:
        pwd.getpwnam(user)
    except KeyError:
        if module.check_mode:
            module.exit_json(
                changed=False, settings=settings, dropped=[], probes=0, probed=False, cached=False
            )
        module.fail_json(msg=f"user {user!r} does not exist")
    cache, key = module.params["cache"], cache_key(settings, user)
    if cache:
        try:
            kept = json.loads(_read(cache) or "{}")
        except ValueError:
            kept = {}
        if kept.get("key") == key:
            module.exit_json(
                changed=False,
                settings=kept["settings"],
                dropped=kept["dropped"],
                probes=0,
                probed=True,
                cached=True,
            )
    systemd_run = module.get_bin_path("systemd-run", required=True)
    journalctl = module.get_bin_path("journalctl")
    units: dict[tuple[str, ...], str] = {}

    def probe(trial: Sequence[str]) -> int:
        unit = f"{module.params['unit_prefix']}-{len(units) + 1}"
        units[tuple(trial)] = unit
        argv = [
            systemd_run,
            f"--unit={unit}",
            "--quiet",
            "--wait",
            "--collect",
            f"--uid={user}",
            f"--gid={user}",
        ]
        argv += [f"--property={s}" for s in trial]
        rc, _, _ = module.run_command([*argv, "/bin/true"])
        return rc

    try:
        kept, dropped, probes = fit(settings, probe)
    except RuntimeError as exc:
        module.fail_json(msg=f"cannot start a throw-away unit as {user}: {exc}")
    for entry in dropped:
        # What systemd logged about the failed unit ("Failed to set up user namespacing").
        entry["message"] = ""
        unit = units.get(tuple([*entry.pop("with"), entry["setting"]]))
        if journalctl and unit:
            _, out, _ = module.run_command(
                [journalctl, "--unit", unit, "--no-pager", "--output", "cat", "--lines", "20"]
            )
            # "<unit>.service: Failed to set up user namespacing: No such file or directory"
            lines = [ln.split(": ", 1)[-1].strip() for ln in out.splitlines()]
            why = [ln for ln in lines if ln.startswith(("Failed to", "Cannot"))]
            entry["message"] = why[0] if why else ""
    if cache and not module.check_mode:
        os.makedirs(os.path.dirname(cache), mode=0o700, exist_ok=True)
        tmp = f"{cache}.{os.getpid()}.tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            json.dump({"key": key, "settings": kept, "dropped": dropped}, fh)
        os.replace(tmp, cache)
    module.exit_json(
        changed=False, settings=kept, dropped=dropped, probes=probes, probed=True, cached=False
    )


if __name__ == "__main__":
    main()
