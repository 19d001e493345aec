"""unknown_settings: role-prefixed settings no role knows, with the nearest known name;
probe_errors: each bad entry of app_probes, with the role's own path pattern."""

from __future__ import annotations

from pathlib import Path

import yaml

from ansible_collections.hardenkit.nodeapp.plugins.filter.settings import (
    known_settings,
    probe_errors,
    unknown_settings,
)


def test_every_role_option_is_known():
    known = known_settings()
    assert {"app_port", "pm2_instances", "nginx_proxy_tls_enabled", "app_release_keep"} <= known


def test_a_typo_is_named_with_the_setting_meant():
    assert unknown_settings(["pm2_instance", "app_port", "inventory_hostname"]) == [
        {"name": "pm2_instance", "suggestion": "pm2_instances"}
    ]


def test_names_without_a_role_prefix_and_allowed_names_pass():
    assert unknown_settings(["ansible_user", "hardenkit_reports_dir", "my_var"]) == []
    assert unknown_settings(["app_extra"], allowed=["app_extra"]) == []


def test_a_name_far_from_any_gets_no_suggestion():
    assert unknown_settings(["watchdog_zzzzzzzz"]) == [
        {"name": "watchdog_zzzzzzzz", "suggestion": ""}
    ]


# --- probe_errors: what is wrong with each of app_probes --------------------------------

PATH_PATTERN = yaml.safe_load(
    (Path(__file__).resolve().parents[4] / "roles" / "app" / "vars" / "main.yml").read_text()
)["__app_probe_path_pattern"]


def test_probe_errors_names_each_bad_entry_by_its_index():
    probes = [
        {"path": "/", "status": 200},
        {"path": "/api/health"},
        "/login",
        {"path": "health", "status": 200},
        {"path": "/x", "status": 999},
        {"path": '/a"b', "status": 200},
        {"path": "/ok", "status": "204"},
    ]
    errors = probe_errors(probes, PATH_PATTERN)
    assert [e.split(" ", 1)[0] for e in errors] == [
        "app_probes[1]",
        "app_probes[2]",
        "app_probes[3]",
        "app_probes[4]",
        "app_probes[5]",
    ]
    assert errors[1].endswith('(got "/login")')
    assert errors[2].endswith('(got {"path": "health", "status": 200})')


def test_probe_errors_leaves_a_value_that_is_not_a_list_to_the_type_check():
    assert probe_errors("/", PATH_PATTERN) == []
    assert probe_errors({"path": "/"}, PATH_PATTERN) == []
    assert probe_errors([], PATH_PATTERN) == []
