"""The modules' argument handling and the filter plugin.

Validation functions are called directly; a few cases run the module as Ansible would
(``python -m`` with a JSON args file) to check the message the user sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from hk_testlib import free_port, run_module

from ansible_collections.hardenkit.nodeapp.plugins.filter.diagnosis import (
    FilterModule,
    diagnosis_compare,
    finding_codes,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.findings import (
    DEFAULT_THRESHOLDS,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.options import (
    OptionError,
    merge_thresholds,
    validate_port,
    validate_probes,
)
from ansible_collections.hardenkit.nodeapp.plugins.modules import diagnose, reap_processes

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / "collections"


# --- probes and other diagnose options ------------------------------------------------------


@pytest.mark.parametrize(
    ("probes", "message"),
    [
        ([{"path": "api/health", "status": 200}], r"probes\[0\]\.path must be a string starting"),
        (
            [{"path": "/", "status": 200}, {"path": "/x", "status": 99}],
            r"probes\[1\]\.status must be an HTTP status 100-599, got 99",
        ),
        ([{"path": "/", "status": 600}], r"probes\[0\]\.status must be an HTTP status"),
        ([{"path": "/", "status": "ok"}], r"probes\[0\]\.status must be an integer"),
        ([{"path": "/", "status": True}], r"probes\[0\]\.status must be an integer"),
        ([{"path": "/", "status": 200.5}], r"probes\[0\]\.status must be an integer"),
        ([{"path": "/", "stauts": 200}], r"probes\[0\] has unknown key\(s\) stauts"),
        ([{"status": 200}], r"probes\[0\]\.path must be a string"),
        ([{"path": "/a b"}], r"probes\[0\]\.path must not contain whitespace"),
        (["/"], r"probes\[0\] must be a dict"),
        ("/", r"probes must be a list"),
    ],
)
def test_bad_probes_are_named(probes, message):
    with pytest.raises(OptionError, match=message):
        validate_probes(probes)


def test_good_probes_normalised():
    assert validate_probes([{"path": "/api/health"}, {"path": "/old", "status": "301"}]) == [
        {"path": "/api/health", "status": 200},
        {"path": "/old", "status": 301},
    ]
    assert validate_probes(None) == [{"path": "/", "status": 200}]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"memory_warn": 80}, r"thresholds\.memory_warn is not a known threshold"),
        ({"memory_warn_pct": "high"}, r"thresholds\.memory_warn_pct must be a number"),
        ({"disk_warn_pct": 0}, r"thresholds\.disk_warn_pct must be > 0"),
        ({"disk_crit_pct": 120}, r"thresholds\.disk_crit_pct must be <= 100"),
        ({"memory_warn_pct": 96}, r"thresholds\.memory_warn_pct \(96\) must not exceed"),
        ({"load_crit_per_cpu": 1.0}, r"must not exceed thresholds\.load_crit_per_cpu"),
    ],
)
def test_bad_thresholds_are_named(given, message):
    with pytest.raises(OptionError, match=message):
        merge_thresholds(given)


def test_thresholds_merge_over_defaults():
    merged = merge_thresholds({"memory_warn_pct": "80", "crash_loop_restarts": 3})
    assert merged == {**DEFAULT_THRESHOLDS, "memory_warn_pct": 80.0, "crash_loop_restarts": 3.0}


@pytest.mark.parametrize("port", [0, 65536, -1, "http"])
def test_bad_port(port):
    with pytest.raises(OptionError, match="app_port"):
        validate_port(port, "app_port")


def params(**overrides):
    base = {spec_name: spec.get("default") for spec_name, spec in diagnose.ARGUMENT_SPEC.items()}
    base.update(app_name="workbot", app_root="/srv/workbot")
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"probes": [{"path": "/", "status": 200}, {"path": "x"}]}, r"probes\[1\]\.path"),
        ({"app_root": "srv/workbot"}, "app_root must be an absolute path"),
        ({"app_port": 70000}, "app_port must be a TCP port"),
        ({"proxy_port": 0}, "proxy_port must be a TCP port"),
        ({"log_tail_lines": 0}, "log_tail_lines must be 1-100000"),
        ({"probe_timeout": 0.0}, "probe_timeout must be > 0"),
        ({"required_files": ["../etc/passwd"]}, r"required_files\[0\] must be relative"),
        ({"thresholds": {"disk_warn_pct": 99}}, r"thresholds\.disk_warn_pct"),
        ({"proxy_site": "sites-enabled/x.conf"}, "proxy_site must be an absolute path"),
        ({"nginx_conf_dir": "etc/nginx"}, "nginx_conf_dir must be an absolute path"),
        ({"nginx_conf_dir": ""}, "nginx_conf_dir must not be empty"),
    ],
)
def test_diagnose_build_options_errors(overrides, message):
    with pytest.raises(OptionError, match=message):
        diagnose.build_options(params(**overrides))


def test_diagnose_build_options_defaults():
    opts = diagnose.build_options(params())
    assert opts.resolved_pm2_home() == "/srv/workbot/.pm2"
    assert opts.probes == [{"path": "/", "status": 200}]
    assert opts.thresholds == DEFAULT_THRESHOLDS
    assert opts.app_port == 5000 and opts.proxy_port == 80
    # No proxy is expected unless the caller names the kit's site; Nginx's own config root.
    assert opts.proxy_site == "" and opts.nginx_conf_dir == "/etc/nginx"
    assert "/var/log/nginx/hardenkit-workbot.error.log" in opts.default_log_paths()
    site = "/etc/nginx/sites-enabled/hardenkit-workbot.conf"
    assert diagnose.build_options(params(proxy_site=site)).proxy_site == site


def test_diagnose_module_names_bad_probe(tmp_path):
    rc, out = run_module(
        "diagnose",
        {"app_name": "x", "app_root": str(tmp_path), "probes": [{"path": "api", "status": 200}]},
        tmp_path,
    )
    assert rc == 1
    assert out["failed"] is True
    assert out["msg"] == "probes[0].path must be a string starting with '/', got 'api'"


def test_diagnose_module_rejects_unknown_option(tmp_path):
    rc, out = run_module("diagnose", {"app_name": "x", "app_root": "/x", "app_prot": 1}, tmp_path)
    assert rc == 1 and "app_prot" in out["msg"]


def test_diagnose_module_in_check_mode_on_this_host(tmp_path):
    rc, out = run_module(
        "diagnose",
        {
            "app_name": "x",
            "app_root": str(tmp_path / "nothing"),
            "_ansible_check_mode": True,
            "app_port": 1,
            "proxy_port": 2,
            "probe_timeout": 2,
        },
        tmp_path,
    )
    assert rc == 0, out
    assert out["changed"] is False
    assert {"facts", "probes", "findings", "duration_ms"} <= set(out)
    assert {"build_missing", "route_failed", "no_reverse_proxy"} <= {
        f["code"] for f in out["findings"]
    }
    assert len(out["probes"]) == 2
    assert not (tmp_path / "nothing").exists()  # read-only


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


# --- filter plugin --------------------------------------------------------------------------


FINDINGS = [
    {"code": "dev_mode", "severity": "critical", "summary": "", "evidence": []},
    {"code": "log_errors", "severity": "warning", "summary": "", "evidence": []},
    {"code": "dev_mode", "severity": "critical", "summary": "", "evidence": []},
]


def test_filters_registered():
    assert set(FilterModule().filters()) == {"diagnosis_compare", "finding_codes"}


def test_finding_codes():
    assert finding_codes(FINDINGS) == ["dev_mode", "log_errors"]
    assert finding_codes(FINDINGS, severity="warning") == ["log_errors"]
    assert finding_codes({"findings": FINDINGS, "facts": {}}) == ["dev_mode", "log_errors"]
    assert finding_codes([]) == []
    with pytest.raises(AnsibleFilterError, match=r"findings\[0\] has no code"):
        finding_codes([{"severity": "critical"}])
    with pytest.raises(AnsibleFilterError, match="expected a list"):
        finding_codes("dev_mode")


def test_diagnosis_compare_filter():
    before = {"findings": FINDINGS, "probes": [], "facts": {}}
    after = {"findings": FINDINGS[1:2], "probes": [], "facts": {}}
    assert diagnosis_compare(before, after)["verdict"] == "improved"
    assert diagnosis_compare(before, after, outcome="rolled_back")["verdict"] == "rolled_back"
    assert diagnosis_compare(before, after, reloads=2, outcome="")["verdict"] == "improved"
    with pytest.raises(AnsibleFilterError, match="outcome must be one of"):
        diagnosis_compare(before, after, outcome="nope")
    with pytest.raises(AnsibleFilterError, match="before must be a diagnose result"):
        diagnosis_compare(["x"], after)


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
