#!/usr/bin/python
# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Start, restart or reload PM2's unit as one run needs, put stale workers right, probe."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pm2_service
short_description: Start, restart or reload PM2's systemd unit once, then probe the app
version_added: "0.2.0"
description:
  - Decides one action from what the run changed, and takes it with C(systemctl), as
    M(ansible.builtin.systemd_service) would. C(start) when the unit is not both active
    (or activating) and enabled - it enables and starts what is not; C(restart) when
    O(unit_changed) on a running unit (systemd applies a unit's settings only then);
    C(reload) (PM2's graceful reload, one worker after the other) when O(ecosystem_changed)
    or O(release_switched), or C(restart) with O(reload_restarts); otherwise nothing. A
    changed unit file is loaded (C(daemon-reload)) first.
  - Then every child of PM2's daemon must run from O(app_dir) resolved, or a directory
    below it (a worker's working directory is C(current) resolved when it started). The
    daemon is the unit's C(MainPID) as systemd knows it, never C(pm2.pid), which the app
    user can write. Workers that run elsewhere (a reload PM2 answered without doing it,
    C(current) changed by hand) are reloaded gracefully when this run took no action,
    checked again, and restarted if the reload did not take; after this run's own action
    they are restarted.
  - PM2's reload keeps a variable that went away from the app's environment; so a run
    restarts PM2 instead when a name in O(env_record) is no longer set, whatever else
    changed.
  - Then, unless in check mode, waits for O(port) to listen and, when it started,
    restarted or reloaded the unit, requires the answers of O(probes) (M(hardenkit.nodeapp.probe)).
    Fails naming each path that did not answer as expected.
  - Then, after an action, watches PM2's workers for O(settle) seconds and fails when one
    of them exits in that time (PM2 starts another in its place). So a release that
    crash-loops soon after it starts is caught here and rolled back, not left live.
author:
  - hardenkit developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - hardenkit.nodeapp.probe
attributes:
  check_mode:
    support: full
    details:
      - Reads systemd and reports what it would do, changing nothing and probing nothing.
        The stale check (read-only) runs unless the action it would take would have
        replaced the workers.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  name:
    description: PM2's systemd unit (C(.service) is added when it has no suffix).
    type: str
    required: true
  unit_changed:
    description: This run wrote the unit file.
    type: bool
    default: false
  unit_drifted:
    description:
      - The unit was found not both active and enabled (M(hardenkit.nodeapp.drift)'s
        C(units_drift)). Then, or with O(unit_changed), systemd is asked again before the
        action is decided.
    type: bool
    default: false
  ecosystem_changed:
    description: This run wrote PM2's ecosystem file.
    type: bool
    default: false
  release_switched:
    description: This run pointed C(current) at another release.
    type: bool
    default: false
  reload_restarts:
    description: Restart PM2 (every worker stops, a short outage) where it would reload.
    type: bool
    default: false
  app_dir:
    description:
      - The app's directory in the live release, unresolved - C(<app_root>/current), or
        C(<app_root>/current/<app_subdir>) in a monorepo. Resolved as C(readlink -f) does;
        when a directory leading to it is missing (no release yet) nothing is checked.
    type: path
    required: true
  # port, probes, listen_timeout, retries, delay and timeout: the doc fragment
  # hardenkit.nodeapp.probe (ARGUMENT_SPEC's probe_spec()); the keys below replace its own.
  port:
    description: The port the app listens on, on C(127.0.0.1).
  probes:
    description: The paths and the status each must answer after an action.
  listen_timeout:
    description: Seconds to wait for O(port) to accept connections; 0 does not wait.
  retries:
    default: 5
  timeout:
    default: 5
  settle:
    description:
      - Seconds, after a start, restart or reload, during which no worker may exit; 0
        does not watch.
    type: float
    default: 0
  env_file:
    description:
      - The live release's environment file (C(<app_root>/current/.hardenkit.env)), whose
        names, with O(env_names), are the environment PM2 is given.
    type: path
  env_names:
    description: The names of the variables the ecosystem file sets beside O(env_file).
    type: list
    elements: str
    default: []
  env_record:
    description:
      - Where the names PM2 was last given are kept (names only, never values), a file in a
        directory root owns. A name recorded there that the environment no longer has
        makes the run restart PM2, since PM2's reload keeps a variable that went away
        (Unitech/pm2#3486). Without it (or without O(env_file)) nothing is compared.
      - Written after every start, restart or reload, and when missing; writing it alone
        does not count as a change.
    type: path
seealso:
  - module: hardenkit.nodeapp.drift
  - module: hardenkit.nodeapp.probe
  - module: hardenkit.nodeapp.diagnose
notes:
  - The diagnosis's C(stale_workers) finding judges a worker's directory by the same rule.
  - A child of the daemon seen outside the release is read again after 0.5, 1 and 2
    seconds, since a worker PM2 has just forked runs from the daemon's directory for a
    moment; only one still outside after the last is stale.
"""

EXAMPLES = r"""
- name: Start, restart or reload PM2, put stale workers right, probe the app
  hardenkit.nodeapp.pm2_service:
    name: pm2-workbot
    unit_changed: "{{ unit_file is changed }}"
    unit_drifted: "{{ 'pm2-workbot' in drift.units_drift }}"
    ecosystem_changed: "{{ ecosystem_file is changed }}"
    release_switched: true
    app_dir: /srv/workbot/current
    port: 5000
    listen_timeout: 60
    probes:
      - {path: /, status: 200}
      - {path: /api/health, status: 200}
  register: pm2
"""

RETURN = r"""
action:
  description: The action decided, C(start), C(restart), C(reload) or C(none).
  type: str
  returned: always
  sample: reload
started:
  description: The unit was started or enabled (would be, in check mode).
  type: bool
  returned: always
restarted:
  description: The unit was restarted, for the action or for stale workers.
  type: bool
  returned: always
reloaded:
  description: The unit was reloaded, for the action or for stale workers.
  type: bool
  returned: always
reloads:
  description:
    - The action's restart or reload, plus a reload for stale workers (a restart for them
      is not counted); the pm2 role adds it to C(pm2_reloads).
  type: int
  returned: always
stale_workers:
  description: Each child of PM2's daemon found running elsewhere than O(app_dir).
  type: list
  elements: str
  returned: always
  sample: ["pid 4242 runs from /srv/workbot/releases/3f2a9c (deleted)"]
stale_fix:
  description: What put them right, C(reload) or C(restart); empty when none ran elsewhere.
  type: str
  returned: always
env_removed:
  description: The names PM2 held that the environment no longer sets, which made it restart.
  type: list
  elements: str
  returned: always
  sample: ["DB_POOL_MAX"]
probe:
  description:
    - The wait and the probes, C({ok, listening, attempts, probes}); each probe's last
      result is C({url, path, expected, status, ok, latency_ms, error}). No probes are sent
      when nothing was started, restarted or reloaded.
  type: dict
  returned: unless in check mode
exited:
  description: Workers (pids) that exited within O(settle) seconds of the action.
  type: list
  elements: int
  returned: when the module acted and O(settle) is above 0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.options import (
    OptionError,
    validate_port,
    validate_probes,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pm2service import (
    ServiceError,
    converge,
    env_held,
    main_pid,
    proc_children,
    read_env_file,
    read_record,
    replaced_workers,
    unit_name,
    write_record,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.probes import (
    probe_args,
    probe_failure,
    probe_spec,
    probe_until,
)

HOST = "127.0.0.1"

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "unit_changed": {"type": "bool", "default": False},
    "unit_drifted": {"type": "bool", "default": False},
    "ecosystem_changed": {"type": "bool", "default": False},
    "release_switched": {"type": "bool", "default": False},
    "reload_restarts": {"type": "bool", "default": False},
    "app_dir": {"type": "path", "required": True},
    **probe_spec(retries=5, timeout=5),
    "settle": {"type": "float", "default": 0},
    "env_file": {"type": "path"},
    "env_names": {"type": "list", "elements": "str", "default": []},
    "env_record": {"type": "path"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    if not p["name"].strip():
        module.fail_json(msg="name must not be empty")
    try:
        port = validate_port(p["port"], "port")
        probes = validate_probes(p["probes"])
        args = probe_args(p)
    except (OptionError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    exe = module.get_bin_path("systemctl", required=True)

    def systemctl(args: list[str]) -> tuple[int, str, str]:
        return module.run_command([exe, *args], environ_update={"LC_ALL": "C", "LANG": "C"})

    env_now = env_before = None
    if p["env_file"] and p["env_record"]:
        try:
            env_now = read_env_file(p["env_file"]) | set(p["env_names"])
            env_before = read_record(p["env_record"])
        except OSError as exc:
            module.fail_json(msg=f"Cannot read the app's environment names: {exc}")

    def record(changed: bool) -> None:
        # Names only, root's: what PM2 holds after this run, unless in check mode.
        if env_now is None or module.check_mode:
            return
        try:
            write_record(p["env_record"], env_held(changed, env_now, env_before))
        except OSError as exc:
            module.fail_json(msg=f"Cannot record the names PM2 holds: {exc}")

    try:
        result = converge(
            systemctl,
            p["name"],
            unit_changed=p["unit_changed"],
            unit_drifted=p["unit_drifted"],
            ecosystem_changed=p["ecosystem_changed"],
            release_switched=p["release_switched"],
            reload_restarts=p["reload_restarts"],
            app_dir=p["app_dir"],
            check_mode=module.check_mode,
            env_now=env_now,
            env_before=env_before,
        )
    except ServiceError as exc:
        record(bool(exc.record.get("changed")))
        module.fail_json(msg=str(exc), **exc.record)
    record(result["changed"])
    if module.check_mode:
        module.exit_json(**result)
    # Probes only after this run started, restarted or reloaded the app: otherwise the
    # diagnosis after the run probes the same paths. The port must listen either way.
    result["probe"] = probe = probe_until(HOST, port, probes if result["changed"] else [], **args)
    failure = probe_failure(f"{HOST}:{port}", probe, p["listen_timeout"])
    if failure:
        module.fail_json(msg=failure, **result)
    if result["changed"] and p["settle"] > 0:
        unit = unit_name(p["name"])

        def workers() -> list[int]:
            daemon = main_pid(systemctl, unit)
            return proc_children(daemon) if daemon else []

        result["exited"] = exited = replaced_workers(workers, p["settle"])
        if exited:
            module.fail_json(
                msg=f"{len(exited)} PM2 worker(s) exited within {p['settle']:g} s of the "
                f"{result['action'] if result['action'] != 'none' else result['stale_fix']} "
                f"(pid {', '.join(map(str, exited))}): the release does not stay up",
                **result,
            )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
