"""module_utils/fsdrift: the comparisons behind the drift module."""

from __future__ import annotations

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.fsdrift import (
    drift,
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
