"""Choose processes to stop and stop them: SIGTERM, wait, SIGKILL the survivors.

Selection is conservative: a pattern match alone never selects a process. It must also
run a dev server or watcher by its argv tokens (``classify.dev_tool``, as the diagnosis
decides it), be in scope (its user, and/or its cwd / package / port per the design's
scope rule), and PID 1, the caller and its ancestors (the Ansible module, its shell,
sshd/sudo) and a PM2 daemon are never touched. Stopping checks, before each signal, that
the pid still holds the process the scan saw.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.classify import (
    PackageReader,
    clean_cwd,
    dev_tool,
    in_scope,
    is_pm2_daemon,
    read_package_name,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import (
    Listener,
    Process,
    ProcfsError,
    parse_btime,
    parse_stat,
    start_epoch,
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


def shown_cmdline(argv: list[str]) -> str:
    """A command line as reports show it: secrets masked, cut to CMD_CHARS."""
    return shorten(" ".join(redact_argv(argv)), CMD_CHARS)


def describe(proc: Process) -> dict[str, Any]:
    return {
        "pid": proc.pid,
        "user": proc.user,
        "cwd": proc.cwd,
        "cmdline": shown_cmdline(proc.cmdline),
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
    package_users: Iterable[str] | None = None,
    require_dev_tool: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(targets, skipped)`` among processes whose joined command line matches a pattern.

    A pattern is searched in the joined command line, so it also matches text that only
    appears in an argument (``vim nodemon.json``, ``grep -rn "next dev" .``). A target must
    therefore also *run* a dev server or watcher, read from its argv tokens as the
    diagnosis reads them (``classify.dev_tool``). With ``require_dev_tool=False`` (freeing
    the app port from whatever of the app's holds it, its exact command line the pattern) a
    pattern must match the *whole* command line instead: a command that only mentions
    another's is never a target. Patterns only narrow.

    Scope: when ``scope_users`` is given the process's user must be in it; when any of
    ``scope_paths`` / ``package_name`` / ``port`` is given, the process must be in scope by
    one of them (``classify.in_scope``). Given both kinds, both must hold: each narrows.
    ``package_users``, when given, limits the package-name scope to those users' processes:
    any user can create a directory whose package.json bears a common name (``web``).
    """
    pats = list(patterns)
    users = set(scope_users or [])
    pkg_users = None if package_users is None else set(package_users)
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
        tool = dev_tool(proc.cmdline)
        # Only the package scope is limited by user: cwd and port scopes name places the
        # operator configured or the app's own port.
        pkg = package_name if pkg_users is None or proc.user in pkg_users else None
        if pid == 1:
            reason = "protected: PID 1"
        elif pid in protected:
            reason = "protected: this module or one of its parent processes"
        elif is_pm2_daemon(proc.cmdline):
            reason = "protected: PM2 daemon"
        elif require_dev_tool and tool is None:
            reason = (
                "not a dev server or watcher: the pattern matches its arguments, "
                "not the command it runs"
            )
        elif not require_dev_tool and not any(p.fullmatch(joined) for p in pats):
            reason = "the pattern matches part of its command line, not all of it"
        elif users and proc.user not in users:
            reason = f"out of scope: user {proc.user} not in scope_users"
        elif location_rule:
            why = in_scope(proc, None, paths, pkg, port, listeners, read_package)
            if why is None:
                reason = (
                    f"out of scope: cwd {clean_cwd(proc.cwd) or 'unknown'} not under scope_paths"
                )
                if package_name and pkg:
                    reason += f", no package {package_name!r}"
                elif package_name:
                    reason += f", package scope not for user {proc.user}"
                if port:
                    reason += f", not listening on {port}"
            else:
                entry["scope"] = why
        if tool is not None:
            entry["tool"] = tool
        if reason:
            entry["reason"] = reason
            skipped.append(entry)
        else:
            targets.append(entry)
    return targets, skipped


# --- stopping ----------------------------------------------------------------------------


def _live_stat(pid: int, proc_root: str) -> dict[str, Any] | None:
    """``/proc/<pid>/stat`` of a live process; None when it is gone or a zombie (it has
    exited, only its parent has not reaped it)."""
    try:
        with open(f"{proc_root}/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            stat = parse_stat(fh.read())
    except (OSError, ProcfsError):
        return None
    return None if stat["state"] in ("Z", "X", "x") else stat


def is_alive(pid: int, start_time_ticks: int | None = None, proc_root: str = "/proc") -> bool:
    """The process still runs: present, not a zombie, and (if given) the same start time
    (a pid reused by a new process is not the one we signalled)."""
    stat = _live_stat(pid, proc_root)
    if stat is None:
        return False
    return start_time_ticks is None or stat["starttime_ticks"] == start_time_ticks


def start_time_reader(proc_root: str = "/proc") -> Callable[[int], float | None]:
    """A function giving the start time of the live process at a pid, in the epoch seconds
    ``collect_processes`` records (``Process.start_time``), or None when no live process
    has that pid (gone, or a zombie: it has exited, only its parent has not reaped it).

    Boot time is read once, here: the kernel derives it from the wall clock, so two reads
    can differ by a second after a clock adjustment, and the comparisons made with one
    reader must not.
    """
    try:
        with open(f"{proc_root}/stat", encoding="utf-8", errors="replace") as fh:
            btime: int | None = parse_btime(fh.read())
    except (OSError, ProcfsError):
        btime = None
    clk_tck = os.sysconf("SC_CLK_TCK")

    def start_of(pid: int) -> float | None:
        if btime is None:
            return None
        stat = _live_stat(pid, proc_root)
        return None if stat is None else start_epoch(int(stat["starttime_ticks"]), btime, clk_tck)

    return start_of


# A pidfd (Linux 5.3+, Python 3.9+) refers to one process, not to a pid: a signal sent
# through it reaches that process or fails with ESRCH once it has exited, never a newcomer
# that was given the same pid.
_PIDFD_OPEN: Callable[[int], int] | None = getattr(os, "pidfd_open", None)
_PIDFD_SEND: Callable[[int, int], None] | None = getattr(signal, "pidfd_send_signal", None)


def terminate(
    targets: list[dict[str, Any]],
    timeout: float,
    first_signal: int = signal.SIGTERM,
    escalate: bool = True,
    kill: Callable[[int, int], None] | None = None,
    alive: Callable[[int], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll: float = 0.2,
    kill_wait: float = 2.0,
    start_of: Callable[[int], float | None] | None = None,
    pidfd_open: Callable[[int], int] | None = None,
    pidfd_send: Callable[[int, int], None] | None = None,
    close_fd: Callable[[int], None] = os.close,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Signal every target, wait up to ``timeout`` s for all to exit, SIGKILL survivors.

    Each target carries the ``start_time`` read at the scan (``describe``). Before every
    signal, the first and the SIGKILL, the pid's current start time (``start_of``) is
    compared with it: a pid that is gone, or now belongs to a process started since (the
    pid was reused), is not signalled. Before the first signal that entry is reported
    ``exited``; before SIGKILL it ended after the first signal, which it is credited with.
    Where the kernel has pidfds, each target is also pinned by one, opened *before* the
    check, and signalled through it: the pid cannot change hands between check and signal.
    A target without a scanned start time cannot be checked and is not signalled.

    ``kill``, ``alive``, ``sleep``, ``clock``, ``start_of`` and the pidfd functions are
    injectable for tests; pidfds are used by default only with the real ``os.kill``, so a
    fake host's ``kill`` never mixes with real pidfds. Returns ``(stopped, failed)``; each
    stopped entry gains ``how``: the signal that ended it, or ``exited`` when it was gone
    before being signalled.
    """
    if kill is None:
        kill = os.kill
        if pidfd_open is None:
            pidfd_open = _PIDFD_OPEN
    if pidfd_send is None:
        pidfd_send = _PIDFD_SEND
    if pidfd_send is None:
        pidfd_open = None
    if start_of is None:
        start_of = start_time_reader()
    scanned = {t["pid"]: t.get("start_time") for t in targets}

    def same(pid: int) -> bool:
        """The pid still holds the process the scan saw (not gone, not reused)."""
        expected = scanned.get(pid)
        return expected is not None and start_of(pid) == expected

    if alive is None:
        alive = same

    fds: dict[int, int] = {}

    def pin(pid: int) -> None:
        if pidfd_open is None:
            return
        # Gone (the check after this says so), or no pidfds here: ENOSYS before Linux
        # 5.3, EPERM under a seccomp filter, EMFILE. The start-time check remains.
        with contextlib.suppress(OSError):
            fds[pid] = pidfd_open(pid)

    def send(pid: int, sig: int) -> None:
        # Checked, then signalled: with a pidfd opened before the check, the process
        # checked is the process signalled (its pid could only be reused once it has
        # exited, and then the pidfd refers to the exited one). Without one, the window
        # between the two is a few microseconds instead of the whole wait.
        if not same(pid):
            raise ProcessLookupError(pid)
        fd = fds.get(pid)
        if fd is not None and pidfd_send is not None:
            pidfd_send(fd, sig)
        else:
            kill(pid, sig)

    first_name = signal.Signals(first_signal).name
    stopped: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    pending: dict[int, dict[str, Any]] = {}
    errors: dict[int, str] = {}
    try:
        for target in targets:
            entry = dict(target)
            if entry.get("start_time") is None:
                entry["error"] = (
                    f"no start time from the scan: not sent {first_name}, "
                    "its pid may belong to another process by now"
                )
                failed.append(entry)
                continue
            pin(entry["pid"])
            try:
                send(entry["pid"], first_signal)
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
        if pending and escalate:
            for pid, entry in pending.items():
                try:
                    send(pid, signal.SIGKILL)
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
    finally:
        for fd in fds.values():
            close_fd(fd)
    for pid, entry in pending.items():
        entry["error"] = errors.get(pid, f"still running after {entry['how']}")
        failed.append(entry)
    stopped.sort(key=lambda e: e["pid"])
    return stopped, failed
