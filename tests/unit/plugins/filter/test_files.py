"""Numbered entries for files of the control node, read by drift and written by a role."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.filter.files import numbered_files


def test_each_file_gets_its_index_and_the_attributes():
    got = numbered_files(["a.pem", "/etc/b.pem"], "/usr/local/share/ca/hk-{}.crt", mode="0644")
    assert got == [
        {"path": "/usr/local/share/ca/hk-0.crt", "file": "a.pem", "mode": "0644"},
        {"path": "/usr/local/share/ca/hk-1.crt", "file": "/etc/b.pem", "mode": "0644"},
    ]
    assert numbered_files([], "/x/{}") == []


@pytest.mark.parametrize(("sources", "fmt"), [("a.pem", "/x/{}"), (["a.pem"], "/x/fixed")])
def test_a_string_or_a_path_without_its_number_is_an_error(sources, fmt):
    with pytest.raises(AnsibleFilterError, match="numbered_files"):
        numbered_files(sources, fmt)
