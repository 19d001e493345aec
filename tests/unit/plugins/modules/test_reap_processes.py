"""The reap_processes module's arguments: checked directly, and through the module run as
Ansible would (``python -m`` with a JSON args file) to check the message the user sees."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.modules import reap_processes
from tests.hk_testlib import run_module

# --- reap_processes -------------------------------------------------------------------------


def reap_params(**overrides):
    base = {name: spec.get("default") for name, spec in reap_processes.ARGUMENT_SPEC.items()}
    base.update(patterns=["tsx watch"])
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scope_paths": ["/"]}, r"scope_paths\[0\] is '/'"),
        ({"scope_paths": ["/srv/x", "relative"]}, r"scope_paths\[1\] must be an absolute path"),
        ({"timeout": -1}, "timeout must be 0-600"),
        ({"scope_port": 0}, "scope_port must be a TCP port"),
        ({"patterns": []}, "patterns must list at least one"),
    ],
)
def test_reap_check_params(overrides, message):
    with pytest.raises(ValueError, match=message):
        reap_processes.check_params(reap_params(**overrides))


def test_reap_module_requires_a_scope(tmp_path):
    rc, out = run_module("reap_processes", {"patterns": ["tsx watch"]}, tmp_path)
    assert rc == 1
    assert "one of the following is required" in out["msg"]
    assert "scope_users" in out["msg"] and "scope_paths" in out["msg"]


def test_reap_module_names_bad_pattern(tmp_path):
    rc, out = run_module(
        "reap_processes", {"patterns": ["(tsx"], "scope_paths": ["/srv/x"]}, tmp_path
    )
    assert rc == 1 and out["msg"].startswith("patterns[0] '(tsx' is not a valid regular")


def test_reap_module_check_mode_stops_nothing(tmp_path):
    marker = f"hk-reap-check-{os.getpid()}"
    # A dev tool by its first token (M5: a mention alone is never a target).
    child = subprocess.Popen(
        ["nodemon", "-c", "import time, sys; time.sleep(60)", marker],
        executable=sys.executable,
        cwd=tmp_path,
    )
    try:
        rc, out = run_module(
            "reap_processes",
            {"patterns": [marker], "scope_paths": [str(tmp_path)], "_ansible_check_mode": True},
            tmp_path,
        )
        assert rc == 0, out
        assert out["changed"] is True
        assert [(s["pid"], s["how"]) for s in out["stopped"]] == [(child.pid, "check_mode")]
        assert child.poll() is None  # still running
        rc, out = run_module(
            "reap_processes",
            {"patterns": [marker], "scope_paths": [str(tmp_path)], "timeout": 5},
            tmp_path,
        )
        assert rc == 0, out
        assert [(s["pid"], s["how"]) for s in out["stopped"]] == [(child.pid, "SIGTERM")]
        assert child.wait(5) == -15
        rc, out = run_module(
            "reap_processes", {"patterns": [marker], "scope_paths": [str(tmp_path)]}, tmp_path
        )
        assert (rc, out["changed"], out["stopped"]) == (0, False, [])
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
