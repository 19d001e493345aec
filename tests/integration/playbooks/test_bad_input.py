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
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
APP = str(ROOT / "examples" / "workbot")
# Small apps with one thing wrong each (no lockfile; a packageManager against the lockfile).
APPS = Path(__file__).resolve().parent / "apps"

GOOD = {
    "app_name": "workbot",
    "app_src": APP,
    "app_script": "dist/server.js",
    "app_script_args": "",
    # The Makefile's local Node.js mirror (scripts/node-mirror.py): the version is decided
    # against its release list in validation.
    "node_runtime_mirror": os.environ.get("HARDENKIT_NODE_MIRROR", "http://127.0.0.1:48021/"),
}

# The tasks of harden.yml's first plays that refuse bad input.
VALIDATION_STEPS = (
    "Validate the input of each role",
    "Refuse settings no role knows",
    "Refuse an inventory whose app_servers group is empty",
    "Refuse apps of one machine that would clash",
)

# A database URL whose password must never appear in the output.
DB_SECRET = "s3cret-db-pw"
DB_URL = f"postgres://workbot:{DB_SECRET}@db.internal:5432/workbot"

CASES = [
    ("port-too-high", {"app_port": 70000}, "app_port"),
    ("port-zero", {"app_port": 0}, "app_port"),
    ("port-not-a-number", {"app_port": "abc"}, "app_port"),
    ("name-with-space", {"app_name": "Work Bot"}, "app_name"),
    ("no-source", {"app_src": ""}, "app_src"),
    ("typo-in-a-setting", {"pm2_instance": 2}, "pm2_instance (did you mean pm2_instances?)"),
    ("source-without-package-json", {"app_src": str(ROOT / "tests")}, "app_src"),
    ("source-without-lockfile", {"app_src": str(APPS / "no-lockfile")}, "no lockfile found"),
    (
        "package-manager-pin-against-the-lockfile",
        {"app_src": str(APPS / "pin-mismatch")},
        'packageManager\\" says pnpm@9.15.9 but the lockfile is package-lock.json',
    ),
    ("probe-without-status", {"app_probes": [{"path": "/"}]}, "status"),
    ("probe-not-a-mapping", {"app_probes": ["/api/health"]}, "app_probes"),
    ("probe-status-out-of-range", {"app_probes": [{"path": "/", "status": 999}]}, "app_probes[0]"),
    ("probe-path-relative", {"app_probes": [{"path": "health", "status": 200}]}, "app_probes[0]"),
    (
        "unknown-install-method",
        {"node_runtime_install_method": "snap"},
        "node_runtime_install_method",
    ),
    (
        "tarball-without-sha",
        {
            "node_runtime_install_method": "tarball",
            "node_runtime_tarball_url": "https://example.invalid/node.tgz",
        },
        "node_runtime_tarball_sha256",
    ),
    (
        "node-version-no-release",
        {"node_runtime_version": "19"},
        "node_runtime_version asks for Node.js '19'",
    ),
    ("node-version-not-a-spec", {"node_runtime_version": "twenty-two"}, "node_runtime_version"),
    (
        "nvmrc-names-no-lts-line",
        {"app_src": str(APPS / "nvmrc-typo")},
        "no Node.js LTS line is called 'hydrogem'",
    ),
    (
        "engines-node-allows-no-release",
        {"app_src": str(APPS / "engines-too-new")},
        "package.json engines.node in",
    ),
    (
        "node-mirror-unreachable",
        {"node_runtime_mirror": "http://127.0.0.1:9/"},
        "set node_runtime_mirror",
    ),
    ("node-mirror-not-a-url", {"node_runtime_mirror": "nodejs.org/dist"}, "node_runtime_mirror"),
    (
        "static-export",
        {"app_src": str(APPS / "static-export")},
        "next.config sets output: 'export'",
    ),
    ("standalone-maybe", {"app_standalone": "maybe"}, "app_standalone must be auto, true or false"),
    (
        "subdir-outside-the-source",
        {"app_subdir": "../other"},
        "app_subdir must be the app's directory",
    ),
    ("subdir-without-package-json", {"app_subdir": "app"}, "has no app/package.json"),
    (
        "standalone-in-a-monorepo",
        {"app_src": str(APPS / "monorepo-standalone"), "app_subdir": "web"},
        "output: 'standalone' in a monorepo is not supported yet",
    ),
    ("negative-instances", {"pm2_instances": -1}, "pm2_instances"),
    # The connection budget (issue 20). pm2_instances is given: with one per CPU, validation
    # reads the host's CPUs, and these hosts do not exist.
    (
        "db-budget-below-the-workers",
        {"app_db_connection_budget": 3, "pm2_instances": 4, "app_env": {"DATABASE_URL": DB_URL}},
        "app_db_connection_budget 3 is below what 4 PM2 worker(s) need",
    ),
    (
        "db-budget-without-the-url",
        {"app_db_connection_budget": 10, "pm2_instances": 2},
        "app_env has no DATABASE_URL",
    ),
    (
        "db-url-variable-not-in-app-env",
        {"app_db_url_env": "PG_URL", "app_env": {"DATABASE_URL": DB_URL}},
        "app_db_url_env names PG_URL, which app_env does not set",
    ),
    (
        "db-url-not-a-database-url",
        {
            "app_db_connection_budget": 10,
            "pm2_instances": 2,
            "app_env": {"DATABASE_URL": "redis://app:" + DB_SECRET + "@cache:6379"},
        },
        "DATABASE_URL in app_env must start with postgres://",
    ),
    (
        "db-pool-variable-set-in-app-env",
        {
            "app_db_connection_budget": 10,
            "pm2_instances": 2,
            "app_env": {"DATABASE_URL": DB_URL, "DB_POOL_MAX": "20"},
        },
        "app_env sets DB_POOL_MAX",
    ),
    (
        "db-pool-variable-the-kit-sets",
        {
            "app_db_connection_budget": 10,
            "pm2_instances": 2,
            "app_db_pool_env": "PORT",
            "app_env": {"DATABASE_URL": DB_URL},
        },
        "app_db_pool_env must not be PORT",
    ),
    ("db-budget-negative", {"app_db_connection_budget": -5}, "app_db_connection_budget must be 0"),
    ("memory-fraction", {"pm2_memory_fraction": 1.5}, "pm2_memory_fraction"),
    (
        "shared-path-escapes",
        {"app_release_shared_paths": ["public/uploads", "../etc"]},
        "app_release_shared_paths[1] must be a relative path",
    ),
    ("hook-timeout-zero", {"app_release_hook_timeout": 0}, "app_release_hook_timeout positive"),
    (
        "hook-with-an-unknown-key",
        {
            "app_release_hooks": {
                "before_switch": [{"command": "npm run migrate", "run_once": True}]
            }
        },
        "app_release_hooks.before_switch[0] has unknown keys run_once",
    ),
    (
        "shared-path-is-the-builds",
        {"app_release_shared_paths": ["node_modules"]},
        "app_release_shared_paths[0] (node_modules) is the build's or the kit's own",
    ),
    (
        "server-actions-key-too-short",
        {"app_env": {"NEXT_SERVER_ACTIONS_ENCRYPTION_KEY": "c2hvcnQta2V5"}},
        "app_env.NEXT_SERVER_ACTIONS_ENCRYPTION_KEY must be an AES key of 16, 24 or 32 bytes",
    ),
    ("app-env-not-a-mapping", {"app_env": "DATABASE_URL=x"}, "app_env"),
    ("app-env-bad-key", {"app_env": {"BAD-KEY": "x"}}, "app_env"),
    (
        "app-env-node-options",
        {"app_env": {"NODE_OPTIONS": "--max-old-space-size=4096"}},
        "app_env must not set NODE_OPTIONS",
    ),
    ("tls-without-certificate", {"nginx_proxy_tls_enabled": True}, "nginx_proxy_tls_certificate"),
    ("bad-rate-limit", {"nginx_proxy_rate_limit": "fast"}, "nginx_proxy_rate_limit"),
    (
        "bad-body-size",
        {"nginx_proxy_client_max_body_size": "ten megs"},
        "nginx_proxy_client_max_body_size",
    ),
    ("lb-max-fails-zero", {"nginx_proxy_lb_max_fails": 0}, "nginx_proxy_lb_max_fails"),
    (
        "lb-connect-timeout-too-long",
        {"nginx_proxy_lb_connect_timeout": 120},
        "nginx_proxy_lb_connect_timeout",
    ),
    (
        "backend-address-with-port",
        {"nginx_proxy_backend_address": "10.0.0.11:8080"},
        "nginx_proxy_backend_address",
    ),
    ("lb-address-a-name", {"nginx_proxy_lb_address": "lb1.example.com"}, "nginx_proxy_lb_address"),
    ("root-as-app-root", {"app_root": "/"}, "app_root"),
    ("app-root-with-dot-dot", {"app_root": "/srv/workbot/../.."}, "no . or .. parts"),
    ("app-root-var-log", {"app_root": "/var/log"}, "app_root"),
    # The app user owns PM2's directories: never a system directory such as /var/log.
    ("pm2-log-dir-var-log", {"pm2_log_dir": "/var/log/"}, "pm2_log_dir and pm2_home"),
    ("pm2-home-dot-dot", {"pm2_home": "/srv/workbot/../../etc"}, "pm2_log_dir and pm2_home"),
    ("root-as-app-user", {"app_user": "root"}, "app_user"),
    ("keep-one-release", {"app_release_keep": 1}, "app_release_keep"),
    (
        "progress-every-0-seconds",
        {"app_release_progress_interval": 0},
        "app_release_progress_interval",
    ),
    ("bad-logrotate-size", {"logrotate_max_size": "lots"}, "logrotate_max_size"),
    ("watchdog-interval-1", {"watchdog_interval": 1}, "watchdog_interval"),
    (
        "watchdog-webhook-ftp",
        {"watchdog_webhook_url": "ftp://alerts.invalid/"},
        "watchdog_webhook_url",
    ),
    # L1: a newline, tab or quote would start a directive of its own in a unit or config
    (
        "l1-app-root-unit-injection",
        {"app_root": "/srv/wb\nExecStartPre=+/usr/bin/touch\t/run/hk-pwned"},
        "app_root",
    ),
    ("l1-app-root-trailing-newline", {"app_root": "/srv/wb\n"}, "app_root"),
    ("l1-app-name-trailing-newline", {"app_name": "workbot\n"}, "app_name"),
    ("l1-app-env-key-newline", {"app_env": {"A\n": "x"}}, "app_env"),
    ("l1-server-name-newline", {"app_server_name": "example.com\n"}, "app_server_name"),
    (
        "l1-probe-path-newline",
        {"app_probes": [{"path": "/health\nX", "status": 200}]},
        "app_probes[0]",
    ),
    (
        "l1-proxy-url-quote",
        {"node_runtime_https_proxy": 'http://proxy:3128/";\nAcquire::http::Pipeline-Depth "0'},
        "node_runtime_https_proxy",
    ),
    (
        "l1-proxy-url-trailing-newline",
        {"node_runtime_http_proxy": "http://proxy:3128\n"},
        "node_runtime_http_proxy",
    ),
    ("l1-nginx-path-semicolon", {"nginx_proxy_ws_path": "/ws; return 200"}, "nginx_proxy_ws_path"),
    (
        "l1-nginx-rate-limit-path-brace",
        {"nginx_proxy_rate_limit_paths": ["/api/ { }"]},
        "nginx_proxy_rate_limit_paths",
    ),
    (
        "l1-nginx-certificate-semicolon",
        {
            "nginx_proxy_tls_enabled": True,
            "nginx_proxy_tls_certificate": "/etc/ssl/c.pem;x",
            "nginx_proxy_tls_certificate_key": "/etc/ssl/k.pem",
        },
        "nginx_proxy_tls_certificate",
    ),
    (
        "l1-nginx-rate-limit-trailing-newline",
        {"nginx_proxy_rate_limit": "10r/s\n"},
        "nginx_proxy_rate_limit",
    ),
]


# One server: the same host in both groups.
SINGLE = (
    "    app_servers: {hosts: {hk-does-not-exist: {}}}\n"
    "    load_balancers: {hosts: {hk-does-not-exist: {}}}\n"
)


def kit_env() -> dict[str, str]:
    """ansible-playbook as a user of the checkout runs it (its ansible.cfg and collection),
    without colour and without a fact cache on disk."""
    return {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_CACHE_PLUGIN": "memory",
    }


def write_inventory(tmp_path: Path, groups: str, settings: dict) -> Path:
    """An inventory of hosts that do not exist (Docker containers, so no connection is tried
    before one is needed) in ``groups``, with ``settings`` for all of them: a host's own
    variables in ``groups`` win over these, extra variables over both."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n"
        "  vars:\n"
        "    ansible_connection: community.docker.docker\n"
        "    ansible_user: root\n"
        + "".join(f"    {name}: {json.dumps(value)}\n" for name, value in settings.items())
        + "  children:\n"
        + groups
    )
    return inventory


def run_harden(
    tmp_path: Path, extra: dict, groups: str = SINGLE, args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """harden.yml with GOOD settings in the inventory and the case's ``extra`` as extra
    variables."""
    inventory = write_inventory(
        tmp_path, groups, {**GOOD, "hardenkit_reports_dir": str(tmp_path / "reports")}
    )
    extra_file = tmp_path / "extra.json"
    extra_file.write_text(json.dumps(extra))
    return subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            "harden.yml",
            "-e",
            f"@{extra_file}",
            *args,
        ],
        cwd=ROOT,
        env=kit_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def recap(output: str, host: str = "hk-does-not-exist") -> dict[str, int]:
    match = re.search(
        rf"{re.escape(host)}\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
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
    assert any(step in output for step in VALIDATION_STEPS)
    failed_block = output[output.index("fatal:") :] if "fatal:" in output else output
    assert named in failed_block, f"{case}: no mention of {named}\n{failed_block[:3000]}"
    assert DB_SECRET not in output


def test_good_input_passes_validation_and_reaches_the_host(tmp_path):
    """The control case: valid input gets past validation and only then meets the host."""
    result = run_harden(tmp_path, {})
    output = result.stdout + result.stderr
    counts = recap(output)
    assert result.returncode != 0
    assert "No such container: hk-does-not-exist" in output, output[-3000:]
    assert counts["changed"] == 0


# A load balancer in front of two app servers (docs/scaling.md). Their addresses are set, so
# nothing needs the hosts' facts before the app servers' play.
FLEET = (
    "    app_servers:\n"
    "      hosts:\n"
    "        hk-does-not-exist-app1: {nginx_proxy_backend_address: 10.0.0.11}\n"
    "        hk-does-not-exist-app2: {nginx_proxy_backend_address: 10.0.0.12}\n"
    "    load_balancers:\n"
    "      hosts:\n"
    "        hk-does-not-exist-lb: {nginx_proxy_lb_address: 10.0.0.5}\n"
)
FLEET_HOSTS = ["hk-does-not-exist-app1", "hk-does-not-exist-app2", "hk-does-not-exist-lb"]

FLEET_CASES = [
    # TLS for every host: the app servers would redirect the load balancer's plain HTTP
    (
        "tls-on-app-servers-behind-a-load-balancer",
        {
            "nginx_proxy_tls_enabled": True,
            "nginx_proxy_tls_certificate": "/etc/ssl/c.pem",
            "nginx_proxy_tls_certificate_key": "/etc/ssl/k.pem",
        },
        FLEET,
        "nginx_proxy_tls_enabled must be false on app servers behind",
    ),
    # A host under `all:` alone would be in no play: the run would do nothing and exit 0.
    (
        "no-app-servers",
        {},
        "    ungrouped: {hosts: {hk-does-not-exist-app1: {}}}\n",
        "group app_servers is empty",
    ),
    (
        "load-balancer-without-app-servers",
        {},
        "    app_servers: {hosts: {}}\n    load_balancers: {hosts: {hk-does-not-exist-lb: {}}}\n",
        "app_servers is empty",
    ),
    # set on an app server, checked by the load balancer that renders it as well
    (
        "backend-port-out-of-range",
        {},
        FLEET.replace("10.0.0.12}", "10.0.0.12, nginx_proxy_backend_port: 70000}"),
        "nginx_proxy_backend_port",
    ),
]


@pytest.mark.parametrize(
    ("case", "extra", "groups", "named"), FLEET_CASES, ids=[c[0] for c in FLEET_CASES]
)
def test_bad_fleet_input_is_rejected_before_any_change(tmp_path, case, extra, groups, named):
    result = run_harden(tmp_path, extra, groups)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{case}: the run succeeded\n{output[-3000:]}"
    assert "No such container" not in output, f"{case}: validation let it through\n{output[-3000:]}"
    assert any(step in output for step in VALIDATION_STEPS)
    # Without app servers, the inventory check on the control node is what fails.
    no_app_servers = "app_servers:" not in groups or "app_servers: {hosts: {}}" in groups
    hosts = ["localhost"] if no_app_servers else [h for h in FLEET_HOSTS if h in groups]
    counts = [recap(output, host) for host in hosts]
    assert all(c["changed"] == 0 for c in counts)
    assert sum(c["failed"] for c in counts) >= 1
    failed_block = output[output.index("fatal:") :] if "fatal:" in output else output
    assert named in failed_block, f"{case}: no mention of {named}\n{failed_block[:3000]}"


def test_good_fleet_input_passes_validation_and_reaches_the_hosts(tmp_path):
    """The control case for the fleet: only app servers reach the host-touching plays'
    first task; the load balancer is validated for Nginx alone."""
    result = run_harden(tmp_path, {}, FLEET)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "No such container: hk-does-not-exist-app1" in output, output[-3000:]
    assert all(recap(output, host)["changed"] == 0 for host in FLEET_HOSTS)
    included = re.findall(r"included: hardenkit\.nodeapp\.(\w+) for ([^=]+?) =>", output)
    lb_roles = {role for role, hosts in included if "hk-does-not-exist-lb" in hosts}
    assert lb_roles == {"app", "nginx_proxy"}, included


def test_unknown_load_balancer_address_stops_before_any_change(tmp_path):
    """Facts give a load balancer's address; when it cannot be asked and its name is no IP
    address, the app servers cannot trust it (Nginx's geo takes addresses only): the run
    stops in the play that learns the addresses, before the app servers' play."""
    groups = FLEET.replace("{nginx_proxy_lb_address: 10.0.0.5}", "{}")
    result = run_harden(tmp_path, {}, groups)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "PLAY [Harden the app servers]" not in output, output[-3000:]
    assert all(recap(output, host)["changed"] == 0 for host in FLEET_HOSTS)
    failed_block = output[output.index("fatal:") :] if "fatal:" in output else output
    assert "nginx_proxy_lb_address for hk-does-not-exist-lb" in failed_block, failed_block[:3000]


def test_the_demo_inventory_without_its_container_says_make_demo(tmp_path):
    """A bare `ansible-playbook harden.yml` uses the demo inventory (ansible.cfg); without
    its container the run stops in validation with one line saying what to do."""
    extra = {
        "hardenkit_demo_container": "hk-does-not-exist-demo",
        "node_runtime_mirror": GOOD["node_runtime_mirror"],
        "hardenkit_reports_dir": str(tmp_path / "reports"),
    }
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "harden.yml", "-e", json.dumps(extra)],
        cwd=ROOT,
        env=kit_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "The demo container hk-does-not-exist-demo is not running" in output, output[-3000:]
    assert "run `make demo` to create it" in output
    assert recap(output, "hardenkit-demo") == {"ok": 2, "changed": 0, "unreachable": 0, "failed": 1}
    assert "Validate the input of each role" not in output  # stopped before any role ran


# Two apps on one machine (docs/scaling.md, "Several apps on one machine"): two inventory
# hosts with one connection and one hardenkit_machine, each with its own name, port, server
# name and memory share, one of them the default server. app_name is theirs, not GOOD's.
MACHINE = (
    "    app_servers:\n"
    "      hosts:\n"
    "        hk-does-not-exist-shop: {ansible_host: hk-does-not-exist, hardenkit_machine: web1,"
    " app_name: shop, app_port: 3000, app_server_name: shop.test, pm2_memory_fraction: 0.4}\n"
    "        hk-does-not-exist-admin: {ansible_host: hk-does-not-exist, hardenkit_machine: web1,"
    " app_name: admin, app_port: 3001, app_server_name: admin.test,"
    " nginx_proxy_default_server: false, pm2_memory_fraction: 0.3}\n"
    "    load_balancers:\n"
    "      hosts:\n"
    "        hk-does-not-exist-shop: {}\n"
    "        hk-does-not-exist-admin: {}\n"
)
MACHINE_HOSTS = ["hk-does-not-exist-shop", "hk-does-not-exist-admin"]

MACHINE_CASES = [
    ("one-app-name-twice", MACHINE.replace("app_name: admin", "app_name: shop"), "app_name"),
    ("one-port-twice", MACHINE.replace("app_port: 3001", "app_port: 3000"), "app_port"),
    # admin's app port is shop's gate port (3000 + 10000)
    (
        "a-port-that-is-the-others-gate",
        MACHINE.replace("app_port: 3001", "app_port: 13000"),
        "app_release_gate_port",
    ),
    (
        "two-default-servers",
        MACHINE.replace(" nginx_proxy_default_server: false,", ""),
        "nginx_proxy_default_server",
    ),
    ("one-server-name-twice", MACHINE.replace("admin.test", "shop.test"), "app_server_name"),
    (
        "memory-over-the-machine",
        MACHINE.replace("pm2_memory_fraction: 0.3", "pm2_memory_fraction: 0.7"),
        "pm2_memory_fraction",
    ),
    (
        "two-node-versions",
        MACHINE.replace("app_name: admin,", "app_name: admin, node_runtime_version: '22',"),
        "node_runtime_version_decided",
    ),
    (
        "one-machine-two-names",
        MACHINE.replace(
            "hardenkit_machine: web1, app_name: admin", "hardenkit_machine: web2, app_name: admin"
        ),
        "hardenkit_machine",
    ),
    (
        "a-machine-called-fleet",
        MACHINE.replace("hardenkit_machine: web1", "hardenkit_machine: fleet"),
        "fleet",
    ),
]


@pytest.mark.parametrize(
    ("case", "groups", "named"), MACHINE_CASES, ids=[c[0] for c in MACHINE_CASES]
)
def test_apps_that_clash_on_one_machine_are_refused_before_any_change(
    tmp_path, case, groups, named
):
    result = run_harden(tmp_path, {}, groups)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{case}: the run succeeded\n{output[-3000:]}"
    assert "No such container" not in output, f"{case}: validation let it through\n{output[-3000:]}"
    assert all(recap(output, host)["changed"] == 0 for host in MACHINE_HOSTS)
    failed_block = output[output.index("fatal:") :] if "fatal:" in output else output
    assert "Refuse apps of one machine that would clash" in output
    assert named in failed_block, f"{case}: no mention of {named}\n{failed_block[:3000]}"


def test_two_apps_that_fit_one_machine_pass_validation(tmp_path):
    """The control case: both apps get past validation and only then meet the machine."""
    result = run_harden(tmp_path, {}, MACHINE)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "No such container: hk-does-not-exist" in output, output[-3000:]
    assert all(recap(output, host)["changed"] == 0 for host in MACHINE_HOSTS)


def git_repo(tmp_path: Path, app: Path) -> str:
    """A bare git repository of ``app`` on the control node, as a file:// URL."""
    work, bare = tmp_path / "work", tmp_path / "app.git"
    shutil.copytree(app, work)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=work, check=True)
    subprocess.run([*git, "add", "-A"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "app"], cwd=work, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return f"file://{bare}"


def test_a_git_source_is_read_on_the_control_node_before_any_change(tmp_path):
    """app_git_repo's lockfile and packageManager are checked like app_src's: a pin against
    the lockfile is refused in validation, before the host is reached."""
    repo = git_repo(tmp_path, APPS / "pin-mismatch")
    result = run_harden(tmp_path, {"app_src": "", "app_git_repo": repo})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "No such container" not in output, output[-3000:]
    assert recap(output)["changed"] == 0
    assert "says pnpm@9.15.9 but the lockfile is package-lock.json" in output, output[-3000:]


def test_a_git_source_decides_node_and_the_manager_from_its_files(tmp_path):
    """The pnpm 9 app in git: its .nvmrc (22) and its pin decide, as from app_src."""
    repo = git_repo(tmp_path, ROOT / "tests" / "apps" / "pnpm9-pinned")
    result = run_harden(tmp_path, {"app_src": "", "app_git_repo": repo}, args=("-v",))
    output = result.stdout + result.stderr
    assert "No such container: hk-does-not-exist" in output, output[-3000:]
    assert recap(output)["changed"] == 0
    assert re.search(r'"source": "\.nvmrc"', output), output[-3000:]
    assert re.search(r'"dir_name": "pnpm-9\.15\.9"', output), output[-3000:]


def test_a_git_source_the_control_node_cannot_read_falls_back_with_a_warning(tmp_path):
    """A repository only the host can reach (here a path that is not on the control node)."""
    result = run_harden(tmp_path, {"app_src": "", "app_git_repo": "/opt/workbot.git"})
    output = result.stdout + result.stderr
    assert "No such container: hk-does-not-exist" in output, output[-3000:]
    assert "could not be read from the control node" in output
