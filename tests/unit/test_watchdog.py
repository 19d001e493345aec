"""The watchdog's policy (decide) and its probe, against a real local HTTP server."""

from __future__ import annotations

import http.server
import importlib.util
import sys
import threading
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles/watchdog/files/hardenkit-watchdog.py"
_spec = importlib.util.spec_from_file_location("hardenkit_watchdog", SCRIPT)
wd = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = wd  # dataclasses look their module up
_spec.loader.exec_module(wd)

CFG = {"failures_before_action": 3, "max_actions": 3, "action_window": 3600,
       "health_path": "/api/health"}
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


def test_only_the_nginx_path_failing_restarts_nginx():
    state = {}
    actions = [run(state, OK, DOWN, now=1000 + i)[0] for i in range(3)]
    assert actions == [None, None, "restart-nginx"]


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
