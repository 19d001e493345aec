"""The hosts the kit refuses, from the facts Ansible gathers on them (recorded from real
systems' setup output: distribution, distribution_major_version, _version, _release), and
the addresses a server may listen on."""

from __future__ import annotations

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.filter.hosts import (
    host_refusal,
    listen_address_error,
    machine_hosts,
    peer_addresses,
)


def facts(name: str, major: str, version: str, release: str) -> dict:
    return {
        "distribution": name,
        "distribution_major_version": major,
        "distribution_version": version,
        "distribution_release": release,
    }


@pytest.mark.parametrize(
    "host",
    [
        facts("Debian", "12", "12.12", "bookworm"),
        facts("Debian", "13", "13.2", "trixie"),
    ],
    ids=["debian12", "debian13"],
)
def test_debian_12_and_13_are_served(host):
    assert host_refusal(host) == ""


@pytest.mark.parametrize(
    ("host", "named"),
    [
        (facts("Debian", "11", "11.11", "bullseye"), "Debian 11.11 (bullseye)"),
        (facts("Debian", "14", "14", "forky"), "Debian 14 (forky)"),
        # testing before its release: no number yet
        (facts("Debian", "testing", "testing", "forky"), "Debian testing (forky)"),
        (facts("Ubuntu", "24", "24.04", "noble"), "Ubuntu 24.04 (noble)"),
        (facts("RedHat", "9", "9.4", "Plow"), "RedHat 9.4 (Plow)"),
        (facts("Alpine", "3", "3.20.3", "NA"), "Alpine 3.20.3,"),
        ({}, "an unknown system"),
    ],
    ids=["debian11", "debian14", "debian-testing", "ubuntu", "rhel", "alpine", "no-facts"],
)
def test_other_systems_are_refused_naming_what_was_found(host, named):
    message = host_refusal(host)
    assert named in message
    assert "Debian 12 (bookworm) and 13 (trixie)" in message
    assert "app_servers" in message


def test_a_debian_12_that_calls_itself_another_codename_is_refused():
    assert host_refusal(facts("Debian", "12", "12.12", "trixie")) != ""


# --- peer_addresses: one tier's addresses for the other ------------------------------------

HOSTVARS = {
    "app-1": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.11"}}},
    "app-2": {"nginx_proxy_backend_address": "fd00::12", "nginx_proxy_listen_port": 8080},
    "app-3": {
        "ansible_host": "app-3.internal",
        "nginx_proxy_backend_port": 81,
        "nginx_proxy_listen_port": 8080,
        "ansible_facts": {},
    },
    "app-4": {"nginx_proxy_backend_address": "", "ansible_host": ""},
}


def test_peer_addresses_in_order_with_ports_and_ipv6_in_brackets():
    assert peer_addresses(
        ["app-1", "app-2", "app-3", "app-4"],
        HOSTVARS,
        "nginx_proxy_backend_address",
        ["nginx_proxy_backend_port", "nginx_proxy_listen_port"],
        80,
    ) == [
        {"host": "app-1", "address": "10.0.0.11", "port": 80},
        {"host": "app-2", "address": "[fd00::12]", "port": 8080},
        {"host": "app-3", "address": "app-3.internal", "port": 81},
        {"host": "app-4", "address": "app-4", "port": 80},
    ]


def test_peer_addresses_without_ports_keeps_an_ipv6_address_bare():
    hostvars = {"lb-1": {"nginx_proxy_lb_address": "fd00::1"}, "lb-2": {}}
    assert peer_addresses(["lb-1", "lb-2"], hostvars, "nginx_proxy_lb_address") == [
        {"host": "lb-1", "address": "fd00::1"},
        {"host": "lb-2", "address": "lb-2"},
    ]


def test_machine_hosts_are_the_apps_that_name_the_machine_in_inventory_order():
    hostvars = {
        "web1-shop": {"hardenkit_machine": "web1"},
        "web2": {},
        "web1-admin": {"hardenkit_machine": "web1"},
        "web1": {},
    }
    hosts = list(hostvars)
    assert machine_hosts(hosts, hostvars, "web1") == ["web1-shop", "web1-admin", "web1"]
    assert machine_hosts(hosts, hostvars, "web2") == ["web2"]
    assert machine_hosts(hosts, hostvars, "web3") == []


def test_a_host_without_a_machine_is_its_own():
    hostvars = {"a": {"hardenkit_machine": ""}, "b": {"hardenkit_machine": None}}
    assert machine_hosts(["a", "b"], hostvars, "a") == ["a"]
    assert machine_hosts(["a", "b"], hostvars, "b") == ["b"]


# --- listen_address_error (watchdog_metrics_address) -------------------------------------------


@pytest.mark.parametrize("given", ["127.0.0.1:9100", "0.0.0.0:9100", "[::1]:9100", "[::]:65535"])
def test_an_address_and_a_port_pass(given):
    assert listen_address_error(given, "watchdog_metrics_address") == ""


@pytest.mark.parametrize(
    "given",
    [
        "localhost:9100",  # a name: a listener binds one address
        "127.0.0.1",
        "127.0.0.1:",
        "::1:9100",  # IPv6 without brackets
        "[127.0.0.1]:9100",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:9100 --web.config.file=/tmp/x",
        " 127.0.0.1:9100",
        "127.0.0.1:+91",
        9100,
        None,
    ],
)
def test_anything_else_is_refused_naming_the_setting(given):
    message = listen_address_error(given, "watchdog_metrics_address")
    assert message.startswith("watchdog_metrics_address must be an IP address and a port")
    assert repr(given) in message
