"""module_utils/fsdrift: the comparisons behind the drift module. The accounts are
compared with this machine's real user database (root exists)."""

from __future__ import annotations

import pwd

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.fsdrift import (
    account_reasons,
    drift,
    groups_missing,
    octal_mode,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("0644", 0o644),
        ("644", 0o644),
        ("0700", 0o700),
        ("2755", 0o2755),
        (420, 0o644),
        ("u=rw,go=r", None),
        ("0799", None),
        ("", None),
        (True, None),
    ],
)
def test_octal_mode(given, expected):
    assert octal_mode(given) == expected


def test_drift_keeps_the_order_and_merges_reasons_per_path(tmp_path):
    conf = tmp_path / "a.conf"
    conf.write_text("x\n")
    conf.chmod(0o600)
    wanted = [
        {"path": str(tmp_path / "missing")},
        {"path": str(conf), "mode": "0644"},
        {"path": str(conf), "sha1": "0" * 40},
        {"path": str(tmp_path), "state": "directory"},
    ]
    assert drift(wanted) == {
        str(tmp_path / "missing"): ["missing"],
        str(conf): ["mode", "content"],
    }


ROOT_USER = pwd.getpwnam("root")


def test_an_account_as_wanted_has_no_reason():
    want = {"name": "root", "group": "root", "home": ROOT_USER.pw_dir, "shell": ROOT_USER.pw_shell}
    assert account_reasons(want) == []


def test_only_the_fields_given_are_compared():
    assert account_reasons({"name": "root"}) == []


def test_each_differing_field_is_named():
    want = {
        "name": "root",
        "group": "nogroup",
        "comment": "not root's",
        "home": "/srv/elsewhere",
        "shell": "/usr/sbin/nologin-x",
    }
    assert account_reasons(want) == ["group", "comment", "home", "shell"]


def test_a_missing_account_and_an_unknown_group():
    assert account_reasons({"name": "hk-no-such-user"}) == ["missing"]
    assert account_reasons({"name": "root", "group": "hk-no-such-group"}) == ["group"]


def test_groups_missing_keeps_the_order():
    assert groups_missing(["hk-b", "root", "hk-a"]) == ["hk-b", "hk-a"]
