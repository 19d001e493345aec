"""Gather one diagnosis of a host: facts, probes, findings. Read-only.

This is the I/O glue between the pure parsers and rules (procfs, classify, pm2, logscan,
hostfacts, probes, findings) and the diagnose module. Anything missing on the host (no
app, no PM2, no nginx, no logrotate) becomes a fact or a finding, never an exception;
a collector that cannot read something records it in ``facts.errors``.
"""

from __future__ import annotations

import functools
import os
import pwd
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.classify import (
    JUDGED_SCOPES,
    dev_tool,
    in_scope,
    is_app_program,
    is_node_process,
    judge_scope,
    managed_by,
    normalize_cmdline,
    read_package_name,
    socket_suspects,
    tree_tops,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.dbcheck import check as db_check
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.findings import evaluate
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.hostfacts import (
    build_integrity,
    disk_usage,
    expand_log_paths,
    logrotate_coverage,
    read_logrotate_dir,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.logscan import (
    merge_counts,
    scan_file,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nextbuild import read_inside
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nginxconf import error_logs
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pm2 import query_pm2
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.probes import (
    probe_host,
    probe_url,
    run_probes,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import (
    Listener,
    Process,
    ProcfsError,
    attach_owners,
    collect_processes,
    memory_summary,
    parse_loadavg,
    parse_meminfo,
    primary_owner,
    read_listeners,
    socket_owners,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.redact import shorten

MAX_PROCESSES = 200
CMD_CHARS = 300


@dataclass
class DiagnoseOptions:
    app_name: str
    app_root: str
    app_user: str | None = None
    app_port: int = 5000
    package_name: str | None = None
    scope_paths: list[str] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=lambda: [{"path": "/", "status": 200}])
    proxy_port: int = 80
    proxy_scheme: str = "http"
    proxy_host_header: str | None = None
    pm2_home: str | None = None
    pm2_bin: str = "pm2"
    log_paths: list[str] | None = None
    log_tail_lines: int = 500
    logrotate_dir: str = "/etc/logrotate.d"
    probe_timeout: float = 5.0
    thresholds: dict[str, float] = field(default_factory=dict)
    required_files: list[str] = field(default_factory=list)
    dist_dir: str = ".next"
    proxy_site: str = ""
    nginx_conf_dir: str = "/etc/nginx"
    proc_root: str = "/proc"
    # The app's database, from its URL without credentials: {scheme, host, port, budget}.
    database: dict[str, Any] | None = None

    def resolved_pm2_home(self) -> str:
        return self.pm2_home or os.path.join(self.app_root, ".pm2")

    def default_log_paths(self) -> list[str]:
        return [
            os.path.join(self.resolved_pm2_home(), "logs", "*.log"),
            os.path.join(self.app_root, "shared", "logs", "*.log"),
            "/var/log/nginx/error.log",
            f"/var/log/nginx/hardenkit-{self.app_name}.error.log",  # the kit's site
        ]


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def _uid(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours a container's cpuset
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _with_realpaths(paths: list[str]) -> list[str]:
    """Each path and, if different, its resolved form: /proc shows resolved cwds."""
    out: list[str] = []
    for path in paths:
        for p in (os.path.normpath(path), os.path.realpath(path)):
            if p not in out:
                out.append(p)
    return out


def _process_row(
    proc: Process, procs: dict[int, Process], scope: str | None, dev: str | None, node: bool
) -> dict[str, Any]:
    return {
        "pid": proc.pid,
        "ppid": proc.ppid,
        "user": proc.user,
        "cmdline": shorten(normalize_cmdline(proc.cmdline), CMD_CHARS),
        "cwd": proc.cwd,
        "start_time": proc.start_time,
        "started": (
            datetime.fromtimestamp(proc.start_time, UTC).isoformat(timespec="seconds")
            if proc.start_time
            else None
        ),
        "rss_kb": proc.rss_kb,
        "unit": proc.unit,
        "manager": managed_by(proc, procs),
        "in_scope": scope,
        "dev": dev,
        "node": node,
        "unreadable": list(proc.unreadable),
    }


def owner_guess(
    lst: Listener, procs: dict[int, Process], fd_denied: set[int]
) -> dict[str, Any] | None:
    """Who may hold a listening socket whose holder could not be read (its fds refused):
    the Node.js processes of the socket's user, how many trees they form, and whether
    ``all``, ``none`` or only ``some`` of them run under PM2 or systemd. None when the
    holder is known or nothing fits."""
    if lst.pids:
        return None
    suspects = socket_suspects(lst.uid, procs, fd_denied)
    if not suspects:
        return None
    managed = [managed_by(p, procs) is not None for p in suspects]
    pids = [p.pid for p in suspects]
    return {
        "uid": lst.uid,
        "user": suspects[0].user,
        "pids": pids,
        "trees": len(tree_tops(pids, procs)),
        "managed": "all" if all(managed) else ("none" if not any(managed) else "some"),
    }


def _listener_row(
    lst: Listener, procs: dict[int, Process], guess: dict[str, Any] | None = None
) -> dict[str, Any]:
    pid = primary_owner(lst.pids, procs)
    proc = procs.get(pid) if pid is not None else None
    return {
        "proto": lst.proto,
        "address": lst.address,
        "port": lst.port,
        "loopback": lst.loopback,
        "inode": lst.inode,
        "pid": pid,
        "pids": lst.pids,
        "process": shorten(normalize_cmdline(proc.cmdline), 160) if proc else None,
        "user": proc.user if proc else None,
        "manager": managed_by(proc, procs) if proc else None,
        "owner_guess": guess,
    }


def live_release(current: str) -> str | None:
    """The release id the ``current`` link points to (its target's last part), or None.

    Read from the link itself, not from the run's facts: a rollback re-reads which
    release is live, and only the link on the host is sure.
    """
    try:
        target = os.readlink(current)
    except OSError:
        return None
    return os.path.basename(target.rstrip("/")) or None


def live_release_dir(current: str) -> str | None:
    """The directory ``current`` resolves to (as a worker's ``/proc`` cwd shows it), or None
    when there is no link or it points nowhere."""
    if not os.path.islink(current) or not os.path.isdir(current):
        return None
    return os.path.realpath(current)


def _reader_in(current: str):
    """Files of the live release, read without leaving it (``nextbuild.read_inside``)."""
    read = read_inside(current, 4 << 20)

    def read_text(path: str) -> str | None:
        try:
            return read(path)
        except OSError:
            return None

    return read_text


def collect_system(opts: DiagnoseOptions, errors: list[str]) -> dict[str, Any]:
    facts: dict[str, Any] = {"memory": None, "swap": None, "load": None, "cpu_count": _cpu_count()}
    try:
        facts.update(memory_summary(parse_meminfo(_read(f"{opts.proc_root}/meminfo"))))
    except (OSError, ProcfsError) as exc:
        errors.append(f"memory: {exc}")
    try:
        facts["load"] = parse_loadavg(_read(f"{opts.proc_root}/loadavg"))
    except (OSError, ProcfsError) as exc:
        errors.append(f"load: {exc}")
    return facts


def collect_processes_and_listeners(
    opts: DiagnoseOptions, errors: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The relevant processes (the app's, every Node.js one, the watched ports' holders),
    the TCP listeners, and the processes whose cwd or fds could not be read.

    Where a process's cwd is refused (root without CAP_SYS_PTRACE), ``in_scope`` falls
    short; a Node.js program is then judged the app's by its command line or its user
    (``classify.judge_scope``), or as the one process tree of the user whose socket holds
    the app port. Such a row's ``in_scope`` says which (``JUDGED_SCOPES``).
    """
    try:
        procs = collect_processes(opts.proc_root)
    except OSError as exc:
        errors.append(f"processes: {exc}")
        procs = {}
    try:
        listeners = read_listeners(opts.proc_root)
    except (OSError, ProcfsError) as exc:
        errors.append(f"listeners: {exc}")
        listeners = []
    fd_denied: set[int] = set()
    owners = socket_owners([lst.inode for lst in listeners], list(procs), opts.proc_root, fd_denied)
    attach_owners(listeners, owners)
    if listeners and not owners and os.geteuid() != 0:
        errors.append("listeners: socket owners unreadable without root")
    for pid in fd_denied:
        if pid in procs and "fd" not in procs[pid].unreadable:
            procs[pid].unreadable.append("fd")

    guesses = {id(lst): owner_guess(lst, procs, fd_denied) for lst in listeners}
    # The app port's socket, its holder unreadable, and one tree of Node.js processes of
    # the socket's user: that tree serves the port.
    by_socket: set[int] = set()
    for lst in listeners:
        guess = guesses[id(lst)]
        if lst.port == opts.app_port and guess and guess["trees"] == 1:
            by_socket.update(guess["pids"])

    reader = functools.lru_cache(maxsize=256)(read_package_name)
    scope_paths = _with_realpaths([opts.app_root, *opts.scope_paths])
    app_user = opts.app_user or opts.app_name
    watched_ports = {opts.app_port, opts.proxy_port}
    port_pids = {pid for lst in listeners if lst.port in watched_ports for pid in lst.pids}
    rows = []
    unreadable = []
    for proc in procs.values():
        scope = in_scope(
            proc, None, scope_paths, opts.package_name, opts.app_port, listeners, reader
        )
        if scope is None:
            scope = judge_scope(proc, scope_paths, app_user)
        if scope is None and proc.pid in by_socket and "cwd" in proc.unreadable:
            scope = "socket"
        node = is_node_process(proc.cmdline)
        if proc.unreadable:
            unreadable.append(
                {
                    "pid": proc.pid,
                    "user": proc.user,
                    "cmdline": shorten(normalize_cmdline(proc.cmdline), 160),
                    "unreadable": list(proc.unreadable),
                    "program": is_app_program(proc.cmdline),
                }
            )
        if not (scope or node or proc.pid in port_pids):
            continue
        rows.append(_process_row(proc, procs, scope, dev_tool(proc.cmdline), node))
    rows.sort(key=lambda r: (not r["in_scope"], r["pid"]))
    if len(rows) > MAX_PROCESSES:
        errors.append(f"processes: {len(rows)} relevant, first {MAX_PROCESSES} reported")
        rows = rows[:MAX_PROCESSES]
    listener_rows = [_listener_row(lst, procs, guesses[id(lst)]) for lst in listeners]
    return rows, listener_rows, unreadable


def mark_pm2_workers(
    processes: list[dict[str, Any]], pm2: Mapping[str, Any], app_name: str
) -> None:
    """Workers PM2 itself lists under the app's name belong to the app, even where their
    cwd cannot be read (a sandboxed unit, a container without CAP_SYS_PTRACE); PM2's word
    outweighs a judgment on less (``JUDGED_SCOPES``)."""
    pids = {
        p.get("pid")
        for p in (pm2.get("processes") or [])
        if p.get("name") == app_name and p.get("pid")
    }
    for row in processes:
        if (not row["in_scope"] or row["in_scope"] in JUDGED_SCOPES) and row["pid"] in pids:
            row["in_scope"] = "pm2"


def unreadable_facts(
    unreadable: list[dict[str, Any]], processes: list[dict[str, Any]]
) -> dict[str, Any]:
    """What the diagnosis could not read, for the ``diagnosis_incomplete`` finding: how many
    processes' cwd and fds were refused, how many of them were still judged the app's, and
    the first of them (the app's first, then Node.js programs) with that judgment."""
    scope_of = {row["pid"]: row.get("in_scope") for row in processes}
    entries = [{**e, "in_scope": scope_of.get(e["pid"])} for e in unreadable]
    entries.sort(key=lambda e: (not e["in_scope"], not e["program"], e["pid"]))
    judged_by: dict[str, int] = {}
    for e in entries:
        if e["in_scope"]:
            judged_by[e["in_scope"]] = judged_by.get(e["in_scope"], 0) + 1
    return {
        "count": len(entries),
        "cwd": sum(1 for e in entries if "cwd" in e["unreadable"]),
        "fd": sum(1 for e in entries if "fd" in e["unreadable"]),
        "judged": sum(judged_by.values()),
        "judged_by": judged_by,
        "processes": entries[:MAX_PROCESSES],
    }


def output_files(pid: int, proc_root: str = "/proc") -> list[str]:
    """Regular files a process writes its stdout and stderr to (``nohup app >> x.log``)."""
    found = []
    for fd in (1, 2):
        try:
            target = os.readlink(f"{proc_root}/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
            target = target.removesuffix(" (deleted)")
            if os.path.isfile(target) and target not in found:
                found.append(target)
    return found


def collect_nginx(opts: DiagnoseOptions, errors: list[str]) -> dict[str, Any]:
    """Nginx's configuration as the diagnosis needs it: the error logs it names, and
    whether the kit's site for the app is enabled (then a proxy is expected to answer)."""
    logs, files, problems = error_logs(opts.nginx_conf_dir)
    errors.extend(problems)
    # lexists: a dangling link in sites-enabled is still the kit's site, one Nginx fails on.
    present = bool(opts.proxy_site) and os.path.lexists(opts.proxy_site)
    return {
        "conf_dir": opts.nginx_conf_dir,
        "conf_files": files,
        "error_logs": logs,
        "site": opts.proxy_site or None,
        "site_present": present,
    }


def other_apps_site_log(path: str, app_name: str) -> bool:
    """Whether ``path`` is the kit's Nginx site log of another app on this machine
    (``hardenkit-<other>.error.log``): its errors are that app's, not this one's."""
    base = os.path.basename(path)
    return base.startswith("hardenkit-") and not base.startswith(f"hardenkit-{app_name}.")


def collect_logs(
    opts: DiagnoseOptions,
    pm2: dict[str, Any],
    processes: list[dict[str, Any]] | None = None,
    nginx_logs: list[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Scan logs and check their rotation. Returns (logs, logrotate, log dirs).

    Besides the configured paths and PM2's, the files the app's own processes write their
    output to are logs too: a dev server started with ``>> dev.log`` grows that file. So
    are the ``error_log`` files Nginx's configuration names (``nginx_logs``): a site's
    upstream errors go to its own error log, not to Nginx's main one. Another app's site
    log on the same machine is left to that app's diagnosis.
    """
    patterns = list(opts.log_paths) if opts.log_paths is not None else opts.default_log_paths()
    patterns += [
        p
        for p in nginx_logs or []
        if p not in patterns and not other_apps_site_log(p, opts.app_name)
    ]
    for row in processes or []:
        if row.get("in_scope") and not row.get("manager"):
            patterns += [p for p in output_files(row["pid"], opts.proc_root) if p not in patterns]
    pm2_logs = []
    for proc in pm2.get("processes") or []:
        for key in ("pm_out_log_path", "pm_err_log_path"):
            path = proc.get(key)
            if isinstance(path, str) and path.startswith("/") and path != "/dev/null":
                pm2_logs.append(path)
    files = expand_log_paths([*patterns, *pm2_logs])
    scans = [scan_file(path, opts.log_tail_lines) for path in files]
    logs = {"patterns": patterns, "files": scans, "counts": merge_counts(scans)}

    # What must be rotated: each log found, and the directories PM2 and the app log into.
    required: dict[str, bool] = dict.fromkeys(files, False)
    for directory in {
        os.path.join(opts.resolved_pm2_home(), "logs"),
        os.path.join(opts.app_root, "shared", "logs"),
        *(os.path.dirname(p) for p in pm2_logs),
    }:
        if os.path.isdir(directory):
            required[directory] = True
    configs, error = read_logrotate_dir(opts.logrotate_dir)
    coverage = logrotate_coverage(required, configs)
    pm2_logrotate = any(
        p.get("name") == "pm2-logrotate" and p.get("status") == "online"
        for p in pm2.get("processes") or []
    )
    if pm2_logrotate:
        # pm2-logrotate rotates every log its PM2 writes.
        pm2_paths = {os.path.dirname(p) for p in pm2_logs} | {
            os.path.join(opts.resolved_pm2_home(), "logs")
        }
        for path in list(coverage["uncovered"]):
            if path in pm2_paths or os.path.dirname(path) in pm2_paths:
                coverage["uncovered"].remove(path)
                coverage["covered"][path] = "pm2-logrotate"
    logrotate = {
        "dir": opts.logrotate_dir,
        "error": error,
        "required": sorted(required),
        "pm2_logrotate": pm2_logrotate,
        **coverage,
    }
    log_dirs = sorted({os.path.dirname(p) for p in files})
    return logs, logrotate, log_dirs


def probe_all(opts: DiagnoseOptions, listeners: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lst_objs = [
        Listener(proto=r["proto"], address=r["address"], port=r["port"], inode=r["inode"])
        for r in listeners
    ]
    direct = probe_host(lst_objs, opts.app_port)
    proxy = probe_host(lst_objs, opts.proxy_port)
    jobs = []
    for probe in opts.probes:
        jobs.append(
            {
                "url": probe_url(direct, opts.app_port, probe["path"]),
                "expected": probe["status"],
                "via": "direct",
            }
        )
    for probe in opts.probes:
        jobs.append(
            {
                "url": probe_url(proxy, opts.proxy_port, probe["path"], opts.proxy_scheme),
                "expected": probe["status"],
                "via": "proxy",
                "host_header": opts.proxy_host_header,
            }
        )
    return run_probes(jobs, opts.probe_timeout)


def diagnose(opts: DiagnoseOptions) -> dict[str, Any]:
    """One read-only diagnosis: ``{facts, probes, findings, duration_ms}``."""
    started = time.monotonic()
    errors: list[str] = []
    now = time.time()
    facts: dict[str, Any] = {
        "collected_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "as_root": os.geteuid() == 0,
        "app": {
            "name": opts.app_name,
            "root": opts.app_root,
            "port": opts.app_port,
            "proxy_port": opts.proxy_port,
            "proxy_scheme": opts.proxy_scheme,
        },
    }
    facts.update(collect_system(opts, errors))
    processes, listeners, unreadable = collect_processes_and_listeners(opts, errors)
    facts["listeners"] = listeners
    facts["processes"] = processes
    pm2_home = opts.resolved_pm2_home()
    facts["pm2"] = query_pm2(
        opts.pm2_bin, pm2_home, opts.app_user or opts.app_name, proc_root=opts.proc_root
    )
    mark_pm2_workers(processes, facts["pm2"], opts.app_name)
    facts["unreadable"] = unreadable_facts(unreadable, processes)
    current = os.path.join(opts.app_root, "current")
    facts["build"] = build_integrity(
        current, os.path.exists, _reader_in(current), opts.required_files, opts.dist_dir
    )
    facts["release"] = live_release(current)
    facts["release_dir"] = live_release_dir(current)
    facts["nginx"] = collect_nginx(opts, errors)
    facts["logs"], facts["logrotate"], log_dirs = collect_logs(
        opts, facts["pm2"], processes, facts["nginx"]["error_logs"]
    )
    facts["disk"] = disk_usage([opts.app_root, pm2_home, *log_dirs])
    probes = probe_all(opts, listeners)
    facts["database"] = (
        db_check(opts.database, _uid(opts.app_user or opts.app_name), opts.proc_root)
        if opts.database
        else None
    )
    facts["errors"] = errors
    context = {
        "app_name": opts.app_name,
        "app_port": opts.app_port,
        "proxy_port": opts.proxy_port,
        "now_ms": int(time.time() * 1000),
    }
    findings = evaluate(facts, probes, opts.thresholds, context)
    return {
        "facts": facts,
        "probes": probes,
        "findings": findings,
        "duration_ms": round((time.monotonic() - started) * 1000),
    }
