"""The directory of an official Node.js build on a host, known without asking the module."""

from __future__ import annotations

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.filter.node import node_build_dir


@pytest.mark.parametrize(
    ("version", "arch", "expected"),
    [
        ("22.23.5", "x86_64", "v22.23.5-linux-x64"),
        ("v24.22.3", "aarch64", "v24.22.3-linux-arm64"),
        (" 24.22.3\n", "amd64", "v24.22.3-linux-x64"),
    ],
)
def test_the_build_directory_matches_the_module_dir_name(version, arch, expected):
    assert node_build_dir(version, arch) == expected


def test_an_architecture_without_official_builds_is_refused():
    with pytest.raises(ValueError, match="s390x"):
        node_build_dir("22.23.5", "s390x")
