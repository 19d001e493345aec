"""The hosts the kit refuses, from the facts Ansible gathers on them (recorded from real
systems' setup output: distribution, distribution_major_version, _version, _release)."""

from __future__ import annotations

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.filter.hosts import host_refusal


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
