"""The watchdog role, checked by real programs: its unit's sandbox, its settings task's
secrecy, its input checks (the renderings: tests/unit/roles/watchdog/test_watchdog_role.py).

- L3: the service unit, rendered with Ansible's Templar from the role's defaults and vars,
  is rated by ``systemd-analyze security --offline=true`` (skipped, saying so, where that
  binary is missing).
- M9: ``ansible-playbook --check --diff`` of the role's install tasks (local connection,
  every path in a temporary directory) does not print a secret webhook URL.
- L1: ``validate.yml`` run by ``ansible-playbook`` on one local host per bad value.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.hk_testlib import host_result, run_playbook, run_role_validate, write_local_run
from tests.unit.roles.watchdog.test_watchdog_role import SECRET_URL, render

# --- L3: the unit's sandbox ----------------------------------------------------------------

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def exposure(unit_text: str, tmp_path: Path) -> tuple[float, str]:
    unit = tmp_path / "hardenkit-watchdog-workbot.service"
    unit.write_text(unit_text, encoding="utf-8")
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = proc.stdout + proc.stderr
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert match, out
    return float(match.group(1)), out


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize(
    "given",
    [
        {},
        {"watchdog_webhook_url": SECRET_URL, "watchdog_webhook_headers": {"X-Token": "t"}},
        {"watchdog_upstream_url": "https://www.example.com/health"},
    ],
    ids=["defaults", "webhook", "remote-upstream"],
)
def test_l3_unit_exposure_is_at_most_4(tmp_path, given):
    value, out = exposure(render("watchdog.service.j2", **given), tmp_path)
    assert value <= 4.0, out


# --- M9: the settings never reach the output -----------------------------------------------


@pytest.fixture(scope="module")
def m9_run(tmp_path_factory) -> subprocess.CompletedProcess:
    """The role's install tasks with --check --diff, every path under a temporary directory
    (role vars overridden by extra vars), a secret webhook URL and no headers. The last
    task (enable the timer) fails where systemd is not PID 1; the settings task ran before."""
    work = tmp_path_factory.mktemp("m9")
    dest = work / "dest"
    write_local_run(
        work,
        {"local-host": {}},
        {
            "watchdog_webhook_url": SECRET_URL,
            "__watchdog_dirs": [{"path": str(dest), "mode": "0755"}],
            "__watchdog_lib_utils": str(dest),
            "__watchdog_script": str(dest / "hardenkit-watchdog.py"),
            "__watchdog_config": str(dest / "workbot.json"),
            "__watchdog_state": str(dest / "state.json"),
            "__watchdog_unit_file": str(dest / "hardenkit-watchdog-workbot"),
        },
    )
    (work / "install.yml").write_text(
        "- name: Install the watchdog\n"
        "  hosts: all\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Run the role's install tasks\n"
        "      ansible.builtin.include_role:\n"
        "        name: hardenkit.nodeapp.watchdog\n"
        "        tasks_from: install\n"
    )
    return run_playbook(work, "install.yml", "--check", "--diff", "-v")


def test_m9_check_diff_does_not_print_a_secret_webhook_url(m9_run):
    out = m9_run.stdout + m9_run.stderr
    assert "SlackSecretToken123" not in out
    # The settings task ran (so a diff would have been printed) and was censored.
    head = "TASK [hardenkit.nodeapp.watchdog : Write the watchdog's settings]"
    assert head in out, out[-3000:]
    settings_block = out[out.index(head) :].split("TASK [", 2)[1]
    assert "changed: [local-host]" in settings_block, settings_block
    assert "censored" in settings_block, settings_block
    # The unit files' diffs were printed: --diff was on.
    assert "+++ after" in out, out[-3000:]


# --- L1: validate.yml rejects what would reach the unit or settings ------------------------

GOOD_URL = "https://alerts.example.com/hooks/abc?x=1"
L1_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "path-trailing-newline": ({"watchdog_health_path": "/health\n"}, "watchdog_health_path"),
    "path-newline-directive": (
        {"watchdog_health_path": "/h\nExecStartPre=+/usr/bin/touch /run/x"},
        "watchdog_health_path",
    ),
    "path-quote": ({"watchdog_health_path": '/h"x'}, "watchdog_health_path"),
    "path-semicolon": ({"watchdog_health_path": "/h;x"}, "watchdog_health_path"),
    "path-brace": ({"watchdog_health_path": "/h{x}"}, "watchdog_health_path"),
    "path-tab": ({"watchdog_health_path": "/h\tx"}, "watchdog_health_path"),
    "path-relative": ({"watchdog_health_path": "health"}, "watchdog_health_path"),
    "probe-path-newline": (
        {"app_probes": [{"path": "/h\nx", "status": 200}]},
        "app_probes",
    ),
    "webhook-trailing-newline": ({"watchdog_webhook_url": GOOD_URL + "\n"}, "watchdog_webhook_url"),
    "webhook-quote": ({"watchdog_webhook_url": 'https://a.example/"x'}, "watchdog_webhook_url"),
    "webhook-semicolon": (
        {"watchdog_webhook_url": "https://a.example/x;y"},
        "watchdog_webhook_url",
    ),
    "webhook-brace": ({"watchdog_webhook_url": "https://a.example/{x}"}, "watchdog_webhook_url"),
    "webhook-ftp": ({"watchdog_webhook_url": "ftp://a.example/"}, "watchdog_webhook_url"),
    "webhook-plain-http": (
        {"watchdog_webhook_url": "http://alerts.example.com/hook"},
        "watchdog_webhook_allow_http",
    ),
    "upstream-newline": (
        {"watchdog_upstream_url": "http://127.0.0.1/\nx"},
        "watchdog_upstream_url",
    ),
    "pm2-service-trailing-newline": (
        {"watchdog_pm2_service": "pm2-workbot\n"},
        "watchdog_pm2_service",
    ),
    "pm2-service-space": ({"watchdog_pm2_service": "pm2 workbot"}, "watchdog_pm2_service"),
    "header-name-newline": (
        {"watchdog_webhook_url": GOOD_URL, "watchdog_webhook_headers": {"X-A\nB": "v"}},
        "watchdog_webhook_headers names",
    ),
    "header-value-crlf": (
        {"watchdog_webhook_url": GOOD_URL, "watchdog_webhook_headers": {"X-Token": "a\r\nHost: b"}},
        "watchdog_webhook_headers values",
    ),
    # issue 20: where the node exporter listens, checked only with metrics on
    "metrics-name": (
        {"watchdog_metrics_enabled": True, "watchdog_metrics_address": "localhost:9100"},
        "watchdog_metrics_address must be an IP address and a port",
    ),
    "metrics-no-port": (
        {"watchdog_metrics_enabled": True, "watchdog_metrics_address": "127.0.0.1"},
        "watchdog_metrics_address must be an IP address and a port",
    ),
    "metrics-v6-unbracketed": (
        {"watchdog_metrics_enabled": True, "watchdog_metrics_address": "::1:9100"},
        "watchdog_metrics_address",
    ),
    "metrics-port-range": (
        {"watchdog_metrics_enabled": True, "watchdog_metrics_address": "0.0.0.0:99999"},
        "watchdog_metrics_address",
    ),
    "metrics-flag-injected": (
        {
            "watchdog_metrics_enabled": True,
            "watchdog_metrics_address": "127.0.0.1:9100 --web.config.file=/tmp/x",
        },
        "watchdog_metrics_address",
    ),
}
L1_GOOD: dict[str, dict[str, Any]] = {
    "good-defaults": {},
    "good-https-webhook": {
        "watchdog_webhook_url": GOOD_URL,
        "watchdog_webhook_headers": {"Authorization": "Bearer abc.def", "X-Count": 3},
        "watchdog_health_path": "/api/health?full=1",
    },
    "good-http-allowed": {
        "watchdog_webhook_url": "http://127.0.0.1:9099/hook",
        "watchdog_webhook_allow_http": True,
    },
    "good-metrics-v6": {"watchdog_metrics_enabled": True, "watchdog_metrics_address": "[::]:9100"},
    # Metrics off: the address is not read.
    "good-metrics-off": {"watchdog_metrics_address": "not an address"},
}


@pytest.fixture(scope="module")
def l1_run(tmp_path_factory) -> str:
    """One run of the role's validate entry point: one local host per case."""
    hosts = {f"l1-{name}": given for name, (given, _) in L1_CASES.items()}
    hosts |= {f"l1-{name}": given for name, given in L1_GOOD.items()}
    return run_role_validate(tmp_path_factory.mktemp("l1"), "watchdog", hosts)


@pytest.mark.parametrize(
    ("case", "named"), [(k, v[1]) for k, v in L1_CASES.items()], ids=list(L1_CASES)
)
def test_l1_validate_rejects(l1_run, case, named):
    counts, fatal = host_result(l1_run, f"l1-{case}")
    assert counts["failed"] == 1, f"{case} was accepted\n{l1_run[-3000:]}"
    message = json.loads(fatal)["msg"]
    assert named in message, message


@pytest.mark.parametrize("case", list(L1_GOOD))
def test_l1_validate_accepts(l1_run, case):
    counts, fatal = host_result(l1_run, f"l1-{case}")
    assert counts["failed"] == 0, fatal


def test_l1_validate_never_prints_a_webhook_url(l1_run):
    for secret in ('a.example/"x', "a.example/x;y", "a\\r\\nHost: b", "alerts.example.com/hook"):
        assert secret not in l1_run, secret
