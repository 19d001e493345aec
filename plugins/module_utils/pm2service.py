"""What the pm2 role does to PM2's systemd unit in one run, and the stale-worker rule.

``decide`` turns what changed into one action; ``converge`` reads systemd, acts through an
injected ``systemctl`` and puts right workers that run another release (``stale_workers``,
the rule the diagnosis's ``find_stale_workers`` shares through ``runs_elsewhere``).

PM2's reload (``startOrReload --update-env``) merges the new environment into the one it
holds: a variable that went away keeps its old value until PM2's daemon starts again
(Unitech/pm2#3486). So the names PM2 was last given are kept in a record root owns, and a
name missing now turns the run's reload into a restart (``env_names``, ``read_record``).

PM2's daemon is always the unit's ``MainPID`` as systemd knows it, never
``<PM2_HOME>/pm2.pid``: the app user can write that file, and root would then list (and
act on) the children of any pid named there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import (
    ProcfsError,
    list_pids,
    parse_stat,
)

# How /proc shows a working directory that was removed after the process entered it.
DELETED = " (deleted)"
# systemd_service's "running": a unit in either state is not started again.
RUNNING = ("active", "activating")

# ``systemctl ARGS...`` -> (rc, stdout, stderr)
Systemctl = Callable[[list[str]], tuple[int, str, str]]


class ServiceError(RuntimeError):
    """A systemctl command that failed; the message names it. ``record``: what the run
    had done before (``converge``'s result)."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.record: dict[str, Any] = {}


def decide(
    unit_changed: bool,
    unit_inactive_or_disabled: bool,
    ecosystem_changed: bool,
    release_switched: bool,
    reload_restarts: bool,
    env_removed: bool = False,
) -> str:
    """The one action of a run: ``start``, ``restart``, ``reload`` or ``none``.

    A unit that is not both active and enabled is started (and enabled); that start also
    loads a changed unit file. A changed unit file on a running unit needs a restart
    (systemd applies its settings only then). Otherwise a new release or ecosystem file
    needs only PM2's graceful reload, or a restart with ``reload_restarts`` (leaving a
    crash-looping release: a reload keeps its workers' pending back-off restarts).
    ``env_removed``: PM2 holds a variable the app's environment no longer has, which only
    a restart takes away, with or without another change.
    """
    if unit_inactive_or_disabled:
        return "start"
    if unit_changed or env_removed:
        return "restart"
    if ecosystem_changed or release_switched:
        return "restart" if reload_restarts else "reload"
    return "none"


# --- the environment PM2 holds -------------------------------------------------------------


def env_names(text: str) -> set[str]:
    """The names a release's environment file sets (``.hardenkit.env``: one
    ``KEY=<JSON string>`` per line), read as its one reader, ``node-env.cjs``, reads them:
    empty lines, ``#`` lines and lines without a name before ``=`` are skipped."""
    names = set()
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        eq = line.find("=")
        if eq >= 1:
            names.add(line[:eq])
    return names


def read_env_file(path: str) -> set[str]:
    """``env_names`` of the file at ``path``; none when it is missing (as the reader)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return env_names(fh.read())
    except FileNotFoundError:
        return set()


def read_record(path: str) -> set[str] | None:
    """The names PM2 was last given (one per line), None when there is no record: a host
    no run with it has acted on, whose old names are unknown."""
    try:
        with open(path, encoding="utf-8") as fh:
            return {line for line in fh.read().split("\n") if line}
    except FileNotFoundError:
        return None


def write_record(path: str, names: set[str]) -> bool:
    """Record ``names`` (names only, never values) at ``path``, root's, 0644, written under
    a temporary name and renamed; its directory is made (0755) when missing. Whether the
    record changed."""
    text = "".join(f"{name}\n" for name in sorted(names))
    if read_record(path) == names:
        return False
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return True


# --- the stale-worker rule -----------------------------------------------------------------


def runs_elsewhere(cwd: str, live_dir: str) -> bool:
    """Whether a worker whose working directory ``/proc`` shows as ``cwd`` runs another
    release than ``live_dir`` (the directory ``current`` resolves to, or the app's
    directory in it).

    A worker's working directory is ``current`` resolved when it started, so it must be
    ``live_dir`` or a directory below it. A deleted directory (``/proc`` appends
    `` (deleted)``) never is, even where a release of the same id was unpacked again since.
    """
    if cwd.endswith(DELETED):
        return True
    base = live_dir.rstrip("/")
    return not (cwd in (live_dir, base) or cwd.startswith(base + "/"))


# A worker PM2 has just forked runs from the daemon's own directory until it changes to the
# app's (and a helper the daemon runs stays there): a child seen elsewhere is read again
# after these pauses, and only one still elsewhere after the last is stale.
SETTLE_PAUSES = (0.5, 1.0, 2.0)


def stale_workers(
    daemon_pid: int,
    want_dir: str,
    read_children: Callable[[int], list[int]],
    read_cwd: Callable[[int], str | None],
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """``pid N runs from DIR`` for each child of PM2's daemon that runs elsewhere than
    ``want_dir`` when first read and after each of ``SETTLE_PAUSES``; nothing without a
    daemon (``daemon_pid`` 0). A child whose working directory cannot be read (gone since
    it was listed) is left out. Without a suspect nothing waits."""
    if daemon_pid <= 0:
        return []

    def elsewhere(pids: list[int]) -> dict[int, str]:
        cwds = {pid: read_cwd(pid) for pid in pids}
        return {pid: cwd for pid, cwd in cwds.items() if cwd and runs_elsewhere(cwd, want_dir)}

    suspects = elsewhere(read_children(daemon_pid))
    for pause in SETTLE_PAUSES:
        if not suspects:
            break
        sleep(pause)
        suspects = elsewhere(list(suspects))
    return [f"pid {pid} runs from {cwd}" for pid, cwd in suspects.items()]


def proc_children(pid: int, proc_root: str = "/proc") -> list[int]:
    """The processes whose parent is ``pid`` (``pgrep -P``), from each ``/proc/<n>/stat``."""
    out = []
    for child in list_pids(proc_root):
        try:
            with open(f"{proc_root}/{child}/stat", encoding="utf-8", errors="replace") as fh:
                ppid = parse_stat(fh.read())["ppid"]
        except (OSError, ProcfsError):  # exited since listed
            continue
        if ppid == pid:
            out.append(child)
    return out


def proc_cwd(pid: int, proc_root: str = "/proc") -> str | None:
    """The working directory of ``pid`` as ``/proc`` shows it, or None when unreadable."""
    try:
        return os.readlink(f"{proc_root}/{pid}/cwd")
    except OSError:
        return None


def resolve_dir(path: str) -> str | None:
    """``readlink -f``: ``path`` with every link resolved, None when a directory leading
    to it is missing (no ``current`` release: nothing to compare with)."""
    real = os.path.realpath(path)
    return real if os.path.isdir(os.path.dirname(real)) else None


def main_pid(systemctl: Systemctl, unit: str) -> int:
    """The unit's MainPID; 0 when systemd names none (not running, or not readable)."""
    rc, out, _ = systemctl(["show", "--property=MainPID", "--value", unit])
    try:
        return int(out.strip()) if rc == 0 else 0
    except ValueError:
        return 0


def replaced_workers(
    read_workers: Callable[[], list[int]],
    seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> list[int]:
    """The workers (pids) there now that are gone ``seconds`` later: each one exited (and
    PM2 started another in its place) soon after the start, restart or reload that made
    it, which is what a release that crash-loops does."""
    before = read_workers()
    sleep(seconds)
    after = set(read_workers())
    return [pid for pid in before if pid not in after]


# --- one run -----------------------------------------------------------------------------


def unit_name(name: str) -> str:
    """``pm2-app`` -> ``pm2-app.service``, as systemctl reads a name without a suffix."""
    return name if name.endswith(".service") else f"{name}.service"


class _Unit:
    """PM2's unit, acted on as ``ansible.builtin.systemd_service`` does (check mode only
    reads)."""

    def __init__(self, systemctl: Systemctl, unit: str, check_mode: bool) -> None:
        self.systemctl = systemctl
        self.unit = unit
        self.check_mode = check_mode

    def _act(self, verb: str) -> None:
        if self.check_mode:
            return
        rc, out, err = self.systemctl([verb, self.unit])
        if rc != 0:
            raise ServiceError(f"Unable to {verb} service {self.unit}: {(err or out).strip()}")

    def daemon_reload(self) -> None:
        if self.check_mode:
            return
        rc, out, err = self.systemctl(["daemon-reload"])
        if rc != 0:
            raise ServiceError(f"failure {rc} during daemon-reload: {(err or out).strip()}")

    def active_state(self) -> str:
        rc, out, _ = self.systemctl(
            ["show", "--property=LoadState", "--property=ActiveState", self.unit]
        )
        props = {key: value for key, _, value in (line.partition("=") for line in out.splitlines())}
        if rc != 0 or props.get("LoadState", "not-found") == "not-found":
            raise ServiceError(f"Could not find the requested service {self.unit}: host")
        return props.get("ActiveState", "")

    def enabled(self) -> bool:
        rc, out, _ = self.systemctl(["is-enabled", self.unit])
        word = (out.splitlines() or [""])[0].strip()
        # As systemd_service: these are not enabled for good, so enable them.
        return rc == 0 and word not in ("enabled-runtime", "indirect", "alias")

    def start(self, running: bool, enabled: bool) -> None:
        if not enabled:
            self._act("enable")
        if not running:
            self._act("start")

    def bounce(self, verb: str) -> None:
        """``restart`` or ``reload``; a unit that is not running is started instead."""
        self._act(verb if self.active_state() in RUNNING else "start")


def converge(
    systemctl: Systemctl,
    name: str,
    *,
    unit_changed: bool,
    unit_drifted: bool,
    ecosystem_changed: bool,
    release_switched: bool,
    reload_restarts: bool,
    app_dir: str,
    check_mode: bool = False,
    read_children: Callable[[int], list[int]] = proc_children,
    read_cwd: Callable[[int], str | None] = proc_cwd,
    resolve: Callable[[str], str | None] = resolve_dir,
    sleep: Callable[[float], None] = time.sleep,
    env_now: set[str] | None = None,
    env_before: set[str] | None = None,
) -> dict[str, Any]:
    """Decide, act once, then put right workers that run another release than ``app_dir``
    (``<app_root>/current[/<subdir>]``).

    ``env_now``: the names of the environment PM2 would be given now; ``env_before``: those
    it was last given (``read_record``; None, unknown). A name gone since is restarted away.

    ``unit_drifted``: the drift read found the unit not both active and enabled. Then, or
    after a new unit file, systemd is asked again (a unit still activating counts as
    running), and what it says decides between start and the rest.

    Workers that run another release after a run that did nothing else are reloaded
    gracefully, checked again and restarted (every worker stops) only if the reload did not
    take; after this run's own start, restart or reload they are restarted, as a reload
    would not take either. In check mode nothing changes; the stale check (read-only) runs
    unless the action would have replaced the workers.

    Returns ``{action, started, restarted, reloaded, reloads, stale_workers, stale_fix,
    env_removed, changed}``. Raises ``ServiceError``, whose ``record`` is that dict as far
    as it got.
    """
    unit = _Unit(systemctl, unit_name(name), check_mode)
    out: dict[str, Any] = {
        "action": "none",
        "started": False,
        "restarted": False,
        "reloaded": False,
        "reloads": 0,
        "stale_workers": [],
        "stale_fix": "",
        "env_removed": sorted(env_before - env_now) if env_now is not None and env_before else [],
        "changed": False,
    }

    def find_stale() -> list[str]:
        want = resolve(app_dir)
        if want is None:
            return []
        daemon = main_pid(systemctl, unit.unit)
        return stale_workers(daemon, want, read_children, read_cwd, sleep)

    try:
        running = enabled = True
        if unit_changed:
            unit.daemon_reload()
        if unit_changed or unit_drifted:
            running, enabled = unit.active_state() in RUNNING, unit.enabled()
        action = decide(
            unit_changed,
            not (running and enabled),
            ecosystem_changed,
            release_switched,
            reload_restarts,
            bool(out["env_removed"]),
        )
        out["action"] = action
        if action == "start":
            unit.start(running, enabled)
        elif action != "none":
            unit.bounce(action)
        out.update(
            started=action == "start",
            restarted=action == "restart",
            reloaded=action == "reload",
            reloads=int(action in ("restart", "reload")),
            changed=action != "none",
        )
        # In check mode, workers an action would replace have not been replaced yet.
        if check_mode and action != "none":
            return out
        out["stale_workers"] = find_stale()
        if not out["stale_workers"]:
            return out
        if action == "none":
            unit.bounce("reload")
            out.update(stale_fix="reload", reloaded=True, changed=True, reloads=1)
            if check_mode or not find_stale():
                return out
        unit.bounce("restart")
        out.update(stale_fix="restart", restarted=True, changed=True)
    except ServiceError as exc:
        exc.record = out
        raise
    return out


def env_held(changed: bool, env_now: set[str], env_before: set[str] | None) -> set[str]:
    """The names PM2 holds after a run: those given now after a start, restart or reload
    (a reload only when none went away, so nothing else is left), or when no record says
    otherwise; the recorded ones when the run did not act."""
    return env_now if changed or env_before is None else env_before
