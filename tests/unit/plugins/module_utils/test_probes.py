"""probes: real HTTP exchanges with a local server; refusals, timeouts, no redirects."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.probes import (
    describe_failures,
    http_probe,
    probe_host,
    probe_until,
    probe_url,
    run_probes,
    start_and_probe,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import Listener
from tests.hk_testlib import free_port

KEYS = {"url", "path", "via", "expected", "status", "ok", "latency_ms", "body_sample", "error"}


@pytest.fixture
def incident_app(http_server):
    """Pages answer 200, every API route 404: the incident's symptom."""
    return http_server({"/api/health": 404, "/api/chat": 404, "/old": 301})


@pytest.mark.parametrize(
    ("path", "expected", "status", "ok"),
    [
        ("/", 200, 200, True),
        ("/login", 200, 200, True),
        ("/api/health", 200, 404, False),
        ("/api/health", 404, 404, True),
        ("/old", 200, 301, False),  # the redirect is the answer, not followed
        ("/old", 301, 301, True),
        ("/?q=1", 200, 200, True),
    ],
)
def test_probe_statuses(incident_app, path, expected, status, ok):
    url = probe_url("127.0.0.1", incident_app.server_port, path)
    result = http_probe(url, expected, timeout=3)
    assert set(result) == KEYS
    assert (result["status"], result["ok"], result["error"]) == (status, ok, None)
    assert result["path"] == path
    assert result["via"] == "direct"
    assert result["latency_ms"] >= 0
    assert result["body_sample"].startswith("<!DOCTYPE html>")
    assert len(result["body_sample"]) <= 200
    # only one request: a 301 was not followed to /login
    assert [r["path"] for r in incident_app.seen] == [path]


def test_connection_refused_is_a_result_not_an_exception():
    url = probe_url("127.0.0.1", free_port(), "/")
    result = http_probe(url, 200, timeout=2, via="proxy")
    assert result["status"] is None
    assert result["ok"] is False
    assert result["error"] == "connection refused"
    assert result["via"] == "proxy"


def test_timeout_is_a_result():
    # accepts the connection, never answers
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    try:
        result = http_probe(probe_url("127.0.0.1", srv.getsockname()[1], "/"), 200, timeout=0.3)
    finally:
        srv.close()
    assert result["status"] is None
    assert result["error"] == "timed out after 0.3s"


def test_not_http_is_a_result():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def garbage():
        conn, _ = srv.accept()
        conn.recv(1024)
        conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        conn.close()

    t = threading.Thread(target=garbage, daemon=True)
    t.start()
    try:
        result = http_probe(probe_url("127.0.0.1", srv.getsockname()[1], "/"), 200, timeout=2)
    finally:
        t.join(2)
        srv.close()
    assert result["status"] is None
    assert result["error"]


def test_host_header_and_no_proxy_from_environment(http_server, monkeypatch):
    # a probe to 127.0.0.1 must not go through the environment's proxy
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    srv = http_server()
    url = probe_url("127.0.0.1", srv.server_port, "/")
    result = http_probe(url, 200, timeout=3, host_header="workbot.example.com", via="proxy")
    assert result["ok"], result
    assert srv.seen == [{"path": "/", "host": "workbot.example.com"}]


def test_run_probes_keeps_order(incident_app):
    port = incident_app.server_port
    jobs = [
        {"url": probe_url("127.0.0.1", port, p), "expected": 200, "via": "direct"}
        for p in ("/", "/api/health", "/login")
    ]
    results = run_probes(jobs, timeout=3)
    assert [(r["path"], r["status"]) for r in results] == [
        ("/", 200),
        ("/api/health", 404),
        ("/login", 200),
    ]
    assert run_probes([], timeout=1) == []


@pytest.mark.parametrize(
    ("listeners", "port", "host"),
    [
        ([], 5000, "127.0.0.1"),
        ([("0.0.0.0", 5000)], 5000, "127.0.0.1"),
        ([("127.0.0.1", 5000)], 5000, "127.0.0.1"),
        ([("::", 80)], 80, "[::1]"),  # nginx's listen [::]:80 is IPv6-only
        ([("::", 80), ("0.0.0.0", 80)], 80, "127.0.0.1"),
        ([("::1", 5000)], 5000, "[::1]"),
        ([("10.0.0.5", 5000)], 5000, "10.0.0.5"),
        ([("2001:db8::5", 5000)], 5000, "[2001:db8::5]"),
        ([("::ffff:10.0.0.5", 5000)], 5000, "10.0.0.5"),
        ([("127.0.1.1", 5000)], 5000, "127.0.1.1"),
        ([("0.0.0.0", 22)], 5000, "127.0.0.1"),
    ],
)
def test_probe_host(listeners, port, host):
    objs = [Listener("tcp6" if ":" in a else "tcp", a, p, i) for i, (a, p) in enumerate(listeners)]
    assert probe_host(objs, port) == host


# --- probe_until (the probe module): wait for the port, retry what fails ------------------


def test_probe_until_waits_for_the_port():
    # The app binds its port a moment after the task starts, as a fresh release does.
    port = free_port()
    servers = []

    def late_start():
        time.sleep(0.6)
        srv = ThreadingHTTPServer(("127.0.0.1", port), _Ok)
        servers.append(srv)
        srv.serve_forever(0.05)

    threading.Thread(target=late_start, daemon=True).start()
    try:
        result = probe_until("127.0.0.1", port, [{"path": "/", "status": 200}], listen_timeout=10)
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()
    assert servers
    assert result["listening"] and result["ok"] and result["attempts"] == 1
    assert [r["status"] for r in result["probes"]] == [200]


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_probe_until_gives_up_on_a_port_nothing_listens_on():
    start = time.monotonic()
    result = probe_until(
        "127.0.0.1", free_port(), [{"path": "/", "status": 200}], listen_timeout=0.5
    )
    assert result == {"ok": False, "listening": False, "attempts": 0, "probes": []}
    assert time.monotonic() - start < 5


def test_probe_until_retries_only_what_failed(http_server):
    # /api/health answers 503 twice (a worker still warming up), then 200.
    srv = http_server({"/api/health": 503})
    answers = iter([503, 503])

    def health_status():
        return next(answers, 200)

    srv.RequestHandlerClass.do_GET = _status_from(srv.RequestHandlerClass.do_GET, health_status)
    probes = [{"path": "/", "status": 200}, {"path": "/api/health", "status": 200}]
    result = probe_until("127.0.0.1", srv.server_address[1], probes, retries=3, delay=0.05)
    assert result["ok"] and result["attempts"] == 3
    assert [r["status"] for r in result["probes"]] == [200, 200]
    # "/" passed at once and was not asked again
    assert [seen["path"] for seen in srv.seen].count("/") == 1
    assert [seen["path"] for seen in srv.seen].count("/api/health") == 3


def _status_from(do_get, status_of_health):
    def do_GET(self):
        if self.path == "/api/health":
            self.server.seen.append({"path": self.path, "host": self.headers.get("Host")})
            self.send_response(status_of_health())
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        do_get(self)

    return do_GET


def test_probe_until_reports_what_still_fails(incident_app):
    probes = [{"path": "/", "status": 200}, {"path": "/api/health", "status": 200}]
    result = probe_until("127.0.0.1", incident_app.server_address[1], probes, retries=2, delay=0)
    assert not result["ok"] and result["attempts"] == 3
    assert describe_failures(result["probes"]) == "/api/health answered 404 (expected 200)"
    refused = probe_until("127.0.0.1", free_port(), [{"path": "/x", "status": 200}])
    assert describe_failures(refused["probes"]) == "/x connection refused"


# --- start_and_probe (the probe module's start=, the pre-traffic gate) ---------------------


class _Gate:
    """A release started as a real process (python's http.server: / answers 200, any other
    path 404), stopped by ``stop``; records the calls."""

    def __init__(self, port: int, log: list[str] | None = None):
        self.port, self.calls, self.proc = port, [], None
        self.log = log if log is not None else ["listening on the gate port"]

    def start(self) -> str:
        self.calls.append("start")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return ""

    def stop(self) -> None:
        self.calls.append("stop")
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)

    def read_log(self) -> list[str]:
        self.calls.append("log")
        return self.log

    def run(self, probes, **kw):
        return start_and_probe(
            "127.0.0.1",
            self.port,
            probes,
            start=self.start,
            stop=self.stop,
            read_log=self.read_log,
            listen_timeout=10,
            **kw,
        )


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_gate_that_passes_starts_probes_and_stops():
    gate = _Gate(free_port())
    result = gate.run([{"path": "/", "status": 200}])
    assert result["ok"] and not result["busy"] and result["start_error"] == ""
    assert gate.calls == ["start", "stop"]  # no journal read for a release that passed
    assert result["log"] == [] and [r["status"] for r in result["probes"]] == [200]
    assert _refused(gate.port)


def test_gate_that_fails_returns_the_masked_log_and_stops():
    gate = _Gate(free_port(), log=["boot", "DATABASE_URL=postgres://app:s3cret@db/app"])
    result = gate.run([{"path": "/", "status": 200}, {"path": "/api/health", "status": 200}])
    assert not result["ok"] and result["listening"]
    assert describe_failures(result["probes"]) == "/api/health answered 404 (expected 200)"
    assert gate.calls == ["start", "log", "stop"]  # the log is read before the stop
    assert result["log"][0] == "boot" and "s3cret" not in result["log"][1]
    assert _refused(gate.port)


def test_gate_waits_for_the_port_then_gives_up_without_starting():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    gate = _Gate(holder.getsockname()[1])
    began = time.monotonic()
    try:
        result = gate.run([{"path": "/", "status": 200}], free_timeout=0.5)
    finally:
        holder.close()
    assert result["busy"] and not result["ok"] and gate.calls == []
    assert 0.5 <= time.monotonic() - began < 5


def test_gate_starts_once_the_port_is_freed():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    gate = _Gate(holder.getsockname()[1])
    threading.Timer(0.4, holder.close).start()
    result = gate.run([{"path": "/", "status": 200}], free_timeout=5)
    assert result["ok"] and gate.calls == ["start", "stop"]


def test_gate_whose_start_fails_reads_the_log_and_still_stops():
    gate = _Gate(free_port(), log=["unit failed"])
    gate.start = lambda: (gate.calls.append("start"), "Unit hardenkit-gate-x already exists")[1]
    result = gate.run([{"path": "/", "status": 200}])
    assert result["start_error"] == "Unit hardenkit-gate-x already exists"
    assert not result["ok"] and result["attempts"] == 0
    assert gate.calls == ["start", "log", "stop"] and result["log"] == ["unit failed"]


def test_gate_stops_even_when_the_start_raises():
    gate = _Gate(free_port())

    def boom() -> str:
        gate.calls.append("start")
        raise OSError("systemd-run: not found")

    gate.start = boom
    with pytest.raises(OSError):
        gate.run([{"path": "/", "status": 200}])
    assert gate.calls == ["start", "stop"]
