"""Read PM2's process list without starting PM2 and without leaking the app's environment.

``pm2 jlist`` prints every process's ``pm2_env``, which holds the app's environment twice
(``pm2_env.env`` and flattened into ``pm2_env`` itself): database URLs, secrets. Only a
fixed list of fields is copied out, so nothing new PM2 adds can leak.

Any ``pm2`` command connects to the daemon of its ``PM2_HOME`` and *starts one* when none
runs; run as root it would start a root daemon. So PM2 is queried only when its daemon is
running (socket present, pid file naming a live PM2 process), and as the app's user.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.redact import redact_text, shorten

# pm2_env fields copied out; nothing else (in particular no env, no args, no node_args).
_ENV_FIELDS = (
    "status",
    "restart_time",
    "unstable_restarts",
    "pm_uptime",
    "created_at",
    "exec_mode",
    "instances",
    "namespace",
    "version",
    "node_version",
    "pm_exec_path",
    "pm_cwd",
    "exec_interpreter",
    "pm_out_log_path",
    "pm_err_log_path",
    "autorestart",
    "watch",
    "min_uptime",
    "max_restarts",
    "max_memory_restart",
    "kill_timeout",
    "prev_restart_delay",
    "exit_code",
    "username",
)


class Pm2Error(ValueError):
    """pm2 output that is not the process list."""


def _parse_json_list(text: str) -> list[Any]:
    data: Any = None
    try:
        data = json.loads(text)
    except ValueError:
        # pm2 may print a banner ("In-memory PM2 is out-of-date ...") before the JSON.
        lines = text.splitlines()
        for idx, line in enumerate(lines):
            if line.lstrip().startswith("["):
                try:
                    data = json.loads("\n".join(lines[idx:]))
                    break
                except ValueError:
                    continue
    if data is None:
        raise Pm2Error(f"pm2 jlist printed no JSON list: {shorten(text.strip(), 120)!r}")
    if not isinstance(data, list):
        raise Pm2Error(f"pm2 jlist printed {type(data).__name__}, expected a list")
    return data


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def compact_process(item: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """One jlist entry reduced to the fields a diagnosis needs."""
    env = item.get("pm2_env") or {}
    monit = item.get("monit") or {}
    out: dict[str, Any] = {
        "name": item.get("name", env.get("name")),
        "pm_id": _as_int(item.get("pm_id", env.get("pm_id"))),
        "pid": _as_int(item.get("pid")),
        "memory": _as_int(monit.get("memory")),
        "cpu": monit.get("cpu"),
    }
    for key in _ENV_FIELDS:
        if key in env:
            out[key] = env[key]
    exec_mode = str(out.get("exec_mode") or "")
    if exec_mode.endswith("_mode"):
        out["exec_mode"] = exec_mode[: -len("_mode")]
    for key in ("restart_time", "unstable_restarts", "pm_uptime", "created_at", "instances"):
        if key in out:
            out[key] = _as_int(out[key])
    uptime = out.get("pm_uptime")
    online = out.get("status") == "online"
    out["uptime_s"] = round(max(now_ms - uptime, 0) / 1000) if online and uptime else None
    # A module (pm2-logrotate) is PM2 plumbing, not the app.
    out["is_module"] = bool(env.get("pmx_module"))
    return out


def parse_jlist(text: str, now_ms: int | None = None) -> list[dict[str, Any]]:
    """``pm2 jlist`` stdout -> compact process list (see ``compact_process``)."""
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    return [
        compact_process(item, now_ms) for item in _parse_json_list(text) if isinstance(item, dict)
    ]


# --- running pm2 -------------------------------------------------------------------------


def daemon_state(pm2_home: str, proc_root: str = "/proc") -> tuple[bool, str]:
    """Is a PM2 daemon serving ``pm2_home``? ``(running, reason)``.

    Checked from files only, without connecting: the RPC socket must exist and the pid
    file must name a live process titled as PM2 (a daemon killed with SIGKILL leaves a
    stale socket, and ``pm2 jlist`` would then start a new daemon).
    """
    sock = os.path.join(pm2_home, "rpc.sock")
    try:
        if not stat.S_ISSOCK(os.stat(sock).st_mode):
            return False, f"{sock} is not a socket"
    except FileNotFoundError:
        return False, f"no PM2 daemon socket at {sock}"
    except OSError as exc:
        return False, f"cannot stat {sock}: {exc.strerror}"
    pid_file = os.path.join(pm2_home, "pm2.pid")
    try:
        with open(pid_file, encoding="ascii", errors="replace") as fh:
            pid = int(fh.read().strip())
    except (OSError, ValueError):
        return False, f"PM2 socket present but no readable pid file {pid_file} (stale daemon?)"
    try:
        with open(f"{proc_root}/{pid}/cmdline", "rb") as fh:
            title = fh.read().replace(b"\0", b" ").decode("utf-8", errors="replace")
    except OSError:
        return False, f"PM2 pid {pid} from {pid_file} is not running (stale socket)"
    if "PM2" not in title and "pm2" not in title:
        return False, f"pid {pid} from {pid_file} is not a PM2 daemon (stale pid file)"
    return True, f"PM2 daemon pid {pid}"


def _command_env(pm2_home: str, home: str | None) -> dict[str, str]:
    path = os.environ.get("PATH", "")
    extra = [d for d in ("/usr/local/bin", "/usr/bin", "/bin") if d not in path.split(":")]
    env = {
        "PATH": ":".join([p for p in [path, *extra] if p]),
        "PM2_HOME": pm2_home,
        "LC_ALL": "C",
        "LANG": "C",
        # No colour codes or update notices in output meant for a parser.
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
    }
    if home:
        env["HOME"] = home
    return env


def query_pm2(
    pm2_bin: str,
    pm2_home: str,
    app_user: str | None,
    timeout: float = 20.0,
    proc_root: str = "/proc",
) -> dict[str, Any]:
    """``pm2 jlist`` as ``app_user`` when its daemon runs.

    Returns ``{home, queried, running, note, error, processes}``. A command that fails is
    an ``error`` with ``processes`` None, never an empty list: "PM2 could not be asked"
    and "PM2 runs nothing" are different findings.
    """
    result: dict[str, Any] = {
        "home": pm2_home,
        "running": False,
        "queried": False,
        "note": None,
        "error": None,
        "processes": None,
    }
    running, note = daemon_state(pm2_home, proc_root)
    result["running"] = running
    result["note"] = note
    if not running:
        return result

    kwargs: dict[str, Any] = {}
    home = None
    if app_user:
        try:
            pw = pwd.getpwnam(app_user)
        except KeyError:
            result["error"] = f"app_user {app_user!r} does not exist"
            return result
        home = pw.pw_dir
        if os.geteuid() == 0 and pw.pw_uid != 0:
            kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        elif os.geteuid() not in (0, pw.pw_uid):
            result["error"] = (
                f"cannot query PM2 as {app_user!r}: not running as root or as that user"
            )
            return result
    env = _command_env(pm2_home, home)
    exe = pm2_bin if os.path.isabs(pm2_bin) else shutil.which(pm2_bin, path=env["PATH"])
    if not exe:
        result["error"] = f"{pm2_bin!r} not found in PATH"
        return result
    try:
        proc = subprocess.run(
            [exe, "jlist"],
            capture_output=True,
            env=env,
            cwd=home if home and os.path.isdir(home) else "/",
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            **kwargs,
        )
    except subprocess.TimeoutExpired:
        result["error"] = f"pm2 jlist timed out after {timeout:g}s"
        return result
    except OSError as exc:
        result["error"] = f"cannot run {exe}: {exc.strerror or exc}"
        return result
    result["queried"] = True
    stdout = proc.stdout.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", errors="replace").strip() or stdout.strip()
        result["error"] = f"pm2 jlist exited {proc.returncode}: {shorten(redact_text(err), 300)}"
        return result
    try:
        result["processes"] = parse_jlist(stdout)
    except Pm2Error as exc:
        result["error"] = str(exc)
    return result


def app_processes(
    pm2_processes: Sequence[Mapping[str, Any]] | None, app_name: str | None
) -> list[Mapping[str, Any]]:
    """The app's PM2 processes: those named ``app_name``; if none is, every non-module one."""
    procs = [p for p in (pm2_processes or []) if not p.get("is_module")]
    named = [p for p in procs if app_name and p.get("name") == app_name]
    return named or procs
