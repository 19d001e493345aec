"""Turn collected facts and probe results into findings.

A finding is ``{code, severity, summary, evidence}``: ``evidence`` is a short list of
human-readable lines (addresses, pids, counts, masked command lines), never environment
values. One small function per rule; ``evaluate`` runs them all. The rules read the JSON
facts the diagnose module returns, so a recorded diagnosis can be re-evaluated in tests.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pm2 import app_processes
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pm2service import (
    DELETED,
    runs_elsewhere,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.redact import shorten

Finding = dict[str, Any]
Facts = Mapping[str, Any]

CRITICAL = "critical"
WARNING = "warning"
INFO = "info"
SEVERITIES = (CRITICAL, WARNING, INFO)

# The public contract's codes, in the order reports list them.
CODES = (
    "duplicate_processes",
    "dev_mode",
    "build_missing",
    "route_failed",
    "proxy_down",
    "log_errors",
    "no_process_manager",
    "app_exposed",
    "no_reverse_proxy",
    "no_log_rotation",
    "memory_high",
    "disk_high",
    "load_high",
    "crash_loop",
    "stale_workers",
    "db_unreachable",
    "db_connections_high",
    "diagnosis_incomplete",
)
RESOURCE_CODES = frozenset({"memory_high", "disk_high", "load_high"})

DEFAULT_THRESHOLDS: dict[str, float] = {
    "memory_warn_pct": 85,
    "memory_crit_pct": 95,
    "disk_warn_pct": 85,
    "disk_crit_pct": 95,
    "load_warn_per_cpu": 2.0,
    "load_crit_per_cpu": 4.0,
    "crash_loop_restarts": 5,
    "crash_loop_window_s": 300,
    "db_connections_pct": 90,
}

EVIDENCE_LINES = 8
CMD_CHARS = 160


def finding(code: str, severity: str, summary: str, evidence: list[str]) -> Finding:
    if code not in CODES:
        raise ValueError(f"unknown finding code {code!r}")
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}")
    lines = [shorten(e, 240) for e in evidence[:EVIDENCE_LINES]]
    if len(evidence) > EVIDENCE_LINES:
        lines.append(f"... and {len(evidence) - EVIDENCE_LINES} more")
    return {"code": code, "severity": severity, "summary": summary, "evidence": lines}


# A process whose working directory could not be read is judged the app's on less
# (classify.JUDGED_SCOPES); each finding that counts it says so.
JUDGED = {
    "cmdline": "judged by its command line: working directory unreadable",
    "user": "judged by its user and command line: working directory unreadable",
    "socket": "judged by its socket on the app port: working directory unreadable",
}


def _unreadable(p: Mapping[str, Any], what: str) -> bool:
    return what in (p.get("unreadable") or [])


def _judged(ps: list[Mapping[str, Any]]) -> str:
    """`` (judged by ...)`` for the processes judged on less, or ``""``."""
    notes = sorted({JUDGED[str(p.get("in_scope"))] for p in ps if p.get("in_scope") in JUDGED})
    return f" ({'; '.join(notes)})" if notes else ""


def _proc_line(p: Mapping[str, Any]) -> str:
    cwd = p.get("cwd") or ("unreadable" if _unreadable(p, "cwd") else "?")
    return (
        f"pid {p.get('pid')} user {p.get('user')} cwd {cwd}: "
        f"{shorten(str(p.get('cmdline', '')), CMD_CHARS)}{_judged([p])}"
    )


def _addr(lst: Mapping[str, Any]) -> str:
    addr = str(lst.get("address", "?"))
    return f"[{addr}]:{lst.get('port')}" if ":" in addr else f"{addr}:{lst.get('port')}"


# --- processes ---------------------------------------------------------------------------


def find_duplicates(processes: list[Mapping[str, Any]]) -> list[Finding]:
    """Same app command line running more than once outside a process manager.

    Counts in-scope Node.js processes (shell wrappers and the user's shells are not app
    copies) without a manager, by normalized command line. A process whose parent runs
    the same command line is a fork of it (a Node cluster worker), not another copy.
    """
    candidates = [
        p for p in processes if p.get("in_scope") and p.get("node") and not p.get("manager")
    ]
    by_pid = {p["pid"]: p for p in processes}
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for p in candidates:
        parent = by_pid.get(p.get("ppid"))
        if parent is not None and parent.get("cmdline") == p.get("cmdline"):
            continue
        groups[str(p.get("cmdline", ""))].append(p)
    dups = {cmd: ps for cmd, ps in groups.items() if cmd and len(ps) > 1}
    if not dups:
        return []
    evidence = []
    for cmd, ps in sorted(dups.items(), key=lambda kv: -len(kv[1])):
        pids = ", ".join(str(p["pid"]) for p in sorted(ps, key=lambda q: q["pid"]))
        evidence.append(
            f"{len(ps)} copies of `{shorten(cmd, CMD_CHARS)}` (pids {pids}){_judged(ps)}"
        )
    worst = max(len(ps) for ps in dups.values())
    return [
        finding(
            "duplicate_processes",
            CRITICAL,
            f"the app's command line runs up to {worst} times at once outside a process manager",
            evidence,
        )
    ]


def find_dev_mode(processes: list[Mapping[str, Any]]) -> list[Finding]:
    """A dev server or watcher of this app runs (in scope, by cwd/package/port)."""
    devs = [p for p in processes if p.get("in_scope") and p.get("dev")]
    if not devs:
        return []
    dev_pids = {p["pid"] for p in devs}
    # Report the top of each dev tree: `pnpm dev` rather than also its `sh -c next dev`.
    roots = [p for p in devs if p.get("ppid") not in dev_pids] or devs
    tools = sorted({str(p.get("dev")) for p in devs})
    return [
        finding(
            "dev_mode",
            CRITICAL,
            f"the app runs under a dev server/watcher ({', '.join(tools)}), not a production build",
            [f"{p.get('dev')}: {_proc_line(p)}" for p in roots],
        )
    ]


def find_no_process_manager(
    listeners: list[Mapping[str, Any]],
    pm2: Mapping[str, Any] | None,
    app_port: int,
    app_name: str | None,
) -> list[Finding]:
    """The app port's listener is not under PM2 or systemd.

    With nothing listening, the finding stands when PM2 runs no process of the app either
    (nothing would bring it back); if PM2 could not be asked, it is left to other rules.
    """
    app_listeners = [lst for lst in listeners if lst.get("port") == app_port]
    pm2 = pm2 or {}
    pm2_apps = app_processes(pm2.get("processes"), app_name)
    if not app_listeners:
        if pm2.get("error") or pm2_apps:
            return []
        return [
            finding(
                "no_process_manager",
                CRITICAL,
                f"nothing listens on port {app_port} and PM2 runs no process for the app",
                [f"PM2: {pm2.get('note') or 'not queried'}"],
            )
        ]
    unmanaged = [lst for lst in app_listeners if lst.get("pid") and not lst.get("manager")]
    unknown = [lst for lst in app_listeners if not lst.get("pid")]
    # A holder that could not be read, judged by the socket's user: the Node.js processes
    # of that user all run unmanaged (a guess "all" managed counts as managed).
    guessed = [lst for lst in unknown if _guess(lst).get("managed") == "none"]
    unknown = [lst for lst in unknown if _guess(lst).get("managed") not in ("all", "none")]
    if unmanaged or guessed:
        evidence = [
            f"{_addr(lst)} held by pid {lst.get('pid')} ({lst.get('user')}): "
            f"{shorten(str(lst.get('process', '')), CMD_CHARS)}"
            for lst in unmanaged
        ]
        evidence += [
            f"{_addr(lst)}: holder unreadable; the Node.js processes of its socket's user "
            f"{_guess(lst).get('user')} (pids {', '.join(map(str, _guess(lst).get('pids', [])))})"
            " run under neither PM2 nor systemd (judged by the socket's user: "
            "open files unreadable)"
            for lst in guessed
        ]
        return [
            finding(
                "no_process_manager",
                CRITICAL,
                f"the process listening on port {app_port} is not run by PM2 or systemd",
                evidence,
            )
        ]
    if unknown and not any(p.get("status") == "online" for p in pm2_apps):
        return [
            finding(
                "no_process_manager",
                CRITICAL,
                f"port {app_port} is held by a process that could not be identified, "
                "and PM2 runs no online process for the app",
                [f"{_addr(lst)}: owner unreadable (diagnose needs root)" for lst in unknown],
            )
        ]
    return []


def _guess(lst: Mapping[str, Any]) -> Mapping[str, Any]:
    return lst.get("owner_guess") or {}


def _app_held(lst: Mapping[str, Any], app_pids: set[int]) -> bool:
    """The listener's holder is one of the app's processes: read, or (holder refused) every
    Node.js process of its socket's user is the app's."""
    if lst.get("pid"):
        return lst["pid"] in app_pids
    pids = _guess(lst).get("pids") or []
    return bool(pids) and all(pid in app_pids for pid in pids)


def find_app_exposed(
    listeners: list[Mapping[str, Any]],
    app_port: int,
    processes: list[Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """The app is reachable around the proxy: its port, or any port one of the app's own
    processes listens on (a copy started by hand on another port), on a non-loopback
    address."""
    by_pid = {p["pid"]: p for p in processes or [] if p.get("in_scope")}
    app_pids = set(by_pid)
    exposed = [
        lst
        for lst in listeners
        if not lst.get("loopback") and (lst.get("port") == app_port or _app_held(lst, app_pids))
    ]
    if not exposed:
        return []
    evidence = []
    for lst in exposed:
        line = f"{_addr(lst)} ({lst.get('proto')}) pid {lst.get('pid') or '?'}"
        if lst.get("port") != app_port:
            if lst.get("pid"):
                proc = by_pid[lst["pid"]]
                line += f" ({proc.get('user')}): {shorten(str(proc.get('cmdline', '')), CMD_CHARS)}"
                line += _judged([proc])
            else:
                guess = _guess(lst)
                line += (
                    f": holder unreadable; its socket's user {guess.get('user')} runs only the "
                    f"app's Node.js processes (pids {', '.join(map(str, guess.get('pids', [])))})"
                )
        evidence.append(line)
    ports = sorted({int(lst.get("port") or 0) for lst in exposed})
    if ports == [app_port]:
        summary = f"the app port {app_port} listens on a non-loopback address, bypassing the proxy"
    else:
        summary = (
            f"the app listens on a non-loopback address on port(s) "
            f"{', '.join(map(str, ports))}, bypassing the proxy"
        )
    return [finding("app_exposed", CRITICAL, summary, evidence)]


# --- build, probes, proxy ----------------------------------------------------------------


def find_build_missing(build: Mapping[str, Any] | None) -> list[Finding]:
    """The live build is absent or incomplete."""
    if not build or build.get("ok"):
        return []
    if not build.get("exists"):
        summary = f"no live release at {build.get('current')}"
        evidence = [f"{build.get('current')} does not exist"]
    else:
        count = build.get("missing_count", 0)
        errors = build.get("errors") or []
        summary = f"the live build at {build.get('current')} is incomplete ({count} missing)"
        evidence = [f"missing {m}" for m in build.get("missing", [])]
        evidence += [f"unreadable {e}" for e in errors]
        if count > len(build.get("missing", [])):
            evidence.append(f"{count} files missing in all")
    return [finding("build_missing", CRITICAL, summary, evidence)]


def _probe_line(p: Mapping[str, Any]) -> str:
    got = p.get("status") if p.get("status") is not None else (p.get("error") or "no answer")
    return f"GET {p.get('path')} via {p.get('via')}: {got} (expected {p.get('expected')})"


def _listening(listeners: list[Mapping[str, Any]], port: int | None) -> bool:
    return port is not None and any(lst.get("port") == port for lst in listeners)


def find_route_failed(
    probes: Sequence[Mapping[str, Any]],
    listeners: list[Mapping[str, Any]],
    proxy_port: int | None,
    proxy_down: bool = False,
) -> list[Finding]:
    """A probe answered other than expected, or not at all.

    Proxy probes count only when something listens on the proxy port and the proxy is not
    down as a whole: a missing proxy is ``no_reverse_proxy``, a failed one ``proxy_down``,
    and reporting each of its routes as failed too would say the same thing twice.
    """
    proxy_up = _listening(listeners, proxy_port) and not proxy_down
    failed = [p for p in probes if not p.get("ok") and (p.get("via") != "proxy" or proxy_up)]
    if not failed:
        return []
    paths = sorted({str(p.get("path")) for p in failed})
    return [
        finding(
            "route_failed",
            CRITICAL,
            f"{len(failed)} probe(s) failed: {', '.join(paths)}",
            [_probe_line(p) for p in failed],
        )
    ]


def proxy_down_cause(
    probes: Sequence[Mapping[str, Any]],
    listeners: list[Mapping[str, Any]],
    proxy_port: int | None,
    nginx: Mapping[str, Any] | None,
) -> str | None:
    """Why the kit's proxy gives clients no answer, or None when it is not down.

    Only where the kit's site is enabled (``nginx.site_present``): there a proxy is part of
    the host, and no answer through it is an outage, not a missing feature. Down means
    that no probe through the proxy passed and each failed for the proxy's own reason: no
    HTTP answer at all, or a 5xx on a path the app itself answers below 500 (a 5xx the app
    sends is passed on by Nginx, and is the app's, for ``route_failed``).
    """
    if not (nginx or {}).get("site_present"):
        return None
    proxied = [p for p in probes if p.get("via") == "proxy"]
    if not proxied or any(p.get("ok") for p in proxied):
        return None
    if not _listening(listeners, proxy_port):
        return f"nothing listens on port {proxy_port}"
    if all(p.get("status") is None for p in proxied):
        return f"port {proxy_port} takes connections but gives no HTTP answer"
    direct = {p.get("path"): p.get("status") for p in probes if p.get("via") == "direct"}
    by_status: dict[int | None, list[str]] = defaultdict(list)
    for p in proxied:
        status, app = p.get("status"), direct.get(p.get("path"))
        if status is not None and not (status >= 500 and app is not None and app < 500):
            return None
        by_status[status].append(str(p.get("path")))
    answers = [
        f"{status} for {', '.join(paths)}"
        for status, paths in sorted(by_status.items(), key=lambda kv: kv[0] or 0)
        if status is not None
    ]
    cause = f"Nginx answers {' and '.join(answers)}"
    if None in by_status:
        cause += f", nothing for {', '.join(by_status[None])}"
    return f"{cause}: it cannot reach the app"


def find_proxy_down(
    probes: Sequence[Mapping[str, Any]],
    listeners: list[Mapping[str, Any]],
    proxy_port: int | None,
    nginx: Mapping[str, Any] | None,
) -> list[Finding]:
    """The kit's proxy is enabled but gives clients no answer (``proxy_down_cause``)."""
    cause = proxy_down_cause(probes, listeners, proxy_port, nginx)
    if cause is None:
        return []
    evidence = [f"the kit's site {(nginx or {}).get('site')} is enabled"]
    evidence += [_probe_line(p) for p in probes if p.get("via") == "proxy"]
    answered = [p for p in probes if p.get("via") == "direct" and p.get("status") is not None]
    if answered:
        evidence.append(
            "the app answers directly: "
            + ", ".join(f"{p.get('path')} {p.get('status')}" for p in answered)
        )
    return [finding("proxy_down", CRITICAL, f"clients get no answer: {cause}", evidence)]


def find_no_reverse_proxy(
    probes: Sequence[Mapping[str, Any]],
    listeners: list[Mapping[str, Any]],
    proxy_port: int | None,
    proxy_down: bool = False,
) -> list[Finding]:
    """Nothing proxies HTTP to the app: the proxy port is closed, or takes no connection.

    Not where the kit's proxy is expected and down: ``proxy_down`` says so, as a critical.
    """
    if proxy_down:
        return []
    if not _listening(listeners, proxy_port):
        return [
            finding(
                "no_reverse_proxy",
                WARNING,
                f"nothing listens on the proxy port {proxy_port}",
                [f"no TCP listener on port {proxy_port}"],
            )
        ]
    proxy_probes = [p for p in probes if p.get("via") == "proxy"]
    if proxy_probes and all(p.get("status") is None for p in proxy_probes):
        return [
            finding(
                "no_reverse_proxy",
                WARNING,
                f"port {proxy_port} is open but no probe through it got an HTTP answer",
                [_probe_line(p) for p in proxy_probes],
            )
        ]
    return []


# --- logs --------------------------------------------------------------------------------


def find_log_errors(logs: Mapping[str, Any] | None) -> list[Finding]:
    """Known error patterns in the recent lines of the scanned logs.

    Always a warning, even for "heap out of memory": a log tail is history (lines from
    before this run's fix stay in it), and a critical finding is a rollback trigger when
    it is new. The current effect of a crash shows as ``crash_loop`` or ``route_failed``,
    which are critical and reflect the host's state now.
    """
    files = (logs or {}).get("files") or []
    evidence: list[str] = []
    totals: dict[str, int] = defaultdict(int)
    for scan in files:
        for name, n in (scan.get("counts") or {}).items():
            if not n:
                continue
            totals[name] += n
            sample = (scan.get("samples") or {}).get(name) or [""]
            evidence.append(f"{name} x{n} in {scan.get('path')}: {shorten(sample[-1], 160)}")
    if not totals:
        return []
    summary = "error patterns in recent logs: " + ", ".join(
        f"{name} {n}" for name, n in sorted(totals.items(), key=lambda kv: -kv[1])
    )
    return [finding("log_errors", WARNING, summary, evidence)]


def find_no_log_rotation(logrotate: Mapping[str, Any] | None) -> list[Finding]:
    """App or PM2 logs that no logrotate config (or pm2-logrotate) rotates."""
    if not logrotate:
        return []
    uncovered = logrotate.get("uncovered") or []
    if not uncovered:
        return []
    evidence = [f"{path}: not matched by any file in {logrotate.get('dir')}" for path in uncovered]
    if logrotate.get("error"):
        evidence.insert(0, str(logrotate["error"]))
    return [
        finding(
            "no_log_rotation",
            WARNING,
            f"{len(uncovered)} log location(s) have no rotation and will grow without bound",
            evidence,
        )
    ]


# --- resources ---------------------------------------------------------------------------


def _level(value: float, warn: float, crit: float) -> str | None:
    if value >= crit:
        return CRITICAL
    if value >= warn:
        return WARNING
    return None


def find_memory_high(
    memory: Mapping[str, Any] | None, thresholds: Mapping[str, float]
) -> list[Finding]:
    if not memory:
        return []
    pct = float(memory.get("used_pct", 0))
    sev = _level(pct, thresholds["memory_warn_pct"], thresholds["memory_crit_pct"])
    if not sev:
        return []
    return [
        finding(
            "memory_high",
            sev,
            f"memory {pct:g}% used (warn {thresholds['memory_warn_pct']:g}%, "
            f"critical {thresholds['memory_crit_pct']:g}%)",
            [
                f"{memory.get('used_kb', 0) // 1024} MiB used of "
                f"{memory.get('total_kb', 0) // 1024} MiB, "
                f"{memory.get('available_kb', 0) // 1024} MiB available"
            ],
        )
    ]


def find_disk_high(
    disk: list[Mapping[str, Any]] | None, thresholds: Mapping[str, float]
) -> list[Finding]:
    worst: str | None = None
    evidence = []
    for d in disk or []:
        pct = float(d.get("used_pct", 0))
        sev = _level(pct, thresholds["disk_warn_pct"], thresholds["disk_crit_pct"])
        if not sev:
            continue
        worst = CRITICAL if CRITICAL in (sev, worst) else sev
        evidence.append(
            f"{d.get('path')} {pct:g}% used, {d.get('avail_kb', 0) // 1024} MiB free "
            f"(holds {', '.join(d.get('paths', []))})"
        )
    if not worst:
        return []
    return [
        finding(
            "disk_high",
            worst,
            f"disk use above {thresholds['disk_warn_pct']:g}% on {len(evidence)} filesystem(s)",
            evidence,
        )
    ]


def find_load_high(
    load: Mapping[str, Any] | None, cpu_count: int | None, thresholds: Mapping[str, float]
) -> list[Finding]:
    """The 5-minute load per CPU: steadier than the 1-minute figure, which one build spikes."""
    if not load or not cpu_count:
        return []
    per_cpu = float(load.get("load5", 0)) / cpu_count
    sev = _level(per_cpu, thresholds["load_warn_per_cpu"], thresholds["load_crit_per_cpu"])
    if not sev:
        return []
    return [
        finding(
            "load_high",
            sev,
            f"load {per_cpu:.2f} per CPU over 5 minutes (warn {thresholds['load_warn_per_cpu']:g})",
            [
                f"loadavg {load.get('load1')} {load.get('load5')} {load.get('load15')} "
                f"on {cpu_count} CPU(s)"
            ],
        )
    ]


# --- PM2 ---------------------------------------------------------------------------------


def auto_restarted(proc: Mapping[str, Any], *, unknown: bool) -> bool:
    """Whether PM2 restarted the process on its own since its last deliberate start.

    PM2 sets ``created_at`` on a deliberate start, restart or reload and ``pm_uptime`` on
    every start, so a ``pm_uptime`` more than 2 s after ``created_at`` means an automatic
    restart since. ``unknown`` is the answer when either time is missing.
    """
    up, created = proc.get("pm_uptime"), proc.get("created_at")
    if not up or created is None:
        return unknown
    return up - created > 2000


def unstable_restarts(proc: Mapping[str, Any]) -> int:
    """PM2's ``unstable_restarts``, less the one a deliberate reload can leave behind.

    A reload of a process that is not online (launching, or waiting to be restarted after
    a crash) takes PM2's restart path (lib/God/ActionMethods.js, restartProcessId): it
    resets the counters, then stops the worker, and handleExit (lib/God.js) counts that
    stop as an unstable restart because it came within ``min_uptime`` of the start; the
    new worker inherits the count. Reloading away from a crash-looping release can hit
    this. So one unstable restart with no automatic restart since the last deliberate
    start is the reload's own, not a crash: a worker that crashed was restarted since.
    """
    count = proc.get("unstable_restarts") or 0
    if count == 1 and not auto_restarted(proc, unknown=True):
        return 0
    return count


def crash_loop_reason(
    proc: Mapping[str, Any], thresholds: Mapping[str, float], now_ms: int
) -> str | None:
    """Why one PM2 process is crash-looping, or None.

    PM2 facts (lib/God.js, lib/God/Reload.js): an automatic restart after a crash adds to
    ``restart_time`` and, when it came soon after start, to ``unstable_restarts``; a
    deliberate ``reload``/``restart`` also adds to ``restart_time`` but resets
    ``created_at`` and ``unstable_restarts``. After too many unstable restarts PM2 gives
    up: status ``errored``. So ``restart_time`` alone counts deploys too; the count rule
    applies only when an automatic restart happened since the last deliberate start
    (``pm_uptime`` later than ``created_at``), or every deploy after the fifth would
    look like a crash loop and be rolled back.
    """
    status = proc.get("status")
    if status == "errored":
        return "PM2 gave up restarting it (status errored)"
    unstable = unstable_restarts(proc)
    if unstable > 0:
        return f"{unstable} unstable restart(s) (exited within min_uptime of starting)"
    restarts = proc.get("restart_time") or 0
    pm_uptime = proc.get("pm_uptime")
    if restarts >= thresholds["crash_loop_restarts"] and pm_uptime:
        uptime_s = max(now_ms - pm_uptime, 0) / 1000
        if uptime_s < thresholds["crash_loop_window_s"] and auto_restarted(proc, unknown=True):
            return f"{restarts} restarts, up only {uptime_s:.0f}s since the last crash"
    return None


def find_crash_loop(
    pm2: Mapping[str, Any] | None,
    app_name: str | None,
    thresholds: Mapping[str, float],
    now_ms: int,
) -> list[Finding]:
    evidence = []
    for p in app_processes((pm2 or {}).get("processes"), app_name):
        reason = crash_loop_reason(p, thresholds, now_ms)
        if reason:
            evidence.append(
                f"{p.get('name')} (pm_id {p.get('pm_id')}, {p.get('status')}): {reason}"
            )
    if not evidence:
        return []
    return [
        finding(
            "crash_loop",
            CRITICAL,
            f"the app is restarting repeatedly under PM2 ({len(evidence)} process(es))",
            evidence,
        )
    ]


def find_db_unreachable(
    database: Mapping[str, Any] | None, probes: Sequence[Mapping[str, Any]]
) -> list[Finding]:
    """The app's database does not answer: critical when a probe of the app fails too (the
    outage is likely the database's), a warning while the app still answers."""
    if not database or database.get("reachable") is not False:
        return []
    failing = any(not p.get("ok") for p in probes)
    where = f"{database.get('host')}:{database.get('port')}"
    return [
        finding(
            "db_unreachable",
            CRITICAL if failing else WARNING,
            f"the app's database at {where} does not answer"
            + (" and probes fail" if failing else ""),
            [str(database.get("error") or "no connection")],
        )
    ]


def find_db_connections_high(
    database: Mapping[str, Any] | None, thresholds: Mapping[str, float]
) -> list[Finding]:
    """The app holds nearly all the connections its budget allows: the next reload, or a
    burst of requests, waits for its pool or is refused by the database."""
    if not database or not database.get("budget") or database.get("connections") is None:
        return []
    budget = int(database["budget"])
    held = int(database["connections"])
    if held * 100 < float(thresholds["db_connections_pct"]) * budget:
        return []
    return [
        finding(
            "db_connections_high",
            WARNING,
            f"the app holds {held} of its {budget} database connections",
            [
                f"{held} established connection(s) from the app user to "
                f"{database.get('host')}:{database.get('port')}, "
                f"app_db_connection_budget {budget}"
            ],
        )
    ]


def _worker_names(pm2_processes: list[Mapping[str, Any]], app_name: str | None) -> set[str]:
    """The app's PM2 names, and PM2's ``_old_<id>`` for a worker a reload is replacing."""
    names = {str(p.get("name")) for p in app_processes(pm2_processes, app_name)}
    return names | {
        str(p.get("name"))
        for p in pm2_processes
        if not p.get("is_module") and str(p.get("name", "")).startswith("_old_")
    }


def find_stale_workers(
    processes: list[Mapping[str, Any]],
    pm2: Mapping[str, Any] | None,
    app_name: str | None,
    release_dir: str | None,
) -> list[Finding]:
    """PM2 workers of the app that run from another directory than the live release.

    A worker's working directory is ``current`` resolved when it started, so after a
    switch every worker must have been reloaded into the new release. One that was not (a
    reload PM2 answered without doing it, a link changed by hand) serves the old code,
    possibly from a release already pruned (``/proc`` then says ``(deleted)``). The rule
    is the one the pm2 role puts such workers right by (``pm2service.runs_elsewhere``).
    Workers whose directory cannot be read (no root, no CAP_SYS_PTRACE) are left out;
    without a ``current`` link there is no live release to compare with.
    """
    if not release_dir:
        return []
    pm2_processes = (pm2 or {}).get("processes") or []
    names = _worker_names(pm2_processes, app_name)
    cwd_of = {p.get("pid"): p.get("cwd") for p in processes}
    evidence = []
    for p in pm2_processes:
        pid = p.get("pid")
        cwd = cwd_of.get(pid) if pid else None
        if p.get("is_module") or str(p.get("name")) not in names or not cwd:
            continue
        if not runs_elsewhere(cwd, release_dir):
            continue
        path = cwd.removesuffix(DELETED)
        gone = ", a directory since deleted" if cwd.endswith(DELETED) else ""
        who = f"{p.get('name')} (pm_id {p.get('pm_id')}, pid {pid})"
        evidence.append(f"{who} runs from {path}{gone}")
    if not evidence:
        return []
    evidence.append(f"the live release (current) is {release_dir}")
    return [
        finding(
            "stale_workers",
            CRITICAL,
            f"{len(evidence) - 1} PM2 worker(s) serve another release than the live one",
            evidence,
        )
    ]


# --- what the diagnosis could not see ------------------------------------------------------

# How processes were taken for the app's (their in_scope): for several, for one.
_HOW = {
    "cwd": ("by their working directory", "by its working directory"),
    "package": ("by their package.json", "by its package.json"),
    "port": ("by their port", "by its port"),
    "pm2": ("by PM2's list", "by PM2's list"),
    "cmdline": ("by their command line", "by its command line"),
    "user": ("as the app user's Node.js programs", "as a Node.js program of the app user"),
    "socket": ("by the socket on the app port", "by the socket on the app port"),
}


def _what_unreadable(parts: list[str]) -> str:
    names = {"cwd": "working directory", "fd": "open files"}
    return " and ".join(names.get(p, p) for p in parts)


def find_diagnosis_incomplete(
    unreadable: Mapping[str, Any] | None,
    processes: list[Mapping[str, Any]],
    listeners: list[Mapping[str, Any]],
    app_port: int,
    as_root: bool | None,
) -> list[Finding]:
    """The kernel refused to show the working directory or open files of some processes
    (another user's, where the diagnosis runs without CAP_SYS_PTRACE or without root).

    Those processes were judged the app's on what stayed readable (``classify.judge_scope``,
    the socket's user) or left out; this says how many, so that no finding is missing
    unnoticed. Evidence: what could not be checked, then each process (pid, user, masked
    command line), never anything of its environment.
    """
    u = unreadable or {}
    count = int(u.get("count") or 0)
    n_cwd, n_fd = int(u.get("cwd") or 0), int(u.get("fd") or 0)
    if not count:
        return []
    if n_cwd and n_cwd == n_fd:
        what = f"the working directory and open files of {n_cwd} process(es)"
    else:
        what = " and ".join(
            text
            for n, text in (
                (n_cwd, f"the working directory of {n_cwd} process(es)"),
                (n_fd, f"the open files of {n_fd} process(es)"),
            )
            if n
        )
    judged = int(u.get("judged") or 0)
    outcome = []
    if judged:
        ways = [
            f"{n} {_HOW.get(scope, (scope, scope))[0]}"
            for scope, n in sorted((u.get("judged_by") or {}).items(), key=lambda kv: -kv[1])
        ]
        outcome.append(f"{judged} judged the app's ({', '.join(ways)})")
    if count - judged:
        outcome.append(f"{count - judged} left out of the app's scope")
    hint = "no CAP_SYS_PTRACE?" if as_root or as_root is None else "not run as root"
    summary = f"could not read {what} of other users ({hint}): {', '.join(outcome)}"

    lines = []
    workers = [p for p in processes if p.get("in_scope") == "pm2" and _unreadable(p, "cwd")]
    if workers:
        lines.append(
            f"{len(workers)} PM2 worker(s) of the app: the release they run from was not "
            "checked (stale_workers)"
        )
    for lst in listeners:
        if lst.get("port") != app_port or lst.get("pid"):
            continue
        guess = _guess(lst)
        who = (
            f"judged by its socket's user {guess.get('user')}: Node.js pids "
            f"{', '.join(map(str, guess.get('pids', [])))}"
            if guess
            else "not judged"
        )
        lines.append(f"{_addr(lst)}: the process holding it could not be read; {who}")
    listed = list(u.get("processes") or [])
    for p in listed:
        scope = p.get("in_scope")
        verdict = "left out"
        if scope:
            judged_on_less = "judged " if scope in JUDGED else ""
            verdict = f"{judged_on_less}the app's {_HOW.get(scope, (scope, scope))[1]}"
        lines.append(
            f"pid {p.get('pid')} user {p.get('user')} "
            f"({_what_unreadable(list(p.get('unreadable') or []))} unreadable; {verdict}): "
            f"{shorten(str(p.get('cmdline', '')), CMD_CHARS)}"
        )
    # Processes beyond the facts' list are counted too, not only the lines cut here.
    hidden = max(count - len(listed), 0)
    if hidden or len(lines) > EVIDENCE_LINES:
        shown = lines[: EVIDENCE_LINES - 1]
        lines = [*shown, f"... and {len(lines) - len(shown) + hidden} more"]
    return [finding("diagnosis_incomplete", WARNING, summary, lines)]


# --- all ---------------------------------------------------------------------------------


def evaluate(
    facts: Facts,
    probes: Sequence[Mapping[str, Any]],
    thresholds: Mapping[str, float],
    context: Mapping[str, Any],
) -> list[Finding]:
    """Every rule over one diagnosis. ``context``: app_name, app_port, proxy_port, now_ms."""
    th = {**DEFAULT_THRESHOLDS, **thresholds}
    listeners = facts.get("listeners") or []
    processes = facts.get("processes") or []
    app_port = int(context["app_port"])
    proxy_port = context.get("proxy_port")
    app_name = context.get("app_name")
    now_ms = int(context["now_ms"])
    found: list[Finding] = []
    found += find_duplicates(processes)
    found += find_dev_mode(processes)
    found += find_build_missing(facts.get("build"))
    nginx = facts.get("nginx")
    down = proxy_down_cause(probes, listeners, proxy_port, nginx) is not None
    found += find_route_failed(probes, listeners, proxy_port, down)
    found += find_proxy_down(probes, listeners, proxy_port, nginx)
    found += find_log_errors(facts.get("logs"))
    found += find_no_process_manager(listeners, facts.get("pm2"), app_port, app_name)
    found += find_app_exposed(listeners, app_port, processes)
    found += find_no_reverse_proxy(probes, listeners, proxy_port, down)
    found += find_no_log_rotation(facts.get("logrotate"))
    found += find_memory_high(facts.get("memory"), th)
    found += find_disk_high(facts.get("disk"), th)
    found += find_load_high(facts.get("load"), facts.get("cpu_count"), th)
    found += find_crash_loop(facts.get("pm2"), app_name, th, now_ms)
    found += find_stale_workers(processes, facts.get("pm2"), app_name, facts.get("release_dir"))
    found += find_db_unreachable(facts.get("database"), probes)
    found += find_db_connections_high(facts.get("database"), th)
    found += find_diagnosis_incomplete(
        facts.get("unreadable"), processes, listeners, app_port, facts.get("as_root")
    )
    rank = {sev: i for i, sev in enumerate(SEVERITIES)}
    return sorted(found, key=lambda f: (rank[f["severity"]], CODES.index(f["code"])))
