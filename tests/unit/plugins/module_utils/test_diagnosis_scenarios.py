"""The whole diagnosis over recorded hosts: the incident's broken server and the same host
hardened. A fake /proc holds the recorded process tables; the app and the proxy are real
local HTTP servers on the ports the fake /proc says they listen on."""

from __future__ import annotations

import json

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils import diagnosis
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.compare import compare
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.diagnosis import (
    DiagnoseOptions,
    diagnose,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.findings import (
    DEFAULT_THRESHOLDS,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pm2 import parse_jlist
from tests.hk_testlib import FIXTURES, build_fake_proc, build_hardened_host, fixture_text, free_port

PROBES = [
    {"path": "/", "status": 200},
    {"path": "/login", "status": 200},
    {"path": "/api/health", "status": 200},
]
# The test machine's own disk must not decide these scenarios.
THRESHOLDS = {**DEFAULT_THRESHOLDS, "disk_warn_pct": 100, "disk_crit_pct": 100}


@pytest.fixture
def incident(tmp_path, http_server):
    tmp_path = tmp_path / "incident"
    app = http_server({"/api/health": 404, "/api/chat": 404})  # pages 200, API 404
    proxy_port = free_port()  # no nginx
    proc = build_fake_proc(
        tmp_path / "proc", "incident", {"APP": app.server_port, "PROXY": proxy_port}
    )
    rotate = tmp_path / "logrotate.d"
    rotate.mkdir(parents=True)
    opts = DiagnoseOptions(
        app_name="workbot",
        app_root=str(tmp_path / "srv" / "workbot"),  # nothing deployed yet
        app_port=app.server_port,
        package_name="workbot",
        scope_paths=["/workspace/projects"],
        probes=PROBES,
        proxy_port=proxy_port,
        log_paths=[
            str(FIXTURES / "logs" / "workbot-error.log"),
            str(FIXTURES / "logs" / "nginx-error.log"),
        ],
        logrotate_dir=str(tmp_path / "logrotate.d"),
        probe_timeout=3,
        thresholds=THRESHOLDS,
        proc_root=str(proc),
    )
    return diagnose(opts), app


def by_code(result):
    return {f["code"]: f for f in result["findings"]}


def test_incident_findings(incident):
    result, _ = incident
    found = by_code(result)
    assert {c: f["severity"] for c, f in found.items()} == {
        "duplicate_processes": "critical",
        "dev_mode": "critical",
        "build_missing": "critical",
        "route_failed": "critical",
        "no_process_manager": "critical",
        "app_exposed": "critical",
        "log_errors": "warning",
        "no_reverse_proxy": "warning",
        "no_log_rotation": "warning",
    }
    # the four copies of the report, by pid; the sh -c wrapper is not a fifth
    assert "(pids 173, 503, 944, 2207)" in found["duplicate_processes"]["evidence"][0]
    # API routes 404 while pages answer, as reported
    assert found["route_failed"]["evidence"] == ["GET /api/health via direct: 404 (expected 200)"]
    assert found["app_exposed"]["evidence"][0].startswith("0.0.0.0:")
    assert "pid 180" in found["no_process_manager"]["evidence"][0]
    # alice's `next dev` is a dev server but not this app's
    assert all("alice" not in e for e in found["dev_mode"]["evidence"])


def test_incident_facts(incident):
    result, app = incident
    facts = result["facts"]
    procs = {p["pid"]: p for p in facts["processes"]}
    assert procs[173]["dev"] == "tsx watch"
    assert procs[173]["in_scope"] == "cwd"
    assert procs[173]["started"] == "2026-02-09T00:14:00+00:00"
    assert procs[180]["in_scope"] == "cwd" and procs[180]["manager"] is None
    assert procs[3000]["in_scope"] is None
    assert 300 not in procs  # postgres is neither the app's nor Node
    app_listener = next(lst for lst in facts["listeners"] if lst["port"] == app.server_port)
    assert (app_listener["address"], app_listener["pid"], app_listener["loopback"]) == (
        "0.0.0.0",
        180,
        False,
    )
    assert facts["memory"]["used_pct"] == 81.0
    assert facts["pm2"]["running"] is False and facts["pm2"]["processes"] is None
    assert facts["build"]["exists"] is False
    assert facts["release"] is None  # no current link
    assert facts["logs"]["counts"]["EADDRINUSE"] == 3
    assert sorted(facts["logrotate"]["uncovered"]) == sorted(
        str(FIXTURES / "logs" / n) for n in ("nginx-error.log", "workbot-error.log")
    )
    assert [(p["via"], p["path"], p["status"]) for p in result["probes"]][:3] == [
        ("direct", "/", 200),
        ("direct", "/login", 200),
        ("direct", "/api/health", 404),
    ]
    assert all(p["error"] == "connection refused" for p in result["probes"] if p["via"] == "proxy")
    assert result["duration_ms"] >= 0


def test_incident_output_has_no_secrets(incident):
    result, _ = incident
    text = json.dumps(result)
    assert "s3cr3t-pw" not in text


@pytest.fixture
def hardened(tmp_path, http_server, monkeypatch):
    tmp_path = tmp_path / "hardened"
    app = http_server()
    proxy = http_server()
    app_root, proc = build_hardened_host(tmp_path, app.server_port, proxy.server_port)

    now_ms = 1770717600000
    jlist = parse_jlist(fixture_text("pm2", "jlist_healthy.json"), now_ms)

    def fake_query(pm2_bin, pm2_home, app_user, timeout=20.0, proc_root="/proc"):
        assert pm2_home == str(app_root / ".pm2") and app_user == "workbot"
        return {
            "home": pm2_home,
            "running": True,
            "queried": True,
            "note": "PM2 daemon pid 2290",
            "error": None,
            "processes": jlist,
        }

    monkeypatch.setattr(diagnosis, "query_pm2", fake_query)
    opts = DiagnoseOptions(
        app_name="workbot",
        app_root=str(app_root),
        app_port=app.server_port,
        package_name="workbot",
        probes=PROBES,
        proxy_port=proxy.server_port,
        proxy_host_header="workbot.example.com",
        logrotate_dir=str(tmp_path / "logrotate.d"),
        probe_timeout=3,
        thresholds=THRESHOLDS,
        proc_root=str(proc),
    )
    return diagnose(opts), proxy


def test_hardened_host_has_no_findings(hardened):
    result, proxy = hardened
    assert result["findings"] == []
    assert all(p["ok"] for p in result["probes"])
    assert {s["host"] for s in proxy.seen} == {"workbot.example.com"}
    facts = result["facts"]
    assert facts["build"]["ok"] is True and facts["build"]["build_id"] == "k3Yq8vPq"
    assert facts["release"] == "3f9a2c1b7e4d"  # what current links to
    assert facts["release_dir"].endswith("/srv/workbot/releases/3f9a2c1b7e4d")
    procs = {p["pid"]: p for p in facts["processes"]}
    assert procs[2301]["manager"] == "pm2" and procs[2301]["unit"] == "pm2-workbot.service"
    assert procs[2301]["in_scope"] == "cwd"
    assert set(facts["logrotate"]["covered"].values()) == {"workbot"}
    assert facts["errors"] == []


def test_incident_to_hardened_compares_as_improved(incident, hardened):
    before, _ = incident
    after, _ = hardened
    result = compare(before, after, reloads=0)
    assert result["verdict"] == "improved"
    assert result["regressions"] == []


def test_diagnose_never_writes(incident, tmp_path):
    # the incident's app root, PM2 home and log directories were not created by diagnosing
    assert not (tmp_path / "incident" / "srv").exists()


def test_pm2_workers_belong_to_the_app_even_with_an_unreadable_cwd():
    from ansible_collections.hardenkit.nodeapp.plugins.module_utils.diagnosis import (
        mark_pm2_workers,
    )

    rows = [
        {"pid": 30, "in_scope": None, "cwd": None},
        {"pid": 31, "in_scope": None, "cwd": None},
        {"pid": 99, "in_scope": None, "cwd": None},
        {"pid": 40, "in_scope": "cwd", "cwd": "/srv/workbot/current"},
    ]
    pm2 = {
        "processes": [
            {"name": "workbot", "pid": 30},
            {"name": "workbot", "pid": 31},
            {"name": "other", "pid": 99},
        ]
    }
    mark_pm2_workers(rows, pm2, "workbot")
    assert [r["in_scope"] for r in rows] == ["pm2", "pm2", None, "cwd"]


def test_output_files_of_a_process(tmp_path):
    """A dev server started with `>> dev.log` writes to a file the diagnosis must scan."""
    import os

    from ansible_collections.hardenkit.nodeapp.plugins.module_utils.diagnosis import output_files

    log = tmp_path / "dev.log"
    log.write_text("Error: listen EADDRINUSE: address already in use 0.0.0.0:5000\n")
    fd = tmp_path / "proc" / "42" / "fd"
    fd.mkdir(parents=True)
    os.symlink(str(log), fd / "1")
    os.symlink(str(log), fd / "2")
    (tmp_path / "proc" / "43" / "fd").mkdir(parents=True)
    os.symlink("/dev/null", tmp_path / "proc" / "43" / "fd" / "1")
    os.symlink("pipe:[1234]", tmp_path / "proc" / "43" / "fd" / "2")
    assert output_files(42, str(tmp_path / "proc")) == [str(log)]
    assert output_files(43, str(tmp_path / "proc")) == []
    assert output_files(44, str(tmp_path / "proc")) == []


def test_live_release_is_read_from_the_link(tmp_path):
    from ansible_collections.hardenkit.nodeapp.plugins.module_utils.diagnosis import live_release

    (tmp_path / "releases" / "abc123").mkdir(parents=True)
    current = tmp_path / "current"
    assert live_release(str(current)) is None
    current.symlink_to("releases/abc123/")  # relative, with a trailing slash
    assert live_release(str(current)) == "abc123"
    assert diagnosis.live_release_dir(str(current)) == str(
        (tmp_path / "releases" / "abc123").resolve()
    )
    current.unlink()
    current.symlink_to("releases/gone")  # a dangling link: no live directory
    assert diagnosis.live_release_dir(str(current)) is None
    current.unlink()
    current.mkdir()  # a directory, not a link: no release can be named
    assert live_release(str(current)) is None
    assert diagnosis.live_release_dir(str(current)) is None


# --- the kit's proxy down on a hardened host ----------------------------------------------


def kit_nginx(base):
    """/etc/nginx with the kit's site enabled, and a logrotate config for its logs.

    Returns ``(conf_dir, site, log_dir)``.
    """
    conf, logs = base / "etc" / "nginx", base / "var" / "log" / "nginx"
    (conf / "sites-enabled").mkdir(parents=True)
    logs.mkdir(parents=True)
    (conf / "nginx.conf").write_text(
        f"error_log {logs}/error.log;\nhttp {{\n    include {conf}/sites-enabled/*;\n}}\n"
    )
    site = conf / "sites-enabled" / "hardenkit-workbot.conf"
    site.write_text(
        "server {\n    listen 80 default_server;\n"
        f"    error_log {logs}/hardenkit-workbot.error.log warn;\n"
        "    location / { proxy_pass http://workbot_app; }\n}\n"
    )
    (base / "logrotate.d" / "nginx").write_text(f"{logs}/*.log {{\n    daily\n}}\n")
    return conf, site, logs


def drop_listener(proc, port):
    """Take ``port``'s LISTEN rows out of the fake /proc/net/tcp(6): Nginx stopped."""
    for name in ("tcp", "tcp6"):
        table = proc / "net" / name
        head, *rows = table.read_text().splitlines(keepends=True)
        kept = [row for row in rows if not row.split()[1].endswith(f":{port:04X}")]
        table.write_text("".join([head, *kept]))


@pytest.fixture
def kit_host(tmp_path, http_server, monkeypatch):
    """The hardened host with the kit's Nginx site; ``make(proxy)`` diagnoses it with the
    given proxy: a server, or None for Nginx stopped (nothing listens on its port)."""
    jlist = parse_jlist(fixture_text("pm2", "jlist_healthy.json"), 1770717600000)

    def fake_query(pm2_bin, pm2_home, app_user, timeout=20.0, proc_root="/proc"):
        return {
            "home": pm2_home,
            "running": True,
            "queried": True,
            "note": "PM2 daemon pid 2290",
            "error": None,
            "processes": jlist,
        }

    monkeypatch.setattr(diagnosis, "query_pm2", fake_query)

    def make(proxy, error_log=""):
        app = http_server()
        proxy_port = proxy.server_port if proxy else free_port()
        app_root, proc = build_hardened_host(tmp_path, app.server_port, proxy_port)
        conf, site, logs = kit_nginx(tmp_path)
        (logs / "hardenkit-workbot.error.log").write_text(error_log)
        if proxy is None:
            drop_listener(proc, proxy_port)
        opts = DiagnoseOptions(
            app_name="workbot",
            app_root=str(app_root),
            app_port=app.server_port,
            package_name="workbot",
            probes=PROBES,
            proxy_port=proxy_port,
            proxy_host_header="workbot.example.com",
            logrotate_dir=str(tmp_path / "logrotate.d"),
            probe_timeout=3,
            thresholds=THRESHOLDS,
            proxy_site=str(site),
            nginx_conf_dir=str(conf),
            proc_root=str(proc),
        )
        return diagnose(opts), proxy_port, logs

    return make


UPSTREAM_REFUSED = (
    "2026/02/10 09:14:02 [error] 2420#2420: *88 connect() failed (111: Connection refused) "
    "while connecting to upstream, client: 203.0.113.9, server: workbot.example.com, "
    'request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:5000/", host: "workbot.example.com"\n'
)


def test_kit_host_all_good_has_no_findings(kit_host, http_server):
    result, _, logs = kit_host(http_server())
    assert result["findings"] == []
    nginx = result["facts"]["nginx"]
    assert nginx["site_present"] is True
    assert nginx["error_logs"] == [f"{logs}/error.log", f"{logs}/hardenkit-workbot.error.log"]
    scanned = [scan["path"] for scan in result["facts"]["logs"]["files"]]
    assert f"{logs}/hardenkit-workbot.error.log" in scanned


def test_nginx_stopped_is_critical(kit_host):
    result, proxy_port, _ = kit_host(None)
    found = by_code(result)
    assert {c: f["severity"] for c, f in found.items()} == {"proxy_down": "critical"}
    assert found["proxy_down"]["summary"] == (
        f"clients get no answer: nothing listens on port {proxy_port}"
    )
    assert all(p["ok"] for p in result["probes"] if p["via"] == "direct")


def test_nginx_answering_502_is_critical_and_its_log_is_read(kit_host, http_server):
    result, _, logs = kit_host(http_server(default=502), UPSTREAM_REFUSED)
    found = by_code(result)
    assert {c: f["severity"] for c, f in found.items()} == {
        "proxy_down": "critical",
        "log_errors": "warning",
    }
    assert found["proxy_down"]["summary"] == (
        "clients get no answer: Nginx answers 502 for /, /login, /api/health: "
        "it cannot reach the app"
    )
    assert found["log_errors"]["evidence"][0].startswith(
        f"upstream x1 in {logs}/hardenkit-workbot.error.log"
    )
