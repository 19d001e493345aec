"""``module_utils/dpkg.py``: what dpkg-query's lines say is installed, fed by the real dpkg."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.dpkg import (
    SHOW_FORMAT,
    installed_versions,
    packages_missing,
)


def test_installed_versions_reads_the_three_fields_and_drops_the_architecture():
    lines = [
        "nginx installed 1.22.1-9+deb12u1",
        "libc6:amd64 installed 2.36-9",
        "logrotate not-installed ",
        "git config-files 1:2.39.5-0",
        "",
    ]
    assert installed_versions(lines) == {"nginx": "1.22.1-9+deb12u1", "libc6": "2.36-9"}


def test_lines_without_the_version_give_an_empty_one():
    assert installed_versions(["nginx installed"]) == {"nginx": ""}


def test_missing_keeps_the_order_and_sends_versions_and_releases_to_apt():
    lines = ["nginx installed 1.22.1-9", "git installed 1:2.39.5-0"]
    assert packages_missing(["acl", "nginx", "nginx=1.22.1-9", "git/bookworm", "git"], lines) == [
        "acl",
        "nginx=1.22.1-9",
        "git/bookworm",
    ]


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="no dpkg on this machine")
def test_the_real_dpkg_query_with_the_format():
    out = subprocess.run(
        ["dpkg-query", "--show", f"--showformat={SHOW_FORMAT}", "dpkg", "hk-no-such-package"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1
    versions = installed_versions(out.stdout.splitlines())
    assert list(versions) == ["dpkg"] and versions["dpkg"][0].isdigit()
    assert packages_missing(["dpkg", "hk-no-such-package"], out.stdout.splitlines()) == [
        "hk-no-such-package"
    ]
