"""The diagnose module's options (modules/diagnose.py).

Validation functions are called directly; a few cases run the module as Ansible would
(``python -m`` with a JSON args file) to check the message the user sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.findings import (
    DEFAULT_THRESHOLDS,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.options import (
    OptionError,
)
from ansible_collections.hardenkit.nodeapp.plugins.modules import diagnose
from tests.hk_testlib import run_module

ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = ROOT / "collections"


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
