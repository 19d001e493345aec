"""Boot hooks that would start a dev server again, and which of them are the app's.

A boot hook is a line that runs a command when the host starts: a systemd unit's
``ExecStart=`` / ``ExecStartPre=`` / ``ExecStartPost=``, a crontab's ``@reboot`` line (a
user's spool crontab, ``/etc/cron.d/*``, ``/etc/crontab``), a line of ``/etc/rc.local``.
Only lines that match the dev regex are hooks. Each becomes a dict::

    {"kind": "systemd" | "cron" | "rc.local", "file": path, "unit": basename or "",
     "user": who runs it, "line": the line verbatim (to comment it out),
     "command": what it runs, "dirs": the directories it runs in or names}

A hook is the app's (``scope``) when one of its ``dirs``, in order, is under a scope path
(``"cwd"``) or holds a ``package.json`` with the app's package name (``"package"``):
``classify.dir_scope``, the rule a dev process's cwd is judged by.

The parsers take text and return data; ``collect`` and ``read_hook_package_name`` are the
only functions that touch the filesystem.
"""

from __future__ import annotations

import grp
import io
import os
import pwd
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatch
from functools import partial
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.classify import (
    dir_scope,
    read_package_name,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.redact import redact_text

Hook = dict[str, Any]
HomeOf = Callable[[str], str]

EXEC_RE = re.compile(r"\s*ExecStart(Pre|Post)?=")
EXEC_PREFIX_RE = re.compile(r"^\s*ExecStart(Pre|Post)?=[-@:+!]*")
WORKDIR_RE = re.compile(r"\s*WorkingDirectory=")
WORKDIR_PREFIX_RE = re.compile(r"^\s*WorkingDirectory=-?")
USER_RE = re.compile(r"\s*User=")
USER_PREFIX_RE = re.compile(r"^\s*User=")
REBOOT_RE = re.compile(r"\s*@reboot\s")
COMMENT_RE = re.compile(r"\s*#")
# An absolute path a command names: after the start, a blank, `=`, `;`, `&`, `|` or `(`;
# not ending in `/` (so `cd /srv/app/` names /srv/app).
NAMED_PATH_RE = re.compile(r"""(?:^|[\s=;&|(])(/[^\s;&|()<>"']*[^\s;&|()<>"'/])""")
# What the dev regex is searched with when choosing the files to read: a unit with such an
# ExecStart line, a crontab with such an @reboot line (matched from the start of a line).
UNIT_FILTER = r"\s*ExecStart(Pre|Post)?=.*({})"
CRON_FILTER = r"\s*@reboot\s.*({})"
ENV_MASK = r"\1\2=***"
RC_LOCAL = "rc.local"


def unique(items: Iterable[str]) -> list[str]:
    """``items`` without repeats, first occurrence kept."""
    return list(dict.fromkeys(items))


def named_paths(command: str) -> list[str]:
    """The absolute paths a command names (``cd /srv/app && node /opt/x/server.js``)."""
    return NAMED_PATH_RE.findall(command)


def _with_named_dirs(hook: Hook) -> Hook:
    return {**hook, "dirs": unique([*hook["dirs"], *named_paths(hook["command"])])}


def _trimmed_values(lines: list[str], key: re.Pattern[str], prefix: re.Pattern[str]) -> list[str]:
    return [prefix.sub("", line).strip() for line in lines if key.match(line)]


def parse_unit(path: str, text: str, dev_re: str, home_of: HomeOf) -> list[Hook]:
    """A systemd unit's hooks: its ``ExecStart*=`` lines that match ``dev_re``.

    The user is the first ``User=`` (``root`` without one), the directories every
    ``WorkingDirectory=`` (``-`` dropped, ``~`` the user's home), ``/`` without one, then
    the paths the command names.
    """
    lines = text.splitlines()
    user = [*_trimmed_values(lines, USER_RE, USER_PREFIX_RE), "root"][0]
    workdirs = _trimmed_values(lines, WORKDIR_RE, WORKDIR_PREFIX_RE)
    if workdirs:
        home = home_of(user)
        workdirs = [home + wd[1:] if wd.startswith("~") else wd for wd in workdirs]
    hooks = []
    for line in lines:
        if EXEC_RE.match(line) and re.search(dev_re, line):
            hook = {
                "kind": "systemd",
                "file": path,
                "unit": os.path.basename(path),
                "user": user,
                "line": line,
                "command": EXEC_PREFIX_RE.sub("", line),
                "dirs": workdirs or ["/"],
            }
            hooks.append(_with_named_dirs(hook))
    return hooks


def parse_crontab(
    path: str, text: str, dev_re: str, home_of: HomeOf, spool: bool = False
) -> list[Hook]:
    """A crontab's hooks: its ``@reboot`` lines that match ``dev_re``.

    A ``spool`` crontab (``/var/spool/cron/crontabs/<user>``) is its file's user's and has
    no user field; a system crontab (``/etc/crontab``, ``/etc/cron.d/*``) names the user in
    the second word. The directory is the user's home, then the paths the command names.
    """
    hooks = []
    for line in text.splitlines():
        if not (REBOOT_RE.match(line) and re.search(dev_re, line)):
            continue
        words = line.split()
        if spool:
            user, command = os.path.basename(path), words[1:]
        else:
            user, command = (words[1] if len(words) > 1 else "root"), words[2:]
        hook = {
            "kind": "cron",
            "file": path,
            "unit": "",
            "user": user,
            "line": line,
            "command": " ".join(command),
            "dirs": [home_of(user)],
        }
        hooks.append(_with_named_dirs(hook))
    return hooks


def parse_rc_local(path: str, text: str, dev_re: str) -> list[Hook]:
    """``/etc/rc.local``'s hooks: its lines, not comments, that match ``dev_re``; root's,
    run in ``/`` and the paths the command names."""
    hooks = []
    for line in text.splitlines():
        if COMMENT_RE.match(line) or not re.search(dev_re, line):
            continue
        hook = {
            "kind": "rc.local",
            "file": path,
            "unit": "",
            "user": "root",
            "line": line,
            "command": line.strip(),
            "dirs": ["/"],
        }
        hooks.append(_with_named_dirs(hook))
    return hooks


def has_line(text: str, pattern: str) -> bool:
    """A line of ``text`` matches ``pattern`` from its start (lines split at ``\\n``,
    ``\\r\\n`` and ``\\r``): which unit and cron files are worth parsing."""
    prog = re.compile(pattern)
    return any(prog.match(line) for line in io.StringIO(text, newline=None))


def mask_command(command: str, env_re: str) -> str:
    """``NAME=value`` values (``env_re``: groups 1, the separator, and 2, the name)
    masked, then credentials and secret options (``redact.redact_text``)."""
    return redact_text(re.sub(env_re, ENV_MASK, command))


def hook_scope(
    dirs: Iterable[str],
    roots: Iterable[str],
    package_name: str | None,
    package_names: Mapping[str, str | None],
) -> str:
    """``"cwd"`` / ``"package"`` for the first of ``dirs`` that is the app's
    (``classify.dir_scope``; ``package_names`` maps a directory to its ``package.json``
    name), ``""`` when none is."""
    roots = list(roots)
    for path in dirs:
        why = dir_scope(path, roots, package_name, package_names.get)
        if why:
            return why
    return ""


def split_hooks(
    hooks: Iterable[Hook],
    roots: Iterable[str],
    package_name: str | None,
    package_names: Mapping[str, str | None],
    env_re: str,
) -> tuple[list[Hook], list[Hook]]:
    """The app's hooks and the others, each with ``scope`` and its command masked."""
    roots = unique(roots)
    app: list[Hook] = []
    other: list[Hook] = []
    for hook in hooks:
        scope = hook_scope(hook["dirs"], roots, package_name, package_names)
        out = {**hook, "scope": scope, "command": mask_command(hook["command"], env_re)}
        (app if scope else other).append(out)
    return app, other


# --- reading the host ------------------------------------------------------------------------


def home_dir(user: str) -> str:
    """The user's home from the passwd database; ``/`` for an unknown user."""
    try:
        return pwd.getpwnam(user).pw_dir
    except (KeyError, TypeError, ValueError):
        return "/"


def _owner(st: os.stat_result) -> dict[str, str]:
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return {"owner": owner, "group": group, "mode": f"{stat.S_IMODE(st.st_mode):04o}"}


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _read_regular(path: str) -> tuple[str, dict[str, str]] | None:
    """Text and owner of a regular file (not a link); None if it is not one or cannot be
    read (permission, vanished)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace"), _owner(st)


def _dir_files(path: str, pattern: str = "*") -> list[str]:
    """The files of a directory (not a link to one) named like ``pattern``, hidden ones
    left out, sorted."""
    if not _is_dir(path):
        return []
    try:
        names = os.listdir(path)
    except OSError:
        return []
    return [
        os.path.normpath(os.path.join(path, name))
        for name in sorted(names)
        if not name.startswith(".") and fnmatch(name, pattern)
    ]


def collect(
    unit_dir: str,
    cron_dirs: list[str],
    hook_files: list[str],
    dev_re: str,
    home_of: HomeOf = home_dir,
) -> list[Hook]:
    """Every hook on the host, with its file's ``owner``, ``group`` and ``mode``.

    Read: the ``*.service`` files of ``unit_dir`` that have an ``ExecStart*=`` line
    matching ``dev_re``; the files of ``cron_dirs`` (the first is the per-user spool) with
    such an ``@reboot`` line; every one of ``hook_files`` (one named ``rc.local`` is read
    as rc.local, the others as system crontabs). Regular files only; links, hidden files
    and files that cannot be read are left out.
    """
    hooks: list[Hook] = []

    def add(path: str, parse: Callable[[str, str], list[Hook]], must_have: str | None) -> None:
        read = _read_regular(path)
        if read is None:
            return
        text, owner = read
        if must_have is not None and not has_line(text, must_have):
            return
        hooks.extend({**hook, **owner} for hook in parse(path, text))

    for path in _dir_files(unit_dir, "*.service"):
        add(path, lambda p, t: parse_unit(p, t, dev_re, home_of), UNIT_FILTER.format(dev_re))
    for idx, cron_dir in enumerate(cron_dirs):
        spool = idx == 0
        for path in _dir_files(cron_dir):
            add(
                path,
                partial(parse_crontab, dev_re=dev_re, home_of=home_of, spool=spool),
                CRON_FILTER.format(dev_re),
            )
    for path in hook_files:
        if os.path.basename(path) == RC_LOCAL:
            add(path, lambda p, t: parse_rc_local(p, t, dev_re), None)
        else:
            add(path, lambda p, t: parse_crontab(p, t, dev_re, home_of), None)
    return hooks


def read_hook_package_name(path: str) -> str | None:
    """``name`` from ``<path>/package.json`` when that is a regular file (not a link)
    holding a JSON object; None otherwise. ``path`` may name a file (``/usr/bin/env``)."""
    return read_package_name(path, follow=False)


def package_names(
    hooks: Iterable[Hook], read: Callable[[str], str | None] = read_hook_package_name
) -> dict[str, str | None]:
    """Each hook directory's ``package.json`` name, read once."""
    return {path: read(path) for path in unique(d for h in hooks for d in h["dirs"])}
