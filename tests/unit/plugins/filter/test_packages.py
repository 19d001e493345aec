"""``packages_missing``: the roles' gate in front of apt, fed by the real dpkg-query."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.filter.packages import packages_missing

# The format the roles pass (dpkg-query expands the \n itself).
SHOWFORMAT = r"--showformat=${Package} ${db:Status-Status}\n"


def dpkg_lines(*names: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        ["dpkg-query", "--show", SHOWFORMAT, *names], capture_output=True, text=True, check=False
    )
    return done.returncode, done.stdout.splitlines()


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs a Debian control node")
def test_real_dpkg_query_installed_and_unknown():
    rc, lines = dpkg_lines("dpkg", "bash", "hk-no-such-package")
    # The roles accept rc 1: dpkg has never heard of a package apt is about to install.
    assert rc == 1
    assert "dpkg installed" in lines and "bash installed" in lines
    assert packages_missing(["dpkg", "hk-no-such-package", "bash"], lines) == ["hk-no-such-package"]
    rc, lines = dpkg_lines("dpkg", "bash")
    assert rc == 0 and packages_missing(["dpkg", "bash"], lines) == []


def test_states_other_than_installed_are_missing():
    lines = [
        "nginx config-files",
        "nodejs half-installed",
        "git not-installed",
        "acl unpacked",
        "sudo installed",
        "tar:amd64 installed",
    ]
    assert packages_missing(["nginx", "nodejs", "git", "acl", "sudo", "tar"], lines) == [
        "nginx",
        "nodejs",
        "git",
        "acl",
    ]


def test_a_pinned_name_is_left_to_apt():
    assert packages_missing(["nginx=1.22.1-9", "nginx"], ["nginx installed"]) == ["nginx=1.22.1-9"]


def test_input_shapes():
    assert packages_missing("logrotate", ["logrotate installed"]) == []
    assert packages_missing([], []) == []
    with pytest.raises(AnsibleFilterError, match="dpkg_lines must be a list"):
        packages_missing(["nginx"], "nginx installed")
