"""PM2's unit in one run (module_utils/pm2service.py, modules/pm2_service.py).

``decide`` against the conditions roles/pm2/tasks/service.yml's tasks had; the stale-worker
rule with fake readers and with real processes (L4: PM2's daemon is the unit's MainPID,
never the app-writable pm2.pid); the systemctl commands each scenario runs, through an
injected systemctl and through the module with a fake ``systemctl`` on PATH.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.findings import (
    find_stale_workers,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pm2service import (
    SETTLE_PAUSES,
    ServiceError,
    converge,
    decide,
    env_held,
    env_names,
    main_pid,
    proc_children,
    proc_cwd,
    read_record,
    replaced_workers,
    resolve_dir,
    runs_elsewhere,
    stale_workers,
    write_record,
)
from tests.hk_testlib import free_port, run_module

UNIT = "pm2-workbot.service"
LIVE = "/srv/workbot/releases/r2"
OLD = "/srv/workbot/releases/r1"
SHOW_PID = f"show --property=MainPID --value {UNIT}"
SHOW_STATE = f"show --property=LoadState --property=ActiveState {UNIT}"
IS_ENABLED = f"is-enabled {UNIT}"

# --- decide --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit_changed", "inactive", "ecosystem", "switched", "restarts", "action"),
    [
        pytest.param(True, True, True, True, False, "start", id="first run"),
        pytest.param(False, True, False, False, False, "start", id="stopped by hand"),
        pytest.param(False, True, False, True, True, "start", id="stopped, release switched"),
        pytest.param(True, False, False, False, False, "restart", id="new unit, running"),
        pytest.param(True, False, True, True, False, "restart", id="new unit and release"),
        pytest.param(False, False, True, False, False, "reload", id="new ecosystem"),
        pytest.param(False, False, False, True, False, "reload", id="release switched"),
        pytest.param(False, False, False, True, True, "restart", id="rollback off a crash loop"),
        pytest.param(False, False, False, False, True, "none", id="restarts, nothing to do"),
        pytest.param(False, False, False, False, False, "none", id="nothing changed"),
    ],
)
def test_decide(unit_changed, inactive, ecosystem, switched, restarts, action):
    assert decide(unit_changed, inactive, ecosystem, switched, restarts) == action


@pytest.mark.parametrize(
    ("inactive", "ecosystem", "switched", "action"),
    [
        pytest.param(False, False, True, "restart", id="switched to a release without it"),
        pytest.param(False, True, False, "restart", id="ecosystem without it"),
        pytest.param(False, False, False, "restart", id="a run that failed left it"),
        pytest.param(True, False, True, "start", id="stopped: a start gives only the new"),
    ],
)
def test_decide_restarts_away_a_variable_pm2_still_holds(inactive, ecosystem, switched, action):
    """PM2's reload merges the new environment into the old (pm2#3486)."""
    assert decide(False, inactive, ecosystem, switched, False, env_removed=True) == action


@pytest.mark.parametrize("given", list(itertools.product([False, True], repeat=5)), ids=str)
def test_decide_is_what_service_yml_did(given):
    """The three tasks' conditions, as they were: the start task changed something iff
    the unit was not active and enabled (it ran whenever the unit changed too, but then
    only loaded it); the restart ran after a new unit it had not started; the reload (or
    restart) when neither ran and the ecosystem or the release changed."""
    unit_changed, inactive, ecosystem, switched, restarts = given
    started = (unit_changed or inactive) and inactive
    restarted = unit_changed and not started
    reloaded = not started and not restarted and (ecosystem or switched)
    old = (
        "start"
        if started
        else "restart"
        if restarted or (reloaded and restarts)
        else "reload"
        if reloaded
        else "none"
    )
    assert decide(*given) == old


# --- the stale-worker rule -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cwd", "live", "elsewhere"),
    [
        (LIVE, LIVE, False),
        (LIVE, LIVE + "/", False),
        (LIVE + "/apps/web", LIVE, False),
        (LIVE + "/apps/web", LIVE + "/apps/web", False),
        (LIVE, LIVE + "/apps/web", True),
        (OLD, LIVE, True),
        (LIVE + "0", LIVE, True),
        (OLD + " (deleted)", LIVE, True),
        # unpacked again under the same id after a prune: the deleted one is not live
        (LIVE + " (deleted)", LIVE, True),
        (LIVE + "/apps/web (deleted)", LIVE, True),
    ],
)
def test_runs_elsewhere(cwd, live, elsewhere):
    assert runs_elsewhere(cwd, live) is elsewhere


def test_the_diagnosis_judges_by_the_same_rule():
    """find_stale_workers names exactly the workers runs_elsewhere calls stale."""
    cwds = [LIVE, LIVE + "/apps/web", OLD, LIVE + " (deleted)", OLD + " (deleted)"]
    pm2 = {
        "processes": [
            {"name": "workbot", "pm_id": i, "pid": 100 + i, "status": "online"}
            for i in range(len(cwds))
        ]
    }
    processes = [{"pid": 100 + i, "cwd": cwd} for i, cwd in enumerate(cwds)]
    [found] = find_stale_workers(processes, pm2, "workbot", LIVE)
    assert found["evidence"] == [
        f"workbot (pm_id 2, pid 102) runs from {OLD}",
        f"workbot (pm_id 3, pid 103) runs from {LIVE}, a directory since deleted",
        f"workbot (pm_id 4, pid 104) runs from {OLD}, a directory since deleted",
        f"the live release (current) is {LIVE}",
    ]
    assert [i for i, cwd in enumerate(cwds) if runs_elsewhere(cwd, LIVE)] == [2, 3, 4]


def test_stale_workers_lists_the_daemons_children_elsewhere():
    cwds = {11: LIVE, 12: OLD, 13: None, 14: OLD + " (deleted)", 15: LIVE + "/node_modules"}
    asked = []

    def children(pid: int) -> list[int]:
        asked.append(pid)
        return list(cwds)

    slept: list[float] = []
    assert stale_workers(42, LIVE, children, cwds.get, slept.append) == [
        f"pid 12 runs from {OLD}",
        f"pid 14 runs from {OLD} (deleted)",
    ]
    assert asked == [42]
    assert slept == list(SETTLE_PAUSES)


def test_a_worker_just_forked_is_read_again_before_it_is_called_stale():
    """The default scenario's idempotence once reloaded PM2 for ``pid 5142 runs from /``:
    a worker PM2 had just forked, still in the daemon's directory."""
    seen = {21: iter(["/", "/", LIVE]), 22: iter([OLD] * 4), 23: iter(["/", None])}
    reads: list[int] = []

    def read_cwd(pid: int) -> str | None:
        reads.append(pid)
        return next(seen[pid])

    slept: list[float] = []
    lines = stale_workers(42, LIVE, lambda _pid: [21, 22, 23], read_cwd, slept.append)
    assert lines == [f"pid 22 runs from {OLD}"]
    assert slept == list(SETTLE_PAUSES)
    # 21 reaches the live release at the second look, 23 is gone at the first
    assert reads == [21, 22, 23, 21, 22, 23, 21, 22, 22]


def test_no_child_elsewhere_waits_for_nothing():
    def sleep(pause: float) -> None:
        raise AssertionError(f"slept {pause}")

    assert stale_workers(42, LIVE, lambda _pid: [21, 22], {21: LIVE, 22: None}.get, sleep) == []


@pytest.mark.parametrize("daemon", [0, -1])
def test_stale_workers_without_a_daemon_reads_nothing(daemon):
    def refuse(pid: int) -> Any:
        raise AssertionError(f"read {pid}")

    assert stale_workers(daemon, LIVE, refuse, refuse) == []


@pytest.mark.parametrize(
    ("rc", "stdout", "pid"),
    [
        (0, "4242\n", 4242),
        (0, "0\n", 0),
        (1, "4242\n", 0),
        (0, "", 0),
        (0, "1 2\n", 0),
        (0, "abc\n", 0),
    ],
    ids=["running", "no-daemon", "systemctl-fails", "empty", "two-words", "not-a-number"],
)
def test_main_pid(rc, stdout, pid):
    calls = []

    def systemctl(args: list[str]) -> tuple[int, str, str]:
        calls.append(args)
        return rc, stdout, ""

    assert main_pid(systemctl, UNIT) == pid
    assert calls == [["show", "--property=MainPID", "--value", UNIT]]


def test_resolve_dir_is_readlink_f(tmp_path):
    app_root = tmp_path / "srv" / "workbot"
    release = app_root / "releases" / "r2"
    (release / "apps" / "web").mkdir(parents=True)
    assert resolve_dir(str(app_root / "current")) == str(app_root / "current")
    (app_root / "current").symlink_to("releases/r2")
    assert resolve_dir(str(app_root / "current")) == str(release)
    assert resolve_dir(str(app_root / "current" / "apps" / "web")) == str(release / "apps/web")
    # readlink -f: the last part may be missing, a directory leading to it not
    assert resolve_dir(str(app_root / "current" / "apps" / "api")) == str(release / "apps/api")
    assert resolve_dir(str(app_root / "current" / "nope" / "web")) is None
    assert resolve_dir(str(tmp_path / "no-such-root" / "current")) is None


# --- L4, with real processes ---------------------------------------------------------------


def children_in(cwd: Path) -> subprocess.Popen:
    """A process with one child whose working directory is ``cwd``."""
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        ["/bin/bash", "-c", f"(cd {cwd} && exec sleep 60) & wait"], start_new_session=True
    )


def wait_for_children(*parents: subprocess.Popen) -> None:
    deadline = time.monotonic() + 5
    while not all(proc_children(p.pid) for p in parents):
        assert time.monotonic() < deadline, "the children did not start"
        time.sleep(0.02)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """An app root whose ``current`` is release r2; PM2's daemon (the unit's MainPID) has
    a child in release r1, and another process, the one the app-writable pm2.pid names,
    has a child elsewhere."""
    app_root = tmp_path / "srv" / "workbot"
    (app_root / "releases" / "r2").mkdir(parents=True)
    (app_root / "current").symlink_to("releases/r2")
    daemon = children_in(app_root / "releases" / "r1")
    planted = children_in(tmp_path / "elsewhere")
    try:
        (app_root / ".pm2").mkdir()
        (app_root / ".pm2" / "pm2.pid").write_text(f"{planted.pid}\n")
        wait_for_children(daemon, planted)
        yield {
            "app_root": app_root,
            "daemon": daemon.pid,
            "worker": proc_children(daemon.pid)[0],
            "old": os.path.realpath(app_root / "releases" / "r1"),
        }
    finally:
        for proc in (daemon, planted):
            os.killpg(proc.pid, 9)
            proc.wait()


def test_l4_a_child_that_moves_to_the_live_release_is_not_stale(tmp_path: Path):
    """A real child of the daemon that starts in ``/`` and changes to the live release a
    moment later, as a worker PM2 forks does."""
    live = tmp_path / "releases" / "r2"
    live.mkdir(parents=True)
    daemon = subprocess.Popen(
        ["/bin/bash", "-c", f"(cd / && sleep 0.3 && cd {live} && exec sleep 60) & wait"],
        cwd="/",
        start_new_session=True,
    )
    try:
        wait_for_children(daemon)
        [child] = proc_children(daemon.pid)
        assert proc_cwd(child) == "/"
        assert stale_workers(daemon.pid, str(live), proc_children, proc_cwd) == []
        assert proc_cwd(child) == str(live)
    finally:
        os.killpg(daemon.pid, 9)
        daemon.wait()


def test_l4_stale_check_lists_children_of_the_unit_main_pid(hosts):
    answers = iter([f"{hosts['daemon']}\n", "0\n"])

    def systemctl(args: list[str]) -> tuple[int, str, str]:
        return 0, next(answers), ""

    want = resolve_dir(str(hosts["app_root"] / "current"))
    assert want is not None
    lines = stale_workers(main_pid(systemctl, UNIT), want, proc_children, proc_cwd)
    assert lines == [f"pid {hosts['worker']} runs from {hosts['old']}"]
    # a unit with MainPID 0 (not running): nothing, whatever pm2.pid says
    assert stale_workers(main_pid(systemctl, UNIT), want, proc_children, proc_cwd) == []


@pytest.fixture
def fake_systemctl(tmp_path: Path, monkeypatch) -> Callable[..., Path]:
    """``make(main_pid, active, enabled)``: a ``systemctl`` first on PATH that answers
    ``show`` and ``is-enabled`` so, succeeds at everything else, and records each call;
    returns the record file."""

    def make(main_pid: int = 0, active: str = "active", enabled: str = "enabled") -> Path:
        bindir = tmp_path / "bin"
        bindir.mkdir(exist_ok=True)
        calls = tmp_path / "systemctl-calls"
        exe = bindir / "systemctl"
        exe.write_text(
            "#!/bin/sh\n"
            f'echo "$*" >> {calls}\n'
            'case "$1 $2" in\n'
            f'  "show --property=MainPID") echo {main_pid} ;;\n'
            '  "show --property=LoadState") echo LoadState=loaded;'
            f" echo ActiveState={active} ;;\n"
            f"  is-enabled*) echo {enabled}; [ {enabled} = enabled ] ;;\n"
            "esac\n"
        )
        exe.chmod(0o755)
        calls.write_text("")
        monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
        return calls

    return make


def module_args(app_root: Path, port: int, **given: Any) -> dict[str, Any]:
    return {
        "name": "pm2-workbot",
        "app_dir": str(app_root / "current"),
        "port": port,
        "probes": [{"path": "/", "status": 200}],
        "listen_timeout": 2,
        "retries": 0,
        "delay": 0.1,
        **given,
    }


def test_l4_module_reloads_then_restarts_the_unit_main_pids_stale_workers(
    hosts, fake_systemctl, http_server, tmp_path
):
    """The fake reload changes nothing, so the workers are still stale and PM2 is
    restarted; the process pm2.pid names is never looked at."""
    calls = fake_systemctl(main_pid=hosts["daemon"])
    srv = http_server()
    rc, out = run_module(
        "pm2_service", module_args(hosts["app_root"], srv.server_address[1]), tmp_path
    )
    assert rc == 0, out
    assert calls.read_text().splitlines() == [
        SHOW_PID,
        SHOW_STATE,
        f"reload {UNIT}",
        SHOW_PID,
        SHOW_STATE,
        f"restart {UNIT}",
    ]
    assert out["stale_workers"] == [f"pid {hosts['worker']} runs from {hosts['old']}"]
    assert (out["stale_fix"], out["reloads"], out["action"], out["changed"]) == (
        "restart",
        1,
        "none",
        True,
    )
    assert out["probe"]["ok"] and [s["path"] for s in srv.seen] == ["/"]


def test_l4_module_with_main_pid_0_finds_nothing(hosts, fake_systemctl, http_server, tmp_path):
    calls = fake_systemctl(main_pid=0)
    srv = http_server()
    rc, out = run_module(
        "pm2_service", module_args(hosts["app_root"], srv.server_address[1]), tmp_path
    )
    assert rc == 0, out
    assert calls.read_text().splitlines() == [SHOW_PID]
    assert (out["changed"], out["stale_workers"], out["stale_fix"]) == (False, [], "")
    # nothing was done: the port must listen, no probe is sent
    assert out["probe"]["listening"] and srv.seen == []


# --- one run, systemctl injected -----------------------------------------------------------


class Systemd:
    """An injected systemctl: answers reads from the unit's state (which a start or an
    enable changes), records every call."""

    def __init__(self, active: str = "active", enabled: str = "enabled", fail: str = "") -> None:
        self.active = active
        self.enabled = enabled
        self.fail = fail
        self.calls: list[str] = []

    def __call__(self, args: list[str]) -> tuple[int, str, str]:
        call = " ".join(args)
        self.calls.append(call)
        if args[0] == self.fail:
            return 1, "", f"{self.fail} failed"
        if call == SHOW_PID:
            return 0, "4242\n", ""
        if call == SHOW_STATE:
            return 0, f"LoadState=loaded\nActiveState={self.active}\n", ""
        if args[0] == "is-enabled":
            return (0 if self.enabled == "enabled" else 1), f"{self.enabled}\n", ""
        if args[0] in ("start", "restart", "reload"):
            self.active = "active"
        elif args[0] == "enable":
            self.enabled = "enabled"
        return 0, "", ""


def run(
    systemd: Systemd,
    stale: list[list[int]] | None = None,
    check_mode: bool = False,
    **given: Any,
) -> dict[str, Any]:
    """``converge`` with the daemon's children stale in each check as ``stale`` says (a
    list of worker pids per check; none by default)."""
    rounds = iter(stale or [])
    flags = {
        "unit_changed": False,
        "unit_drifted": False,
        "ecosystem_changed": False,
        "release_switched": False,
        "reload_restarts": False,
        **given,
    }

    def children(pid: int) -> list[int]:
        assert pid == 4242
        return [7, *next(rounds, [])]

    def cwd(pid: int) -> str:
        return LIVE if pid == 7 else OLD

    return converge(
        systemd,
        "pm2-workbot",
        app_dir="/srv/workbot/current",
        check_mode=check_mode,
        read_children=children,
        read_cwd=cwd,
        resolve=lambda path: LIVE,
        sleep=lambda _pause: None,
        **flags,
    )


def summary(out: dict[str, Any]) -> tuple:
    return (
        out["action"],
        out["started"],
        out["restarted"],
        out["reloaded"],
        out["reloads"],
        out["stale_fix"],
        out["changed"],
    )


SCENARIOS = [
    pytest.param(
        {"active": "inactive", "enabled": "disabled"},
        {"unit_changed": True, "unit_drifted": True, "release_switched": True},
        [],
        ["daemon-reload", SHOW_STATE, IS_ENABLED, f"enable {UNIT}", f"start {UNIT}", SHOW_PID],
        ("start", True, False, False, 0, "", True),
        id="first start",
    ),
    pytest.param(
        {"active": "failed"},
        {"unit_drifted": True},
        [],
        [SHOW_STATE, IS_ENABLED, f"start {UNIT}", SHOW_PID],
        ("start", True, False, False, 0, "", True),
        id="stopped: start, already enabled",
    ),
    pytest.param(
        {"enabled": "disabled"},
        {"unit_drifted": True, "release_switched": True},
        [],
        [SHOW_STATE, IS_ENABLED, f"enable {UNIT}", SHOW_PID],
        ("start", True, False, False, 0, "", True),
        id="disabled: enable, no reload",
    ),
    pytest.param(
        {"active": "activating"},
        {"unit_drifted": True, "release_switched": True},
        [],
        [SHOW_STATE, IS_ENABLED, SHOW_STATE, f"reload {UNIT}", SHOW_PID],
        ("reload", False, False, True, 1, "", True),
        id="activating counts as running",
    ),
    pytest.param(
        {},
        {"unit_changed": True, "release_switched": True},
        [],
        ["daemon-reload", SHOW_STATE, IS_ENABLED, SHOW_STATE, f"restart {UNIT}", SHOW_PID],
        ("restart", False, True, False, 1, "", True),
        id="unit changed: daemon-reload and restart",
    ),
    pytest.param(
        {},
        {"release_switched": True},
        [],
        [SHOW_STATE, f"reload {UNIT}", SHOW_PID],
        ("reload", False, False, True, 1, "", True),
        id="release switched: reload",
    ),
    pytest.param(
        {},
        {"ecosystem_changed": True, "reload_restarts": True},
        [],
        [SHOW_STATE, f"restart {UNIT}", SHOW_PID],
        ("restart", False, True, False, 1, "", True),
        id="reload_restarts: restart",
    ),
    pytest.param(
        {"active": "failed"},
        {"release_switched": True},
        [],
        [SHOW_STATE, f"start {UNIT}", SHOW_PID],
        ("reload", False, False, True, 1, "", True),
        id="reload of a unit not running starts it",
    ),
    pytest.param(
        {},
        {},
        [],
        [SHOW_PID],
        ("none", False, False, False, 0, "", False),
        id="nothing to do",
    ),
    pytest.param(
        {},
        {},
        [[8], []],
        [SHOW_PID, SHOW_STATE, f"reload {UNIT}", SHOW_PID],
        ("none", False, False, True, 1, "reload", True),
        id="stale after nothing: reload, check again",
    ),
    pytest.param(
        {},
        {},
        [[8], [9]],
        [SHOW_PID, SHOW_STATE, f"reload {UNIT}", SHOW_PID, SHOW_STATE, f"restart {UNIT}"],
        ("none", False, True, True, 1, "restart", True),
        id="still stale: restart",
    ),
    pytest.param(
        {},
        {"release_switched": True},
        [[8]],
        [SHOW_STATE, f"reload {UNIT}", SHOW_PID, SHOW_STATE, f"restart {UNIT}"],
        ("reload", False, True, True, 1, "restart", True),
        id="stale after this run's reload: restart",
    ),
    pytest.param(
        {"active": "inactive", "enabled": "disabled"},
        {"unit_drifted": True},
        [[8]],
        [
            SHOW_STATE,
            IS_ENABLED,
            f"enable {UNIT}",
            f"start {UNIT}",
            SHOW_PID,
            SHOW_STATE,
            f"restart {UNIT}",
        ],
        ("start", True, True, False, 0, "restart", True),
        id="stale after a start: restart",
    ),
]


@pytest.mark.parametrize(("state", "given", "stale", "calls", "expected"), SCENARIOS)
def test_converge(state, given, stale, calls, expected):
    systemd = Systemd(**state)
    out = run(systemd, stale, **given)
    assert systemd.calls == calls
    assert summary(out) == expected
    assert out["stale_workers"] == ([f"pid {stale[0][0]} runs from {OLD}"] if stale else [])


CHANGES = ("daemon-reload", "enable", "start", "restart", "reload")


@pytest.mark.parametrize(("state", "given", "stale", "calls", "expected"), SCENARIOS)
def test_converge_in_check_mode_changes_nothing(state, given, stale, calls, expected):
    """Check mode reads what it reads otherwise and reports the same action, without one
    command that changes anything; no stale check when the action would replace the
    workers, and no second check (nothing was reloaded)."""
    systemd = Systemd(**state)
    out = run(systemd, stale, check_mode=True, **given)
    assert [c for c in systemd.calls if c.split()[0] in CHANGES] == []
    assert [c for c in calls if c.split()[0] not in CHANGES][: len(systemd.calls)] == (
        systemd.calls
    )
    assert out["action"] == expected[0]
    if expected[0] != "none":
        assert SHOW_PID not in systemd.calls
        assert (out["stale_workers"], out["stale_fix"]) == ([], "")
    elif stale:
        assert systemd.calls == [SHOW_PID, SHOW_STATE]
        assert summary(out) == ("none", False, False, True, 1, "reload", True)
    else:
        assert summary(out) == expected


@pytest.mark.parametrize(
    ("before", "now", "given", "action", "removed"),
    [
        pytest.param(
            {"A", "DB_POOL_MAX"},
            {"A"},
            {"ecosystem_changed": True},
            "restart",
            ["DB_POOL_MAX"],
            id="budget off",
        ),
        pytest.param(
            {"A", "B", "C"},
            {"A"},
            {"release_switched": True},
            "restart",
            ["B", "C"],
            id="rollback to a release without two",
        ),
        pytest.param({"A"}, {"A", "B"}, {"release_switched": True}, "reload", [], id="one added"),
        pytest.param(None, {"A"}, {"release_switched": True}, "reload", [], id="no record"),
        pytest.param({"A", "B"}, {"A"}, {}, "restart", ["B"], id="left by a failed run"),
        pytest.param({"A"}, {"A"}, {}, "none", [], id="nothing changed"),
    ],
)
def test_converge_restarts_when_a_name_went_away(before, now, given, action, removed):
    systemd = Systemd()
    flags = {
        "unit_changed": False,
        "unit_drifted": False,
        "ecosystem_changed": False,
        "release_switched": False,
        "reload_restarts": False,
        **given,
    }
    out = converge(
        systemd,
        "pm2-workbot",
        app_dir="/srv/workbot/current",
        resolve=lambda path: None,
        env_now=now,
        env_before=before,
        **flags,
    )
    assert (out["action"], out["env_removed"]) == (action, removed)
    assert [c for c in systemd.calls if c.split()[0] in CHANGES] == (
        [f"{action} {UNIT}"] if action != "none" else []
    )


@pytest.mark.parametrize(
    ("changed", "before", "held"),
    [(True, {"A", "B"}, {"A"}), (False, None, {"A"}), (False, {"A"}, {"A"})],
)
def test_env_held(changed, before, held):
    assert env_held(changed, {"A"}, before) == held


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('A="1"\nB="x=y"\n', {"A", "B"}),
        ('# Ansible managed\n\nA="1"', {"A"}),
        ('=nameless\nno-equals\nKEY_2="v"\n', {"KEY_2"}),
        ('PEM="-----BEGIN\\nX\\n-----END"\n', {"PEM"}),
        ("", set()),
    ],
)
def test_env_names(text, names):
    assert env_names(text) == names


def test_the_record_holds_names_only_and_is_written_once(tmp_path: Path):
    record = tmp_path / "pm2" / "pm2-workbot.env-names"
    assert read_record(str(record)) is None
    assert write_record(str(record), {"B", "A"}) is True
    assert record.read_text() == "A\nB\n"
    assert (record.parent.stat().st_mode & 0o777, record.stat().st_mode & 0o777) == (
        0o755,
        0o644,
    )
    assert write_record(str(record), {"A", "B"}) is False
    assert read_record(str(record)) == {"A", "B"}
    assert write_record(str(record), set()) is True and read_record(str(record)) == set()


def test_the_record_is_not_written_through_a_link(tmp_path: Path):
    record = tmp_path / "r.env-names"
    target = tmp_path / "elsewhere"
    (tmp_path / "r.env-names.tmp").symlink_to(target)
    with pytest.raises(OSError):
        write_record(str(record), {"A"})
    assert not target.exists()


def test_converge_without_a_release_checks_nothing():
    systemd = Systemd()
    out = converge(
        systemd,
        "pm2-workbot",
        unit_changed=False,
        unit_drifted=False,
        ecosystem_changed=False,
        release_switched=True,
        reload_restarts=False,
        app_dir="/srv/workbot/current",
        resolve=lambda path: None,
    )
    assert systemd.calls == [SHOW_STATE, f"reload {UNIT}"]
    assert out["stale_workers"] == []


@pytest.mark.parametrize(
    ("fail", "given", "message", "record"),
    [
        ("daemon-reload", {"unit_changed": True}, "failure 1 during daemon-reload: ", "none"),
        ("reload", {"release_switched": True}, f"Unable to reload service {UNIT}: ", "reload"),
        ("show", {"unit_drifted": True}, f"Could not find the requested service {UNIT}", "none"),
    ],
)
def test_converge_names_the_command_that_failed(fail, given, message, record):
    with pytest.raises(ServiceError, match=message) as err:
        run(Systemd(fail=fail), **given)
    assert err.value.record["action"] == record


# --- the module ----------------------------------------------------------------------------


def test_module_first_start_probes_the_app(fake_systemctl, http_server, tmp_path):
    calls = fake_systemctl(main_pid=0, active="inactive", enabled="disabled")
    srv = http_server()
    args = module_args(
        tmp_path / "srv" / "workbot",
        srv.server_address[1],
        unit_changed=True,
        unit_drifted=True,
        release_switched=True,
    )
    rc, out = run_module("pm2_service", args, tmp_path)
    assert rc == 0, out
    assert calls.read_text().splitlines() == [
        "daemon-reload",
        SHOW_STATE,
        IS_ENABLED,
        f"enable {UNIT}",
        f"start {UNIT}",
    ]
    assert (out["action"], out["started"], out["reloads"], out["changed"]) == (
        "start",
        True,
        0,
        True,
    )
    assert out["probe"]["ok"] and out["probe"]["probes"][0]["status"] == 200


def test_module_check_mode_acts_on_nothing(fake_systemctl, tmp_path):
    calls = fake_systemctl(main_pid=0)
    args = module_args(
        tmp_path,
        free_port(),
        unit_changed=True,
        release_switched=True,
        _ansible_check_mode=True,
    )
    rc, out = run_module("pm2_service", args, tmp_path)
    assert rc == 0, out
    assert calls.read_text().splitlines() == [SHOW_STATE, IS_ENABLED, SHOW_STATE]
    assert (out["action"], out["restarted"], out["changed"]) == ("restart", True, True)
    assert "probe" not in out


def test_module_fails_as_the_probe_module_does(fake_systemctl, http_server, tmp_path):
    fake_systemctl(main_pid=0)
    srv = http_server({"/": 500})
    args = module_args(tmp_path, srv.server_address[1], release_switched=True, retries=1)
    rc, out = run_module("pm2_service", args, tmp_path)
    port = srv.server_address[1]
    assert rc != 0
    assert out["msg"] == (
        f"probes failed on 127.0.0.1:{port} (2 attempts): / answered 500 (expected 200)"
    )
    # what was done before stays in the result, for the role's record
    assert (out["action"], out["reloaded"], out["reloads"]) == ("reload", True, 1)


def test_module_fails_when_nothing_listens(fake_systemctl, tmp_path):
    fake_systemctl(main_pid=0)
    port = free_port()
    rc, out = run_module("pm2_service", module_args(tmp_path, port, listen_timeout=0.3), tmp_path)
    assert rc != 0
    assert out["msg"] == f"nothing listened on 127.0.0.1:{port} within 0.3 s"
    assert out["changed"] is False


# --- the settle window: a worker that exits soon after the action ------------------------


def test_replaced_workers_names_the_pids_gone_after_the_wait():
    reads = iter([[10, 11, 12], [10, 12, 13]])
    slept: list[float] = []
    assert replaced_workers(lambda: next(reads), 3, slept.append) == [11]
    assert slept == [3]
    reads = iter([[10, 11], [11, 10]])
    assert replaced_workers(lambda: next(reads), 3, slept.append) == []


def _daemon(release: Path, script: str) -> subprocess.Popen:
    """A stand-in for PM2's daemon: ``script`` (bash) run in ``release``."""
    return subprocess.Popen(["/bin/bash", "-c", script], cwd=release, start_new_session=True)


@pytest.mark.parametrize(
    ("script", "exits"),
    [
        # its worker exits 1.5 s after the reload (while the module watches) and another
        # takes its place
        ("sleep 60 & w=$!; (sleep 1.5; kill $w; exec sleep 60) & wait", True),
        ("sleep 60 & wait", False),
    ],
    ids=["crash-looping worker", "steady worker"],
)
def test_module_fails_when_a_worker_exits_within_the_settle_window(
    script, exits, fake_systemctl, http_server, tmp_path
):
    app_root = tmp_path / "srv" / "workbot"
    release = app_root / "releases" / "r1"
    release.mkdir(parents=True)
    (app_root / "current").symlink_to("releases/r1")
    daemon = _daemon(release, script)
    try:
        deadline = time.monotonic() + 5
        while not proc_children(daemon.pid):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        calls = fake_systemctl(main_pid=daemon.pid)
        srv = http_server()
        args = module_args(app_root, srv.server_address[1], release_switched=True, settle=3)
        rc, out = run_module("pm2_service", args, tmp_path)
    finally:
        os.killpg(daemon.pid, 9)
        daemon.wait()
    assert f"reload {UNIT}" in calls.read_text().splitlines()
    if exits:
        assert rc != 0 and len(out["exited"]) == 1, out
        assert out["msg"].startswith("1 PM2 worker(s) exited within 3 s of the reload (pid ")
        assert out["reloaded"] and out["probe"]["ok"]  # what it did stays in the record
    else:
        assert rc == 0 and out["exited"] == [], out


def test_module_does_not_watch_when_it_did_nothing(fake_systemctl, http_server, tmp_path):
    fake_systemctl(main_pid=0)
    srv = http_server()
    args = module_args(tmp_path / "srv" / "workbot", srv.server_address[1], settle=30)
    began = time.monotonic()
    rc, out = run_module("pm2_service", args, tmp_path)
    assert rc == 0 and not out["changed"] and "exited" not in out, out
    assert time.monotonic() - began < 10


def _release(app_root: Path, env: str) -> None:
    """``current`` pointing at a new release whose .hardenkit.env is ``env``."""
    release = app_root / "releases" / f"r{len(list(app_root.glob('releases/*')))}"
    release.mkdir(parents=True)
    (release / ".hardenkit.env").write_text(env)
    link = app_root / "current"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(release.relative_to(app_root))


def test_module_restarts_pm2_when_the_environment_lost_a_name(
    fake_systemctl, http_server, tmp_path
):
    """Budget on, then a release without SECRET: PM2's reload would keep both (pm2#3486)."""
    app_root = tmp_path / "srv" / "workbot"
    record = tmp_path / "state" / "pm2-workbot.env-names"
    srv = http_server()
    env = {"env_file": str(app_root / "current" / ".hardenkit.env"), "env_record": str(record)}
    _release(app_root, '# Ansible managed\nSECRET="s"\nDATABASE_URL="postgres://db/x"\n')
    calls = fake_systemctl(main_pid=0)
    args = module_args(
        app_root, srv.server_address[1], release_switched=True, env_names=["PORT"], **env
    )
    rc, out = run_module("pm2_service", args, tmp_path)
    assert rc == 0 and out["action"] == "reload" and out["env_removed"] == [], out
    assert record.read_text() == "DATABASE_URL\nPORT\nSECRET\n"

    _release(app_root, 'DATABASE_URL="postgres://db/x"\n')
    args["env_names"] = ["PORT", "DB_POOL_MAX"]
    for check_mode in (True, False):
        calls.write_text("")
        rc, out = run_module("pm2_service", {**args, "_ansible_check_mode": check_mode}, tmp_path)
        assert rc == 0 and (out["action"], out["env_removed"]) == ("restart", ["SECRET"]), out
        assert (f"restart {UNIT}" in calls.read_text().splitlines()) is not check_mode
        assert ("SECRET" in record.read_text()) is check_mode
    assert record.read_text() == "DATABASE_URL\nDB_POOL_MAX\nPORT\n"

    args["release_switched"] = False
    rc, out = run_module("pm2_service", args, tmp_path)
    assert rc == 0 and (out["action"], out["changed"]) == ("none", False), out


def test_module_without_a_record_reloads_and_records(fake_systemctl, http_server, tmp_path):
    """A host an older kit hardened: what PM2 holds is unknown, so no restart on a guess;
    the record is written even by a run that changes nothing, not counted as a change."""
    app_root = tmp_path / "srv" / "workbot"
    record = tmp_path / "state" / "pm2-workbot.env-names"
    _release(app_root, 'A="1"\n')
    calls = fake_systemctl(main_pid=0)
    srv = http_server()
    args = module_args(
        app_root,
        srv.server_address[1],
        env_file=str(app_root / "current" / ".hardenkit.env"),
        env_record=str(record),
    )
    rc, out = run_module("pm2_service", args, tmp_path)
    assert rc == 0 and (out["action"], out["changed"]) == ("none", False), out
    assert calls.read_text().splitlines() == [SHOW_PID]  # the stale check reads only
    assert record.read_text() == "A\n"
