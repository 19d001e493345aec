"""dev_cleanup's data, from the role's tasks: the app port's holders (tasks/takeover.yml) and
what the role did (tasks/report.yml), both task files run by ansible-playbook on the local
host (``module_utils/cleanup.py`` itself: tests/unit/plugins/module_utils/test_cleanup.py).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pytest
import yaml

from tests.hk_testlib import run_playbook
from tests.unit.plugins.module_utils.test_cleanup import (
    DEV_REGEX,
    PASSWD,
    PROCESSES,
    ROLE,
    SS,
    TSX,
    UNIT,
    holder,
    listener,
    reaped,
)

# --- the tasks, run ------------------------------------------------------------------------------


def tasks(file: str, *names: str) -> list[dict[str, Any]]:
    found = [
        t
        for t in yaml.safe_load((ROLE / "tasks" / file).read_text(encoding="utf-8"))
        if not names or t["name"] in names
    ]
    assert len(found) == (len(names) or len(found))
    return found


@pytest.fixture(scope="module")
def role_run(tmp_path_factory) -> tuple[str, dict[str, Any]]:
    """report.yml, and takeover.yml's holder tasks, on what the earlier tasks registered."""
    work = tmp_path_factory.mktemp("dev_cleanup_report")
    (work / "takeover.yml").write_text(
        yaml.safe_dump(
            tasks(
                "takeover.yml", "Sort out the app port's holders", "Record the app port's holders"
            ),
            sort_keys=False,
        )
    )
    facts = {
        "listeners": [
            listener(4100, user="root", process="node dist/server.js"),
            listener(4500, user="workbot", manager="pm2"),
            listener(4400, user="bob", process="node other.js"),
            listener(None, inode=30001, address="::"),
            listener(4079, user="bob", port=3000),
        ],
        "processes": PROCESSES,
    }
    play_vars = {
        "app_name": "workbot",
        "app_port": 5000,
        "app_user": "workbot",
        "__dev_cleanup_regex": DEV_REGEX,
        "__dev_cleanup_package_users": ["workbot", "root"],
        "__dev_cleanup_port_diag": {"facts": facts},
        "__dev_cleanup_port_ss": {"stdout_lines": SS, "changed": False},
        "__dev_cleanup_found": {
            "stopped": [reaped(4079, TSX)],
            "left_alone": [
                {
                    "pid": 5100,
                    "user": "alice",
                    "cwd": "/home/alice",
                    "cmdline": "next dev",
                    "reason": "out of scope",
                }
            ],
        },
        "__dev_cleanup_reaped": {"changed": True, "stopped": [reaped(4079, TSX)]},
        "__dev_cleanup_takeover": {
            "results": [
                {"changed": True, "stopped": [reaped(4100, "node dist/server.js", scope=None)]}
            ]
        },
        "__dev_cleanup_disabled": [UNIT],
        # __dev_cleanup_other_hooks and __dev_cleanup_checkouts: never set (hooks.yml off)
    }
    out = work / "out.json"
    playbook = [
        {
            "name": "Run dev_cleanup's holder and report tasks",
            "hosts": "all",
            "gather_facts": False,
            "vars": play_vars,
            "tasks": [
                {
                    "name": "Read the app user's uid",
                    "ansible.builtin.set_fact": {"ansible_facts": {"getent_passwd": PASSWD}},
                },
                {"name": "Sort out holders", "ansible.builtin.include_tasks": "takeover.yml"},
                {
                    "name": "Report",
                    "ansible.builtin.include_tasks": str(ROLE / "tasks" / "report.yml"),
                },
                {
                    "name": "Write what the test reads",
                    "ansible.builtin.copy": {
                        "dest": str(out),
                        "mode": "0600",
                        "content": "{{ {'holders': __dev_cleanup_holders,"
                        " 'foreign': __dev_cleanup_foreign,"
                        " 'result': dev_cleanup_result} | to_json }}",
                    },
                },
            ],
        }
    ]
    (work / "play.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (work / "inventory.yml").write_text(
        yaml.safe_dump({"all": {"hosts": {"local-host": {}}, "vars": local}})
    )
    (work / "vars.json").write_text("{}")
    proc = run_playbook(work, "play.yml")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout, json.loads(out.read_text())


def test_takeover_tasks_sort_the_holders(role_run):
    _, out = role_run
    # 4100: the app's by its cwd, to stop; 4500 and the uid-1001 socket: the app's PM2;
    # 4400: bob's, out of scope; 4079 listens on another port.
    assert [h["pid"] for h in out["holders"]] == [4100]
    assert out["foreign"] == [
        holder(4400, user="bob", process="node other.js", cwd="/home/bob/other")
    ]


def test_report_tasks_record_and_say_what_was_done(role_run):
    stdout, out = role_run
    assert out["result"] == {
        "stopped": [
            {
                "pid": 4079,
                "user": "root",
                "cwd": "/home/bob/shop",
                "cmdline": TSX,
                "scope": "cwd",
                "how": "SIGTERM",
            },
            {
                "pid": 4100,
                "user": "root",
                "cwd": "/home/bob/shop",
                "cmdline": "node dist/server.js",
                "scope": None,
                "how": "SIGTERM",
            },
        ],
        "disabled": [{k: UNIT[k] for k in ("kind", "file", "unit", "user", "command", "scope")}],
        "skipped": [
            {
                "pid": 5100,
                "user": "alice",
                "cwd": "/home/alice",
                "cmdline": "next dev",
                "reason": "out of scope",
            }
        ],
        "checkouts": [],
    }
    said = re.search(r'"msg": "(dev cleanup: [^"]*)"', stdout)
    assert said, stdout[-3000:]
    assert said.group(1) == (
        "dev cleanup: stopped 2 process(es) (1 x tsx watch, 1 x server on port 5000), disabled 1"
        " boot hook(s) (unit workbot-dev.service), left 1 alone (alice pid 5100);"
        " old checkout(s): none"
    )
