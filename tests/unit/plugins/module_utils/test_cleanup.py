"""dev_cleanup's data: the app port's holders (tasks/takeover.yml) and what the role did
(tasks/report.yml), from ``module_utils/cleanup.py``.

- ``port_holders`` over listeners as diagnose reports them: a pid known or not (then the
  socket's uid from ``ss -e``), the app's PM2 by its manager and user or by that uid, the
  package scope only for the package's users, holders already stopped.
- ``cleanup_result``: processes stopped by stop.yml and by the port takeover, hooks
  disabled, processes and out-of-scope hooks left alone; ``cleanup_summary`` in one line,
  "would" in check mode.

Both task files, run by ansible-playbook on the local host:
tests/integration/roles/dev_cleanup/test_dev_cleanup_report.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.filter import cleanup as cleanup_filters
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.cleanup import (
    INPUTS,
    cleanup_result,
    cleanup_summary,
    port_holders,
    tool_name,
)

ROOT = Path(__file__).resolve().parents[4]
ROLE = ROOT / "roles" / "dev_cleanup"
PATTERNS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))[
    "dev_cleanup_patterns"
]
# As roles/dev_cleanup/vars/main.yml joins them.
DEV_REGEX = "|".join(f"(?:{p})" for p in PATTERNS)
PNPM = "/usr/local/bin/node /opt/hardenkit/pnpm/10.34.8/bin/pnpm.cjs dev"
TSX = "node /workspace/projects/node_modules/.bin/../tsx/dist/cli.mjs watch server.ts"
PASSWD = {
    "root": ["x", "0", "0", "root", "/root", "/bin/bash"],
    "workbot": ["x", "1001", "1001", "", "/srv/workbot", "/usr/sbin/nologin"],
}


# --- the port's holders ----------------------------------------------------------------------


def listener(pid: int | None, **given: Any) -> dict[str, Any]:
    """A row of diagnose's facts.listeners on port 5000."""
    return {
        "proto": "tcp",
        "address": "0.0.0.0",
        "port": 5000,
        "loopback": False,
        "inode": 30001,
        "pid": pid,
        "pids": [pid] if pid else [],
        "process": None,
        "user": None,
        "manager": None,
        "owner_guess": None,
        **given,
    }


def process(pid: int, user: str, cwd: str, in_scope: str | None) -> dict[str, Any]:
    """A row of diagnose's facts.processes."""
    return {
        "pid": pid,
        "ppid": 1,
        "user": user,
        "cmdline": "node dist/server.js",
        "cwd": cwd,
        "manager": None,
        "in_scope": in_scope,
        "dev": None,
        "node": True,
    }


PROCESSES = [
    process(4100, "root", "/home/bob/shop", "cwd"),
    process(4200, "workbot", "/opt/other/workbot", "package"),
    process(4300, "bob", "/home/bob/clone", "package"),
    process(4400, "bob", "/home/bob/other", None),
    process(4500, "workbot", "/srv/workbot/current", "pm2"),
]
# ss -Hltne 'sport = :5000': the uid is left out for root's sockets.
SS = [
    "LISTEN 0 511 0.0.0.0:5000 0.0.0.0:* uid:1001 ino:30001 sk:1 cgroup:/system.slice <->",
    "LISTEN 0 511 [::]:5000 [::]:* uid:1002 ino:30002 sk:2 cgroup:/user.slice <->",
    "LISTEN 0 511 127.0.0.1:5000 0.0.0.0:* ino:30003 sk:3 cgroup:/init.scope <->",
]


def holder(pid: int | None, **given: Any) -> dict[str, Any]:
    return {
        "pid": pid,
        "user": None,
        "process": None,
        "manager": None,
        "address": "0.0.0.0",
        "cwd": None,
        "scope": "",
        "ours": False,
        "reaped": False,
        **given,
    }


@pytest.mark.parametrize(
    ("lst", "expected"),
    [
        pytest.param(
            listener(4100, user="root", process="node dist/server.js"),
            holder(
                4100, user="root", process="node dist/server.js", cwd="/home/bob/shop", scope="cwd"
            ),
            id="pid known, the app's by its cwd",
        ),
        pytest.param(
            listener(4500, user="workbot", manager="pm2", process="node /srv/workbot/current"),
            holder(
                4500,
                user="workbot",
                manager="pm2",
                process="node /srv/workbot/current",
                cwd="/srv/workbot/current",
                ours=True,
            ),
            id="ours by pm2 manager",
        ),
        pytest.param(
            listener(4400, user="bob", manager="pm2"),
            holder(4400, user="bob", manager="pm2", cwd="/home/bob/other"),
            id="pm2 of another user is not ours",
        ),
        pytest.param(
            listener(4200, user="workbot"),
            holder(4200, user="workbot", cwd="/opt/other/workbot", scope="package"),
            id="scope package for a package user",
        ),
        pytest.param(
            listener(4300, user="bob"),
            holder(4300, user="bob", cwd="/home/bob/clone"),
            id="no scope package for another user",
        ),
        pytest.param(
            listener(None, inode=30001),
            holder(None, user="uid 1001", ours=True),
            id="pid unknown, ours by uid",
        ),
        pytest.param(
            listener(None, inode=30002, address="::"),
            holder(None, user="uid 1002", address="::"),
            id="pid unknown, another uid",
        ),
        pytest.param(
            listener(None, inode=30003, address="127.0.0.1"),
            holder(None, user="uid 0", address="127.0.0.1"),
            id="pid unknown, root's socket (no uid in ss)",
        ),
        pytest.param(
            listener(None, inode=39999),
            holder(None),
            id="pid unknown, no ss line",
        ),
        pytest.param(
            listener(4600, user="root"),
            holder(4600, user="root", reaped=True),
            id="reaped",
        ),
    ],
)
def test_port_holders(lst, expected):
    out = port_holders(
        [lst],
        PROCESSES,
        5000,
        "workbot",
        SS,
        PASSWD,
        reaped=[{"pid": 4600, "cwd": "/home/bob/shop"}],
        package_users=["workbot", "root"],
    )
    assert out == [expected]


def test_port_holders_only_the_app_port_and_each_once():
    rows = [
        listener(4100, user="root"),
        listener(4100, user="root"),
        listener(4100, user="root", address="::"),
        listener(4100, user="root", port=3000),
    ]
    out = port_holders(rows, PROCESSES, 5000, "workbot")
    assert [h["address"] for h in out] == ["0.0.0.0", "::"]


def test_port_holders_without_the_app_users_uid_own_no_unknown_socket():
    out = port_holders([listener(None, inode=30001)], [], 5000, "workbot", SS, passwd={})
    assert out == [holder(None, user="uid 1001")]


def test_port_holders_filter_reads_diagnose_facts():
    facts = {"listeners": [listener(4100, user="root")], "processes": PROCESSES}
    out = cleanup_filters.port_holders(facts, "5000", "workbot", package_users=["root"])
    assert [(h["pid"], h["scope"]) for h in out] == [(4100, "cwd")]
    with pytest.raises(AnsibleFilterError, match="expected diagnose's facts"):
        cleanup_filters.port_holders([], 5000, "workbot")
    with pytest.raises(AnsibleFilterError, match="without 'processes'"):
        cleanup_filters.port_holders({"listeners": []}, 5000, "workbot")


# --- what the role did -----------------------------------------------------------------------


def reaped(pid: int, cmdline: str, **given: Any) -> dict[str, Any]:
    """A process reap_processes stopped (or would stop: how "check_mode")."""
    return {
        "pid": pid,
        "user": "root",
        "cwd": "/home/bob/shop",
        "cmdline": cmdline,
        "start_time": 123456,
        "scope": "cwd",
        "tool": "pnpm dev",
        "how": "SIGTERM",
        **given,
    }


def hook(kind: str, **given: Any) -> dict[str, Any]:
    """A boot hook as hooks.yml records it."""
    return {
        "kind": kind,
        "file": "/var/spool/cron/crontabs/root",
        "unit": None,
        "user": "root",
        "command": "cd /home/bob/shop && API_TOKEN=*** pnpm dev",
        "scope": "cwd",
        "dirs": ["/home/bob/shop"],
        "line": 3,
        **given,
    }


UNIT = hook(
    "systemd",
    file="/etc/systemd/system/workbot-dev.service",
    unit="workbot-dev.service",
    command="/usr/bin/pnpm dev",
)
CRON = hook("cron")
NOTHING = {name: [] for name in INPUTS}


def test_cleanup_result_stopped_from_reaped_and_takeover():
    unscoped = {k: v for k, v in reaped(4425, "node dist/server.js").items() if k != "scope"}
    done = {
        **NOTHING,
        "reaped": [reaped(4034, PNPM), reaped(4079, TSX, user="bob", how="SIGKILL")],
        "takeover": [
            # one holder's loop item: the port takeover's reap_processes result
            {
                "changed": True,
                "stopped": [reaped(4424, "node dist/server.js", scope=None)],
                "item": {"item": {"pid": 4424}},
            },
            {"changed": True, "stopped": [unscoped]},
            # a holder gone since it was listed, and a failed stop: nothing stopped
            {"changed": False, "stopped": []},
            {"failed": True, "msg": "permission denied sending SIGTERM"},
        ],
    }
    assert cleanup_result(done)["stopped"] == [
        {
            "pid": 4034,
            "user": "root",
            "cwd": "/home/bob/shop",
            "cmdline": PNPM,
            "scope": "cwd",
            "how": "SIGTERM",
        },
        {
            "pid": 4079,
            "user": "bob",
            "cwd": "/home/bob/shop",
            "cmdline": TSX,
            "scope": "cwd",
            "how": "SIGKILL",
        },
        # a scope the module gave is kept, even None; none given: the port made it the app's
        {
            "pid": 4424,
            "user": "root",
            "cwd": "/home/bob/shop",
            "cmdline": "node dist/server.js",
            "scope": None,
            "how": "SIGTERM",
        },
        {
            "pid": 4425,
            "user": "root",
            "cwd": "/home/bob/shop",
            "cmdline": "node dist/server.js",
            "scope": "port",
            "how": "SIGTERM",
        },
    ]


def test_cleanup_result_disabled_skipped_and_checkouts():
    done = {
        **NOTHING,
        "disabled": [UNIT, CRON],
        "left_alone": [
            {
                "pid": 5100,
                "user": "alice",
                "cwd": "/home/alice/blog",
                "cmdline": "next dev",
                "start_time": 9,
                "reason": "out of scope: cwd /home/alice/blog not under scope_paths",
            },
        ],
        "other_hooks": [
            hook("cron", command="DATABASE_URL=*** pnpm dev", dirs=["/root"], scope=""),
            hook(
                "systemd",
                file="/etc/systemd/system/other.service",
                unit="other.service",
                command="/usr/bin/env SESSION_SECRET=*** npm run dev",
                dirs=["/", "/srv"],
                scope="",
            ),
        ],
        "checkouts": ["/home/bob/shop"],
    }
    out = cleanup_result(done)
    assert list(out) == ["stopped", "disabled", "skipped", "checkouts"]
    assert out["stopped"] == []
    assert out["disabled"] == [
        {
            "kind": "systemd",
            "file": "/etc/systemd/system/workbot-dev.service",
            "unit": "workbot-dev.service",
            "user": "root",
            "command": "/usr/bin/pnpm dev",
            "scope": "cwd",
        },
        {
            "kind": "cron",
            "file": "/var/spool/cron/crontabs/root",
            "unit": None,
            "user": "root",
            "command": "cd /home/bob/shop && API_TOKEN=*** pnpm dev",
            "scope": "cwd",
        },
    ]
    assert out["skipped"] == [
        {
            "pid": 5100,
            "user": "alice",
            "cwd": "/home/alice/blog",
            "cmdline": "next dev",
            "reason": "out of scope: cwd /home/alice/blog not under scope_paths",
        },
        {
            "kind": "cron",
            "file": "/var/spool/cron/crontabs/root",
            "unit": None,
            "user": "root",
            "command": "DATABASE_URL=*** pnpm dev",
            "reason": "out of scope: runs in /root",
        },
        {
            "kind": "systemd",
            "file": "/etc/systemd/system/other.service",
            "unit": "other.service",
            "user": "root",
            "command": "/usr/bin/env SESSION_SECRET=*** npm run dev",
            "reason": "out of scope: runs in /, /srv",
        },
    ]
    assert out["checkouts"] == ["/home/bob/shop"]


def test_cleanup_result_of_nothing():
    assert cleanup_result(NOTHING) == {
        "stopped": [],
        "disabled": [],
        "skipped": [],
        "checkouts": [],
    }


def test_cleanup_result_needs_whole_entries():
    with pytest.raises(KeyError, match="how"):
        cleanup_result(
            {**NOTHING, "reaped": [{"pid": 1, "user": "root", "cwd": "/", "cmdline": "x"}]}
        )
    with pytest.raises(ValueError, match="missing checkouts"):
        cleanup_result({k: v for k, v in NOTHING.items() if k != "checkouts"})
    without_dirs = {k: v for k, v in CRON.items() if k != "dirs"}
    with pytest.raises(AnsibleFilterError, match="an entry without 'dirs'"):
        cleanup_filters.dev_cleanup_result({**NOTHING, "other_hooks": [without_dirs]})


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        (PNPM, "pnpm dev"),
        ("sh -c tsx watch server.ts", "sh -c tsx watch"),
        ("/bin/bash -c next dev -p 5000", "sh -c next dev"),
        (TSX, "tsx watch"),
        ("node /srv/shop/node_modules/next/dist/bin/next dev", "next dev"),
        ("/usr/bin/nodemon server.js", "nodemon"),
        ("npm run dev", "npm run dev"),
        ("node dist/server.js", "server on port 5000"),  # a port holder
        ("sh -c node dist/server.js", "sh -c server on port 5000"),
    ],
)
def test_tool_name(cmdline, expected):
    assert tool_name(cmdline, DEV_REGEX, 5000) == expected


RESULT = {
    "stopped": [
        {"pid": 4034, "cmdline": PNPM},
        {"pid": 4078, "cmdline": "sh -c tsx watch server.ts"},
        {"pid": 4079, "cmdline": TSX},
        {"pid": 4313, "cmdline": PNPM},
        {"pid": 4424, "cmdline": "node dist/server.js"},
    ],
    "disabled": [UNIT, CRON, hook("rc.local", file="/etc/rc.local", user="root")],
    "skipped": [{"pid": 5100, "user": "alice"}, {"kind": "cron", "user": "root"}],
    "checkouts": ["/home/bob/shop", "/opt/old"],
}


@pytest.mark.parametrize(
    ("result", "check_mode", "expected"),
    [
        pytest.param(
            RESULT,
            False,
            "dev cleanup: stopped 5 process(es) (2 x pnpm dev, 1 x sh -c tsx watch,"
            " 1 x tsx watch, 1 x server on port 5000), disabled 3 boot hook(s) (unit"
            " workbot-dev.service, @reboot in root's crontab, line in /etc/rc.local), left 2"
            " alone (alice pid 5100, root pid -); old checkout(s): /home/bob/shop, /opt/old",
            id="stopped and disabled",
        ),
        pytest.param(
            {
                **RESULT,
                "stopped": RESULT["stopped"][:1],
                "disabled": [],
                "skipped": [],
                "checkouts": [],
            },
            True,
            "dev cleanup: would stop 1 process(es) (1 x pnpm dev), would disable 0 boot"
            " hook(s), left 0 alone; old checkout(s): none",
            id="check mode would stop",
        ),
        pytest.param(
            {"stopped": [], "disabled": [], "skipped": [], "checkouts": []},
            False,
            "dev cleanup: stopped 0 process(es), disabled 0 boot hook(s), left 0 alone;"
            " old checkout(s): none",
            id="nothing",
        ),
    ],
)
def test_cleanup_summary(result, check_mode, expected):
    assert cleanup_summary(result, DEV_REGEX, 5000, check_mode) == expected


def test_cleanup_summary_counts_tools_that_differ_in_case_apart():
    result = {
        "stopped": [{"cmdline": "Nodemon a.js"}, {"cmdline": "nodemon b.js"}],
        "disabled": [],
        "skipped": [],
        "checkouts": [],
    }
    assert "(1 x Nodemon, 1 x nodemon)" in cleanup_summary(result, "(?i)nodemon", 5000)


def test_filters_registered():
    assert set(cleanup_filters.FilterModule().filters()) == {
        "port_holders",
        "dev_cleanup_result",
        "dev_cleanup_summary",
    }
    with pytest.raises(AnsibleFilterError, match=r"dev_cleanup_summary: .*unterminated"):
        cleanup_filters.dev_cleanup_summary(RESULT, "(pnpm", 5000)
