# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Put back the processes a run stopped, should the run fail to serve the app instead.

Before dev cleanup signals a process, :func:`snapshot` records how it was running: its
command line, working directory, user, groups, environment, where its output went and the
TCP ports it listened on. The record is root's alone (it holds the environment, secrets
included). If the run then cannot bring the app up under PM2, :func:`to_restart` picks the
processes that served (a process tree that listened on a port; the copies that only
watched files, or failed with EADDRINUSE, are left stopped) and :func:`start` runs each
again as it ran: same user, directory, environment and output, in a session of its own.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import Listener, Process
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.reap import shown_cmdline


def _environ(path: str) -> dict[str, str] | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            env[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return env


def _groups(path: str) -> tuple[int | None, list[int]]:
    gid, groups = None, []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("Gid:"):
                    gid = int(line.split()[1])
                elif line.startswith("Groups:"):
                    groups = [int(g) for g in line.split()[1:]]
    except (OSError, ValueError, IndexError):
        pass
    return gid, groups


def _output(path: str) -> str | None:
    """A regular file the process writes to (its fd 1 or 2), else None (a pipe, a tty)."""
    try:
        target = os.readlink(path)
        regular = stat.S_ISREG(os.stat(path).st_mode)
        if regular and target.startswith("/") and not target.endswith(" (deleted)"):
            return target
    except OSError:
        pass
    return None


def snapshot(
    pids: Iterable[int],
    procs: Mapping[int, Process],
    listeners: Iterable[Listener],
    proc_root: str = "/proc",
) -> list[dict[str, Any]]:
    """How each of ``pids`` runs, read before it is signalled.

    Its ports are those its whole process tree listens on: `tsx watch` is stopped, the
    server it runs (`node --import tsx/loader server.ts`, no dev command line of its own)
    listens, and ends with it.
    """
    own: dict[int, set[int]] = {}
    for lst in listeners:
        for pid in lst.pids:
            own.setdefault(pid, set()).add(lst.port)
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)

    def tree_ports(pid: int) -> set[int]:
        found, todo, seen = set(), [pid], set()
        while todo:
            cur = todo.pop()
            if cur in seen:
                continue
            seen.add(cur)
            found |= own.get(cur, set())
            todo.extend(children.get(cur, []))
        return found

    out = []
    for pid in pids:
        proc = procs.get(pid)
        if proc is None:
            continue
        base = f"{proc_root}/{pid}"
        gid, groups = _groups(f"{base}/status")
        out.append(
            {
                "pid": pid,
                "ppid": proc.ppid,
                "uid": proc.uid,
                "gid": gid,
                "groups": groups,
                "user": proc.user,
                "argv": list(proc.cmdline),
                "cwd": proc.cwd,
                "environ": _environ(f"{base}/environ"),
                "stdout": _output(f"{base}/fd/1"),
                "stderr": _output(f"{base}/fd/2"),
                "unit": proc.unit,
                "start_time": proc.start_time,
                "ports": sorted(tree_ports(pid)),
            }
        )
    return out


def append_record(path: str, entries: list[dict[str, Any]]) -> None:
    """Add ``entries`` to the root-only record at ``path`` (its directory made 0700)."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    old: list[dict[str, Any]] = read_record(path)
    known = {(e["pid"], e.get("start_time")) for e in old}
    old.extend(e for e in entries if (e["pid"], e.get("start_time")) not in known)
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(old, fh)
    os.replace(tmp, path)


def read_record(path: str) -> list[dict[str, Any]]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return []
    with os.fdopen(fd, encoding="utf-8") as fh:
        return json.load(fh)


def to_restart(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The recorded processes to start again, and the rest with why not.

    A process tree (a recorded process whose parent was not recorded, and the recorded
    processes under it) is started again from its top when something in it listened on a
    TCP port: that copy served. A tree that listened on nothing (a watcher, a copy that lost
    the port with EADDRINUSE) is left stopped; so is one whose command or directory is
    unknown.
    """
    by_pid = {e["pid"]: e for e in entries}
    tops: dict[int, list[int]] = {}
    for e in entries:
        top = e
        seen = set()
        while top["ppid"] in by_pid and top["ppid"] not in seen:
            seen.add(top["pid"])
            top = by_pid[top["ppid"]]
        tops.setdefault(top["pid"], []).append(e["pid"])
    start, skip = [], []
    for pid in sorted(tops, key=lambda p: (by_pid[p].get("start_time") or 0, p)):
        top = by_pid[pid]
        ports = sorted({port for p in tops[pid] for port in by_pid[p].get("ports", [])})
        if not ports:
            skip.append({**describe(top), "why": "it served no port when it was stopped"})
        elif not top.get("argv") or not top.get("cwd") or top.get("uid") is None:
            why = "its command, directory or user could not be read"
            skip.append({**describe(top), "why": why})
        else:
            start.append({**top, "served": ports})
    return start, skip


def describe(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "pid": entry["pid"],
        "user": entry.get("user"),
        "cwd": entry.get("cwd"),
        "cmdline": shown_cmdline(entry.get("argv") or []),
    }


def start(entry: Mapping[str, Any]) -> int:
    """Run ``entry``'s command again as it ran; returns the new pid.

    The child gets a session of its own (as ``setsid nohup`` gave the incident's copies),
    the user, groups, directory and environment recorded, standard input from /dev/null
    and its output appended where it went before (else /dev/null). It is a grandchild
    handed to init, so the module exits while it runs.
    """
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            os.setsid()
            second = os.fork()
            if second:
                os.write(write_end, str(second).encode())
                os._exit(0)
            _become(entry)
        finally:
            os._exit(127)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    os.waitpid(first, 0)
    if not data:
        raise OSError(f"could not start {describe(entry)['cmdline']}")
    return int(data)


def _become(entry: Mapping[str, Any]) -> None:  # pragma: no cover - runs in the child
    # The user first: its directory and log files are opened with its rights, never root's.
    gid = entry.get("gid")
    if gid is None:
        gid = entry["uid"]
    os.setgroups(entry.get("groups") or [gid])
    os.setgid(gid)
    os.setuid(entry["uid"])
    os.chdir(entry["cwd"])
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = entry.get(name)
        try:
            out = os.open(target, os.O_WRONLY | os.O_APPEND) if target else null
        except OSError:
            out = null
        os.dup2(out, fd)
    os.closerange(3, 1024)
    env = entry.get("environ")
    if env is None:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    argv = entry["argv"]
    os.execvpe(argv[0], argv, env)
