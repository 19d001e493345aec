"""playbooks/remove.yml refuses what it must not do before any host is touched.

As in test_bad_input.py, each case runs the real `ansible-playbook playbooks/remove.yml`
against hosts that cannot be reached (Docker containers that do not exist): the refusals
need no connection, so a refused run fails with a message naming the variable and
`changed=0`. Had the checks let a case through, the run would meet the missing container
("No such container") when it takes the app's run lock, and the test fails.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.playbooks.test_bad_input import (
    BIN,
    GOOD,
    ROOT,
    kit_env,
    recap,
    write_inventory,
)

HOST = "hk-does-not-exist"
# Two apps of one machine: the host to remove and its sibling (hardenkit_machine).
TWO_APPS = (
    "    app_servers:\n"
    "      hosts:\n"
    f"        {HOST}: {{hardenkit_machine: web1}}\n"
    f"        {HOST}-admin: {{hardenkit_machine: web1, app_name: admin, app_port: 5001}}\n"
)
ONE_APP = f"    app_servers: {{hosts: {{{HOST}: {{}}}}}}\n"

# The tasks that refuse: validate.yml's, then remove.yml's own.
REFUSING_STEPS = (
    "Validate the input of each role",
    "Refuse to take the app off every app server unasked",
    "Check hardenkit_remove_data",
    "Refuse to delete what is not the app's own",
)


def run_remove(
    tmp_path: Path, extra: dict, limit: str | None = HOST, groups: str = ONE_APP
) -> subprocess.CompletedProcess:
    # The good settings in the inventory, where a host's own (the sibling's app_name) win;
    # the case's as extra vars, which win over both.
    inventory = write_inventory(
        tmp_path, groups, {**GOOD, "hardenkit_reports_dir": str(tmp_path / "reports")}
    )
    extra_file = tmp_path / "extra.json"
    extra_file.write_text(json.dumps(extra))
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/remove.yml"]
    argv += ["-e", f"@{extra_file}"] + (["--limit", limit] if limit else [])
    return subprocess.run(
        argv, cwd=ROOT, env=kit_env(), capture_output=True, text=True, timeout=300, check=False
    )


CASES = [
    # (id, extra vars, --limit, inventory groups, what the message names)
    ("no-limit-no-confirm", {}, None, ONE_APP, "-e hardenkit_remove_confirm=workbot"),
    (
        "wrong-confirm",
        {"hardenkit_remove_confirm": "shop"},
        None,
        ONE_APP,
        "hardenkit_remove_confirm",
    ),
    # A confirmation names the app it means, --limit or not.
    (
        "wrong-confirm-with-limit",
        {"hardenkit_remove_confirm": "shop"},
        HOST,
        ONE_APP,
        "hardenkit_remove_confirm",
    ),
    (
        "remove-data-maybe",
        {"hardenkit_remove_data": "maybe"},
        HOST,
        ONE_APP,
        "hardenkit_remove_data",
    ),
    (
        "remove-data-a-list",
        {"hardenkit_remove_data": [True]},
        HOST,
        ONE_APP,
        "hardenkit_remove_data",
    ),
    ("app-root-slash", {"app_root": "/"}, HOST, ONE_APP, "app_root"),
    # Refused by the app role's own validation, as harden.yml refuses it.
    ("app-root-dot-dot", {"app_root": "/srv/workbot/../.."}, HOST, ONE_APP, "no . or .. parts"),
    (
        "log-dir-var-log-with-data",
        {"pm2_log_dir": "/var/log", "hardenkit_remove_data": True},
        HOST,
        ONE_APP,
        "not a directory of the system such as /var/log",
    ),
    ("pm2-home-the-kit-prefix", {"pm2_home": "/opt/hardenkit"}, HOST, ONE_APP, "/opt/hardenkit"),
    (
        "data-dir-inside-the-build-cache",
        {"app_data_dir": "/srv/workbot/shared/cache/data"},
        HOST,
        ONE_APP,
        "which the removal keeps, is inside what it deletes",
    ),
    (
        "sibling-under-app-root-with-data",
        {"hardenkit_remove_data": "true"},
        HOST,
        TWO_APPS.replace("app_port: 5001}", "app_port: 5001, app_root: /srv/workbot/admin}"),
        "another app of this machine (hk-does-not-exist-admin)",
    ),
    (
        "sibling-with-the-same-user",
        {},
        HOST,
        TWO_APPS.replace("app_port: 5001}", "app_port: 5001, app_user: workbot}"),
        "hk-does-not-exist-admin on the same machine (web1) has the same",
    ),
]


@pytest.mark.parametrize(
    ("case", "extra", "limit", "groups", "named"), CASES, ids=[c[0] for c in CASES]
)
def test_remove_refuses_before_any_change(tmp_path, case, extra, limit, groups, named):
    result = run_remove(tmp_path, extra, limit, groups)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{case}: the run succeeded\n{output[-3000:]}"
    assert "No such container" not in output, f"{case}: the checks let it through\n{output[-3000:]}"
    assert "PLAY [Take the app off the host]" not in output, output[-3000:]
    counts = recap(output, HOST)
    assert counts["changed"] == 0
    assert counts["failed"] == 1
    assert any(step in output for step in REFUSING_STEPS)
    failed_block = output[output.index("fatal:") :] if "fatal:" in output else output
    assert named in failed_block, f"{case}: no mention of {named}\n{failed_block[:3000]}"


@pytest.mark.parametrize(
    ("case", "extra", "limit"),
    [
        ("limit", {}, HOST),
        ("confirm", {"hardenkit_remove_confirm": "workbot"}, None),
        ("remove-data-from-the-command-line", {"hardenkit_remove_data": "true"}, HOST),
        ("two-apps-of-one-machine", {"hardenkit_remove_data": True}, HOST),
    ],
)
def test_a_meant_removal_passes_the_checks_and_reaches_the_host(tmp_path, case, extra, limit):
    """The control cases: a removal named by --limit or confirmed by the app's name gets
    past every check, and only then meets the (missing) host, changing nothing."""
    groups = TWO_APPS if case == "two-apps-of-one-machine" else ONE_APP
    result = run_remove(tmp_path, extra, limit, groups)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "PLAY [Take the app off the host]" in output, output[-3000:]
    counts = recap(output, HOST)
    # Its first task on the host: the sibling's probe (uri, which cannot make its temporary
    # directory there), or the run lock (docker's own message).
    assert counts["unreachable"] == 1 or f"No such container: {HOST}" in output, output[-3000:]
    assert counts["changed"] == 0
