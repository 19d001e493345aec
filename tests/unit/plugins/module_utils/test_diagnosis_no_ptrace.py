"""The whole diagnosis where root lacks CAP_SYS_PTRACE (a container, some LXC hosts).

There the kernel refuses another user's ``/proc/<pid>/cwd`` and ``fd/*`` links while its
``cmdline``, ``status`` and ``cgroup`` stay readable. Each recorded host is diagnosed twice:
with full access, and with the other users' links refused (``hk_testlib.deny_ptrace``).
Refused, the app's processes are judged by what stays readable, so the same findings
come out, and ``diagnosis_incomplete`` says what could not be read; with full access it
never appears.
"""

from __future__ import annotations

import json

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils import diagnosis
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.diagnosis import (
    DiagnoseOptions,
    diagnose,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.findings import (
    DEFAULT_THRESHOLDS,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pm2 import parse_jlist
from tests.hk_testlib import (
    build_fake_proc,
    build_hardened_host,
    deny_ptrace,
    fixture_text,
    free_port,
    name_users,
    ptrace_denied,
    scenario_users,
)

# The test machine's own disk must not decide these scenarios.
THRESHOLDS = {**DEFAULT_THRESHOLDS, "disk_warn_pct": 100, "disk_crit_pct": 100}


def by_code(result):
    return {f["code"]: f for f in result["findings"]}


def app_port(result):
    return result["facts"]["app"]["port"]


def run_scenario(base, monkeypatch, scenario, denied=()):
    """Diagnose the recorded ``scenario`` under ``base``: nothing answers on its ports (no
    app server, no proxy, no PM2), and the host's own logs and Nginx are not read."""
    app_port, proxy_port = free_port(), free_port()
    app_root = base / "srv" / "workbot"
    proc = build_fake_proc(
        base / "proc", scenario, {"APP": app_port, "PROXY": proxy_port}, str(app_root)
    )
    name_users(monkeypatch, scenario_users(scenario))
    if denied:
        deny_ptrace(monkeypatch, proc, list(denied))
    opts = DiagnoseOptions(
        app_name="workbot",
        app_root=str(app_root),
        app_port=app_port,
        proxy_port=proxy_port,
        probes=[{"path": "/", "status": 200}],
        log_paths=[],
        logrotate_dir=str(base / "logrotate.d"),
        nginx_conf_dir=str(base / "nginx"),
        probe_timeout=2,
        thresholds=THRESHOLDS,
        proc_root=str(proc),
    )
    return diagnose(opts)


@pytest.fixture
def both_ways(tmp_path, monkeypatch):
    """``run(scenario)`` -> (full access, other users' links refused)."""

    def run(scenario):
        full = run_scenario(tmp_path / "full", monkeypatch, scenario)
        denied = run_scenario(tmp_path / "denied", monkeypatch, scenario, ptrace_denied(scenario))
        return full, denied

    return run


# --- (a) the app user's `next dev` in the live release --------------------------------------


def test_dev_server_found_without_its_cwd(both_ways):
    full, denied = both_ways("no_ptrace_dev")
    found, seen = by_code(full), by_code(denied)
    assert "diagnosis_incomplete" not in found
    # the same findings as with full access, and one more saying what was not seen
    assert set(seen) == set(found) | {"diagnosis_incomplete"}
    assert {"dev_mode", "no_process_manager", "app_exposed"} <= set(found)
    assert seen["dev_mode"]["severity"] == "critical"
    assert seen["dev_mode"]["evidence"] == [
        "pnpm dev: pid 4000 user workbot cwd unreadable: node /usr/local/bin/pnpm dev "
        "(judged by its user and command line: working directory unreadable)"
    ]
    # alice's `next dev` is refused too, and is not taken for the app's
    assert all("alice" not in e for e in seen["dev_mode"]["evidence"])


def test_dev_server_rows_say_how_they_were_judged(both_ways):
    full, denied = both_ways("no_ptrace_dev")
    scope = {p["pid"]: p["in_scope"] for p in full["facts"]["processes"]}
    assert scope[4000] == scope[4011] == "cwd"
    rows = {p["pid"]: p for p in denied["facts"]["processes"]}
    assert rows[4000]["in_scope"] == "user"  # pnpm's path names nothing of the app
    assert rows[4010]["in_scope"] == "user"  # sh -c next dev
    assert rows[4011]["in_scope"] == "cmdline"  # .../srv/workbot/releases/.../next dev
    assert rows[3000]["in_scope"] is None
    assert rows[4011]["cwd"] is None and rows[4011]["unreadable"] == ["cwd", "fd"]
    # the app port's holder is unknown; its socket's user has one tree of Node.js processes
    [app] = [lst for lst in denied["facts"]["listeners"] if lst["port"] == app_port(denied)]
    assert app["pid"] is None
    assert app["owner_guess"] == {
        "uid": 1500,
        "user": "workbot",
        "pids": [4000, 4011],
        "trees": 1,
        "managed": "none",
    }


def test_dev_server_diagnosis_incomplete(both_ways):
    _, denied = both_ways("no_ptrace_dev")
    inc = by_code(denied)["diagnosis_incomplete"]
    assert inc["severity"] == "warning"
    assert inc["summary"] == (
        "could not read the working directory and open files of 5 process(es) of other "
        "users (no CAP_SYS_PTRACE?): 3 judged the app's (2 as the app user's Node.js "
        "programs, 1 by their command line), 2 left out of the app's scope"
    )
    first, *procs = inc["evidence"]
    assert first.endswith(
        "the process holding it could not be read; judged by its socket's user workbot: "
        "Node.js pids 4000, 4011"
    )
    refused = "(working directory and open files unreadable;"
    by_user = "judged the app's as a Node.js program of the app user)"
    assert procs[:2] == [
        f"pid 4000 user workbot {refused} {by_user}: node /usr/local/bin/pnpm dev",
        f"pid 4010 user workbot {refused} {by_user}: sh -c next dev",
    ]
    by_cmdline = "judged the app's by its command line)"
    root = denied["facts"]["app"]["root"]
    assert procs[2].startswith(f"pid 4011 user workbot {refused} {by_cmdline}: node {root}/")
    assert procs[3].startswith(f"pid 3000 user alice {refused} left out): node /home/alice/blog/")
    assert procs[4] == (
        f"pid 300 user postgres {refused} left out): postgres -D /var/lib/postgresql/15/main"
    )
    facts = denied["facts"]["unreadable"]
    assert (facts["count"], facts["cwd"], facts["fd"], facts["judged"]) == (5, 5, 5, 3)
    assert facts["judged_by"] == {"user": 2, "cmdline": 1}
    assert [p["pid"] for p in facts["processes"]] == [4000, 4010, 4011, 3000, 300]


# --- (b) two `pnpm start` copies on the app port --------------------------------------------


def test_copies_found_without_their_cwd_or_fds(both_ways):
    full, denied = both_ways("no_ptrace_copies")
    found, seen = by_code(full), by_code(denied)
    assert "diagnosis_incomplete" not in found
    assert set(seen) == set(found) | {"diagnosis_incomplete"}
    assert {"duplicate_processes", "no_process_manager"} <= set(found)
    judged = "(judged by its user and command line: working directory unreadable)"
    assert seen["duplicate_processes"]["evidence"] == [
        f"2 copies of `node /usr/local/bin/pnpm start` (pids 4100, 4200) {judged}",
        f"2 copies of `next-server (v15.1.6)` (pids 4101, 4201) {judged}",
    ]
    assert [e.split(" (pids")[0] for e in found["duplicate_processes"]["evidence"]] == [
        e.split(" (pids")[0] for e in seen["duplicate_processes"]["evidence"]
    ]
    # with full access the holder is named; refused, the socket's user's processes are
    assert found["no_process_manager"]["evidence"][0].endswith("next-server (v15.1.6)")
    [line] = seen["no_process_manager"]["evidence"]
    assert "holder unreadable; the Node.js processes of its socket's user workbot" in line
    assert "(pids 4100, 4101, 4200, 4201) run under neither PM2 nor systemd" in line


def test_copies_diagnosis_incomplete(both_ways):
    _, denied = both_ways("no_ptrace_copies")
    inc = by_code(denied)["diagnosis_incomplete"]
    assert inc["summary"] == (
        "could not read the working directory and open files of 5 process(es) of other "
        "users (no CAP_SYS_PTRACE?): 4 judged the app's (4 as the app user's Node.js programs), "
        "1 left out of the app's scope"
    )
    # two trees of the user's Node.js processes: the socket names no one of them
    rows = {p["pid"]: p["in_scope"] for p in denied["facts"]["processes"]}
    assert {rows[pid] for pid in (4100, 4101, 4200, 4201)} == {"user"}


# --- (c) everything readable ----------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["no_ptrace_dev", "no_ptrace_copies", "incident"])
def test_nothing_refused_nothing_incomplete(tmp_path, monkeypatch, scenario):
    result = run_scenario(tmp_path, monkeypatch, scenario)
    assert "diagnosis_incomplete" not in by_code(result)
    assert result["facts"]["unreadable"] == {
        "count": 0,
        "cwd": 0,
        "fd": 0,
        "judged": 0,
        "judged_by": {},
        "processes": [],
    }
    assert all(p["unreadable"] == [] for p in result["facts"]["processes"])
    assert all(lst["owner_guess"] is None for lst in result["facts"]["listeners"])


# --- (d) the hardened host: other users' programs refused -----------------------------------


@pytest.fixture
def hardened_refused(tmp_path, http_server, monkeypatch):
    """The hardened host (no findings with full access), diagnosed with ``pids`` refused."""
    jlist = parse_jlist(fixture_text("pm2", "jlist_healthy.json"), 1770717600000)
    for worker, pid in zip(jlist, (2301, 2315), strict=True):
        worker["pid"] = pid

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
    name_users(monkeypatch, {998: "workbot", 33: "www-data", 105: "postgres", 1001: "alice"})

    def make(pids):
        app, proxy = http_server(), http_server()
        base = tmp_path / f"host{len(pids)}"
        app_root, proc = build_hardened_host(base, app.server_port, proxy.server_port)
        deny_ptrace(monkeypatch, proc, pids)
        opts = DiagnoseOptions(
            app_name="workbot",
            app_root=str(app_root),
            app_port=app.server_port,
            package_name="workbot",
            probes=[{"path": "/", "status": 200}],
            proxy_port=proxy.server_port,
            log_paths=[],
            logrotate_dir=str(base / "logrotate.d"),
            nginx_conf_dir=str(base / "nginx"),
            probe_timeout=3,
            thresholds=THRESHOLDS,
            proc_root=str(proc),
        )
        return diagnose(opts)

    return make


def test_other_users_programs_refused_give_no_app_finding(hardened_refused):
    result = hardened_refused([300, 401, 402, 3000])  # postgres, nginx workers, alice
    [inc] = result["findings"]
    assert (inc["code"], inc["severity"]) == ("diagnosis_incomplete", "warning")
    assert inc["summary"] == (
        "could not read the working directory and open files of 4 process(es) of other "
        "users (no CAP_SYS_PTRACE?): 4 left out of the app's scope"
    )
    assert [line.split(" (")[0] for line in inc["evidence"]] == [
        "pid 3000 user alice",  # a Node.js program first
        "pid 300 user postgres",
        "pid 401 user www-data",
        "pid 402 user www-data",
    ]
    assert "next dev" in inc["evidence"][0]


def test_pm2_workers_refused_are_still_managed(hardened_refused):
    # root without CAP_SYS_PTRACE sees none of PM2's links: its workers are the app's by
    # PM2's word, the app port's holder is PM2's tree by the socket's user
    result = hardened_refused([2290, 2301, 2315, 300, 401, 402, 3000])
    assert [f["code"] for f in result["findings"]] == ["diagnosis_incomplete"]
    [inc] = result["findings"]
    assert inc["summary"].endswith(
        "of 7 process(es) of other users (no CAP_SYS_PTRACE?): 3 judged the app's (2 by PM2's "
        "list, 1 by their command line), 4 left out of the app's scope"
    )
    assert inc["evidence"][0] == (
        "2 PM2 worker(s) of the app: the release they run from was not checked (stale_workers)"
    )
    assert inc["evidence"][1].endswith(
        "judged by its socket's user workbot: Node.js pids 2290, 2301, 2315"
    )
    rows = {p["pid"]: p["in_scope"] for p in result["facts"]["processes"]}
    # PM2's daemon names its home, inside the app root, in its title
    assert (rows[2290], rows[2301], rows[2315]) == ("cmdline", "pm2", "pm2")
    assert "s3cr3t" not in json.dumps(result)


# --- another user's dev server on the app port ----------------------------------------------


def test_holder_judged_by_its_sockets_user(both_ways):
    full, denied = both_ways("no_ptrace_port")
    found, seen = by_code(full), by_code(denied)
    assert set(seen) == set(found) | {"diagnosis_incomplete"}
    assert {"dev_mode", "no_process_manager"} <= set(found)
    [row] = [p for p in full["facts"]["processes"] if p["pid"] == 5000]
    assert row["in_scope"] == "port"
    # refused: the one tree of Node.js processes of the socket's user holds the app port
    [row] = [p for p in denied["facts"]["processes"] if p["pid"] == 5000]
    assert row["in_scope"] == "socket"
    assert seen["dev_mode"]["evidence"] == [
        "node --watch: pid 5000 user deploy cwd unreadable: node --watch server.js "
        "(judged by its socket on the app port: working directory unreadable)"
    ]
    assert seen["diagnosis_incomplete"]["summary"].endswith(
        "of 1 process(es) of other users (no CAP_SYS_PTRACE?): "
        "1 judged the app's (1 by the socket on the app port)"
    )
