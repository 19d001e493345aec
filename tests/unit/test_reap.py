"""reap: who may be stopped (scope, protections) and the SIGTERM -> wait -> SIGKILL sequence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import (
    Listener,
    Process,
    collect_processes,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.reap import (
    ancestors,
    compile_patterns,
    is_alive,
    select_targets,
    terminate,
)

TSX = "node /workspace/projects/node_modules/.bin/../tsx/dist/cli.mjs watch server.ts"
PATTERNS = compile_patterns([r"\btsx(/dist/cli\.m?js)? watch\b", r"\bnext(/dist/bin/next)? dev\b"])


def p(pid, ppid, cmd, user="root", cwd="/workspace/projects"):
    argv = cmd if isinstance(cmd, list) else cmd.split()
    return Process(
        pid=pid,
        ppid=ppid,
        uid=0,
        user=user,
        cmdline=argv,
        cwd=cwd,
        start_time=1770596040.0,
        rss_kb=97240,
        unit=None,
    )


PROCS = {
    proc.pid: proc
    for proc in [
        p(1, 0, ["/sbin/init", "tsx watch"], cwd="/"),  # PID 1, even if it matches
        p(95, 1, "sshd: root@notty", cwd="/"),
        p(96, 95, ["sh", "-c", "python3 AnsiballZ_reap_processes.py tsx watch"], cwd="/root"),
        p(97, 96, ["python3", "AnsiballZ_reap_processes.py", "tsx watch"], cwd="/root"),
        p(173, 1, TSX),
        p(503, 1, TSX, user="workbot", cwd="/srv/workbot/releases/a"),
        p(944, 1, TSX, cwd="/srv/workbot/releases/a (deleted)"),
        p(
            2290,
            1,
            ["PM2 v5.4.2: God Daemon (/srv/workbot/.pm2) next dev"],
            user="workbot",
            cwd="/srv/workbot",
        ),
        p(
            3000,
            1,
            "node /home/alice/blog/node_modules/.bin/../next/dist/bin/next dev",
            user="alice",
            cwd="/home/alice/blog",
        ),
        p(3100, 1, "node /home/dev/wb/node_modules/.bin/next dev", user="dev", cwd="/home/dev/wb"),
        p(3200, 1, "node /opt/x/node_modules/.bin/next dev", user="root", cwd=None),
        p(4000, 1, "node dist/server.js", user="workbot", cwd="/srv/workbot/current"),
    ]
}
PACKAGES = {"/home/dev/wb": "workbot"}.get


def select(**kwargs):
    kwargs.setdefault("self_pid", 97)
    kwargs.setdefault("read_package", PACKAGES)
    targets, skipped = select_targets(PROCS, PATTERNS, **kwargs)
    return [t["pid"] for t in targets], {s["pid"]: s["reason"] for s in skipped}


def test_scope_by_paths():
    targets, skipped = select(scope_paths=["/workspace/projects", "/srv/workbot"])
    assert targets == [173, 503, 944]
    assert skipped[1] == "protected: PID 1"
    assert skipped[96] == "protected: this module or one of its parent processes"
    assert skipped[97] == "protected: this module or one of its parent processes"
    assert skipped[2290] == "protected: PM2 daemon"
    assert skipped[3000].startswith("out of scope: cwd /home/alice/blog not under scope_paths")
    assert skipped[3200].startswith("out of scope: cwd unknown")
    assert 4000 not in skipped  # never matched a pattern


def test_scope_by_users():
    targets, skipped = select(scope_users=["workbot"])
    assert targets == [503]
    assert skipped[173] == "out of scope: user root not in scope_users"
    assert skipped[2290] == "protected: PM2 daemon"


def test_users_and_paths_both_narrow():
    targets, skipped = select(scope_users=["root"], scope_paths=["/workspace/projects"])
    assert targets == [173]
    assert skipped[944].startswith("out of scope: cwd /srv/workbot/releases/a not under")


def test_scope_by_package_name_and_port():
    listeners = [Listener("tcp", "0.0.0.0", 5000, 41211, 0, [3200])]
    targets, skipped = select(package_name="workbot", port=5000, listeners=listeners)
    assert targets == [3100, 3200]  # the package's dev server; the app port's holder
    assert "no package 'workbot'" in skipped[3000]
    assert "not listening on 5000" in skipped[3000]


def test_a_scope_is_required():
    with pytest.raises(ValueError, match="scope is required"):
        select()


def test_bad_pattern_is_named():
    with pytest.raises(ValueError, match=r"patterns\[1\] '\(unclosed' is not a valid"):
        compile_patterns(["ok", "(unclosed"])
    with pytest.raises(ValueError, match=r"patterns\[0\] must be a non-empty"):
        compile_patterns([""])


def test_ancestors():
    assert ancestors(97, PROCS) == {97, 96, 95, 1}
    assert ancestors(12345, PROCS) == {12345}


def test_secrets_masked_in_reported_cmdline():
    procs = {50: p(50, 1, "node x.js tsx watch --token abc123")}
    targets, _ = select_targets(procs, PATTERNS, scope_users=["root"], self_pid=97)
    assert targets[0]["cmdline"] == "node x.js tsx watch --token ***"


# --- the kill sequence, with a fake clock and killer ----------------------------------------


class FakeHost:
    """Processes that exit a given time after a given signal (or never)."""

    def __init__(self, behaviour):
        # pid -> {signal: seconds until exit after it}; absent signal: ignored
        self.behaviour = behaviour
        self.now = 0.0
        self.dies_at: dict[int, float] = {}
        self.sent: list[tuple[float, int, str]] = []
        self.gone = {pid for pid, b in behaviour.items() if b == "gone"}

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

    def kill(self, pid, sig):
        if pid in self.gone or (pid in self.dies_at and self.now >= self.dies_at[pid]):
            raise ProcessLookupError(pid)
        if self.behaviour[pid] == "protected":
            raise PermissionError(pid)
        self.sent.append((round(self.now, 2), pid, signal.Signals(sig).name))
        delay = self.behaviour[pid].get(sig)
        if delay is not None:
            self.dies_at[pid] = min(self.dies_at.get(pid, float("inf")), self.now + delay)

    def alive(self, pid):
        return pid not in self.gone and self.now < self.dies_at.get(pid, float("inf"))


def targets(*pids):
    return [
        {"pid": pid, "user": "root", "cwd": "/x", "cmdline": "node x", "start_time": 1.0}
        for pid in pids
    ]


def test_sigterm_then_sigkill_survivors():
    host = FakeHost(
        {
            10: {signal.SIGTERM: 0.5},  # exits promptly
            11: {signal.SIGTERM: 3.0},  # drains for 3 s, within the timeout
            12: {signal.SIGKILL: 0.0},  # ignores SIGTERM
        }
    )
    stopped, failed = terminate(
        targets(10, 11, 12),
        timeout=5,
        kill=host.kill,
        alive=host.alive,
        sleep=host.sleep,
        clock=host.clock,
        poll=0.25,
    )
    assert failed == []
    assert [(s["pid"], s["how"]) for s in stopped] == [
        (10, "SIGTERM"),
        (11, "SIGTERM"),
        (12, "SIGKILL"),
    ]
    # SIGKILL only after the full timeout
    assert host.sent[-1] == (5.0, 12, "SIGKILL")
    assert [s for s in host.sent if s[2] == "SIGKILL"] == [(5.0, 12, "SIGKILL")]


def test_first_signal_choice_and_no_escalation():
    host = FakeHost({20: {signal.SIGINT: 1.0}, 21: {}})
    stopped, failed = terminate(
        targets(20, 21),
        timeout=2,
        first_signal=signal.SIGINT,
        escalate=False,
        kill=host.kill,
        alive=host.alive,
        sleep=host.sleep,
        clock=host.clock,
    )
    assert [(s["pid"], s["how"]) for s in stopped] == [(20, "SIGINT")]
    assert [(f["pid"], f["error"]) for f in failed] == [(21, "still running after SIGINT")]
    assert all(s[2] == "SIGINT" for s in host.sent)


def test_already_gone_and_permission_denied():
    host = FakeHost({30: "gone", 31: "protected"})
    stopped, failed = terminate(
        targets(30, 31),
        timeout=1,
        kill=host.kill,
        alive=host.alive,
        sleep=host.sleep,
        clock=host.clock,
    )
    assert [(s["pid"], s["how"]) for s in stopped] == [(30, "exited")]
    assert [(f["pid"], f["error"]) for f in failed] == [(31, "permission denied sending SIGTERM")]


def test_unkillable_is_reported():
    host = FakeHost({40: {}})  # D state: not even SIGKILL ends it in time
    stopped, failed = terminate(
        targets(40),
        timeout=1,
        kill=host.kill,
        alive=host.alive,
        sleep=host.sleep,
        clock=host.clock,
        kill_wait=2,
    )
    assert stopped == []
    assert failed[0]["error"] == "still running after SIGKILL"
    assert host.now >= 3


def test_zero_timeout_goes_straight_to_sigkill():
    host = FakeHost({50: {signal.SIGKILL: 0.0}})
    stopped, _ = terminate(
        targets(50), timeout=0, kill=host.kill, alive=host.alive, sleep=host.sleep, clock=host.clock
    )
    assert stopped[0]["how"] == "SIGKILL"


# --- real processes -------------------------------------------------------------------------


def test_real_children_are_stopped():
    obedient = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout.readline() == b"ready\n"
    try:
        procs = collect_processes()
        chosen = {obedient.pid, stubborn.pid}
        found, _ = select_targets(
            {pid: procs[pid] for pid in chosen},
            compile_patterns([r"time\.sleep\(60\)"]),
            scope_users=[procs[os.getpid()].user],
        )
        assert {t["pid"] for t in found} == chosen
        start = time.monotonic()
        stopped, failed = terminate(found, timeout=1, poll=0.05)
        # the default liveness check sees zombies (unreaped children) as gone
        assert failed == []
        assert {(s["pid"], s["how"]) for s in stopped} == {
            (obedient.pid, "SIGTERM"),
            (stubborn.pid, "SIGKILL"),
        }
        assert time.monotonic() - start < 5
        assert not is_alive(obedient.pid)
    finally:
        for child in (obedient, stubborn):
            child.kill()
            child.wait()
