"""The probe module, run as Ansible would (``python -m`` with a JSON args file)."""

from __future__ import annotations

from tests.hk_testlib import free_port, run_module

# --- probe: the real module against a local server ------------------------------------------


def test_probe_module_passes_and_fails_naming_the_path(http_server, tmp_path):
    srv = http_server({"/api/health": 404})
    port = srv.server_address[1]
    rc, out = run_module("probe", {"port": port, "probes": [{"path": "/"}]}, tmp_path)
    assert rc == 0, out
    assert out["changed"] is False and out["attempts"] == 1 and out["probes"][0]["status"] == 200
    rc, out = run_module(
        "probe",
        {
            "port": port,
            "probes": [{"path": "/"}, {"path": "/api/health"}],
            "retries": 1,
            "delay": 0,
        },
        tmp_path,
    )
    assert rc != 0
    assert out["msg"] == (
        f"probes failed on 127.0.0.1:{port} (2 attempts): /api/health answered 404 (expected 200)"
    )


def test_probe_module_waits_for_the_port_then_fails(tmp_path):
    port = free_port()
    rc, out = run_module("probe", {"port": port, "listen_timeout": 0.3}, tmp_path)
    assert rc != 0 and out["msg"] == f"nothing listened on 127.0.0.1:{port} within 0.3 s"
    rc, out = run_module("probe", {"port": port, "probes": [{"path": "health"}]}, tmp_path)
    assert rc != 0 and "probes[0].path must be a string starting with '/'" in out["msg"]
