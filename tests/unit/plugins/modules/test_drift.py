"""The drift module, run as Ansible would (``python -m`` with a JSON args file)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hk_testlib import run_module

# --- drift ----------------------------------------------------------------------------------


def _drift_tree(tmp_path: Path) -> dict[str, Path]:
    import hashlib

    d = tmp_path / "etc"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    f = d / "app.conf"
    f.write_text("port=5000\n")
    f.chmod(0o644)
    link = d / "current"
    link.symlink_to("releases/abc")
    user = pwd_name()
    return {
        "dir": d,
        "file": f,
        "link": link,
        "user": user,
        "sha1": hashlib.sha1(b"port=5000\n").hexdigest(),
    }


def pwd_name() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def test_drift_finds_nothing_when_the_host_matches(tmp_path):
    t = _drift_tree(tmp_path)
    rc, out = run_module(
        "drift",
        {
            "paths": [
                {"path": str(t["dir"]), "state": "directory", "owner": t["user"], "mode": "0755"},
                {
                    "path": str(t["file"]),
                    "owner": str(os.getuid()),
                    "mode": "0644",
                    "sha1": t["sha1"],
                },
                {"path": str(t["link"]), "state": "link", "src": "releases/abc"},
                {"path": str(tmp_path / "gone"), "state": "absent"},
            ]
        },
        tmp_path,
    )
    assert rc == 0, out
    assert out["changed"] is False and out["drift"] == [] and out["reasons"] == {}


def test_drift_names_each_difference(tmp_path):
    t = _drift_tree(tmp_path)
    rc, out = run_module(
        "drift",
        {
            "paths": [
                {"path": str(t["dir"]), "state": "directory", "mode": "0700"},
                {"path": str(t["file"]), "mode": "0644", "sha1": "0" * 40},
                {"path": str(t["file"]), "state": "directory"},
                {"path": str(t["link"]), "state": "link", "src": "releases/def"},
                {"path": str(tmp_path / "missing"), "state": "directory"},
                {"path": str(t["file"]), "owner": "no-such-user-hk"},
                {"path": str(t["file"]), "mode": "u=rw,go=r"},  # not octal: left to the task
                {"path": str(t["link"]), "state": "absent"},
            ]
        },
        tmp_path,
    )
    assert rc == 0, out
    assert out["drift"] == [
        str(t["dir"]),
        str(t["file"]),
        str(t["link"]),
        str(tmp_path / "missing"),
    ]
    assert out["reasons"] == {
        str(t["dir"]): ["mode"],
        str(t["file"]): ["content", "type", "owner", "mode"],
        str(t["link"]): ["target", "present"],
        str(tmp_path / "missing"): ["missing"],
    }


def test_drift_refuses_a_relative_path(tmp_path):
    rc, out = run_module("drift", {"paths": [{"path": "etc/app.conf"}]}, tmp_path)
    assert rc != 0 and "paths[0].path must be absolute" in out["msg"]


@pytest.mark.skipif(Path("/run/systemd/system").exists(), reason="systemd runs here")
def test_drift_counts_units_it_cannot_read(tmp_path):
    """Without a running systemd (this control node, a container without it), systemctl
    answers nothing useful: every unit counts as drift, so the role's task decides. The
    Molecule scenarios read real units: an idempotent run skips every start task."""
    rc, out = run_module("drift", {"units": ["pm2-workbot", "logrotate.timer"]}, tmp_path)
    assert rc == 0, out
    assert out["changed"] is False and out["drift"] == []
    assert out["units_drift"] == ["pm2-workbot", "logrotate.timer"]
    assert all(r[0].startswith("inactive: ") for r in out["unit_reasons"].values())
    assert all(r[1].startswith("disabled: ") for r in out["unit_reasons"].values())
