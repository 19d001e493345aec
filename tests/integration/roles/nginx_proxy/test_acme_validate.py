"""ACME settings refused before any change (issue 21), by the nginx_proxy role's own
validate step in a real ansible-playbook run: one local host per case, each failing with a
message that names the variable. The filter's every rule: tests/unit/.../test_acme.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.hk_testlib import host_result, run_role_validate

ON = {
    "nginx_proxy_acme_enabled": True,
    "app_server_name": "shop.example.com www.shop.example.com",
    "nginx_proxy_acme_email": "ops@example.com",
}
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "catch-all": ({**ON, "app_server_name": "_"}, "nginx_proxy_acme_enabled needs app_server_name"),
    "ip-address": ({**ON, "app_server_name": "203.0.113.7"}, "'203.0.113.7' is an IP address"),
    "no-email": ({**ON, "nginx_proxy_acme_email": ""}, "nginx_proxy_acme_email must be"),
    "http-directory": (
        {**ON, "nginx_proxy_acme_directory": "http://acme.example.com/dir"},
        "nginx_proxy_acme_directory must be the ACME server's https://",
    ),
    "own-files-too": (
        {
            **ON,
            "nginx_proxy_tls_enabled": True,
            "nginx_proxy_tls_certificate": "/c.pem",
            "nginx_proxy_tls_certificate_key": "/k.pem",
        },
        "leave nginx_proxy_tls_enabled false",
    ),
    "missing-ca": (
        {**ON, "nginx_proxy_acme_ca_bundle": "/nonexistent/ca.pem"},
        "nginx_proxy_acme_ca_bundle cannot be read on the control node",
    ),
}
GOOD: dict[str, dict[str, Any]] = {
    "good-acme": ON,
    "good-staging": {
        **ON,
        "nginx_proxy_acme_directory": "https://acme-staging-v02.api.letsencrypt.org/directory",
    },
    # ACME off: its settings are not read.
    "good-off": {"nginx_proxy_acme_email": "", "nginx_proxy_acme_directory": "ftp://x"},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> str:
    hosts = {f"acme-{name}": given for name, (given, _) in CASES.items()}
    hosts |= {f"acme-{name}": given for name, given in GOOD.items()}
    return run_role_validate(tmp_path_factory.mktemp("acme"), "nginx_proxy", hosts)


@pytest.mark.parametrize(("case", "named"), [(k, v[1]) for k, v in CASES.items()], ids=list(CASES))
def test_acme_settings_refused(run, case, named):
    counts, fatal = host_result(run, f"acme-{case}")
    assert counts["failed"] == 1, f"{case} was accepted\n{run[-3000:]}"
    message = json.loads(fatal)["msg"]
    assert message.startswith("Invalid ACME settings: ") and named in message, message


@pytest.mark.parametrize("case", list(GOOD))
def test_acme_settings_accepted(run, case):
    counts, fatal = host_result(run, f"acme-{case}")
    assert counts["failed"] == 0, fatal
