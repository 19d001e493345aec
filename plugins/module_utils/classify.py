"""Classify processes: dev servers and watchers, process managers, the app's scope.

Matching works on argv tokens and their basenames, not on substrings of the joined
command line: ``/usr/bin/node /srv/x/node_modules/.bin/../tsx/dist/cli.mjs watch server.ts``
is ``tsx watch`` because one token names the tsx CLI and the next word is ``watch``.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
from collections.abc import Callable, Iterable, Mapping

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import (
    Listener,
    Process,
    is_manager_unit,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.redact import redact_argv

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash", "ksh"})
PACKAGE_MANAGERS = frozenset({"npm", "pnpm", "yarn"})
# Process titles and launchers of the Node.js family (the app, its tools, its wrappers).
NODE_FAMILY = frozenset(
    {
        "node",
        "nodejs",
        "tsx",
        "ts-node",
        "ts-node-dev",
        "tsnd",
        "nodemon",
        "next",
        "npm",
        "npx",
        "pnpm",
        "pnpx",
        "yarn",
        "bun",
        "corepack",
    }
)
_SCRIPT_SUFFIXES = (".js", ".cjs", ".mjs")
_GENERIC_STEMS = frozenset({"cli", "bin", "index", "main"})
# Package-manager options that take a value in the next argument.
_PM_VALUE_OPTIONS = frozenset(
    {"--filter", "-F", "-C", "--dir", "--prefix", "--cwd", "--workspace", "-w", "--loglevel"}
)
DELETED_SUFFIX = " (deleted)"

PackageReader = Callable[[str], str | None]


def _tool(token: str) -> str | None:
    """Which Node.js tool an argv token names, by basename or by its package path."""
    if not token or token.startswith("-"):
        return None
    parts = token.rstrip("/").split("/")
    base = parts[-1]
    stem = base
    for suffix in _SCRIPT_SUFFIXES:
        if base.endswith(suffix):
            stem = base[: -len(suffix)]
            break
    if stem in _GENERIC_STEMS and len(parts) >= 3:
        # .../tsx/dist/cli.mjs, .../ts-node-dev/lib/bin.js: the package names the tool.
        for idx in range(len(parts) - 2, 0, -1):
            if parts[idx] in ("dist", "lib", "bin"):
                stem = parts[idx - 1]
                break
    if stem == "npm-cli":
        stem = "npm"
    if stem in ("nodejs",) or (stem.startswith("node") and stem[4:].isdigit()):
        stem = "node"
    return stem if stem in NODE_FAMILY else None


def _expand_shell(argv: list[str], depth: int = 0) -> list[str]:
    """``sh -c "tsx watch server.ts"`` -> ``["tsx", "watch", "server.ts"]``."""
    if depth > 3 or not argv or argv[0].rsplit("/", 1)[-1] not in SHELLS:
        return argv
    for idx, arg in enumerate(argv[1:], start=1):
        if arg.startswith("-") and not arg.startswith("--") and "c" in arg[1:]:
            rest = argv[idx + 1 :]
            if not rest:
                return argv
            try:
                words = shlex.split(rest[0])
            except ValueError:
                words = rest[0].split()
            return _expand_shell(words + rest[1:], depth + 1)
        if not arg.startswith("-"):
            break
    return argv


def _subcommand(tokens: list[str], value_options: frozenset[str] = frozenset()) -> tuple[int, str]:
    """Index and value of the first word that is not an option."""
    skip = False
    for idx, tok in enumerate(tokens):
        if skip:
            skip = False
            continue
        if tok.startswith("-"):
            if tok in value_options:
                skip = True
            continue
        return idx, tok
    return -1, ""


def _is_dev_script(name: str) -> bool:
    return name == "dev" or name.startswith("dev:")


_SHELL_OPERATORS = frozenset({"&&", "||", ";", "|", "&"})
# Node options that take their value in the next argument.
_NODE_VALUE_OPTIONS = frozenset(
    {
        "-r",
        "--require",
        "--import",
        "--loader",
        "--experimental-loader",
        "--env-file",
        "--title",
        "-C",
        "--conditions",
        "--inspect-port",
    }
)


def _is_assignment(token: str) -> bool:
    name, eq, _ = token.partition("=")
    return bool(eq) and name.replace("_", "a").isalnum() and not name[0].isdigit()


def _command_tool(tokens: list[str]) -> tuple[str | None, list[str]]:
    """Follow launchers (``env``, ``node``, ``npx``, ``pnpm exec``, ``corepack``) from the
    start of a command to the tool it runs; return the tool and its arguments."""
    idx = 0
    while idx < len(tokens):
        tok = tokens[idx]
        if _is_assignment(tok) or tok.rsplit("/", 1)[-1] == "env":
            idx += 1  # NODE_ENV=development next dev, env FOO=1 next dev
            continue
        tool = _tool(tok)
        rest = tokens[idx + 1 :]
        if tool == "node":
            # Node's own options come first; the script after them may be a tool's CLI
            # (node .../tsx/dist/cli.mjs watch server.ts).
            skip = False
            for j, arg in enumerate(rest):
                if skip:
                    skip = False
                    continue
                if arg.startswith("-"):
                    skip = arg in _NODE_VALUE_OPTIONS
                    continue
                if _tool(arg) not in (None, "node"):
                    idx += 1 + j
                    break
                return "node", rest[:j]
            else:
                return "node", rest
            continue
        if tool in ("npx", "pnpx", "corepack"):
            sub_idx, _ = _subcommand(rest)
            if sub_idx < 0:
                return tool, rest
            idx += 1 + sub_idx
            continue
        if tool in PACKAGE_MANAGERS:
            sub_idx, sub = _subcommand(rest, _PM_VALUE_OPTIONS)
            if sub in ("exec", "dlx"):
                next_idx, _ = _subcommand(rest[sub_idx + 1 :])
                if next_idx >= 0:
                    idx += 1 + sub_idx + 1 + next_idx
                    continue
        return tool, rest
    return None, []


def _commands(tokens: list[str]) -> list[list[str]]:
    """Split a shell word list at ``&&``, ``;``, ``|``: each part is a command."""
    out: list[list[str]] = [[]]
    for tok in tokens:
        if tok in _SHELL_OPERATORS:
            out.append([])
        else:
            out[-1].append(tok)
    return [cmd for cmd in out if cmd]


def dev_tool(cmdline: list[str]) -> str | None:
    """Name the dev server or watcher this command line runs (``tsx watch``, ``next dev``,
    ``nodemon``, ``ts-node-dev``, ``pnpm dev``, ``npm run dev``, ``node --watch``), or None.

    Only the command itself and what its launchers run count: ``grep -r "tsx watch" .``
    mentions a dev server but is not one.
    """
    for command in _commands(_expand_shell(list(cmdline))):
        tool, after = _command_tool(command)
        if tool is None:
            continue
        if tool in ("nodemon", "ts-node-dev", "tsnd"):
            return "ts-node-dev" if tool == "tsnd" else tool
        if tool == "tsx":
            _, sub = _subcommand(after)
            if sub == "watch":
                return "tsx watch"
        elif tool == "next":
            _, sub = _subcommand(after)
            if sub == "dev":
                return "next dev"
        elif tool in PACKAGE_MANAGERS:
            sub_idx, sub = _subcommand(after, _PM_VALUE_OPTIONS)
            if sub in ("run", "run-script"):
                _, script = _subcommand(after[sub_idx + 1 :], _PM_VALUE_OPTIONS)
                if _is_dev_script(script):
                    return f"{tool} run {script}"
            elif _is_dev_script(sub):
                return f"{tool} {sub}"
        elif tool == "node" and any(
            tok == "--watch" or tok.startswith(("--watch=", "--watch-path")) for tok in after
        ):
            return "node --watch"
    return None


def is_dev_process(cmdline: list[str]) -> bool:
    return dev_tool(cmdline) is not None


def is_pm2_daemon(cmdline: list[str]) -> bool:
    """PM2's God daemon: titled ``PM2 v5.4.2: God Daemon (/home/app/.pm2)``."""
    joined = " ".join(cmdline)
    return (
        joined.startswith("PM2 v")
        or "God Daemon" in joined
        or any(tok.endswith("pm2/lib/Daemon.js") for tok in cmdline)
    )


def is_node_process(cmdline: list[str]) -> bool:
    """A process of the Node.js family (runtime, launcher or retitled server), by argv[0].

    Shell wrappers (``sh -c next dev``) are not: they are the launcher's plumbing, and
    counting them would report every copy twice.
    """
    if not cmdline:
        return False
    if cmdline[0].startswith("next-server") or is_pm2_daemon(cmdline):
        return True
    return _tool(cmdline[0].split(" ", 1)[0]) is not None


def normalize_cmdline(cmdline: list[str]) -> str:
    """The command line used to recognise copies: argv[0] reduced to its basename,
    secrets masked (``/usr/bin/node a.js`` and ``node a.js`` are the same command)."""
    if not cmdline:
        return ""
    first = cmdline[0]
    # A process title set by the program itself ("PM2 v7.0.4: God Daemon (/srv/x/.pm2)")
    # is one argument with spaces, not a path: keep it whole.
    if " " not in first:
        first = first.rsplit("/", 1)[-1]
    argv = [first, *cmdline[1:]]
    return " ".join(redact_argv(argv))


def managed_by(proc: Process, procs: Mapping[int, Process]) -> str | None:
    """``"pm2"`` when the process is PM2's daemon or descends from it, ``"systemd"`` when its
    cgroup is a service unit (not a login session, container scope, ssh or cron), else None.
    """
    seen: set[int] = set()
    cur: Process | None = proc
    while cur is not None and cur.pid not in seen and cur.pid > 0:
        if is_pm2_daemon(cur.cmdline):
            return "pm2"
        seen.add(cur.pid)
        cur = procs.get(cur.ppid)
    if is_manager_unit(proc.unit):
        return "systemd"
    return None


def clean_cwd(cwd: str | None) -> str | None:
    """A cwd whose directory was removed reads ``/srv/x/releases/a (deleted)``."""
    if cwd and cwd.endswith(DELETED_SUFFIX):
        return cwd[: -len(DELETED_SUFFIX)]
    return cwd


def path_under(path: str, root: str) -> bool:
    """``path`` is ``root`` or inside it (by path components, not string prefix)."""
    path = os.path.normpath(path)
    root = os.path.normpath(root)
    if root == "/":
        return path.startswith("/")
    return path == root or path.startswith(root + "/")


def package_name_of(text: str) -> str | None:
    """``name`` of a ``package.json``'s text; None unless it is a JSON object with a
    string ``name``."""
    try:
        name = json.loads(text).get("name")
    except (ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def read_package_name(cwd: str, max_bytes: int = 1 << 20, follow: bool = True) -> str | None:
    """``name`` from ``<cwd>/package.json``; None when absent, unreadable or not JSON
    (or, with ``follow=False``, a link).

    Opened non-blocking and checked to be a regular file: the directory may belong to
    anyone, and a FIFO named package.json must not hang the diagnosis.
    """
    path = os.path.join(cwd, "package.json")
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, max_bytes)
    except OSError:
        return None
    finally:
        os.close(fd)
    return package_name_of(data.decode("utf-8", errors="replace"))


def dir_scope(
    path: str,
    roots: Iterable[str],
    package_name: str | None,
    read_package: PackageReader = read_package_name,
) -> str | None:
    """Why a directory is the app's: ``"cwd"`` when it is under one of ``roots``,
    ``"package"`` when its ``package.json`` has ``package_name``; else None.

    The one rule for a process's cwd (``in_scope``) and a boot hook's directories
    (``hooks.hook_scope``).
    """
    if any(path_under(path, root) for root in roots if root):
        return "cwd"
    if package_name and read_package(path) == package_name:
        return "package"
    return None


def in_scope(
    proc: Process,
    app_root: str | None,
    scope_paths: Iterable[str] | None,
    package_name: str | None,
    app_port: int | None,
    listeners: Iterable[Listener],
    read_package: PackageReader = read_package_name,
) -> str | None:
    """Why a process belongs to the app (``"cwd"``, ``"package"``, ``"port"``), or None.

    Per the design: its cwd is under the app root or a configured path, or its cwd's
    package.json names the app's package, or it listens on the app port. Never the
    command line alone: another project's ``next dev`` on the same host is not ours.
    """
    cwd = clean_cwd(proc.cwd)
    roots = [r for r in [app_root, *(scope_paths or [])] if r]
    why = dir_scope(cwd, roots, package_name, read_package) if cwd else None
    if why:
        return why
    if app_port and any(lst.port == app_port and proc.pid in lst.pids for lst in listeners):
        return "port"
    return None


# --- judging a process whose working directory cannot be read ------------------------------

# Root without CAP_SYS_PTRACE (a container, some LXC hosts) cannot read another user's
# /proc/<pid>/cwd or fd, while its cmdline, status and cgroup stay readable. ``in_scope``
# then has only what the process left in the open, so the diagnosis judges it on less, with
# these reasons (and says so in its findings). Never the reaper: stopping a process needs
# the proof ``in_scope`` gives.
JUDGED_SCOPES = ("cmdline", "user", "socket")


def is_app_program(cmdline: list[str]) -> bool:
    """A Node.js process, or a wrapper that launches a dev tool (``sh -c next dev``)."""
    return is_node_process(cmdline) or dev_tool(cmdline) is not None


def _named_paths(cmdline: list[str]) -> list[str]:
    """The absolute paths a command line names: its words, a shell's ``-c`` string split,
    ``--opt=/path`` values and ``file:///path`` URLs, a title's ``(/path)``."""
    words: list[str] = []
    for token in [*cmdline, *_expand_shell(list(cmdline))]:
        words.extend(token.split())
    out = []
    for word in words:
        word = word.strip("()[]'\",;")
        _, eq, value = word.partition("=")
        if eq and value.startswith(("/", "file://")):
            word = value
        word = word.removeprefix("file://")
        if word.startswith("/"):
            out.append(os.path.normpath(word))
    return out


def cmdline_under(cmdline: list[str], roots: Iterable[str]) -> bool:
    """The command line names a path under one of ``roots``
    (``node /srv/workbot/current/node_modules/.bin/next start``, ``next start /srv/x``)."""
    roots = [r for r in roots if r]
    return any(path_under(path, root) for path in _named_paths(cmdline) for root in roots)


def judge_scope(proc: Process, roots: Iterable[str], app_user: str | None) -> str | None:
    """Why a Node.js program whose working directory could not be read is taken for the
    app's: ``"cmdline"`` when its command line names a path under the app root or a scope
    path, ``"user"`` when it runs as the app user (not root); else None. Processes whose cwd
    was readable are left to ``in_scope``: there the command line alone never decides.
    """
    if "cwd" not in proc.unreadable or not is_app_program(proc.cmdline):
        return None
    if cmdline_under(proc.cmdline, roots):
        return "cmdline"
    if app_user and app_user != "root" and proc.uid != 0 and proc.user == app_user:
        return "user"
    return None


def tree_tops(pids: Iterable[int], procs: Mapping[int, Process]) -> list[int]:
    """Of ``pids``, those with no ancestor among them: one per process tree."""
    wanted = set(pids)
    tops = []
    for pid in sorted(wanted):
        seen = {pid}
        cur = procs.get(pid)
        parent = cur.ppid if cur else 0
        while parent > 0 and parent not in wanted and parent not in seen:
            seen.add(parent)
            up = procs.get(parent)
            parent = up.ppid if up else 0
        if parent not in wanted or parent == pid:
            tops.append(pid)
    return tops


def socket_suspects(
    uid: int | None, procs: Mapping[int, Process], fd_denied: Iterable[int]
) -> list[Process]:
    """The Node.js processes that may hold a listening socket whose holder could not be
    read: those of the socket's user (``/proc/net/tcp`` names it) whose fds were refused."""
    denied = set(fd_denied)
    if uid is None or not denied:
        return []
    return [
        p
        for pid, p in sorted(procs.items())
        if pid in denied and p.uid == uid and is_node_process(p.cmdline)
    ]


# --- old checkouts ------------------------------------------------------------------------

# An old checkout is a directory a dev process of the app ran in; it then scopes boot
# hooks and port holders. A directory that holds the system's or many users' files says
# nothing about the app, and as a scope it would take in every unit without a
# WorkingDirectory= (their directory is /), every crontab line of a user (their home), or
# another team's project. These are never checkouts, exactly:
SHARED_DIRS = frozenset(
    {
        "/",
        "/home",
        "/root",
        "/opt",
        "/srv",
        "/tmp",
        "/mnt",
        "/media",
        "/snap",
        "/workspace",
        "/lost+found",
        "/usr/local",
        "/var",
        "/var/www",
        "/var/opt",
        "/var/local",
        "/var/tmp",
    }
)
# ...and neither is anything inside these trees, which belong to the system.
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/backups",
    "/var/cache",
    "/var/lib",
    "/var/lock",
    "/var/log",
    "/var/mail",
    "/var/run",
    "/var/spool",
)


def checkout_refusal(
    path: str,
    homes: Iterable[str] = (),
    app_roots: Iterable[str] = (),
    other_roots: Iterable[str] = (),
) -> str | None:
    """Why ``path`` may not be used as an old checkout of the app, or None if it may.

    Refused: a relative path or one with ``..``; ``/``; a home directory (``homes``, the
    passwd entries' homes, plus ``/root`` and ``/home/<user>``); a shared or system
    directory (``SHARED_DIRS``, anything under ``SYSTEM_TREES``); a directory that holds
    one of ``app_roots`` (it is more than the app's checkout); a directory in one of
    ``other_roots``, the roots of the other apps on the machine (it is theirs).
    ``/home/bob/shop``, ``/opt/shop`` and ``/srv/shop`` are accepted.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        return "not an absolute path"
    if ".." in path.split("/"):
        return "has a '..' component"
    norm = os.path.normpath(path)
    if norm.startswith("//"):  # POSIX keeps a leading "//"; it is still "/"
        norm = "/" + norm.lstrip("/")
    if norm == "/":
        return "the root directory"
    home_dirs = {os.path.normpath(h) for h in homes if isinstance(h, str) and h.startswith("/")}
    parent = os.path.dirname(norm)
    if norm in home_dirs or norm == "/root" or parent == "/home":
        return "a user's home directory"
    if norm in SHARED_DIRS:
        return "a directory shared by the system or its users"
    tree = next((t for t in SYSTEM_TREES if path_under(norm, t)), None)
    if tree is not None:
        return f"inside the system directory {tree}"
    for root in app_roots:
        if not isinstance(root, str) or not root.startswith("/"):
            continue
        root = os.path.normpath(root)
        if root != norm and path_under(root, norm):
            return f"holds {root}, so more than the app's checkout"
    for root in other_roots:
        if (
            isinstance(root, str)
            and root.startswith("/")
            and path_under(norm, os.path.normpath(root))
        ):
            return f"inside {os.path.normpath(root)}, another app's directory on this machine"
    return None


def split_checkouts(
    paths: Iterable[str],
    homes: Iterable[str] = (),
    app_roots: Iterable[str] = (),
    other_roots: Iterable[str] = (),
) -> dict[str, list]:
    """``{"checkouts": [...], "refused": [{"path", "reason"}]}``: the candidate old
    checkouts that may scope the app's hooks and processes (normalized, unique, sorted)
    and those that may not, with ``checkout_refusal``'s reason."""
    homes = list(homes)
    app_roots = list(app_roots)
    other_roots = list(other_roots)
    accepted: set[str] = set()
    refused: dict[str, str] = {}
    for path in paths:
        reason = checkout_refusal(path, homes, app_roots, other_roots)
        if reason is None:
            accepted.add(os.path.normpath(path))
        else:
            refused[str(path)] = reason
    return {
        "checkouts": sorted(accepted),
        "refused": [{"path": p, "reason": r} for p, r in sorted(refused.items())],
    }
