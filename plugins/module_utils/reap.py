"""Choose processes to stop and stop them: SIGTERM, wait, SIGKILL the survivors.

Selection is conservative: a pattern match alone never selects a process. It must also
be in scope (its user, and/or its cwd / package / port per the design's scope rule), and
PID 1, the caller and its ancestors (the Ansible module, its shell, sshd/sudo) and a PM2
daemon are never touched.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.classify import (
    PackageReader,
    clean_cwd,
    in_scope,
    is_pm2_daemon,
    read_package_name,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import (
    Listener,
    Process,
    ProcfsError,
    parse_stat,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.redact import redact_argv, shorten

CMD_CHARS = 300


def compile_patterns(patterns: Iterable[str]) -> list[re.Pattern[str]]:
    """Compile each regex; the error names the bad one as ``patterns[i]``."""
    out = []
    for idx, pat in enumerate(patterns):
        if not isinstance(pat, str) or not pat:
            raise ValueError(f"patterns[{idx}] must be a non-empty regular expression")
        try:
            out.append(re.compile(pat))
        except re.error as exc:
            raise ValueError(
                f"patterns[{idx}] {pat!r} is not a valid regular expression: {exc}"
            ) from exc
    return out


def ancestors(pid: int, procs: Mapping[int, Process]) -> set[int]:
    """``pid`` and every ancestor known in ``procs``."""
    out: set[int] = set()
    cur = pid
    while cur > 0 and cur not in out:
        out.add(cur)
        proc = procs.get(cur)
        if proc is None:
            break
        cur = proc.ppid
    return out


def describe(proc: Process) -> dict[str, Any]:
    return {
        "pid": proc.pid,
        "user": proc.user,
        "cwd": proc.cwd,
        "cmdline": shorten(" ".join(redact_argv(proc.cmdline)), CMD_CHARS),
        "start_time": proc.start_time,
    }


def select_targets(
    procs: Mapping[int, Process],
    patterns: Iterable[re.Pattern[str]],
    scope_users: Iterable[str] | None = None,
    scope_paths: Iterable[str] | None = None,
    package_name: str | None = None,
    port: int | None = None,
    listeners: Iterable[Listener] = (),
    self_pid: int | None = None,
    read_package: PackageReader = read_package_name,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(targets, skipped)`` among processes whose joined command line matches a pattern.

    Scope: when ``scope_users`` is given the process's user must be in it; when any of
    ``scope_paths`` / ``package_name`` / ``port`` is given, the process must be in scope by
    one of them (``classify.in_scope``). Given both kinds, both must hold: each narrows.
    """
    pats = list(patterns)
    users = set(scope_users or [])
    paths = [p for p in (scope_paths or []) if p]
    listeners = list(listeners)
    location_rule = bool(paths or package_name or port)
    if not users and not location_rule:
        raise ValueError("a scope is required: scope_users, scope_paths, package name or port")
    if self_pid is None:
        self_pid = os.getpid()
    protected = ancestors(self_pid, procs)
    targets: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for pid in sorted(procs):
        proc = procs[pid]
        joined = " ".join(proc.cmdline)
        if not joined or not any(p.search(joined) for p in pats):
            continue
        entry = describe(proc)
        reason = None
        if pid == 1:
            reason = "protected: PID 1"
        elif pid in protected:
            reason = "protected: this module or one of its parent processes"
        elif is_pm2_daemon(proc.cmdline):
            reason = "protected: PM2 daemon"
        elif users and proc.user not in users:
            reason = f"out of scope: user {proc.user} not in scope_users"
        elif location_rule:
            why = in_scope(proc, None, paths, package_name, port, listeners, read_package)
            if why is None:
                reason = (
                    f"out of scope: cwd {clean_cwd(proc.cwd) or 'unknown'} not under scope_paths"
                )
                if package_name:
                    reason += f", no package {package_name!r}"
                if port:
                    reason += f", not listening on {port}"
            else:
                entry["scope"] = why
        if reason:
            entry["reason"] = reason
            skipped.append(entry)
        else:
            targets.append(entry)
    return targets, skipped


# --- stopping ----------------------------------------------------------------------------


def is_alive(pid: int, start_time_ticks: int | None = None, proc_root: str = "/proc") -> bool:
    """The process still runs: present, not a zombie, and (if given) the same start time
    (a pid reused by a new process is not the one we signalled)."""
    try:
        with open(f"{proc_root}/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            stat = parse_stat(fh.read())
    except (OSError, ProcfsError):
        return False
    if stat["state"] in ("Z", "X", "x"):
        return False
    return start_time_ticks is None or stat["starttime_ticks"] == start_time_ticks


def start_ticks(pid: int, proc_root: str = "/proc") -> int | None:
    try:
        with open(f"{proc_root}/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            return int(parse_stat(fh.read())["starttime_ticks"])
    except (OSError, ProcfsError):
        return None


def terminate(
    targets: list[dict[str, Any]],
    timeout: float,
    first_signal: int = signal.SIGTERM,
    escalate: bool = True,
    kill: Callable[[int, int], None] = os.kill,
    alive: Callable[[int], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll: float = 0.2,
    kill_wait: float = 2.0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Signal every target, wait up to ``timeout`` s for all to exit, SIGKILL survivors.

    ``kill``, ``alive``, ``sleep`` and ``clock`` are injectable for tests. Returns
    ``(stopped, failed)``; each stopped entry gains ``how``: the signal that ended it,
    or ``exited`` when it was gone before being signalled.
    """
    if alive is None:
        ticks = {t["pid"]: start_ticks(t["pid"]) for t in targets}

        def alive(pid: int) -> bool:
            return is_alive(pid, ticks.get(pid))

    first_name = signal.Signals(first_signal).name
    stopped: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    pending: dict[int, dict[str, Any]] = {}
    for target in targets:
        entry = dict(target)
        try:
            kill(entry["pid"], first_signal)
        except ProcessLookupError:
            entry["how"] = "exited"
            stopped.append(entry)
            continue
        except PermissionError:
            entry["error"] = f"permission denied sending {first_name}"
            failed.append(entry)
            continue
        entry["how"] = first_name
        pending[entry["pid"]] = entry

    def reap_gone() -> None:
        for pid in [p for p in pending if not alive(p)]:
            stopped.append(pending.pop(pid))

    deadline = clock() + timeout
    reap_gone()
    while pending and clock() < deadline:
        sleep(poll)
        reap_gone()
    errors: dict[int, str] = {}
    if pending and escalate:
        for pid, entry in pending.items():
            try:
                kill(pid, signal.SIGKILL)
                entry["how"] = "SIGKILL"
            except ProcessLookupError:
                pass  # exited between the last check and now: the first signal did it
            except PermissionError:
                errors[pid] = "permission denied sending SIGKILL"
        kill_deadline = clock() + kill_wait
        reap_gone()
        while pending and clock() < kill_deadline:
            sleep(poll)
            reap_gone()
    for pid, entry in pending.items():
        entry["error"] = errors.get(pid, f"still running after {entry['how']}")
        failed.append(entry)
    stopped.sort(key=lambda e: e["pid"])
    return stopped, failed
