"""L4: root never trusts the app-writable pm2.pid.

logrotate's postrotate (run as root) takes PM2's daemon from systemd (the unit's MainPID),
never from ``<PM2_HOME>/pm2.pid``. The script is rendered with Ansible's Templar and run
with ``sh`` against real processes: a fake ``systemctl`` on PATH names one of them, a
planted pm2.pid another. The pm2 role's stale-worker check (Python, pm2service) is held to
the same rule in tests/unit/plugins/module_utils/test_pm2service.py.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from tests.hk_testlib import trusted

ROOT = Path(__file__).resolve().parents[4]
DAEMON_TITLE = "PM2 v5.3.0: God Daemon (/srv/workbot/.pm2)"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def templar(role: str, **given: Any) -> Templar:
    variables = {
        **trusted(load(ROOT / "roles" / "app" / "defaults" / "main.yml")),
        **trusted(load(ROOT / "roles" / role / "defaults" / "main.yml")),
        # the play's app role vars (the app's directory in the release, …)
        **trusted(load(ROOT / "roles" / "app" / "vars" / "main.yml")),
        "app_name": "workbot",
        "ansible_managed": "Ansible managed",
        **given,
        **trusted(load(ROOT / "roles" / role / "vars" / "main.yml")),
    }
    return Templar(loader=DataLoader(), variables=variables)


def postrotate(app_root: Path) -> str:
    """The app stanza's postrotate script, as the logrotate role writes it."""
    conf = templar("logrotate", app_root=str(app_root)).template(
        trust_as_template(
            (ROOT / "roles/logrotate/templates/app.logrotate.j2").read_text(encoding="utf-8")
        ),
        escape_backslashes=False,
        overrides={"trim_blocks": True, "lstrip_blocks": False},
    )
    body = conf.split("    postrotate\n", 1)[1].split("    endscript\n", 1)[0]
    return "\n".join(line.strip() for line in body.splitlines()) + "\n"


@pytest.fixture
def fake_systemctl(tmp_path: Path) -> Callable[[str, int], tuple[dict[str, str], Path]]:
    """``make(stdout, rc)``: a PATH whose ``systemctl`` prints ``stdout``, exits ``rc`` and
    records its arguments; returns (environment, record file)."""

    def make(stdout: str, rc: int = 0) -> tuple[dict[str, str], Path]:
        bindir = tmp_path / "bin"
        bindir.mkdir(exist_ok=True)
        calls = tmp_path / "systemctl-calls"
        exe = bindir / "systemctl"
        exe.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nprintf "%s\\n" "{stdout}"\nexit {rc}\n')
        exe.chmod(0o755)
        return {**os.environ, "PATH": f"{bindir}:/usr/bin:/bin"}, calls

    return make


class Proc:
    """A real process titled like PM2's daemon that records each SIGUSR2 it gets."""

    def __init__(self, tmp_path: Path, name: str, title: str = DAEMON_TITLE) -> None:
        self.record = tmp_path / f"{name}.signals"
        self.ready = tmp_path / f"{name}.ready"
        script = (
            f"trap 'echo USR2 >> {self.record}' USR2; touch {self.ready}; "
            "while :; do sleep 0.05; done"
        )
        # argv[0] is the title: /proc/<pid>/cmdline reads like PM2's daemon's.
        self.popen = subprocess.Popen([title, "-c", script], executable="/bin/bash")
        deadline = time.monotonic() + 5
        while not self.ready.exists():
            assert time.monotonic() < deadline, f"{name} did not start"
            time.sleep(0.01)
        self.pid = self.popen.pid

    def signals(self) -> list[str]:
        return self.record.read_text().split() if self.record.exists() else []


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    started: list[Proc] = []

    def start(name: str, title: str = DAEMON_TITLE) -> Proc:
        proc = Proc(tmp_path, name, title)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.popen.kill()
        proc.popen.wait()


def app_root_with_pid_file(tmp_path: Path, pid: int) -> Path:
    """An app root whose PM2_HOME/pm2.pid (writable by the app user) names ``pid``."""
    app_root = tmp_path / "srv" / "workbot"
    (app_root / ".pm2").mkdir(parents=True)
    (app_root / ".pm2" / "pm2.pid").write_text(f"{pid}\n")
    return app_root


def run_sh(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def settle(expected: Proc | None = None) -> None:
    """Let signals land: the script sent them before it exited, and a process's trap runs
    within one 0.05 s sleep. Wait for ``expected``'s first one, then a little longer for
    any other."""
    deadline = time.monotonic() + 5
    while expected and not expected.signals() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)


def test_l4_postrotate_signals_the_unit_main_pid_not_pm2_pid(tmp_path, procs, fake_systemctl):
    daemon, planted = procs("daemon"), procs("planted")
    app_root = app_root_with_pid_file(tmp_path, planted.pid)
    env, calls = fake_systemctl(str(daemon.pid))
    result = run_sh(postrotate(app_root), env)
    assert result.returncode == 0, result.stderr
    settle(daemon)
    assert daemon.signals() == ["USR2"]
    assert planted.signals() == []
    assert calls.read_text().splitlines() == ["show --property=MainPID --value pm2-workbot.service"]


@pytest.mark.parametrize(
    ("stdout", "rc"),
    [("0", 0), ("", 1), ("", 0), ("1 2", 0), ("abc", 0)],
    ids=["no-daemon", "systemctl-fails", "empty", "two-words", "not-a-number"],
)
def test_l4_postrotate_signals_nobody_without_a_main_pid(
    tmp_path, procs, fake_systemctl, stdout, rc
):
    planted = procs("planted")
    app_root = app_root_with_pid_file(tmp_path, planted.pid)
    env, _ = fake_systemctl(stdout, rc)
    result = run_sh(postrotate(app_root), env)
    assert result.returncode == 0, result.stderr
    settle()
    assert planted.signals() == []


def test_l4_postrotate_signals_only_pm2s_daemon(tmp_path, procs, fake_systemctl):
    """A MainPID that is not PM2's daemon (a worker, after the daemon died) is left alone:
    SIGUSR2 would end a Node process that does not handle it."""
    worker = procs("worker", title="node /srv/workbot/current/server.js")
    env, _ = fake_systemctl(str(worker.pid))
    result = run_sh(postrotate(app_root_with_pid_file(tmp_path, worker.pid)), env)
    assert result.returncode == 0, result.stderr
    settle()
    assert worker.signals() == []
