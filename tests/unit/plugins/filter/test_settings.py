"""unknown_settings: role-prefixed settings no role knows, with the nearest known name."""

from __future__ import annotations

from ansible_collections.hardenkit.nodeapp.plugins.filter.settings import (
    known_settings,
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
