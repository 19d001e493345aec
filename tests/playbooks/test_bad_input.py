"""Bad input is rejected by harden.yml's first play, before any host is touched.

Each case runs the real `ansible-playbook harden.yml` with one invalid setting against a
host that cannot be reached (a Docker container that does not exist): validation needs no
connection, so a rejected input fails in the first play with a message naming the
variable, and `changed=0`. If validation let a case through, the run would instead meet
the missing container ("No such container") in a later play, and the test fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
APP = str(ROOT / "examples" / "workbot")

GOOD = {
    "app_name": "workbot",
    "app_src": APP,
    "app_script": "dist/server.js",
    "app_script_args": "",
}

CASES = [
    ("port-too-high", {"app_port": 70000}, "app_port"),
    ("port-zero", {"app_port": 0}, "app_port"),
    ("port-not-a-number", {"app_port": "abc"}, "app_port"),
    ("name-with-space", {"app_name": "Work Bot"}, "app_name"),
    ("no-source", {"app_src": ""}, "app_src"),
    ("source-without-lockfile", {"app_src": str(ROOT / "tests")}, "app_src"),
    ("probe-without-status", {"app_probes": [{"path": "/"}]}, "status"),
    ("probe-not-a-mapping", {"app_probes": ["/api/health"]}, "app_probes"),
    ("probe-status-out-of-range", {"app_probes": [{"path": "/", "status": 999}]}, "app_probes[0]"),
    ("probe-path-relative", {"app_probes": [{"path": "health", "status": 200}]}, "app_probes[0]"),
    ("unknown-install-method", {"node_runtime_install_method": "snap"},
     "node_runtime_install_method"),
    ("tarball-without-sha", {"node_runtime_install_method": "tarball",
                             "node_runtime_tarball_url": "https://example.invalid/node.tgz"},
     "node_runtime_tarball_sha256"),
    ("negative-instances", {"pm2_instances": -1}, "pm2_instances"),
    ("memory-fraction", {"pm2_memory_fraction": 1.5}, "pm2_memory_fraction"),
    ("app-env-not-a-mapping", {"app_env": "DATABASE_URL=x"}, "app_env"),
    ("app-env-bad-key", {"app_env": {"BAD-KEY": "x"}}, "app_env"),
    ("tls-without-certificate", {"nginx_proxy_tls_enabled": True}, "nginx_proxy_tls_certificate"),
    ("bad-rate-limit", {"nginx_proxy_rate_limit": "fast"}, "nginx_proxy_rate_limit"),
    ("bad-body-size", {"nginx_proxy_client_max_body_size": "ten megs"},
     "nginx_proxy_client_max_body_size"),
    ("root-as-app-root", {"app_root": "/"}, "app_root"),
    ("root-as-app-user", {"app_user": "root"}, "app_user"),
    ("keep-one-release", {"app_release_keep": 1}, "app_release_keep"),
    ("bad-logrotate-size", {"logrotate_max_size": "lots"}, "logrotate_max_size"),
    ("watchdog-interval-1", {"watchdog_interval": 1}, "watchdog_interval"),
    ("watchdog-webhook-ftp", {"watchdog_webhook_url": "ftp://alerts.invalid/"},
     "watchdog_webhook_url"),
]


def run_harden(tmp_path: Path, extra: dict) -> subprocess.CompletedProcess:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n"
        "  vars:\n"
        "    ansible_connection: community.docker.docker\n"
        "    ansible_user: root\n"
        "  children:\n"
        "    app_servers: {hosts: {hk-does-not-exist: {}}}\n"
        "    load_balancers: {hosts: {hk-does-not-exist: {}}}\n"
    )
    extra_file = tmp_path / "extra.json"
    extra_file.write_text(json.dumps({**GOOD, **extra,
                                      "hardenkit_reports_dir": str(tmp_path / "reports")}))
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_CACHE_PLUGIN": "memory",
    }
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "harden.yml",
         "-e", f"@{extra_file}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def recap(output: str) -> dict[str, int]:
    match = re.search(
        r"hk-does-not-exist\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
        output,
    )
    assert match, f"no recap in output:\n{output[-3000:]}"
    ok, changed, unreachable, failed = map(int, match.groups())
    return {"ok": ok, "changed": changed, "unreachable": unreachable, "failed": failed}


@pytest.mark.parametrize(("case", "extra", "named"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_before_any_change(tmp_path, case, extra, named):
    result = run_harden(tmp_path, extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{case}: the run succeeded\n{output[-3000:]}"
    counts = recap(output)
    assert counts["changed"] == 0
    assert "No such container" not in output, f"{case}: validation let it through\n{output[-3000:]}"
    assert counts["failed"] == 1
    assert "Validate the input of each role" in output
    failed_block = output[output.index("fatal:"):] if "fatal:" in output else output
    assert named in failed_block, f"{case}: no mention of {named}\n{failed_block[:3000]}"


def test_good_input_passes_validation_and_reaches_the_host(tmp_path):
    """The control case: valid input gets past validation and only then meets the host."""
    result = run_harden(tmp_path, {})
    output = result.stdout + result.stderr
    counts = recap(output)
    assert result.returncode != 0
    assert "No such container: hk-does-not-exist" in output, output[-3000:]
    assert counts["changed"] == 0
