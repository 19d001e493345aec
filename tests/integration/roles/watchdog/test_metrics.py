"""The watchdog's metrics and the alert rules shipped for them (issue 20), checked by real
programs: Debian's ``promtool`` (``HARDENKIT_PROMTOOL``, else
scripts/fetch-debian-binary.sh unpacks it) and the watchdog script run as its unit runs it
on a host.

- The script, with the modules the role installs beside it (roles/watchdog/vars/main.yml's
  entries, in the same tree), runs under ``/usr/bin/python3 -I``: no Ansible on its path,
  as on an app server. Its probe goes to a real local HTTP server, its database check to a
  real listening socket, ``systemctl`` is a script on PATH answering for the PM2 unit, whose
  cgroup is this test's own. ``promtool check metrics`` lints what it writes.
- ``promtool check rules`` and ``promtool test rules`` (alerts_test.yml) on docs/alerts.yml;
  every metric a rule reads is one the watchdog writes.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.roles.watchdog.test_watchdog_role import ROLE, ROOT, render_text

HERE = Path(__file__).resolve().parent
RULES = ROOT / "docs" / "alerts.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    given = os.environ.get("HARDENKIT_PROMTOOL")
    if given:
        return given
    out = subprocess.run(
        [
            str(ROOT / "scripts" / "fetch-debian-binary.sh"),
            "prometheus",
            "usr/bin/promtool",
            "--version",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return out.stdout.strip()


def run_promtool(promtool: str, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [promtool, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=HERE,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_the_alert_rules_pass_promtool(promtool):
    assert "SUCCESS: 10 rules found" in run_promtool(promtool, "check", "rules", str(RULES))


def test_the_alert_rules_fire_when_they_should(promtool):
    run_promtool(promtool, "test", "rules", "alerts_test.yml")


class Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(Health.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def host(tmp_path: Path) -> Iterator[dict]:
    """The watchdog laid out as the role installs it, its settings, and what it probes."""
    files = json.loads(
        render_text("{{ __watchdog_files | selectattr('file', 'defined') | list | to_json }}")
    )
    lib = tmp_path / "usr/local/lib/hardenkit"
    for entry in files:
        source = Path(entry["file"])
        source = source if source.is_absolute() else ROLE / "files" / source
        dest = tmp_path / entry["path"].lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, dest)
    script = lib / "hardenkit-watchdog.py"
    assert script.is_file()

    own_cgroup = Path("/proc/self/cgroup").read_text().strip().rpartition("::")[2]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = show ] && printf "ActiveState=active\\nMainPID={os.getpid()}\\n'
        f'ControlGroup={own_cgroup}\\n" && exit 0\nexit 0\n'
    )
    systemctl.chmod(0o755)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    database = socket.socket()
    database.bind(("127.0.0.1", 0))
    database.listen(8)
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    link = tmp_path / "srv/workbot/current"
    (tmp_path / "srv/workbot/releases/20261207T080000Z-abc1234").mkdir(parents=True)
    link.symlink_to("releases/20261207T080000Z-abc1234")
    cfg = {
        "app": "workbot",
        "app_user": "root",
        "health_path": "/api/health",
        "health_status": 200,
        "direct_url": f"http://127.0.0.1:{server.server_port}/api/health",
        "upstream_url": f"http://127.0.0.1:{server.server_port}/api/health",
        "host_header": "localhost",
        "timeout": 2,
        "failures_before_action": 3,
        "max_actions": 3,
        "action_window": 3600,
        "pm2_service": "pm2-workbot",
        "state_file": str(tmp_path / "state/workbot.json"),
        "webhook_url": "",
        "deploy_grace": 0,
        "current_link": str(link),
        "database": {"scheme": "postgres", "host": "127.0.0.1", "port": 0, "budget": 12},
        "metrics_file": str(textfiles / "hardenkit_workbot.prom"),
        "run_record": str(tmp_path / "state/workbot.run.json"),
    }
    (tmp_path / "state").mkdir()
    Path(cfg["run_record"]).write_text('{"verdict": "improved", "finished": 1796000000}\n')
    cfg["database"]["port"] = database.getsockname()[1]
    config = tmp_path / "workbot.json"
    config.write_text(json.dumps(cfg))
    try:
        yield {"script": script, "config": config, "cfg": cfg, "bin": bin_dir}
    finally:
        server.shutdown()
        database.close()


def run_watchdog(host: dict) -> str:
    proc = subprocess.run(
        ["/usr/bin/python3", "-I", str(host["script"]), str(host["config"])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": f"{host['bin']}:/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Path(host["cfg"]["metrics_file"]).read_text(encoding="utf-8")


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_the_watchdog_writes_every_metric_as_a_host_runs_it(host, promtool):
    text = run_watchdog(host)
    run_promtool(promtool, "check", "metrics", stdin=text)
    path = Path(host["cfg"]["metrics_file"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    got = samples(text)
    app = 'app="workbot"'
    direct = f'{{{app},path="/api/health",route="direct"}}'
    assert got[f"hardenkit_probe_up{direct}"] == 1
    assert got[f'hardenkit_probe_up{{{app},path="/api/health",route="nginx"}}'] == 1
    assert 0 < got[f"hardenkit_probe_duration_seconds{direct}"] < 2
    assert got[f"hardenkit_pm2_workers_online{{{app}}}"] >= 0
    assert got[f"hardenkit_pm2_worker_starts_total{{{app}}}"] == 0  # the first run counts none
    for action in ("reload", "restart", "reload-nginx", "hold", "db_down"):
        assert got[f'hardenkit_watchdog_actions_total{{{app},action="{action}"}}'] == 0
    release = '{app="workbot",release="20261207T080000Z-abc1234"}'
    assert got[f"hardenkit_release_info{release}"] == 1
    assert got[f'hardenkit_run_verdict{{{app},verdict="improved"}}'] == 1
    assert got[f"hardenkit_run_finished_timestamp_seconds{{{app}}}"] == 1796000000
    assert got[f"hardenkit_database_up{{{app}}}"] == 1
    assert got[f"hardenkit_database_connections{{{app}}}"] == 0
    assert got[f"hardenkit_database_connection_budget{{{app}}}"] == 12
    assert got[f"hardenkit_watchdog_last_run_timestamp_seconds{{{app}}}"] > 1.7e9
    # Every metric a shipped rule reads is one the watchdog writes.
    written = {name.partition("{")[0] for name in got}
    read = set(re.findall(r"\bhardenkit_[a-z_]+\b", RULES.read_text(encoding="utf-8")))
    assert read <= written, read - written


def test_the_metrics_follow_the_app_and_its_database(host):
    run_watchdog(host)
    Health.status = 503
    try:
        failing = samples(run_watchdog(host))
    finally:
        Health.status = 200
    app = 'app="workbot"'
    assert failing[f'hardenkit_probe_up{{{app},path="/api/health",route="direct"}}'] == 0
    # A process started in the PM2 unit's cgroup (here: this test's) is a worker started.
    child = subprocess.Popen(["sleep", "30"])
    try:
        started = samples(run_watchdog(host))
    finally:
        child.kill()
        child.wait()
    # Other processes of this cgroup come and go too (pytest's workers), so only the child
    # is certain: unit tests count exactly (tests/unit/roles/watchdog/test_watchdog.py).
    assert started[f"hardenkit_pm2_worker_starts_total{{{app}}}"] >= 1
    cfg = dict(host["cfg"], database={**host["cfg"]["database"], "port": 1})
    host["config"].write_text(json.dumps(cfg))
    away = samples(run_watchdog(host))
    assert away[f"hardenkit_database_up{{{app}}}"] == 0
    assert away[f'hardenkit_probe_up{{{app},path="/api/health",route="direct"}}'] == 1
