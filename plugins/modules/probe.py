#!/usr/bin/python
"""Wait for a port to listen on this host, then probe HTTP paths on it."""

from __future__ import annotations

DOCUMENTATION = r"""
module: probe
author: hardenkit developers
short_description: Wait for a port on the host, then require HTTP answers from it
description:
  - Waits until O(host):O(port) accepts connections, then sends one GET per entry of
    O(probes) (concurrently, no redirects followed, no proxy) and requires its status.
  - A probe that fails is tried again on its own, up to O(retries) times, O(delay) seconds
    apart. One task for what would otherwise be a M(ansible.builtin.wait_for) and a
    M(ansible.builtin.uri) per path.
  - With O(start), the pre-traffic gate in one step. It waits up to O(free_timeout)
    seconds for the port to be free, runs O(start) (which starts what is probed in the
    background, a transient systemd unit), probes, and stops O(unit) whatever the outcome;
    on a failure it returns the end of that unit's journal since the start, masked. Not
    run in check mode.
  - Otherwise read-only. Fails naming each path that did not answer as expected.
extends_documentation_fragment:
  - hardenkit.nodeapp.probe
options:
  # port, probes, listen_timeout, retries, delay and timeout: the doc fragment
  # hardenkit.nodeapp.probe (ARGUMENT_SPEC's probe_spec()).
  host:
    description: The address to connect to, on the host itself.
    type: str
    default: 127.0.0.1
  start:
    description:
      - A command that starts what is to be probed and returns (C(systemd-run) without
        C(--wait)), run once the port is free. Empty probes what already runs.
    type: list
    elements: str
    default: []
  unit:
    description:
      - The systemd unit O(start) starts, stopped when the probes end (whatever the
        outcome); on a failure, its journal since the start is returned as RV(log).
    type: str
    default: ""
  free_timeout:
    description: With O(start), seconds to wait for the port to be free before it fails.
    type: float
    default: 5
attributes:
  check_mode:
    support: partial
    details: With O(start), nothing is started or probed in check mode.
"""

EXAMPLES = r"""
- name: Start a release on a spare port as a transient unit, probe it, stop it
  hardenkit.nodeapp.probe:
    port: 5099
    listen_timeout: 60
    probes: [{path: /api/health, status: 200}]
    start: [systemd-run, --unit=gate-app, --collect, --quiet,
            /usr/bin/node, /srv/app/current/dist/server.js]
    unit: gate-app

- name: Wait for the new release on its spare port and require every probe
  hardenkit.nodeapp.probe:
    port: 5099
    listen_timeout: 60
    probes:
      - {path: /, status: 200}
      - {path: /api/health, status: 200}
"""

RETURN = r"""
listening:
  description: Whether the port accepted a connection in time.
  type: bool
  returned: always
attempts:
  description: Rounds of probes sent.
  type: int
  returned: always
probes:
  description: Each probe's last result, C({url, path, expected, status, ok, latency_ms, error}).
  type: list
  elements: dict
  returned: always
busy:
  description: With O(start), the port stayed in use, so nothing was started.
  type: bool
  returned: with O(start)
log:
  description: On a failure with O(unit), the end of the unit's journal since the start, masked.
  type: list
  elements: str
  returned: with O(start)
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.options import (
    OptionError,
    validate_port,
    validate_probes,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.probes import (
    probe_args,
    probe_failure,
    probe_spec,
    probe_until,
    start_and_probe,
)

JOURNAL_LINES = 30

ARGUMENT_SPEC = {
    "host": {"type": "str", "default": "127.0.0.1"},
    **probe_spec(retries=0, timeout=15),
    "start": {"type": "list", "elements": "str", "default": []},
    "unit": {"type": "str", "default": ""},
    "free_timeout": {"type": "float", "default": 5},
}


def _gate(module: AnsibleModule, port: int, probes: list, probe_args: dict) -> dict:
    p = module.params
    unit = p["unit"]
    since = int(time.time())

    def start() -> str:
        rc, out, err = module.run_command(p["start"])
        return "" if rc == 0 else (err or out).strip() or f"exit status {rc}"

    def stop() -> None:
        if unit:
            module.run_command(["systemctl", "stop", f"{unit}.service"])

    def read_log() -> list[str]:
        if not unit:
            return []
        argv = [
            "journalctl",
            "--unit",
            unit,
            "--no-pager",
            "--lines",
            str(JOURNAL_LINES),
            "--output",
            "cat",
            "--since",
            f"@{since}",
        ]
        rc, out, _ = module.run_command(argv)
        return out.splitlines() if rc == 0 else []

    return start_and_probe(
        p["host"],
        port,
        probes,
        start=start,
        stop=stop,
        read_log=read_log,
        free_timeout=p["free_timeout"],
        **probe_args,
    )


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    try:
        port = validate_port(p["port"], "port")
        probes = validate_probes(p["probes"])
        args = probe_args(p)
    except (OptionError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    where = f"{p['host']}:{p['port']}"
    if p["start"]:
        if module.check_mode:
            module.exit_json(changed=False, skipped=True, msg="not started in check mode")
        result = _gate(module, port, probes, args)
        if result["busy"]:
            module.fail_json(
                msg=f"port {port} stayed in use on the host for {p['free_timeout']:g} s",
                changed=False,
                **result,
            )
        if result["start_error"]:
            module.fail_json(
                msg=f"could not start what is to be probed: {result['start_error']}",
                changed=False,
                **result,
            )
    else:
        result = probe_until(p["host"], port, probes, **args)
    failure = probe_failure(where, result, p["listen_timeout"])
    if failure:
        module.fail_json(msg=failure, changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
