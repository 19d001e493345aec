"""findings: every code has a case that triggers it and cases that must not.

The base is a healthy hardened host (PM2 cluster on 127.0.0.1:5000 behind nginx, complete
build, clean logs, rotation in place); each case changes one thing.
"""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.findings import (
    CODES,
    DEFAULT_THRESHOLDS,
    crash_loop_reason,
    evaluate,
    finding,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.logscan import (
    merge_counts,
    scan_file,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pm2 import parse_jlist
from tests.hk_testlib import FIXTURES, fixture_text

NOW_MS = 1770717600000
CONTEXT = {"app_name": "workbot", "app_port": 5000, "proxy_port": 80, "now_ms": NOW_MS}
TSX = "node /workspace/projects/node_modules/.bin/../tsx/dist/cli.mjs watch server.ts"


def listener(address, port, pid, manager, process="", user="workbot"):
    return {
        "proto": "tcp6" if ":" in address else "tcp",
        "address": address,
        "port": port,
        "loopback": address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"),
        "inode": port * 10,
        "pid": pid,
        "pids": [pid] if pid else [],
        "process": process,
        "user": user,
        "manager": manager,
    }


def process(
    pid, ppid, cmdline, cwd, manager=None, in_scope="cwd", dev=None, node=True, user="root"
):
    return {
        "pid": pid,
        "ppid": ppid,
        "user": user,
        "cmdline": cmdline,
        "cwd": cwd,
        "start_time": 1770596040.0,
        "rss_kb": 97240,
        "unit": None,
        "manager": manager,
        "in_scope": in_scope,
        "dev": dev,
        "node": node,
    }


def probe(path, via, status=200, expected=200, error=None):
    return {
        "url": f"http://127.0.0.1:{5000 if via == 'direct' else 80}{path}",
        "path": path,
        "via": via,
        "expected": expected,
        "status": status,
        "ok": status == expected,
        "latency_ms": 3.1,
        "body_sample": "",
        "error": error,
    }


def scans(*names):
    files = [scan_file(str(FIXTURES / "logs" / n), 500) for n in names]
    return {"files": files, "counts": merge_counts(files)}


def pm2_workers(*pids):
    """The recorded healthy cluster, its workers given the pids of the process table."""
    workers = parse_jlist(fixture_text("pm2", "jlist_healthy.json"), NOW_MS)
    for worker, pid in zip(workers, pids, strict=True):
        worker["pid"] = pid
    return workers


def healthy():
    pm2_title = "PM2 v5.4.2: God Daemon (/srv/workbot/.pm2)"
    facts = {
        "memory": {
            "total_kb": 8148484,
            "available_kb": 5002112,
            "used_kb": 3146372,
            "used_pct": 38.6,
        },
        "swap": {"total_kb": 0, "used_kb": 0, "used_pct": 0.0},
        "load": {"load1": 0.41, "load5": 0.52, "load15": 0.47, "running": 1, "threads": 310},
        "cpu_count": 4,
        "disk": [
            {
                "path": "/",
                "paths": ["/srv/workbot", "/srv/workbot/.pm2"],
                "total_kb": 102400000,
                "used_kb": 40960000,
                "avail_kb": 61440000,
                "used_pct": 40.0,
            }
        ],
        "listeners": [
            listener("127.0.0.1", 5000, 2290, "pm2", pm2_title),
            listener("0.0.0.0", 80, 400, "systemd", "nginx: master process", "root"),
            listener("::", 80, 400, "systemd", "nginx: master process", "root"),
            listener("0.0.0.0", 22, 95, "systemd", "sshd: /usr/sbin/sshd -D", "root"),
        ],
        "processes": [
            process(2290, 1, pm2_title, "/srv/workbot", "pm2", user="workbot"),
            process(
                2301,
                2290,
                "next-server (v15.1.6)",
                "/srv/workbot/releases/3f9a",
                "pm2",
                user="workbot",
            ),
            process(
                2315,
                2290,
                "next-server (v15.1.6)",
                "/srv/workbot/releases/3f9a",
                "pm2",
                user="workbot",
            ),
            # another user's project: a dev server, but not ours
            process(
                3000,
                1,
                "node /home/alice/blog/node_modules/.bin/../next/dist/bin/next dev",
                "/home/alice/blog",
                in_scope=None,
                dev="next dev",
                user="alice",
            ),
        ],
        "pm2": {
            "home": "/srv/workbot/.pm2",
            "running": True,
            "queried": True,
            "note": "PM2 daemon pid 2290",
            "error": None,
            "processes": pm2_workers(2301, 2315),
        },
        "build": {
            "current": "/srv/workbot/current",
            "exists": True,
            "build_id": "k3Yq8vPq",
            "routes": 7,
            "missing": [],
            "missing_count": 0,
            "errors": [],
            "ok": True,
        },
        "release": "3f9a",
        "release_dir": "/srv/workbot/releases/3f9a",
        "logs": scans("workbot-out.log"),
        "logrotate": {
            "dir": "/etc/logrotate.d",
            "error": None,
            "required": ["/srv/workbot/.pm2/logs", "/srv/workbot/shared/logs"],
            "covered": {"/srv/workbot/.pm2/logs": "workbot", "/srv/workbot/shared/logs": "workbot"},
            "uncovered": [],
            "pm2_logrotate": False,
        },
        "errors": [],
    }
    probes = [probe(p, via) for via in ("direct", "proxy") for p in ("/", "/login", "/api/health")]
    return facts, probes


def run(mutate=None, thresholds=None):
    facts, probes = healthy()
    if mutate:
        mutate(facts, probes)
    return evaluate(facts, probes, thresholds or {}, CONTEXT)


def codes(found):
    return {f["code"]: f["severity"] for f in found}


def test_healthy_host_has_no_findings():
    assert run() == []


# --- mutations ------------------------------------------------------------------------------


def four_tsx_copies(facts, probes):
    # the incident: four copies started by hand, one serving 0.0.0.0:5000
    for pid in (173, 503, 944, 2207):
        facts["processes"].append(process(pid, 1, TSX, "/workspace/projects", dev="tsx watch"))
    facts["processes"].append(
        process(
            2206,
            120,
            "sh -c tsx watch server.ts",
            "/workspace/projects",
            dev="tsx watch",
            node=False,
        )
    )


def two_unmanaged_servers(facts, probes):
    for pid in (610, 611):
        facts["processes"].append(process(pid, 1, "node dist/server.js", "/srv/workbot/current"))


def unmanaged_cluster(facts, probes):
    # a Node cluster without PM2: workers are forks of the primary, one copy
    facts["processes"].append(process(700, 1, "node dist/server.js", "/srv/workbot/current"))
    for pid in (701, 702):
        facts["processes"].append(process(pid, 700, "node dist/server.js", "/srv/workbot/current"))


def out_of_scope_copies(facts, probes):
    for pid in (810, 811):
        facts["processes"].append(
            process(pid, 1, "node /home/alice/blog/server.js", "/home/alice/blog", in_scope=None)
        )


def shell_wrappers(facts, probes):
    for pid in (900, 901):
        facts["processes"].append(
            process(pid, 1, "sh -c tsx watch server.ts", "/workspace/projects", node=False)
        )


def scoped_dev_server(facts, probes):
    facts["processes"].append(
        process(
            5100,
            1,
            "node /home/dev/workbot/node_modules/.bin/next dev",
            "/home/dev/workbot",
            in_scope="package",
            dev="next dev",
        )
    )


def dev_under_pm2(facts, probes):
    facts["processes"].append(
        process(5200, 2290, "pnpm dev", "/srv/workbot/current", "pm2", dev="pnpm dev")
    )


def no_current(facts, probes):
    facts["build"] = {
        "current": "/srv/workbot/current",
        "exists": False,
        "build_id": None,
        "routes": 0,
        "missing": ["/srv/workbot/current"],
        "missing_count": 1,
        "errors": [],
        "ok": False,
    }


def incomplete_build(facts, probes):
    facts["build"].update(
        ok=False, missing=[".next/server/app/api/health/route.js"], missing_count=1
    )


def api_404(facts, probes):
    for p in probes:
        if p["path"] == "/api/health":
            p.update(status=404, ok=False)


def app_down(facts, probes):
    facts["listeners"] = [lst for lst in facts["listeners"] if lst["port"] != 5000]
    for p in probes:
        if p["via"] == "direct":
            p.update(status=None, ok=False, error="connection refused")
        else:
            p.update(status=502, ok=False)


def proxy_closed(facts, probes):
    facts["listeners"] = [lst for lst in facts["listeners"] if lst["port"] != 80]
    for p in probes:
        if p["via"] == "proxy":
            p.update(status=None, ok=False, error="connection refused")


def proxy_deaf(facts, probes):
    # something holds port 80 but no probe gets an HTTP answer through it
    for p in probes:
        if p["via"] == "proxy":
            p.update(status=None, ok=False, error="closed without a response")


def proxy_502(facts, probes):
    for p in probes:
        if p["via"] == "proxy" and p["path"] == "/api/health":
            p.update(status=502, ok=False)


KIT_SITE = "/etc/nginx/sites-enabled/hardenkit-workbot.conf"


def kit_site(facts, probes):
    # the host was hardened: the kit's Nginx site for the app is enabled
    facts["nginx"] = {
        "conf_dir": "/etc/nginx",
        "conf_files": ["/etc/nginx/nginx.conf", KIT_SITE],
        "error_logs": ["/var/log/nginx/error.log", "/var/log/nginx/hardenkit-workbot.error.log"],
        "site": KIT_SITE,
        "site_present": True,
    }


def both(*mutations):
    def mutate(facts, probes):
        for m in mutations:
            m(facts, probes)

    return mutate


def proxy_all(status, error=None):
    def mutate(facts, probes):
        for p in probes:
            if p["via"] == "proxy":
                p.update(status=status, ok=False, error=error)

    return mutate


# The outage of the report: Nginx stopped on a hardened host, the app fine behind it.
nginx_stopped = both(kit_site, proxy_closed)
nginx_deaf = both(kit_site, proxy_deaf)
nginx_502 = both(kit_site, proxy_all(502))


def app_500_passed_on(facts, probes):
    # the app itself answers 500 on /api/health and Nginx passes it on; the rest is fine
    for p in probes:
        if p["path"] == "/api/health":
            p.update(status=500, ok=False)


def incident_logs(facts, probes):
    facts["logs"] = scans("workbot-error.log", "nginx-error.log")


def unmanaged_listener(facts, probes):
    facts["listeners"][0] = listener("127.0.0.1", 5000, 180, None, TSX, "root")


def nothing_anywhere(facts, probes):
    facts["listeners"] = [lst for lst in facts["listeners"] if lst["port"] != 5000]
    facts["pm2"] = {
        "home": "/srv/workbot/.pm2",
        "running": False,
        "queried": False,
        "note": "no PM2 daemon socket at /srv/workbot/.pm2/rpc.sock",
        "error": None,
        "processes": None,
    }


def down_but_pm2_knows(facts, probes):
    facts["listeners"] = [lst for lst in facts["listeners"] if lst["port"] != 5000]
    for p in facts["pm2"]["processes"]:
        p["status"] = "errored"


def down_pm2_unknown(facts, probes):
    facts["listeners"] = [lst for lst in facts["listeners"] if lst["port"] != 5000]
    facts["pm2"].update(error="pm2 jlist timed out after 20s", processes=None)


def owner_unreadable(facts, probes):
    facts["listeners"][0].update(pid=None, pids=[], process=None, manager=None)


def owner_unreadable_no_pm2(facts, probes):
    owner_unreadable(facts, probes)
    facts["pm2"].update(running=False, queried=False, processes=None)


def exposed_v4(facts, probes):
    facts["listeners"][0]["address"] = "0.0.0.0"
    facts["listeners"][0]["loopback"] = False


def exposed_v6(facts, probes):
    facts["listeners"].append(listener("::", 5000, 2290, "pm2"))


def loopback_v6(facts, probes):
    facts["listeners"].append(listener("::1", 5000, 2290, "pm2"))
    facts["listeners"].append(listener("::ffff:127.0.0.1", 5000, 2290, "pm2"))


def hand_copy_on_all_interfaces(facts, probes):
    # `PORT=5101 HOSTNAME=0.0.0.0 pnpm start` by the app user in the live release
    facts["processes"].append(
        process(4300, 1, "node dist/server.js", "/srv/workbot/current", user="workbot")
    )
    facts["listeners"].append(listener("0.0.0.0", 5101, 4300, None, "node dist/server.js"))


def hand_copy_refused(facts, probes):
    # the same copy where root may not read its fds: the socket's user runs only the app's
    # Node.js processes (judged by user)
    facts["processes"].append(
        process(4300, 1, "node dist/server.js", None, in_scope="user", user="workbot")
        | {"unreadable": ["cwd", "fd"]}
    )
    facts["listeners"].append(
        listener("::", 5101, None, None)
        | {
            "owner_guess": {
                "uid": 998,
                "user": "workbot",
                "pids": [4300],
                "trees": 1,
                "managed": "none",
            }
        }
    )


def other_users_server_exposed(facts, probes):
    facts["processes"].append(
        process(810, 1, "node /home/alice/blog/server.js", "/home/alice/blog", in_scope=None)
    )
    facts["listeners"].append(listener("0.0.0.0", 8080, 810, None, "node server.js", "alice"))


def refused_holder_not_only_the_apps(facts, probes):
    # the socket's user runs the app's copy and a Node.js process that is not the app's
    hand_copy_refused(facts, probes)
    facts["processes"].append(process(4400, 1, "node /opt/tool.js", None, in_scope=None))
    facts["listeners"][-1]["owner_guess"]["pids"] = [4300, 4400]


def hand_copy_on_loopback(facts, probes):
    hand_copy_on_all_interfaces(facts, probes)
    facts["listeners"][-1].update(address="127.0.0.1", loopback=True)


def unrotated(facts, probes):
    facts["logrotate"]["uncovered"] = ["/srv/workbot/.pm2/logs"]
    facts["logrotate"]["covered"].pop("/srv/workbot/.pm2/logs")


def memory_pct(pct):
    def mutate(facts, probes):
        facts["memory"]["used_pct"] = pct

    return mutate


def disk_pct(pct):
    def mutate(facts, probes):
        facts["disk"][0]["used_pct"] = pct

    return mutate


def load5(value, load1=None):
    def mutate(facts, probes):
        facts["load"]["load5"] = value
        if load1 is not None:
            facts["load"]["load1"] = load1

    return mutate


def crash_fixture(facts, probes):
    facts["pm2"]["processes"] = parse_jlist(fixture_text("pm2", "jlist_crashloop.json"), NOW_MS)


def cwd_of(pid, cwd):
    def mutate(facts, probes):
        next(p for p in facts["processes"] if p["pid"] == pid)["cwd"] = cwd

    return mutate


def refused(pid, user, cmdline, in_scope=None, what=("cwd", "fd")):
    """An entry of facts["unreadable"]["processes"]: a process whose links were refused."""
    return {
        "pid": pid,
        "user": user,
        "cmdline": cmdline,
        "unreadable": list(what),
        "program": cmdline.startswith(("node", "next-server", "PM2")),
        "in_scope": in_scope,
    }


def unreadable(*entries):
    judged_by = {}
    for e in entries:
        if e["in_scope"]:
            judged_by[e["in_scope"]] = judged_by.get(e["in_scope"], 0) + 1
    return {
        "count": len(entries),
        "cwd": sum("cwd" in e["unreadable"] for e in entries),
        "fd": sum("fd" in e["unreadable"] for e in entries),
        "judged": sum(judged_by.values()),
        "judged_by": judged_by,
        "processes": list(entries),
    }


def no_ptrace(facts, probes):
    # root without CAP_SYS_PTRACE (a container): none of PM2's links read. The workers are
    # the app's by PM2's list, its daemon by its title; the app port's holder is unknown,
    # and the one tree of its socket's user runs under PM2.
    facts["listeners"][0].update(
        pid=None,
        pids=[],
        process=None,
        manager=None,
        owner_guess={
            "uid": 998,
            "user": "workbot",
            "pids": [2290, 2301, 2315],
            "trees": 1,
            "managed": "all",
        },
    )
    for p in facts["processes"]:
        if p["user"] in ("workbot", "alice"):
            p.update(cwd=None, unreadable=["cwd", "fd"])
    facts["processes"][0]["in_scope"] = "cmdline"
    facts["processes"][1]["in_scope"] = facts["processes"][2]["in_scope"] = "pm2"
    facts["unreadable"] = unreadable(
        refused(2290, "workbot", "PM2 v5.4.2: God Daemon (/srv/workbot/.pm2)", "cmdline"),
        refused(2301, "workbot", "next-server (v15.1.6)", "pm2"),
        refused(2315, "workbot", "next-server (v15.1.6)", "pm2"),
        refused(3000, "alice", "node /home/alice/blog/node_modules/.bin/../next/dist/bin/next dev"),
    )


def no_ptrace_pm2_unknown(facts, probes):
    no_ptrace(facts, probes)
    facts["pm2"].update(running=False, queried=False, processes=None)


def unmanaged_copies_refused(facts, probes):
    # two `pnpm start` copies of the app user, refused, one of them on the app port beside
    # PM2's workers (SO_REUSEPORT): the socket's user's copies run unmanaged
    for pid in (4100, 4200):
        facts["processes"].append(
            process(pid, 1, "node /usr/local/bin/pnpm start", None, in_scope="user")
            | {"unreadable": ["cwd", "fd"], "user": "workbot"}
        )
    facts["listeners"].append(
        listener("127.0.0.1", 5000, None, None)
        | {
            "owner_guess": {
                "uid": 1500,
                "user": "workbot",
                "pids": [4100, 4200],
                "trees": 2,
                "managed": "none",
            }
        }
    )
    facts["unreadable"] = unreadable(
        refused(4100, "workbot", "node /usr/local/bin/pnpm start", "user"),
        refused(4200, "workbot", "node /usr/local/bin/pnpm start", "user"),
    )


def link_changed_by_hand(facts, probes):
    # current now points to 7c1d, the workers were never reloaded
    facts["release"], facts["release_dir"] = "7c1d", "/srv/workbot/releases/7c1d"


def old_worker_beside_new(facts, probes):
    # a reload renamed the old worker _old_0 and PM2 restarted it beside the new ones
    facts["processes"].append(
        process(2320, 2290, "next-server (v15.1.6)", "/srv/workbot/releases/1b2c", "pm2")
    )
    old = dict(facts["pm2"]["processes"][0], name="_old_0", pm_id=2, pid=2320)
    facts["pm2"]["processes"].append(old)


def worker_in_a_subdirectory(facts, probes):
    # a monorepo's app runs from a directory inside the release
    for p in facts["processes"]:
        if p["pid"] in (2301, 2315):
            p["cwd"] = "/srv/workbot/releases/3f9a/apps/web"


def pm2_module_elsewhere(facts, probes):
    facts["processes"].append(
        process(2330, 2290, "node pm2-logrotate", "/srv/workbot/.pm2/modules/pm2-logrotate", "pm2")
    )
    module = dict(facts["pm2"]["processes"][0], name="pm2-logrotate", pid=2330, is_module=True)
    facts["pm2"]["processes"].append(module)


def no_live_release(facts, probes):
    facts["release"] = facts["release_dir"] = None


def sibling_release_prefix(facts, probes):
    # releases/3f9a2 is another release, not a directory inside releases/3f9a
    cwd_of(2315, "/srv/workbot/releases/3f9a2")(facts, probes)


def database(**fields):
    """The diagnosis's database facts, as dbcheck.check returns them."""

    def mutate(facts, probes):
        facts["database"] = {
            "scheme": "postgres",
            "host": "db.internal",
            "port": 5432,
            "budget": 12,
            "reachable": True,
            "error": "",
            "connect_ms": 0.4,
            "connections": 5,
            **fields,
        }

    return mutate


DB_DOWN = database(reachable=False, error="connect to 10.0.0.9:5432: Connection refused")


TRIGGERS = [
    ("four tsx copies", four_tsx_copies, "duplicate_processes", "critical"),
    ("two unmanaged servers", two_unmanaged_servers, "duplicate_processes", "critical"),
    ("four tsx copies are dev mode", four_tsx_copies, "dev_mode", "critical"),
    ("dev server found by package name", scoped_dev_server, "dev_mode", "critical"),
    ("dev server even under PM2", dev_under_pm2, "dev_mode", "critical"),
    ("no current release", no_current, "build_missing", "critical"),
    ("route file missing", incomplete_build, "build_missing", "critical"),
    ("API 404", api_404, "route_failed", "critical"),
    ("app down", app_down, "route_failed", "critical"),
    ("proxy answers 502", proxy_502, "route_failed", "critical"),
    ("app down behind the kit's Nginx", both(kit_site, app_down), "route_failed", "critical"),
    ("Nginx stopped on a hardened host", nginx_stopped, "proxy_down", "critical"),
    ("the kit's port 80 gives no HTTP answer", nginx_deaf, "proxy_down", "critical"),
    ("the kit's Nginx answers 502 everywhere", nginx_502, "proxy_down", "critical"),
    (
        "the kit's Nginx answers 504 and nothing",
        both(kit_site, proxy_all(504), lambda f, p: p[-1].update(status=None, error="timed out")),
        "proxy_down",
        "critical",
    ),
    (
        "Nginx and the app both stopped",
        both(kit_site, app_down, proxy_closed),
        "proxy_down",
        "critical",
    ),
    ("incident logs", incident_logs, "log_errors", "warning"),
    ("listener not managed", unmanaged_listener, "no_process_manager", "critical"),
    ("nothing runs at all", nothing_anywhere, "no_process_manager", "critical"),
    (
        "owner unreadable, PM2 runs nothing",
        owner_unreadable_no_pm2,
        "no_process_manager",
        "critical",
    ),
    ("0.0.0.0:5000", exposed_v4, "app_exposed", "critical"),
    ("[::]:5000", exposed_v6, "app_exposed", "critical"),
    ("a copy by hand on 0.0.0.0:5101", hand_copy_on_all_interfaces, "app_exposed", "critical"),
    ("a refused copy on [::]:5101", hand_copy_refused, "app_exposed", "critical"),
    ("port 80 closed", proxy_closed, "no_reverse_proxy", "warning"),
    ("port 80 open, no HTTP answer", proxy_deaf, "no_reverse_proxy", "warning"),
    ("PM2 logs unrotated", unrotated, "no_log_rotation", "warning"),
    ("memory 86%", memory_pct(86), "memory_high", "warning"),
    ("memory 96%", memory_pct(96), "memory_high", "critical"),
    ("disk 90%", disk_pct(90), "disk_high", "warning"),
    ("disk 97%", disk_pct(97), "disk_high", "critical"),
    ("load 2.25 per CPU", load5(9.0), "load_high", "warning"),
    ("load 4.25 per CPU", load5(17.0), "load_high", "critical"),
    ("crash-looping cluster", crash_fixture, "crash_loop", "critical"),
    (
        "a worker runs a pruned release",
        cwd_of(2315, "/srv/workbot/releases/1b2c (deleted)"),
        "stale_workers",
        "critical",
    ),
    ("current changed without a reload", link_changed_by_hand, "stale_workers", "critical"),
    ("an _old_ worker beside the new ones", old_worker_beside_new, "stale_workers", "critical"),
    (
        "a release whose name extends the live one's",
        sibling_release_prefix,
        "stale_workers",
        "critical",
    ),
    (
        "holder refused, its socket user's copies unmanaged",
        unmanaged_copies_refused,
        "no_process_manager",
        "critical",
    ),
    (
        "judged copies refused are still copies",
        unmanaged_copies_refused,
        "duplicate_processes",
        "critical",
    ),
    ("root without CAP_SYS_PTRACE", no_ptrace, "diagnosis_incomplete", "warning"),
    ("the database refuses, the app answers", DB_DOWN, "db_unreachable", "warning"),
    ("the database refuses, the app fails", both(DB_DOWN, app_down), "db_unreachable", "critical"),
    ("11 of 12 connections held", database(connections=11), "db_connections_high", "warning"),
    ("the whole budget held", database(connections=12), "db_connections_high", "warning"),
]

MUST_NOT = [
    ("PM2 cluster workers share a command line", None, "duplicate_processes"),
    ("a cluster's forks are one copy", unmanaged_cluster, "duplicate_processes"),
    ("another user's copies", out_of_scope_copies, "duplicate_processes"),
    ("shell wrappers are not copies", shell_wrappers, "duplicate_processes"),
    ("a single unmanaged copy", scoped_dev_server, "duplicate_processes"),
    ("another user's next dev", None, "dev_mode"),
    ("complete build", None, "build_missing"),
    ("all probes pass", None, "route_failed"),
    ("a closed proxy is not also a failed route", proxy_closed, "route_failed"),
    ("a down proxy is not also failed routes", nginx_502, "route_failed"),
    ("no kit site: port 80 closed is no_reverse_proxy", proxy_closed, "proxy_down"),
    ("no kit site: no HTTP answer is no_reverse_proxy", proxy_deaf, "proxy_down"),
    ("no kit site: 502 everywhere", proxy_all(502), "proxy_down"),
    ("the kit's Nginx answers", kit_site, "proxy_down"),
    ("the kit's Nginx answers 502 on one path", both(kit_site, proxy_502), "proxy_down"),
    ("502 because the app is down", both(kit_site, app_down), "proxy_down"),
    ("the app's own 500 passed on", both(kit_site, app_500_passed_on), "proxy_down"),
    (
        "the site file named but absent",
        both(kit_site, lambda f, p: f["nginx"].update(site_present=False), proxy_closed),
        "proxy_down",
    ),
    ("clean logs", None, "log_errors"),
    ("listener under PM2", None, "no_process_manager"),
    ("down, but PM2 has the app", down_but_pm2_knows, "no_process_manager"),
    ("down, PM2 unknown", down_pm2_unknown, "no_process_manager"),
    ("owner unreadable, PM2 app online", owner_unreadable, "no_process_manager"),
    ("loopback only", loopback_v6, "app_exposed"),
    ("another user's server on 0.0.0.0", other_users_server_exposed, "app_exposed"),
    ("a refused holder whose user runs more", refused_holder_not_only_the_apps, "app_exposed"),
    ("a copy by hand on loopback", hand_copy_on_loopback, "app_exposed"),
    ("nginx answers", None, "no_reverse_proxy"),
    ("nginx answers 502", proxy_502, "no_reverse_proxy"),
    ("Nginx stopped on a hardened host is proxy_down", nginx_stopped, "no_reverse_proxy"),
    ("no HTTP answer on a hardened host is proxy_down", nginx_deaf, "no_reverse_proxy"),
    ("everything rotated", None, "no_log_rotation"),
    ("memory 84.9%", memory_pct(84.9), "memory_high"),
    ("incident memory 81%", memory_pct(81.0), "memory_high"),
    ("disk 84%", disk_pct(84), "disk_high"),
    ("load 1.97 per CPU", load5(7.9), "load_high"),
    ("a one-minute spike", load5(1.0, load1=30.0), "load_high"),
    ("healthy cluster after three deploys", None, "crash_loop"),
    ("workers in the live release", None, "stale_workers"),
    ("workers in a directory of the live release", worker_in_a_subdirectory, "stale_workers"),
    ("a PM2 module runs from its own directory", pm2_module_elsewhere, "stale_workers"),
    ("a worker's directory cannot be read", cwd_of(2315, None), "stale_workers"),
    ("no current link", no_live_release, "stale_workers"),
    ("holder refused, its socket user's tree under PM2", no_ptrace, "no_process_manager"),
    (
        "holder refused, under PM2 though PM2 cannot be asked",
        no_ptrace_pm2_unknown,
        "no_process_manager",
    ),
    ("a refused worker's release is not guessed", no_ptrace, "stale_workers"),
    ("no database in app_env", None, "db_unreachable"),
    ("the database answers", database(), "db_unreachable"),
    ("a MySQL server is not connected to", database(reachable=None), "db_unreachable"),
    ("10 of 12 connections held", database(connections=10), "db_connections_high"),
    ("no budget", database(budget=0, connections=40), "db_connections_high"),
    ("connections not counted (a socket)", database(connections=None), "db_connections_high"),
    ("everything readable", None, "diagnosis_incomplete"),
    (
        "a recorded diagnosis from before the rule",
        lambda f, p: f.pop("unreadable", None),
        "diagnosis_incomplete",
    ),
]


@pytest.mark.parametrize(
    ("name", "mutate", "code", "severity"), TRIGGERS, ids=[t[0] for t in TRIGGERS]
)
def test_triggers(name, mutate, code, severity):
    found = codes(run(mutate))
    assert found.get(code) == severity, found


@pytest.mark.parametrize(("name", "mutate", "code"), MUST_NOT, ids=[t[0] for t in MUST_NOT])
def test_must_not_trigger(name, mutate, code):
    assert code not in codes(run(mutate))


def test_every_code_is_covered_both_ways():
    assert {t[2] for t in TRIGGERS} == set(CODES)
    assert {t[2] for t in MUST_NOT} == set(CODES)


# --- details of particular rules ------------------------------------------------------------


def test_duplicate_evidence_names_the_copies():
    [dup] = [f for f in run(four_tsx_copies) if f["code"] == "duplicate_processes"]
    assert dup["evidence"] == [f"4 copies of `{TSX}` (pids 173, 503, 944, 2207)"]
    assert "4 times" in dup["summary"]


def test_dev_mode_reports_the_top_of_each_tree():
    def tree(facts, probes):
        facts["processes"] += [
            process(10, 1, "pnpm dev", "/srv/workbot/current", dev="pnpm dev"),
            process(11, 10, "sh -c next dev", "/srv/workbot/current", dev="next dev", node=False),
            process(12, 11, "node .../next dev", "/srv/workbot/current", dev="next dev"),
        ]

    [dev] = [f for f in run(tree) if f["code"] == "dev_mode"]
    assert len(dev["evidence"]) == 1 and dev["evidence"][0].startswith("pnpm dev: pid 10")
    assert "next dev, pnpm dev" in dev["summary"]


def test_app_exposed_names_the_copy_on_another_port():
    (found,) = [f for f in run(hand_copy_on_all_interfaces) if f["code"] == "app_exposed"]
    assert found["summary"].startswith("the app listens on a non-loopback address on port(s) 5101")
    assert found["evidence"] == ["0.0.0.0:5101 (tcp) pid 4300 (workbot): node dist/server.js"]


def test_app_exposed_says_a_refused_holder_was_judged():
    (found,) = [f for f in run(hand_copy_refused) if f["code"] == "app_exposed"]
    assert found["evidence"] == [
        "[::]:5101 (tcp6) pid ?: holder unreadable; its socket's user workbot runs only "
        "the app's Node.js processes (pids 4300)"
    ]


def test_route_failed_evidence():
    [rf] = [f for f in run(app_down) if f["code"] == "route_failed"]
    assert "GET /api/health via direct: connection refused (expected 200)" in rf["evidence"]
    assert "GET / via proxy: 502 (expected 200)" in rf["evidence"]


@pytest.mark.parametrize(
    ("mutate", "summary"),
    [
        (nginx_stopped, "clients get no answer: nothing listens on port 80"),
        (nginx_deaf, "clients get no answer: port 80 takes connections but gives no HTTP answer"),
        (
            nginx_502,
            "clients get no answer: Nginx answers 502 for /, /login, /api/health: "
            "it cannot reach the app",
        ),
        (
            both(kit_site, proxy_all(502), lambda f, p: p[-1].update(status=None)),
            "clients get no answer: Nginx answers 502 for /, /login, nothing for /api/health: "
            "it cannot reach the app",
        ),
    ],
    ids=["closed", "no HTTP answer", "502", "502 and nothing"],
)
def test_proxy_down_names_the_cause_once(mutate, summary):
    found = run(mutate)
    # one finding says it: not also no_reverse_proxy, nor the proxy's routes as route_failed
    assert codes(found) == {"proxy_down": "critical"}, found
    [down] = found
    assert down["summary"] == summary
    assert down["evidence"][0] == f"the kit's site {KIT_SITE} is enabled"
    assert down["evidence"][-1] == "the app answers directly: / 200, /login 200, /api/health 200"
    assert sum(line.startswith("GET ") and "via proxy" in line for line in down["evidence"]) == 3


def test_proxy_down_beside_the_app_down():
    # both stopped: the proxy's outage once, the app's routes once, nothing about "no proxy"
    found = {f["code"]: f for f in run(both(kit_site, app_down, proxy_closed))}
    assert set(found) == {"proxy_down", "route_failed"}
    assert all("via direct" in e for e in found["route_failed"]["evidence"])
    assert not any("the app answers" in e for e in found["proxy_down"]["evidence"])


def test_no_kit_site_keeps_no_reverse_proxy_as_it_was():
    # the incident's case: an unhardened host serving the app directly
    [nrp] = run(proxy_closed)
    assert (nrp["code"], nrp["severity"]) == ("no_reverse_proxy", "warning")
    assert nrp["summary"] == "nothing listens on the proxy port 80"


def test_heap_out_of_memory_is_still_a_warning():
    [le] = [f for f in run(incident_logs) if f["code"] == "log_errors"]
    assert le["severity"] == "warning"
    assert le["summary"].startswith("error patterns in recent logs: ENOENT 4")
    assert any("heap out of memory x1" in e for e in le["evidence"])
    assert "s3cr3t" not in json.dumps(le)


def test_thresholds_are_parameters():
    assert codes(run(memory_pct(70), {"memory_warn_pct": 60, "memory_crit_pct": 90})) == {
        "memory_high": "warning"
    }
    assert run(memory_pct(96), {"memory_warn_pct": 97, "memory_crit_pct": 99}) == []


def test_crash_loop_evidence():
    [cl] = [f for f in run(crash_fixture) if f["code"] == "crash_loop"]
    assert cl["evidence"] == [
        "workbot (pm_id 0, online): 3 unstable restart(s) (exited within min_uptime of starting)",
        "workbot (pm_id 1, errored): PM2 gave up restarting it (status errored)",
    ]


BASE_PM2 = {"name": "workbot", "pm_id": 0, "status": "online", "unstable_restarts": 0}


@pytest.mark.parametrize(
    ("restarts", "created_s_ago", "up_s", "crash"),
    [
        (6, 3600, 60, True),  # crashed and restarted since the last deploy, a minute ago
        (6, 3600, 400, False),  # up longer than the window
        (4, 3600, 60, False),  # below the restart threshold
        (12, 10, 10, False),  # twelve deploys, the last 10 s ago: reloads, not crashes
        (5, 600, 5, True),
    ],
)
def test_crash_loop_restart_rule(restarts, created_s_ago, up_s, crash):
    proc = dict(
        BASE_PM2,
        restart_time=restarts,
        created_at=NOW_MS - created_s_ago * 1000,
        pm_uptime=NOW_MS - up_s * 1000,
    )
    assert (crash_loop_reason(proc, DEFAULT_THRESHOLDS, NOW_MS) is not None) is crash


@pytest.mark.parametrize(
    ("unstable", "up_after_created_s", "crash"),
    [
        # one unstable restart and no automatic restart since the last deliberate start:
        # the stop of PM2's own restart path (a reload of a launching worker), not a crash
        (1, 0.3, False),
        (1, 2.6, True),  # restarted on its own 2.6 s after its start: it crashed
        (2, 0.3, True),  # two are never a reload's own
    ],
)
def test_crash_loop_unstable_rule(unstable, up_after_created_s, crash):
    created = NOW_MS - 5_000
    proc = dict(
        BASE_PM2,
        restart_time=1,
        unstable_restarts=unstable,
        created_at=created,
        pm_uptime=created + int(up_after_created_s * 1000),
    )
    assert (crash_loop_reason(proc, DEFAULT_THRESHOLDS, NOW_MS) is not None) is crash
    # without the times, every unstable restart counts
    bare = dict(BASE_PM2, unstable_restarts=unstable)
    assert crash_loop_reason(bare, DEFAULT_THRESHOLDS, NOW_MS) is not None


def test_evaluate_orders_critical_first_and_shapes_findings():
    def incident(facts, probes):
        four_tsx_copies(facts, probes)
        incident_logs(facts, probes)
        unrotated(facts, probes)
        exposed_v4(facts, probes)

    found = run(incident)
    severities = [f["severity"] for f in found]
    assert severities == sorted(severities, key=["critical", "warning", "info"].index)
    for f in found:
        assert set(f) == {"code", "severity", "summary", "evidence"}
        assert isinstance(f["evidence"], list) and f["evidence"]
        assert all(len(line) <= 240 for line in f["evidence"])


def test_evaluate_with_nothing_collected():
    found = evaluate({}, [], {}, CONTEXT)
    assert {f["code"] for f in found} == {"no_process_manager", "no_reverse_proxy"}


def test_evidence_is_bounded():
    f = finding("route_failed", "critical", "x", [f"line {i}" for i in range(20)])
    assert len(f["evidence"]) == 9 and f["evidence"][-1] == "... and 12 more"
    with pytest.raises(ValueError):
        finding("not_a_code", "critical", "x", [])
    with pytest.raises(ValueError):
        finding("route_failed", "fatal", "x", [])


def test_facts_are_not_mutated():
    facts, probes = healthy()
    before = copy.deepcopy((facts, probes))
    evaluate(facts, probes, {}, CONTEXT)
    assert (facts, probes) == before


def test_a_reload_of_a_launching_worker_is_not_a_crash_loop():
    # A real `pm2 jlist` (PM2 6.0.14, cluster of 2, min_uptime 10 s, exponential backoff),
    # taken 1.8 s after a reload away from a release whose workers exit 2 s after start.
    # pm_id 0 was reloaded while it was launching: PM2's restart path reset its counters,
    # then counted its own stop as an unstable restart (created_at to pm_uptime 0.37 s).
    # pm_id 1 was not reloaded and crashed on its own 2.3 s after its start.
    now_ms = 1796473935017
    procs = parse_jlist(fixture_text("pm2", "jlist_reload_from_launching.json"), now_ms)
    reasons = {p["pm_id"]: crash_loop_reason(p, DEFAULT_THRESHOLDS, now_ms) for p in procs}
    assert reasons == {0: None, 1: "1 unstable restart(s) (exited within min_uptime of starting)"}


def test_stale_workers_evidence():
    [sw] = [
        f
        for f in run(cwd_of(2315, "/srv/workbot/releases/1b2c (deleted)"))
        if f["code"] == "stale_workers"
    ]
    assert sw["summary"] == "1 PM2 worker(s) serve another release than the live one"
    assert sw["evidence"] == [
        "workbot (pm_id 1, pid 2315) runs from /srv/workbot/releases/1b2c,"
        " a directory since deleted",
        "the live release (current) is /srv/workbot/releases/3f9a",
    ]
    [both] = [f for f in run(link_changed_by_hand) if f["code"] == "stale_workers"]
    assert both["summary"].startswith("2 PM2 worker(s)")


def test_diagnosis_incomplete_says_what_and_how_many():
    [inc] = [f for f in run(no_ptrace) if f["code"] == "diagnosis_incomplete"]
    assert inc["summary"] == (
        "could not read the working directory and open files of 4 process(es) of other users "
        "(no CAP_SYS_PTRACE?): 3 judged the app's (2 by PM2's list, 1 by their command line), "
        "1 left out of the app's scope"
    )
    assert inc["evidence"] == [
        "2 PM2 worker(s) of the app: the release they run from was not checked (stale_workers)",
        "127.0.0.1:5000: the process holding it could not be read; judged by its socket's user "
        "workbot: Node.js pids 2290, 2301, 2315",
        "pid 2290 user workbot (working directory and open files unreadable; judged the app's "
        "by its command line): PM2 v5.4.2: God Daemon (/srv/workbot/.pm2)",
        "pid 2301 user workbot (working directory and open files unreadable; the app's by "
        "PM2's list): next-server (v15.1.6)",
        "pid 2315 user workbot (working directory and open files unreadable; the app's by "
        "PM2's list): next-server (v15.1.6)",
        "pid 3000 user alice (working directory and open files unreadable; left out): "
        "node /home/alice/blog/node_modules/.bin/../next/dist/bin/next dev",
    ]


def test_diagnosis_incomplete_without_root_and_cwd_only():
    def mutate(facts, probes):
        facts["as_root"] = False
        facts["unreadable"] = unreadable(
            refused(300, "postgres", "postgres -D /var/lib/postgresql/15/main", what=["cwd"]),
        )

    [inc] = [f for f in run(mutate) if f["code"] == "diagnosis_incomplete"]
    assert inc["summary"] == (
        "could not read the working directory of 1 process(es) of other users "
        "(not run as root): 1 left out of the app's scope"
    )


def test_diagnosis_incomplete_counts_what_it_does_not_list():
    many = [refused(1000 + i, "bob", f"sleep {i}") for i in range(20)]

    def mutate(facts, probes):
        facts["unreadable"] = unreadable(*many) | {"count": 250, "cwd": 250, "fd": 250}

    [inc] = [f for f in run(mutate) if f["code"] == "diagnosis_incomplete"]
    assert "of 250 process(es)" in inc["summary"]
    assert len(inc["evidence"]) == 8
    assert inc["evidence"][-1] == "... and 243 more"  # 13 listed but not shown, 230 unlisted
    assert all("bob" in line for line in inc["evidence"][:-1])


def test_judged_processes_say_so_in_their_findings():
    found = {f["code"]: f for f in run(unmanaged_copies_refused)}
    judged = "(judged by its user and command line: working directory unreadable)"
    assert found["duplicate_processes"]["evidence"] == [
        f"2 copies of `node /usr/local/bin/pnpm start` (pids 4100, 4200) {judged}"
    ]
    assert found["no_process_manager"]["evidence"] == [
        "127.0.0.1:5000: holder unreadable; the Node.js processes of its socket's user workbot "
        "(pids 4100, 4200) run under neither PM2 nor systemd (judged by the socket's user: "
        "open files unreadable)"
    ]


def test_diagnosis_incomplete_counts_unlisted_processes_with_few_lines():
    def mutate(facts, probes):
        entries = [refused(1000 + i, "bob", f"sleep {i}") for i in range(3)]
        facts["unreadable"] = unreadable(*entries) | {"count": 8, "cwd": 8, "fd": 8}

    [inc] = [f for f in run(mutate) if f["code"] == "diagnosis_incomplete"]
    assert len(inc["evidence"]) == 4 and inc["evidence"][-1] == "... and 5 more"


def test_every_judged_scope_is_worded():
    from ansible_collections.hardenkit.nodeapp.plugins.module_utils import classify, findings

    assert set(findings.JUDGED) == set(classify.JUDGED_SCOPES)


def test_the_database_findings_name_its_address_never_its_credentials():
    found = run(both(DB_DOWN, database(reachable=False, connections=12, error="refused")))
    by_code = {f["code"]: f for f in found}
    assert "db.internal:5432" in by_code["db_unreachable"]["summary"]
    assert by_code["db_unreachable"]["evidence"] == ["refused"]
    assert "app_db_connection_budget 12" in by_code["db_connections_high"]["evidence"][0]
