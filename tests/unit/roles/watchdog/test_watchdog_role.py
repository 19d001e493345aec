"""The watchdog role: its unit's sandbox, its settings task's secrecy, its input checks.

- L3: the service unit, rendered with Ansible's Templar from the role's defaults and vars,
  keeps what the watchdog needs and reaches other hosts only when configured to.
- M7: the settings tell the script whether plain http is allowed.
- M9: the settings task never logs or diffs, whatever the headers.

What real programs check (``systemd-analyze security``, ``ansible-playbook``):
tests/integration/roles/watchdog/test_watchdog_role.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from tests.hk_testlib import trusted

ROOT = Path(__file__).resolve().parents[4]
ROLE = ROOT / "roles" / "watchdog"
SECRET_URL = "https://hooks.slack.com/services/T0/B0/SlackSecretToken123"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def render(template: str, **given: Any) -> str:
    """``templates/<template>`` as the role writes it (trim_blocks on, lstrip_blocks off)."""
    return render_text((ROLE / "templates" / template).read_text(encoding="utf-8"), **given)


def render_text(text: str, **given: Any) -> str:
    """``text`` rendered with the role's defaults and vars, over the app role's."""
    variables = {
        **trusted(load(ROOT / "roles" / "app" / "defaults" / "main.yml")),
        **trusted(load(ROLE / "defaults" / "main.yml")),
        "app_name": "workbot",
        "ansible_managed": "Ansible managed",
        "role_path": str(ROLE),
        **given,
        **trusted(load(ROOT / "roles" / "app" / "vars" / "main.yml")),
        **trusted(load(ROLE / "vars" / "main.yml")),
    }
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(
        trust_as_template(text),
        escape_backslashes=False,
        overrides={"trim_blocks": True, "lstrip_blocks": False},
    )


# --- L3: the unit's sandbox ----------------------------------------------------------------


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_l3_unit_keeps_what_the_watchdog_needs():
    unit = unit_settings(render("watchdog.service.j2"))
    assert unit["ExecStart"] == [
        "/usr/bin/python3 /usr/local/lib/hardenkit/hardenkit-watchdog.py "
        "/etc/hardenkit/watchdog/workbot.json"
    ]
    assert "User" not in unit  # root: systemd authorises unit actions by uid 0
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["ProtectSystem"] == ["strict"]
    # the state file's directory, and nothing else, is written
    assert unit["ReadWritePaths"] == ["/var/lib/hardenkit/watchdog"]
    # systemctl (AF_UNIX to systemd and D-Bus), the probes and the webhook
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "PrivateNetwork" not in unit and "PrivateUsers" not in unit
    assert unit["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    # No webhook and the probes on loopback: loopback only.
    assert unit["IPAddressDeny"] == ["any"] and unit["IPAddressAllow"] == ["localhost"]


@pytest.mark.parametrize(
    "given",
    [
        {"watchdog_webhook_url": SECRET_URL},
        {"watchdog_upstream_url": "https://www.example.com/health"},
    ],
    ids=["webhook", "remote-upstream"],
)
def test_l3_unit_reaches_other_hosts_only_when_configured_to(given):
    unit = unit_settings(render("watchdog.service.j2", **given))
    assert "IPAddressDeny" not in unit and "IPAddressAllow" not in unit


def test_l3_description_escapes_systemd_specifiers():
    unit = unit_settings(render("watchdog.service.j2", watchdog_health_path="/health%3Fx"))
    assert "probe /health%%3Fx," in unit["Description"][0]


# --- M7: the settings tell the script whether plain http is allowed ------------------------


@pytest.mark.parametrize("allow", [False, True])
def test_m7_settings_carry_the_http_switch(allow):
    given = {"watchdog_webhook_url": SECRET_URL}
    if allow:
        given["watchdog_webhook_allow_http"] = True
    settings = json.loads(render("watchdog.json.j2", **given))
    assert settings["webhook_allow_http"] is allow
    assert settings["webhook_url"] == SECRET_URL


def test_the_settings_name_the_database_by_its_address_alone():
    url = "postgres://workbot:pool-secret@db.internal:6432/workbot"
    settings = json.loads(
        render("watchdog.json.j2", app_env={"DATABASE_URL": url}, app_db_connection_budget=20)
    )
    assert settings["database"] == {
        "scheme": "postgres",
        "host": "db.internal",
        "port": 6432,
        "budget": 20,
    }
    assert "pool-secret" not in json.dumps(settings)
    assert json.loads(render("watchdog.json.j2"))["database"] == {}


# --- M9: the settings never reach the output -----------------------------------------------


def test_m9_settings_task_is_always_no_log_and_no_diff():
    tasks = yaml.safe_load((ROLE / "tasks" / "install.yml").read_text(encoding="utf-8"))
    # The settings are the watchdog's file marked secret (vars/main.yml), and the one task
    # that writes secret files hides them.
    wanted = yaml.safe_load((ROLE / "vars" / "main.yml").read_text(encoding="utf-8"))
    (entry,) = [f for f in wanted["__watchdog_files"] if f.get("secret")]
    assert entry["template"] == "watchdog.json.j2"
    (task,) = [t for t in tasks if "selectattr('secret', 'defined')" in str(t.get("loop", ""))]
    assert task["ansible.builtin.template"]["src"] == "{{ item.template }}"
    assert task["no_log"] is True
    assert task["diff"] is False


# --- issue 20: metrics, and the database the unit must reach ---------------------------------


def test_metrics_on_the_unit_writes_the_textfile_directory_and_the_exporter_listens():
    on = {"watchdog_metrics_enabled": True, "watchdog_metrics_address": "[::1]:9101"}
    settings = json.loads(render("watchdog.json.j2", **on))
    assert settings["metrics_file"] == "/var/lib/prometheus/node-exporter/hardenkit_workbot.prom"
    assert settings["app_user"] == "workbot"
    unit = unit_settings(render("watchdog.service.j2", **on))
    assert unit["ReadWritePaths"] == [
        "/var/lib/hardenkit/watchdog /var/lib/prometheus/node-exporter"
    ]
    dropin = render("node-exporter.conf.j2", **on)
    assert "--web.listen-address=[::1]:9101 " in dropin
    assert "--collector.textfile.directory=/var/lib/prometheus/node-exporter\n" in dropin
    # Off: no metrics file, and the directory stays read-only.
    assert json.loads(render("watchdog.json.j2"))["metrics_file"] == ""
    assert unit_settings(render("watchdog.service.j2"))["ReadWritePaths"] == [
        "/var/lib/hardenkit/watchdog"
    ]


@pytest.mark.parametrize(
    ("url", "loopback_only"),
    [
        ("postgres://u:p@db.internal:5432/x", False),
        ("postgres://u:p@10.0.0.9:5432/x", False),
        ("postgres://u:p@127.0.0.1:5432/x", True),
        ("postgres://u:p@localhost:5432/x", True),
        ("postgres://u:p@[::1]:5432/x", True),
        ("postgres://u:p@/x?host=/run/postgresql", True),
    ],
)
def test_a_database_elsewhere_opens_the_unit_to_other_addresses(url, loopback_only):
    """The unit denied every address but loopback, so the watchdog's check of a database on
    another host failed, and it would have held off as if the database were away."""
    unit = unit_settings(render("watchdog.service.j2", app_env={"DATABASE_URL": url}))
    assert ("IPAddressDeny" in unit) is loopback_only
