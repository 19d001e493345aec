"""pm2: jlist parsing without secrets; PM2 queried only when its daemon runs, as the app user."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pm2 import (
    Pm2Error,
    app_processes,
    daemon_state,
    parse_jlist,
    query_pm2,
)
from tests.hk_testlib import FIXTURES, fixture_text

NOW_MS = 1770717600000  # 2026-02-10T10:00:00Z, an hour after the fixtures' reload
SECRETS = (
    "s3cr3t-pw",
    "hk-session-7f3a9c1e5b",
    "sk-test-abcdef0123456789",
    "DATABASE_URL",
    "SESSION_SECRET",
    "OPENAI_API_KEY",
    "max-old-space-size",
)


def test_healthy_cluster_of_two():
    procs = parse_jlist(fixture_text("pm2", "jlist_healthy.json"), NOW_MS)
    assert [
        (p["name"], p["pm_id"], p["pid"], p["status"], p["exec_mode"], p["instances"])
        for p in procs
    ] == [
        ("workbot", 0, 31201, "online", "cluster", 2),
        ("workbot", 1, 31215, "online", "cluster", 2),
    ]
    first = procs[0]
    assert first["restart_time"] == 3
    assert first["unstable_restarts"] == 0
    assert first["uptime_s"] == 3600
    assert first["memory"] == 187654144
    assert first["pm_err_log_path"] == "/srv/workbot/shared/logs/workbot-error.log"
    assert first["is_module"] is False


@pytest.mark.parametrize(
    "fixture",
    [
        "jlist_healthy.json",
        "jlist_crashloop.json",
        "jlist_healthy_with_logrotate.json",
        "jlist_banner.txt",
    ],
)
def test_no_environment_leaks(fixture):
    raw = fixture_text("pm2", fixture)
    assert "s3cr3t-pw" in raw  # the fixture does carry the app's secrets
    out = json.dumps(parse_jlist(raw, NOW_MS))
    for secret in SECRETS:
        assert secret not in out
    for proc in parse_jlist(raw, NOW_MS):
        assert "env" not in proc
        assert "args" not in proc and "node_args" not in proc


def test_crash_loop_fixture():
    procs = parse_jlist(fixture_text("pm2", "jlist_crashloop.json"), NOW_MS)
    assert [(p["status"], p["restart_time"], p["unstable_restarts"]) for p in procs] == [
        ("online", 14, 3),
        ("errored", 16, 0),
    ]
    assert procs[0]["uptime_s"] == 4
    assert procs[1]["uptime_s"] is None  # not running
    assert procs[1]["created_at"] is None


def test_banner_before_json():
    procs = parse_jlist(fixture_text("pm2", "jlist_banner.txt"), NOW_MS)
    assert len(procs) == 2


def test_module_flag_and_app_processes():
    procs = parse_jlist(fixture_text("pm2", "jlist_healthy_with_logrotate.json"), NOW_MS)
    assert [p["is_module"] for p in procs] == [False, False, True]
    assert [p["pm_id"] for p in app_processes(procs, "workbot")] == [0, 1]
    # an app named differently in PM2: every non-module process is the app's
    assert [p["pm_id"] for p in app_processes(procs, "other")] == [0, 1]
    assert app_processes(None, "workbot") == []


@pytest.mark.parametrize(
    "text",
    ["", "not json", '{"a": 1}', "[PM2] Spawning PM2 daemon with pm2_home=/root/.pm2\n"],
)
def test_not_a_process_list(text):
    with pytest.raises(Pm2Error):
        parse_jlist(text, NOW_MS)


def test_empty_list_is_no_processes():
    assert parse_jlist(fixture_text("pm2", "jlist_empty.json"), NOW_MS) == []


# --- daemon detection and the runner --------------------------------------------------------


def make_daemon(
    home: Path, proc_root: Path, pid: int = 2290, title: str | None = None
) -> socket.socket:
    """A PM2_HOME with a listening rpc.sock and pm2.pid, and /proc/<pid>/cmdline."""
    home.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(home / "rpc.sock"))
    (home / "pm2.pid").write_text(f"{pid}")
    pdir = proc_root / str(pid)
    pdir.mkdir(parents=True, exist_ok=True)
    (pdir / "cmdline").write_bytes((title or f"PM2 v5.4.2: God Daemon ({home})").encode() + b"\0")
    return sock


def fake_pm2(directory: Path, body: str) -> str:
    exe = directory / "pm2"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)
    return str(exe)


def test_no_socket_means_no_query(tmp_path):
    calls = tmp_path / "calls"
    exe = fake_pm2(tmp_path, f"echo called >> {calls}\necho '[]'\n")
    result = query_pm2(exe, str(tmp_path / "home"), None, proc_root=str(tmp_path / "proc"))
    assert result["running"] is False
    assert result["queried"] is False
    assert result["processes"] is None
    assert "no PM2 daemon socket" in result["note"]
    assert not calls.exists()  # pm2 would have started a daemon


def test_stale_socket_means_no_query(tmp_path):
    home = tmp_path / "home"
    sock = make_daemon(home, tmp_path / "proc")
    try:
        shutil.rmtree(tmp_path / "proc")  # the daemon died, the socket stayed
        running, note = daemon_state(str(home), str(tmp_path / "proc"))
        assert not running and "stale" in note
        (home / "pm2.pid").write_text("garbage")
        running, note = daemon_state(str(home), str(tmp_path / "proc"))
        assert not running
    finally:
        sock.close()


def test_pid_reused_by_another_process(tmp_path):
    home = tmp_path / "home"
    sock = make_daemon(home, tmp_path / "proc", title="/usr/sbin/cron -f")
    try:
        running, note = daemon_state(str(home), str(tmp_path / "proc"))
        assert not running and "not a PM2 daemon" in note
    finally:
        sock.close()


def test_regular_file_is_not_a_socket(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "rpc.sock").write_text("")
    assert daemon_state(str(home))[0] is False


def test_query_running_daemon(tmp_path):
    home = tmp_path / "home"
    envlog = tmp_path / "env.txt"
    sock = make_daemon(home, tmp_path / "proc")
    exe = fake_pm2(
        tmp_path,
        f'[ "$1" = jlist ] || exit 9\n'
        f'echo "PM2_HOME=$PM2_HOME LC_ALL=$LC_ALL" > {envlog}\n'
        f"cat {FIXTURES / 'pm2' / 'jlist_healthy.json'}\n",
    )
    me = pwd.getpwuid(os.geteuid()).pw_name
    try:
        result = query_pm2(exe, str(home), me, proc_root=str(tmp_path / "proc"))
    finally:
        sock.close()
    assert result["error"] is None, result
    assert result["running"] and result["queried"]
    assert [p["pm_id"] for p in result["processes"]] == [0, 1]
    assert envlog.read_text().strip() == f"PM2_HOME={home} LC_ALL=C"


def test_failing_pm2_is_an_error_not_an_empty_list(tmp_path):
    home = tmp_path / "home"
    sock = make_daemon(home, tmp_path / "proc")
    exe = fake_pm2(tmp_path, "echo 'connect EACCES /srv/workbot/.pm2/rpc.sock' >&2\nexit 1\n")
    try:
        result = query_pm2(exe, str(home), None, proc_root=str(tmp_path / "proc"))
    finally:
        sock.close()
    assert result["processes"] is None
    assert result["error"].startswith("pm2 jlist exited 1: connect EACCES")


def test_garbled_output_is_an_error(tmp_path):
    home = tmp_path / "home"
    sock = make_daemon(home, tmp_path / "proc")
    exe = fake_pm2(tmp_path, "echo 'Segmentation fault'\n")
    try:
        result = query_pm2(exe, str(home), None, proc_root=str(tmp_path / "proc"))
    finally:
        sock.close()
    assert result["processes"] is None
    assert "no JSON list" in result["error"]


def test_missing_pm2_binary_and_user(tmp_path):
    home = tmp_path / "home"
    sock = make_daemon(home, tmp_path / "proc")
    try:
        no_bin = query_pm2("pm2-does-not-exist", str(home), None, proc_root=str(tmp_path / "proc"))
        no_user = query_pm2("pm2", str(home), "no-such-user-hk", proc_root=str(tmp_path / "proc"))
    finally:
        sock.close()
    assert "not found" in no_bin["error"]
    assert "does not exist" in no_user["error"]
    assert no_bin["processes"] is None and no_user["processes"] is None


def test_timeout_is_an_error(tmp_path):
    home = tmp_path / "home"
    sock = make_daemon(home, tmp_path / "proc")
    exe = fake_pm2(tmp_path, "sleep 5\n")
    try:
        result = query_pm2(exe, str(home), None, timeout=0.3, proc_root=str(tmp_path / "proc"))
    finally:
        sock.close()
    assert result["error"] == "pm2 jlist timed out after 0.3s"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
def test_runs_as_app_user_when_root():
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    # a world-readable place: pytest's tmp_path is private to root
    base = Path(tempfile.mkdtemp(prefix="hk-pm2-", dir="/tmp"))
    try:
        base.chmod(0o755)
        home = base / "home"
        sock = make_daemon(home, base / "proc")
        exe = fake_pm2(base, 'echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)" >&2\nexit 3\n')
        os.chmod(exe, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        try:
            result = query_pm2(exe, str(home), "nobody", proc_root=str(base / "proc"))
        finally:
            sock.close()
    finally:
        shutil.rmtree(base)
    uid, gid = nobody.pw_uid, nobody.pw_gid
    assert f"uid={uid} gid={gid} groups={gid}" in result["error"]
