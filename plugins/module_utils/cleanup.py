"""What dev cleanup did, and who holds the app port: the data roles/dev_cleanup reports.

``port_holders`` (tasks/takeover.yml) sorts out the listeners on the app port before PM2
starts: which are this app's PM2, which are the app's own processes to stop, which were
already stopped, and which belong to someone else (the run then fails, naming them).
``cleanup_result`` (tasks/report.yml) gathers what the role stopped, disabled and left
alone into ``dev_cleanup_result``; ``cleanup_summary`` says it in one line.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# What dev_cleanup_result keeps of a stopped process, a disabled hook, and a process left
# alone; the command lines are already masked (reap_processes masks processes, hooks.yml
# masks hooks).
PROC_KEYS = ("pid", "user", "cwd", "cmdline", "scope", "how")
HOOK_KEYS = ("kind", "file", "unit", "user", "command", "scope")
SKIPPED_PROC_KEYS = ("pid", "user", "cwd", "cmdline", "reason")
# What cleanup_result reads, each passed by roles/dev_cleanup/tasks/report.yml.
INPUTS = ("reaped", "takeover", "disabled", "left_alone", "other_hooks", "checkouts")

# A tool as the summary names it: "tsx/dist/cli.mjs watch" is "tsx watch", "pnpm.cjs dev"
# is "pnpm dev", "/usr/bin/nodemon" is "nodemon".
_BUILD_PATH = re.compile(r"/dist/\S*|\.c?js\b")
_DIRS = re.compile(r"^\S*/")
_SHELL = re.compile(r"(\S*/)?(sh|bash|dash) -c ")
_SS_INODE = re.compile(r"ino:(\d+)")
_SS_UID = re.compile(r"uid:(\d+)")


def _flatten(items: Iterable[Any]) -> list[Any]:
    """Ansible's ``flatten``: nested lists made one, None (and "None", "null") dropped."""
    out: list[Any] = []
    for item in items:
        if item is None or item in ("None", "null"):
            continue
        if isinstance(item, Sequence) and not isinstance(item, (str, bytes)):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


def _pick(entry: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {key: entry[key] for key in keys}


def cleanup_result(done: Mapping[str, Any]) -> dict[str, Any]:
    """``dev_cleanup_result``: ``{stopped, disabled, skipped, checkouts}``.

    ``done`` has every key of ``INPUTS``: ``reaped``, the processes stop.yml stopped;
    ``takeover``, the results of takeover.yml's loop (those with ``stopped`` stopped port
    holders, whose scope is "port" unless they say otherwise); ``disabled``, the hooks
    hooks.yml disabled; ``left_alone``, the processes find.yml skipped (each with its
    reason); ``other_hooks``, the hooks that run outside the app's directories;
    ``checkouts``, the old checkouts that scoped them. A missing key of an entry is a
    KeyError.
    """
    missing = [name for name in INPUTS if name not in done]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    taken = _flatten(r["stopped"] for r in done["takeover"] if "stopped" in r)
    stopped = [
        _pick({**p, "scope": p.get("scope", "port")}, PROC_KEYS) for p in [*done["reaped"], *taken]
    ]
    skipped = [_pick(p, SKIPPED_PROC_KEYS) for p in done["left_alone"]]
    skipped += [
        {
            **_pick(h, HOOK_KEYS[:5]),
            "reason": "out of scope: runs in " + ", ".join(str(d) for d in h["dirs"]),
        }
        for h in done["other_hooks"]
    ]
    return {
        "stopped": stopped,
        "disabled": [_pick(h, HOOK_KEYS) for h in done["disabled"]],
        "skipped": skipped,
        "checkouts": list(done["checkouts"]),
    }


def tool_name(cmdline: Any, dev_regex: str, app_port: Any) -> str:
    """What a stopped process ran, in two or three words: the part of its command line
    the dev patterns (``dev_regex``) match, without build paths and directories, or
    "server on port <app_port>" (a port holder); "sh -c " first when a shell ran it."""
    cmd = str(cmdline)
    found = re.search(dev_regex, cmd)
    tool = found.group() if found and found.group() else f"server on port {app_port}"
    tool = _DIRS.sub("", _BUILD_PATH.sub("", tool))
    return ("sh -c " if _SHELL.match(cmd) else "") + tool


def _hook_name(hook: Mapping[str, Any]) -> str:
    if hook["kind"] == "systemd":
        return f"unit {hook['unit']}"
    if hook["kind"] == "cron":
        return f"@reboot in {hook['user']}'s crontab"
    return "line in /etc/rc.local"


def _listed(names: list[str]) -> str:
    return f" ({', '.join(names)})" if names else ""


def cleanup_summary(
    result: Mapping[str, Any], dev_regex: str, app_port: Any, check_mode: bool = False
) -> str:
    """One line of what ``result`` (``dev_cleanup_result``) says: the processes stopped by
    tool ("2 x tsx watch"), the hooks disabled, the processes and hooks left alone (user
    and pid, "-" for a hook), the old checkouts. In check mode it says "would"."""
    stopped, disabled, skipped = result["stopped"], result["disabled"], result["skipped"]
    tools = Counter(tool_name(p["cmdline"], dev_regex, app_port) for p in stopped)
    checkouts = ", ".join(str(c) for c in result["checkouts"]) if result["checkouts"] else "none"
    stop, disable = ("would stop", "would disable") if check_mode else ("stopped", "disabled")
    return (
        f"dev cleanup: {stop} {len(stopped)} process(es)"
        + _listed([f"{n} x {tool}" for tool, n in tools.items()])
        + f", {disable} {len(disabled)} boot hook(s)"
        + _listed([_hook_name(h) for h in disabled])
        + f", left {len(skipped)} alone"
        + _listed([f"{s['user']} pid {s.get('pid', '-')}" for s in skipped])
        + f"; old checkout(s): {checkouts}"
    )


def _ss_uids(lines: Iterable[str]) -> dict[str, str]:
    """``{inode: uid}`` from ``ss -Hltne`` lines; ss leaves out ``uid:`` for root."""
    uids: dict[str, str] = {}
    for line in lines:
        inode = _SS_INODE.search(line)
        uid = _SS_UID.search(line)
        uids[inode.group(1) if inode else "?"] = uid.group(1) if uid else "0"
    return uids


def port_holders(
    listeners: Iterable[Mapping[str, Any]],
    processes: Iterable[Mapping[str, Any]],
    port: int,
    app_user: str,
    ss_lines: Iterable[str] = (),
    passwd: Mapping[str, Sequence[Any]] | None = None,
    reaped: Iterable[Mapping[str, Any]] = (),
    package_users: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """One entry per listener on ``port`` (duplicates dropped): pid, user, process,
    manager, address, cwd, and

    - ``scope``: the process's ``in_scope`` when it makes the process the app's own, "cwd",
      or "package" for a process of one of ``package_users``; "" otherwise;
    - ``ours``: the app's PM2 (managed by PM2, run by ``app_user``), or a socket whose
      process is unknown (no CAP_SYS_PTRACE) but whose uid, from ``ss_lines``, is
      ``app_user``'s in ``passwd`` (getent: ``{user: [x, uid, ...]}``);
    - ``reaped``: its pid is among the processes already stopped (``reaped``).

    ``listeners`` and ``processes`` are diagnose's facts; ``user`` is "uid <n>" for a
    socket whose process is unknown but whose uid ss tells.
    """
    procs = list(processes)
    reaped_pids = [p["pid"] for p in reaped]
    package_users = list(package_users)
    uids = _ss_uids(ss_lines)
    app_uid = str(((passwd or {}).get(app_user) or ["", ""])[1])
    out: list[dict[str, Any]] = []
    for lst in listeners:
        if lst.get("port") != port:
            continue
        pid = lst["pid"]
        proc = next((p for p in procs if p.get("pid") == pid), {})
        uid = uids.get(str(lst["inode"]), "")
        in_scope = proc.get("in_scope")
        ours = (lst["manager"] == "pm2" and lst["user"] == app_user) or (
            pid is None and bool(uid) and uid == app_uid
        )
        holder = {
            "pid": pid,
            "user": lst["user"] or (f"uid {uid}" if uid else None),
            "process": lst["process"],
            "manager": lst["manager"],
            "address": lst["address"],
            "cwd": proc.get("cwd"),
            "scope": in_scope
            if in_scope == "cwd" or (in_scope == "package" and proc.get("user") in package_users)
            else "",
            "ours": ours,
            "reaped": pid is not None and pid in reaped_pids,
        }
        if holder not in out:
            out.append(holder)
    return out
