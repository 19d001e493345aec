"""The watchdog's policy (decide) and its probe, against a real local HTTP server."""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[4] / "roles/watchdog/files/hardenkit-watchdog.py"
_spec = importlib.util.spec_from_file_location("hardenkit_watchdog", SCRIPT)
wd = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = wd  # dataclasses look their module up
_spec.loader.exec_module(wd)

CFG = {
    "failures_before_action": 3,
    "max_actions": 3,
    "action_window": 3600,
    "health_path": "/api/health",
}
OK = wd.Probe(True, "200 in 3 ms")
DOWN = wd.Probe(False, "no answer within 5 s")


def run(state, direct, upstream=OK, now=1000.0, cfg=CFG):
    action, _reason, logs = wd.decide(state, direct, upstream, now, cfg)
    return action, logs


def test_healthy_does_nothing_and_logs_nothing():
    state = {}
    assert run(state, OK) == (None, [])
    assert state["failures"] == 0


def test_reload_after_threshold_then_restart_if_still_failing():
    state, actions = {}, []
    for i in range(6):
        actions.append(run(state, DOWN, DOWN, now=1000 + 10 * i)[0])
    assert actions == [None, None, "reload", None, None, "restart"]
    assert [a["action"] for a in state["actions"]] == ["reload", "restart"]
    assert "3 failed probe(s) in a row of /api/health" in state["actions"][0]["reason"]
    assert "direct no answer within 5 s" in state["actions"][0]["reason"]


def test_recovery_resets_the_episode_and_is_reported():
    state = {}
    for i in range(3):
        run(state, DOWN, now=1000 + i)
    action, logs = run(state, OK, now=1010)
    assert action == "recovered"
    assert "healthy again" in logs[0][1]
    # a new episode starts with a reload again, not a restart
    for i in range(3):
        action, _ = run(state, DOWN, now=1100 + i)
    assert action == "reload"


def test_bounded_actions_per_window_hold_off_once():
    state = {}
    seen = [run(state, DOWN, now=1000 + i)[0] for i in range(15)]
    assert seen.count("reload") + seen.count("restart") == 3
    assert seen.count("hold") == 1  # logged and alerted once, not every run
    hold_logs = run({**state, "held": False}, DOWN, now=1020)[1]
    assert any("holding off" in m for _, m in hold_logs)


def test_window_expiry_allows_actions_again():
    state = {}
    for i in range(15):
        run(state, DOWN, now=1000 + i)
    later = 1000 + CFG["action_window"] + 20
    actions = [run(state, DOWN, now=later + i)[0] for i in range(3)]
    # still the same failing episode: the first run past the window restarts at once
    assert actions == ["restart", None, None]


def test_l3_only_the_nginx_path_failing_reloads_nginx():
    state = {}
    actions = [run(state, OK, DOWN, now=1000 + i)[0] for i in range(3)]
    assert actions == [None, None, "reload-nginx"]


def test_a_change_of_failure_kind_starts_counting_again():
    state = {}
    run(state, OK, DOWN)
    run(state, OK, DOWN)
    assert run(state, DOWN, DOWN)[0] is None  # app failing now: count starts at 1
    assert state["failures"] == 1 and state["kind"] == "app"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(2)
        status = {"/ok": 200, "/slow": 200, "/bad": 500, "/moved": 301}[self.path]
        self.send_response(status)
        if status == 301:
            self.send_header("Location", "/ok")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_probe_statuses_and_timeouts(server):
    assert wd.probe(f"{server}/ok", 200, 2).ok
    bad = wd.probe(f"{server}/bad", 200, 2)
    assert not bad.ok and bad.detail.startswith("500 (expected 200)")
    moved = wd.probe(f"{server}/moved", 200, 2)  # redirects are not followed
    assert not moved.ok and moved.detail.startswith("301")
    slow = wd.probe(f"{server}/slow", 200, 0.5)
    assert not slow.ok and "no answer within 0.5 s" in slow.detail


def test_probe_connection_refused():
    down = wd.probe("http://127.0.0.1:9/", 200, 1)
    assert not down.ok
    assert "refused" in down.detail.lower()


# --- L3: the Nginx action is a reload, never a restart of a running Nginx -----------------


@pytest.fixture
def fake_systemctl(tmp_path, monkeypatch):
    """A ``systemctl`` on PATH that records its arguments, one call per line."""
    calls = tmp_path / "calls"
    exe = tmp_path / "bin" / "systemctl"
    exe.parent.mkdir()
    exe.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{exe.parent}:/usr/bin:/bin")
    return calls


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("reload", "reload pm2-workbot"),
        ("restart", "restart pm2-workbot"),
        ("reload-nginx", "reload-or-restart nginx"),
    ],
)
def test_l3_actions_call_systemctl(fake_systemctl, action, expected):
    assert wd.act(action, {"pm2_service": "pm2-workbot"}) == (0, "")
    assert fake_systemctl.read_text().splitlines() == [expected]


# --- M7: the webhook ------------------------------------------------------------------------

TOKEN = "s3cr3t-webhook-token"


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records each request (method, path, headers); answers ``server.answer``."""

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        status, location = self.server.answer
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _record

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    """Start recording servers on 127.0.0.1: ``start(status, location)``."""
    servers = []

    def start(status=200, location=None):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        srv.seen, srv.answer = [], (status, location)
        srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
        threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def webhook_cfg(url, **more):
    return {
        "webhook_url": url,
        "webhook_headers": {"X-Webhook-Token": TOKEN},
        "webhook_timeout": 2,
        "webhook_allow_http": True,
        **more,
    }


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_m7_alert_never_follows_a_redirect(recorder, capsys, status):
    elsewhere = recorder()
    hook = recorder(status, f"{elsewhere.url}/collect")
    wd.alert(webhook_cfg(f"{hook.url}/hook"), {"event": "reload"})
    # the webhook got the POST with its token; the host it redirects to got nothing
    assert [(r["method"], r["path"]) for r in hook.seen] == [("POST", "/hook")]
    assert hook.seen[0]["headers"]["X-Webhook-Token"] == TOKEN
    assert elsewhere.seen == []
    out = capsys.readouterr().out
    assert f"alert not sent: the webhook answered {status}, a redirect (not followed)" in out
    assert TOKEN not in out and "/hook" not in out


def test_m7_alert_sent(recorder, capsys):
    hook = recorder(204)
    wd.alert(webhook_cfg(f"{hook.url}/hook"), {"event": "reload", "app": "workbot"})
    (req,) = hook.seen
    assert req["method"] == "POST" and req["headers"]["X-Webhook-Token"] == TOKEN
    assert json.loads(req["body"]) == {"event": "reload", "app": "workbot"}
    assert "alert sent (204)" in capsys.readouterr().out


def test_m7_alert_refuses_plain_http_unless_allowed(recorder, capsys):
    hook = recorder(200)
    wd.alert(webhook_cfg(f"{hook.url}/hook", webhook_allow_http=False), {"event": "reload"})
    assert hook.seen == []
    out = capsys.readouterr().out
    assert "alert not sent: the webhook URL is not https" in out
    assert TOKEN not in out and hook.url not in out


def test_m7_alert_failures_never_log_the_url_or_token(recorder, capsys):
    hook = recorder(500)
    wd.alert(webhook_cfg(f"{hook.url}/T0/B0/{TOKEN}"), {"event": "reload"})
    # a header value with a newline: http.client refuses it, quoting the value
    wd.alert(
        webhook_cfg(f"{hook.url}/hook", webhook_headers={"X-Webhook-Token": f"{TOKEN}\nX: y"}),
        {"event": "reload"},
    )
    out = capsys.readouterr().out
    assert "alert not sent: the webhook answered 500" in out
    assert "alert not sent: ValueError" in out
    assert TOKEN not in out


# --- issue 20: the app's database away -------------------------------------------------------

DB_UP = wd.Probe(True, "database 10.0.0.9:5432 answers")
DB_DOWN = wd.Probe(False, "database 10.0.0.9:5432: Connection refused")


def test_the_database_away_holds_every_action_and_alerts_once():
    state, actions, logs = {}, [], []
    for i in range(8):
        action, lines = wd.decide(state, DOWN, DOWN, 1000 + 10 * i, CFG, DB_DOWN)[0::2]
        actions.append(action)
        logs += lines
    assert actions == ["db_down"] + [None] * 7
    assert state.get("actions", []) == []
    assert "not reloading the app while its database is away" in logs[0][1]
    assert "Connection refused" in logs[0][1]


def test_the_database_back_and_the_app_still_failing_acts_after_a_full_threshold():
    state = {}
    for i in range(5):
        wd.decide(state, DOWN, DOWN, 1000 + i, CFG, DB_DOWN)
    actions = []
    for i in range(3):
        action, _reason, lines = wd.decide(state, DOWN, DOWN, 1100 + 10 * i, CFG, DB_UP)
        actions.append(action)
        if i == 0:
            assert ("<5>", "database 10.0.0.9:5432 answers again; the app still fails") in lines
    assert actions == [None, None, "reload"]


def test_the_database_back_and_the_app_recovered_by_itself():
    state = {}
    wd.decide(state, DOWN, DOWN, 1000, CFG, DB_DOWN)
    action, _reason, lines = wd.decide(state, OK, OK, 1010, CFG, None)
    assert action == "recovered"  # after the database_down alert, the all-clear
    assert "its database away until now" in lines[0][1]
    assert not state["db_down"]
    assert wd.decide(state, OK, OK, 1020, CFG, None) == (None, "", [])


def test_the_database_away_while_the_app_answers_is_said_once_and_changes_nothing():
    """The watchdog asks the database on every run: an outage is alerted even while the app
    still answers (its health path need not touch the database)."""
    state: dict = {}
    runs = [wd.decide(state, OK, OK, 1000 + 10 * i, CFG, DB_DOWN) for i in range(4)]
    assert [r[0] for r in runs] == ["db_down", None, None, None]
    [(level, line)] = runs[0][2]
    assert level == "<3>"
    assert line == (
        "database 10.0.0.9:5432: Connection refused; the app still answers /api/health: "
        "alerting once, nothing to do on this host"
    )
    assert all(r[2] == [] for r in runs[1:])
    # The app starts failing while the database is away: held, said once, no second alert.
    held = [wd.decide(state, DOWN, DOWN, 1100 + 10 * i, CFG, DB_DOWN) for i in range(5)]
    assert [h[0] for h in held] == [None] * 5
    assert state.get("actions", []) == []
    assert [len(h[2]) for h in held] == [1, 0, 0, 0, 0]
    assert "not reloading the app while its database is away" in held[0][2][0][1]
    # Both back: one all-clear.
    action, _reason, lines = wd.decide(state, OK, OK, 1200, CFG, DB_UP)
    assert action == "recovered"
    assert "its database away until now" in lines[0][1]
    assert wd.decide(state, OK, OK, 1210, CFG, DB_UP) == (None, "", [])


def test_nginx_failing_while_the_database_is_away_is_still_put_right():
    state: dict = {}
    actions = [wd.decide(state, OK, DOWN, 1000 + 10 * i, CFG, DB_DOWN)[0] for i in range(4)]
    assert actions == ["db_down", None, None, "reload-nginx"]


def test_without_a_database_to_ask_the_policy_is_unchanged():
    state, actions = {}, []
    for i in range(3):
        actions.append(wd.decide(state, DOWN, DOWN, 1000 + i, CFG, None)[0])
    assert actions == [None, None, "reload"]


def test_the_database_is_asked_as_the_diagnosis_asks_it(tmp_path):
    """check_database is module_utils/dbcheck.check (the diagnosis's reader), and
    database_probe turns its facts into the probe decide takes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        up = wd.check_database({"host": "127.0.0.1", "port": port, "budget": 12}, None)
    finally:
        server.close()
    down = wd.check_database({"host": "127.0.0.1", "port": port}, None)
    assert (up["reachable"], up["budget"]) == (True, 12)
    assert wd.database_probe(up) == wd.Probe(True, f"database 127.0.0.1:{port} answers")
    assert not down["reachable"]
    probe = wd.database_probe(down)
    assert not probe.ok
    assert probe.detail.startswith(f"database 127.0.0.1:{port} takes no connection (")
    assert "Connection refused" in probe.detail
    sock_dir = tmp_path / "pg"
    sock_dir.mkdir()
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(sock_dir / ".s.PGSQL.5432"))
    unix.listen(1)
    try:
        facts = wd.check_database({"host": str(sock_dir), "port": 5432}, None)
        assert wd.database_probe(facts) == wd.Probe(True, f"database {sock_dir} answers")
    finally:
        unix.close()
    # Never asked: no database, or a MySQL server (only its connections are counted).
    assert wd.check_database({}, None) is None
    assert wd.database_probe(None) is None
    mysql = wd.check_database({"scheme": "mysql", "host": "127.0.0.1", "port": port}, None)
    assert mysql["reachable"] is None and wd.database_probe(mysql) is None


def test_a_name_that_does_not_resolve_in_time_is_a_database_away(monkeypatch):
    """The watchdog's lookup had no timeout: a resolver that never answers held the run."""
    release = threading.Event()

    def hang(*_args, **_kwargs):
        release.wait(10)
        raise OSError("late")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    started = time.monotonic()
    try:
        facts = wd.check_database({"host": "db.internal", "port": 5432}, None)
    finally:
        release.set()
    assert time.monotonic() - started < 4
    assert not wd.database_probe(facts).ok
    assert "resolving db.internal took over 2 s" in wd.database_probe(facts).detail


# --- issue 20: metrics -------------------------------------------------------------------------


def test_the_unit_workers_are_its_cgroup_but_the_daemon(tmp_path):
    unified = tmp_path / "unified"
    (unified / "system.slice/pm2-workbot.service").mkdir(parents=True)
    (unified / "system.slice/pm2-workbot.service/cgroup.procs").write_text("300\n41\n302\n")
    show = {
        "ActiveState": "active",
        "MainPID": "41",
        "ControlGroup": "/system.slice/pm2-workbot.service",
    }
    mounts = (str(tmp_path / "v2-absent"), str(unified))
    assert wd.unit_workers(show, mounts) == [300, 302]
    assert wd.unit_workers({**show, "ControlGroup": ""}, mounts) is None
    assert wd.unit_workers({**show, "ControlGroup": "/gone.service"}, mounts) is None


def test_worker_starts_count_the_pids_new_since_the_last_run():
    state: dict = {}
    wd.count_starts(state, [300, 302])
    assert state == {"workers": [300, 302]}  # the first run counts none
    wd.count_starts(state, [300, 305])  # 302 killed, PM2 started 305
    wd.count_starts(state, None)  # the cgroup not read: nothing known, nothing counted
    wd.count_starts(state, [306, 307])  # a reload
    assert (state["worker_starts"], state["workers"]) == (3, [306, 307])


def test_the_metrics_text_names_each_source_it_read():
    state = {"worker_starts": 4, "counts": {"reload": 2, "db_down": 1}}
    probes = {"direct": wd.Probe(True, "200", 0.012), "nginx": wd.Probe(False, "502", 0.5)}
    db = {"reachable": False, "connections": 3, "budget": 12}
    cfg = {"app": 'we"b\\1', "health_path": "/api/health"}
    run = {"verdict": "rolled_back", "finished": 990}
    text = wd.metrics_text(cfg, state, probes, [300, 302], db, "r1", 1000.0, run)
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    app = 'app="we\\"b\\\\1"'
    assert lines == [
        f'hardenkit_probe_up{{{app},path="/api/health",route="direct"}} 1',
        f'hardenkit_probe_up{{{app},path="/api/health",route="nginx"}} 0',
        f'hardenkit_probe_duration_seconds{{{app},path="/api/health",route="direct"}} 0.012',
        f'hardenkit_probe_duration_seconds{{{app},path="/api/health",route="nginx"}} 0.5',
        f"hardenkit_pm2_workers_online{{{app}}} 2",
        f"hardenkit_pm2_worker_starts_total{{{app}}} 4",
        f'hardenkit_watchdog_actions_total{{{app},action="reload"}} 2',
        f'hardenkit_watchdog_actions_total{{{app},action="restart"}} 0',
        f'hardenkit_watchdog_actions_total{{{app},action="reload-nginx"}} 0',
        f'hardenkit_watchdog_actions_total{{{app},action="hold"}} 0',
        f'hardenkit_watchdog_actions_total{{{app},action="db_down"}} 1',
        f"hardenkit_watchdog_last_run_timestamp_seconds{{{app}}} 1000",
        f'hardenkit_release_info{{{app},release="r1"}} 1',
        f'hardenkit_run_verdict{{{app},verdict="rolled_back"}} 1',
        f"hardenkit_run_finished_timestamp_seconds{{{app}}} 990",
        f"hardenkit_database_up{{{app}}} 0",
        f"hardenkit_database_connections{{{app}}} 3",
        f"hardenkit_database_connection_budget{{{app}}} 12",
    ]
    assert text.endswith("\n")
    # Nothing read, nothing written: no probe (a deploy's grace), no cgroup, no database,
    # no run recorded (load_state's {} for a missing record).
    bare = wd.metrics_text(cfg, {}, {}, None, None, "", 1000.0, {})
    assert {line.split("{")[0] for line in bare.splitlines() if not line.startswith("#")} == {
        "hardenkit_pm2_worker_starts_total",
        "hardenkit_watchdog_actions_total",
        "hardenkit_watchdog_last_run_timestamp_seconds",
    }


def test_metrics_are_replaced_whole_and_readable_by_the_exporter(tmp_path):
    path = tmp_path / "hardenkit_workbot.prom"
    path.write_text("old\n")
    old_umask = os.umask(0o077)
    try:
        wd.write_metrics(str(path), "new\n")
    finally:
        os.umask(old_umask)
    assert path.read_text() == "new\n"
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hardenkit_workbot.prom"]
