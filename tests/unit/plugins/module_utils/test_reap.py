"""reap: who may be stopped (scope, protections) and the SIGTERM -> wait -> SIGKILL sequence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

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

ROOT = Path(__file__).resolve().parents[4]
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
    procs = {50: p(50, 1, "node /x/node_modules/tsx/dist/cli.mjs watch --token abc123")}
    targets, _ = select_targets(procs, PATTERNS, scope_users=["root"], self_pid=97)
    assert targets[0]["cmdline"] == "node /x/node_modules/tsx/dist/cli.mjs watch --token ***"


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
        self.reused: dict[int, float] = {}

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
        """The scanned process still runs (after ``reused[pid]`` s it has exited and its
        pid belongs to a newer process)."""
        return (
            pid not in self.gone
            and self.now < self.dies_at.get(pid, float("inf"))
            and self.now < self.reused.get(pid, float("inf"))
        )

    def start_of(self, pid):
        """The scanned start time (1.0) while that process lives, the newcomer's (2.0)
        once the pid is reused, None when nothing runs there."""
        if self.now >= self.reused.get(pid, float("inf")):
            return 2.0
        return 1.0 if self.alive(pid) else None

    def run(self, pids, **kwargs):
        return terminate(
            targets(*pids),
            kill=self.kill,
            alive=self.alive,
            sleep=self.sleep,
            clock=self.clock,
            start_of=self.start_of,
            **kwargs,
        )


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
    stopped, failed = host.run([10, 11, 12], timeout=5, poll=0.25)
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
    stopped, failed = host.run([20, 21], timeout=2, first_signal=signal.SIGINT, escalate=False)
    assert [(s["pid"], s["how"]) for s in stopped] == [(20, "SIGINT")]
    assert [(f["pid"], f["error"]) for f in failed] == [(21, "still running after SIGINT")]
    assert all(s[2] == "SIGINT" for s in host.sent)


def test_already_gone_and_permission_denied():
    host = FakeHost({30: "gone", 31: "protected"})
    stopped, failed = host.run([30, 31], timeout=1)
    assert [(s["pid"], s["how"]) for s in stopped] == [(30, "exited")]
    assert [(f["pid"], f["error"]) for f in failed] == [(31, "permission denied sending SIGTERM")]


def test_unkillable_is_reported():
    host = FakeHost({40: {}})  # D state: not even SIGKILL ends it in time
    stopped, failed = host.run([40], timeout=1, kill_wait=2)
    assert stopped == []
    assert failed[0]["error"] == "still running after SIGKILL"
    assert host.now >= 3


def test_zero_timeout_goes_straight_to_sigkill():
    host = FakeHost({50: {signal.SIGKILL: 0.0}})
    stopped, _ = host.run([50], timeout=0)
    assert stopped[0]["how"] == "SIGKILL"


# --- real processes -------------------------------------------------------------------------


def dev_child(code: str, **kwargs) -> subprocess.Popen:
    """A Python child whose argv[0] is ``nodemon``: a dev watcher by its tokens, as the
    selection requires, without Node.js on the test host."""
    return subprocess.Popen(["nodemon", "-c", code], executable=sys.executable, **kwargs)


def test_real_children_are_stopped():
    obedient = dev_child("import time; time.sleep(60)")
    stubborn = dev_child(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)",
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


# --- M4: the pid must still hold the scanned process before every signal ------------------


def test_m4_reused_pid_is_reported_exited_and_not_signalled():
    host = FakeHost({60: {signal.SIGTERM: 0.0}, 61: {signal.SIGTERM: 0.0}})
    host.reused[60] = 0.0  # recycled between the scan and the first signal
    stopped, failed = host.run([60, 61], timeout=1)
    assert failed == []
    assert [(s["pid"], s["how"]) for s in stopped] == [(60, "exited"), (61, "SIGTERM")]
    assert [pid for _, pid, _ in host.sent] == [61]


def test_m4_vanished_pid_is_not_signalled():
    host = FakeHost({62: {signal.SIGTERM: 0.0}})
    host.start_of = lambda pid: None  # gone (or a zombie) since the scan
    stopped, failed = host.run([62], timeout=1)
    assert (failed, host.sent) == ([], [])
    assert [(s["pid"], s["how"]) for s in stopped] == [(62, "exited")]


def test_m4_pid_reused_during_the_wait_gets_no_sigkill():
    host = FakeHost({63: {}})  # ignores SIGTERM
    host.reused[63] = 0.5  # it exits, a newcomer gets its pid before the timeout
    stopped, failed = host.run([63], timeout=2, poll=0.25)
    assert failed == []
    assert [(s["pid"], s["how"]) for s in stopped] == [(63, "SIGTERM")]
    assert host.sent == [(0.0, 63, "SIGTERM")]


def test_m4_start_time_is_checked_again_right_before_sigkill():
    # A liveness check that lags (it still sees the pid) must not lead to a SIGKILL of the
    # newcomer: the check before the signal itself catches the reuse.
    host = FakeHost({68: {}})
    host.reused[68] = 1.0
    _, failed = terminate(
        targets(68), timeout=1, kill=host.kill, alive=lambda pid: True, sleep=host.sleep,
        clock=host.clock, start_of=host.start_of, kill_wait=0.5,
    )  # fmt: skip
    assert host.sent == [(0.0, 68, "SIGTERM")]
    assert failed[0]["error"] == "still running after SIGTERM"


def test_m4_target_without_scanned_start_time_is_not_signalled():
    host = FakeHost({64: {signal.SIGTERM: 0.0}})
    entry = {**targets(64)[0], "start_time": None}
    stopped, failed = terminate(
        [entry], timeout=1, kill=host.kill, sleep=host.sleep, clock=host.clock,
        start_of=host.start_of,
    )  # fmt: skip
    assert (stopped, host.sent) == ([], [])
    assert failed[0]["error"].startswith("no start time from the scan")


class FakePidfds:
    """pidfd_open / pidfd_send_signal / close over a FakeHost, logging the order of calls."""

    def __init__(self, host, fail=None):
        self.host = host
        self.fail = fail
        self.log: list[tuple[str, int]] = []
        self.open_fds: dict[int, int] = {}

    def pidfd_open(self, pid):
        if self.fail:
            raise self.fail
        fd = 1000 + pid
        self.open_fds[fd] = pid
        self.log.append(("open", pid))
        return fd

    def pidfd_send(self, fd, sig):
        self.log.append(("send", self.open_fds[fd]))
        self.host.kill(self.open_fds[fd], sig)

    def close(self, fd):
        self.log.append(("close", self.open_fds.pop(fd)))

    def start_of(self, pid):
        self.log.append(("check", pid))
        return self.host.start_of(pid)

    def kill(self, pid, sig):
        self.log.append(("kill", pid))
        self.host.kill(pid, sig)


def run_pinned(host, fds, pids, **kwargs):
    return terminate(
        targets(*pids),
        kill=fds.kill,
        alive=host.alive,
        sleep=host.sleep,
        clock=host.clock,
        start_of=fds.start_of,
        pidfd_open=fds.pidfd_open,
        pidfd_send=fds.pidfd_send,
        close_fd=fds.close,
        **kwargs,
    )


def test_m4_pidfd_is_opened_before_the_check_and_used_for_every_signal():
    host = FakeHost({65: {signal.SIGKILL: 0.0}})  # ignores SIGTERM
    fds = FakePidfds(host)
    stopped, failed = run_pinned(host, fds, [65], timeout=1)
    assert failed == []
    assert [(s["pid"], s["how"]) for s in stopped] == [(65, "SIGKILL")]
    assert fds.log[:3] == [("open", 65), ("check", 65), ("send", 65)]
    # a check right before SIGKILL too, then the signal through the pidfd, never kill(pid)
    sends = [i for i, c in enumerate(fds.log) if c[0] == "send"]
    assert len(sends) == 2 and fds.log[sends[1] - 1] == ("check", 65)
    assert ("kill", 65) not in fds.log
    assert fds.log[-1] == ("close", 65) and fds.open_fds == {}


def test_m4_without_pidfds_falls_back_to_the_start_time_check():
    host = FakeHost({66: {signal.SIGTERM: 0.0}, 67: {signal.SIGTERM: 0.0}})
    host.reused[67] = 0.0
    fds = FakePidfds(host, fail=OSError(38, "Function not implemented"))  # ENOSYS
    stopped, failed = run_pinned(host, fds, [66, 67], timeout=1)
    assert failed == []
    assert [(s["pid"], s["how"]) for s in stopped] == [(66, "SIGTERM"), (67, "exited")]
    assert ("kill", 66) in fds.log and ("kill", 67) not in fds.log


def test_m4_real_process_with_another_start_time_is_left_running():
    """The audit's reproduction: a live process whose start time is not the scanned one."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc = collect_processes()[child.pid]
        entry = {"pid": child.pid, "start_time": proc.start_time - 3600}
        stopped, failed = terminate([entry], timeout=1, poll=0.05)
        assert failed == []
        assert [(s["pid"], s["how"]) for s in stopped] == [(child.pid, "exited")]
        time.sleep(0.2)
        assert child.poll() is None  # never signalled
    finally:
        child.kill()
        child.wait()


# --- M5: a target runs a dev server by its tokens, not by a mention ------------------------


DEFAULT_PATTERNS = compile_patterns(
    yaml.safe_load((ROOT / "roles/dev_cleanup/defaults/main.yml").read_text())[
        "dev_cleanup_patterns"
    ]
)
OLD = "/opt/old-checkout"


@pytest.mark.parametrize(
    "argv",
    [
        ["vim", "nodemon.json"],
        ["grep", "-rn", "next dev", "."],
        ["less", "npm run dev.log"],
        ["git", "commit", "-m", "fix pnpm dev"],
        ["sh", "-c", "grep -rn 'tsx watch' ."],
        ["tail", "-f", "/var/log/nodemon.log"],
    ],
)
def test_m5_a_mention_of_a_dev_tool_is_never_a_target(argv):
    procs = {700: p(700, 1, argv, cwd=OLD)}
    for require in (True, False):
        found, skipped = select_targets(
            procs, DEFAULT_PATTERNS, scope_paths=[OLD], self_pid=97, require_dev_tool=require
        )
        assert found == []
        assert skipped[0]["reason"].startswith("not a" if require else "the pattern matches part")


@pytest.mark.parametrize(
    ("argv", "tool"),
    [
        (TSX.split(), "tsx watch"),
        (["node", f"{OLD}/node_modules/.bin/next", "dev"], "next dev"),
        (["sh", "-c", "pnpm dev"], "pnpm dev"),
        (["npm", "run", "dev"], "npm run dev"),
        (["node", "/usr/lib/node_modules/nodemon/bin/nodemon.js", "server.js"], "nodemon"),
        (["node", "--watch", "server.js"], "node --watch"),
    ],
)
def test_m5_dev_servers_are_still_targets(argv, tool):
    procs = {701: p(701, 1, argv, cwd=OLD)}
    found, _ = select_targets(procs, DEFAULT_PATTERNS, scope_paths=[OLD], self_pid=97)
    assert [(t["pid"], t["tool"]) for t in found] == [(701, tool)]


def test_m5_patterns_still_narrow():
    procs = {702: p(702, 1, ["npm", "run", "dev"], cwd=OLD), 703: p(703, 1, TSX, cwd=OLD)}
    found, skipped = select_targets(
        procs, compile_patterns([r"\btsx\b"]), scope_paths=[OLD], self_pid=97
    )
    assert [t["pid"] for t in found] == [703]
    assert skipped == []  # npm run dev matched no pattern: not even a candidate


def test_m5_port_takeover_admits_only_the_exact_command_line():
    procs = {
        704: p(704, 1, ["node", "dist/server.js"], cwd=OLD),
        705: p(705, 1, ["python3", "-m", "http.server", "node dist/server.js"], cwd=OLD),
        706: p(706, 1, ["python3", "-m", "http.server", "5000"], cwd=OLD),
    }
    pats = compile_patterns([r"node dist/server\.js", r"python3 -m http\.server 5000"])
    found, skipped = select_targets(procs, pats, scope_paths=[OLD], self_pid=97)
    assert found == [] and len(skipped) == 3  # by default only dev servers
    found, skipped = select_targets(
        procs, pats, scope_paths=[OLD], self_pid=97, require_dev_tool=False
    )
    # The app's server and a stray holding the port (faults 10): their whole command
    # lines are the patterns. A command that only mentions one of them is left alone.
    assert [t["pid"] for t in found] == [704, 706]
    assert [(s["pid"], s["reason"]) for s in skipped] == [
        (705, "the pattern matches part of its command line, not all of it")
    ]


# --- L12: the package-name scope counts for the app's users only ---------------------------


SHOP = {"/home/bob/shop": "workbot", "/root/wb": "workbot"}.get


@pytest.mark.parametrize(
    ("user", "cwd", "package_users", "target"),
    [
        ("bob", "/home/bob/shop", ["workbot", "root"], False),  # another user's "workbot"
        ("root", "/home/bob/shop", ["workbot", "root"], True),
        ("workbot", "/home/bob/shop", ["workbot", "root"], True),
        ("root", "/root/wb", ["workbot", "root", "deploy"], True),
        ("bob", "/home/bob/shop", ["workbot", "root", "bob"], True),  # bob owns a checkout
        ("bob", "/home/bob/shop", None, True),  # not limited: the module's old behaviour
    ],
)
def test_l12_package_scope_limited_to_package_users(user, cwd, package_users, target):
    procs = {800: p(800, 1, ["node", f"{cwd}/node_modules/.bin/next", "dev"], user=user, cwd=cwd)}
    found, skipped = select_targets(
        procs,
        DEFAULT_PATTERNS,
        package_name="workbot",
        package_users=package_users,
        self_pid=97,
        read_package=SHOP,
    )
    assert bool(found) is target
    if not target:
        assert skipped[0]["reason"].endswith(f"package scope not for user {user}")


def test_l12_package_users_do_not_narrow_the_cwd_and_port_scopes():
    listeners = [Listener("tcp", "0.0.0.0", 5000, 41211, 0, [802])]
    procs = {
        801: p(801, 1, TSX, user="dev", cwd="/workspace/projects"),
        802: p(802, 1, ["next", "dev"], user="alice", cwd="/home/alice/x"),
    }
    found, _ = select_targets(
        procs,
        DEFAULT_PATTERNS,
        scope_paths=["/workspace/projects"],
        package_name="workbot",
        port=5000,
        listeners=listeners,
        package_users=["workbot", "root"],
        self_pid=97,
        read_package=SHOP,
    )
    assert [(t["pid"], t["scope"]) for t in found] == [(801, "cwd"), (802, "port")]
