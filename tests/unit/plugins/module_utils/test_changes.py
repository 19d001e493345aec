"""The run's list of changes (playbooks/tasks/changes.yml, diagnostics_changes).

``module_utils/changes.py`` over a table of runs: the release switch (the first release
shows ``none ->``), what PM2 did (a stale-worker fix with its reason cut to 160
characters), what dev cleanup stopped and disabled, what a failed run put back, Nginx.
The task itself, run by ansible-playbook: tests/integration/playbooks/tasks/test_changes.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.filter.changes import (
    FilterModule,
)
from ansible_collections.hardenkit.nodeapp.plugins.filter.changes import (
    run_changes as run_changes_filter,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.changes import (
    INPUTS,
    count,
    flag,
    run_changes,
    truncate,
)

ROOT = Path(__file__).resolve().parents[4]
TASKS = ROOT / "playbooks" / "tasks" / "changes.yml"

# A run that set none of the facts: changes.yml's defaults.
QUIET = {
    "app_release_switched": False,
    "app_release_live_id": "",
    "app_release_id": None,
    "pm2_started": False,
    "pm2_reloads": 0,
    "pm2_stale_fix": "",
    "pm2_stale_workers": [],
    "pm2_env_removed": [],
    "dev_cleanup_result": {},
    "hardenkit_put_back": {},
    "pm2_service_name": None,
    "nginx_proxy_changed": False,
}
OLD, NEW = "20261201T120000-3f9a2c1b", "20261206T090000-9d8e7f6a"
# What pm2's stale-worker check prints, a line per worker of another release.
STALE = [
    f"pid 4242 (workbot) runs /srv/workbot/releases/{OLD}, not {NEW}",
    f"pid 4243 (workbot) runs /srv/workbot/releases/{OLD}, not {NEW}",
    f"pid 4244 (workbot) runs /srv/workbot/releases/{OLD}, not {NEW}",
]
PNPM = "/usr/local/bin/node /opt/hardenkit/pnpm/10.34.8/bin/pnpm.cjs dev"
# 99 characters: cut to 77, back to a space, and "..." appended.
TSX = (
    "node /workspace/projects/node_modules/.bin/../tsx/dist/cli.mjs watch"
    " --clear-screen=false server.ts"
)


def changes(**given: Any) -> list[str]:
    return run_changes({**QUIET, **given})


# --- the lines -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param({}, [], id="nothing changed"),
        pytest.param(
            {"app_release_switched": True, "app_release_live_id": OLD, "app_release_id": NEW},
            [f"release {OLD} -> {NEW}"],
            id="switched release",
        ),
        pytest.param(
            {"app_release_switched": True, "app_release_id": NEW},
            [f"release none -> {NEW}"],
            id="first release",
        ),
        pytest.param(
            {"app_release_switched": "True", "app_release_live_id": None, "app_release_id": NEW},
            [f"release none -> {NEW}"],
            id="first release, facts as strings",
        ),
        pytest.param(
            {"app_release_switched": "false", "app_release_id": NEW}, [], id="not switched"
        ),
        pytest.param(
            {"pm2_started": True}, ["PM2 started the app under systemd"], id="pm2 started"
        ),
        pytest.param(
            {"pm2_reloads": 2}, ["PM2 reloaded the app 2 time(s)"], id="pm2 reloaded twice"
        ),
        pytest.param({"pm2_reloads": "1"}, ["PM2 reloaded the app 1 time(s)"], id="reloads str"),
        pytest.param({"pm2_reloads": "0"}, [], id="no reload"),
        pytest.param(
            {"pm2_stale_fix": "restart", "pm2_stale_workers": STALE},
            [
                "PM2 restarted: its workers ran another release than the live one (pid 4242"
                f" (workbot) runs /srv/workbot/releases/{OLD}, not {NEW}; pid 4243 (workbot)"
                " runs...)"
            ],
            id="stale fix restart, long reason truncated",
        ),
        pytest.param(
            {"pm2_stale_fix": "reload", "pm2_stale_workers": STALE[:1]},
            [f"PM2 reloaded: its workers ran another release than the live one ({STALE[0]})"],
            id="stale fix reload",
        ),
        pytest.param(
            {"pm2_stale_fix": "reload"},
            ["PM2 reloaded: its workers ran another release than the live one ()"],
            id="stale fix without workers",
        ),
        pytest.param(
            {"pm2_reloads": 1, "pm2_env_removed": ["DB_POOL_MAX", "RELEASE_NOTE"]},
            [
                "PM2 reloaded the app 1 time(s)",
                "PM2 restarted: the app's environment no longer sets DB_POOL_MAX, RELEASE_NOTE,"
                " which a reload keeps (pm2#3486)",
            ],
            id="restart for variables that went away",
        ),
        pytest.param(
            {
                "dev_cleanup_result": {
                    "stopped": [
                        {"pid": 4034, "user": "root", "cmdline": PNPM, "how": "SIGTERM"},
                        {"pid": 4078, "cmdline": "sh -c tsx watch server.ts"},
                        {"pid": 4079, "user": "bob", "cmdline": TSX},
                        {"pid": 4080, "user": "bob", "cmdline": None},
                    ]
                }
            },
            [
                f"stopped pid 4034 (root): {PNPM}",
                "stopped pid 4078 (?): sh -c tsx watch server.ts",
                "stopped pid 4079 (bob): node"
                " /workspace/projects/node_modules/.bin/../tsx/dist/cli.mjs watch...",
                "stopped pid 4080 (bob): ",
            ],
            id="stopped processes with and without user",
        ),
        pytest.param(
            {
                "dev_cleanup_result": {
                    "disabled": [
                        {
                            "kind": "systemd",
                            "unit": "workbot-dev.service",
                            "file": "/etc/systemd/system/workbot-dev.service",
                        },
                        {"kind": "cron", "unit": None, "file": "/var/spool/cron/crontabs/root"},
                        {"kind": "rc.local", "unit": None, "file": "/etc/rc.local"},
                        {"kind": "cron"},
                    ]
                }
            },
            [
                "disabled boot hook: systemd workbot-dev.service",
                "disabled boot hook: cron /var/spool/cron/crontabs/root",
                "disabled boot hook: rc.local /etc/rc.local",
                "disabled boot hook: cron ",
            ],
            id="disabled hooks systemd and cron",
        ),
        pytest.param(
            {"hardenkit_put_back": {"pm2_stopped": True}, "pm2_service_name": "pm2-workbot"},
            ["PM2 unit pm2-workbot stopped and disabled: it did not serve the app"],
            id="put back: pm2 stopped",
        ),
        pytest.param(
            {"hardenkit_put_back": {"pm2_stopped": False, "current_removed": "true"}},
            ["current removed again: no release was live before this run"],
            id="put back: current removed",
        ),
        pytest.param(
            {
                "hardenkit_put_back": {
                    "started": [
                        {
                            "pid": 101,
                            "new_pid": 877,
                            "user": "root",
                            "served": [5000],
                            "cmdline": "pnpm dev",
                        },
                        {
                            "pid": 102,
                            "new_pid": 878,
                            "user": None,
                            "served": [3000, 5000],
                            "cmdline": TSX,
                        },
                    ],
                }
            },
            [
                "started again as it ran: pid 101 -> 877 (root, port 5000): pnpm dev",
                "started again as it ran: pid 102 -> 878 (?, port 3000, 5000): node"
                " /workspace/projects/node_modules/.bin/../tsx/dist/cli.mjs watch...",
            ],
            id="put back: started again",
        ),
        pytest.param(
            {
                "hardenkit_put_back": {
                    "not_started": [
                        {
                            "pid": 103,
                            "user": "bob",
                            "cmdline": TSX,
                            "why": "it served no port when it was stopped",
                        },
                        {
                            "pid": 104,
                            "user": "",
                            "cmdline": None,
                            "why": "its command, directory or user could not be read",
                        },
                    ],
                }
            },
            [
                # no space in the first 57 characters after "node "
                "left stopped: pid 103 (bob): node..., it served no port when it was stopped",
                "left stopped: pid 104 (?): , its command, directory or user could not be read",
            ],
            id="put back: left stopped",
        ),
        pytest.param(
            {"nginx_proxy_changed": True},
            ["Nginx configuration changed, checked with nginx -t and reloaded"],
            id="nginx changed",
        ),
        pytest.param({"nginx_proxy_changed": "no"}, [], id="nginx unchanged"),
    ],
)
def test_run_changes(given, expected):
    assert changes(**given) == expected


def test_run_changes_lists_in_the_order_of_the_run():
    out = changes(
        app_release_switched=True,
        app_release_live_id=OLD,
        app_release_id=NEW,
        pm2_started=True,
        pm2_reloads=1,
        pm2_stale_fix="reload",
        pm2_stale_workers=STALE[:1],
        dev_cleanup_result={
            "stopped": [{"pid": 4034, "user": "root", "cmdline": "pnpm dev"}],
            "disabled": [{"kind": "systemd", "unit": "workbot-dev.service", "file": "/x"}],
            "skipped": [{"pid": 9, "user": "bob"}],
            "checkouts": ["/home/bob/shop"],
        },
        hardenkit_put_back={
            "pm2_stopped": True,
            "current_removed": True,
            "started": [
                {"pid": 1, "new_pid": 2, "user": "root", "served": [5000], "cmdline": "pnpm dev"}
            ],
            "not_started": [{"pid": 3, "user": "root", "cmdline": "tsx watch", "why": "why"}],
            "serving": True,
        },
        pm2_service_name="pm2-workbot",
        nginx_proxy_changed=True,
    )
    assert [line.split(" ")[0] + " " + line.split(" ")[1] for line in out] == [
        "release " + OLD,
        "PM2 started",
        "PM2 reloaded",
        "PM2 reloaded:",
        "stopped pid",
        "disabled boot",
        "PM2 unit",
        "current removed",
        "started again",
        "left stopped:",
        "Nginx configuration",
    ]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"app_release_switched": True}, "app_release_id is not set"),
        ({"hardenkit_put_back": {"pm2_stopped": True}}, "pm2_service_name is not set"),
    ],
)
def test_run_changes_needs_what_a_line_names(given, message):
    with pytest.raises(ValueError, match=message):
        changes(**given)


def test_run_changes_needs_every_input():
    run = dict(QUIET)
    del run["pm2_reloads"], run["nginx_proxy_changed"]
    with pytest.raises(ValueError, match="missing pm2_reloads, nginx_proxy_changed"):
        run_changes(run)


# --- the rules Jinja's filters had -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "length", "expected"),
    [
        ("foo bar baz qux", 9, "foo..."),  # Jinja's own examples
        ("foo bar baz qux", 11, "foo bar baz qux"),  # within the leeway of 5
        ("a" * 85, 80, "a" * 85),
        ("a" * 86, 80, "a" * 77 + "..."),  # no space: cut inside the word
        ("word " * 17 + "w", 80, "word " * 14 + "word..."),
        ("", 60, ""),
    ],
)
def test_truncate(text, length, expected):
    assert truncate(text, length) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("True", True),
        ("yes", True),
        ("on", True),
        ("1", True),
        (1, True),
        (1.0, True),
        (False, False),
        ("false", False),
        ("no", False),
        ("", False),
        (0, False),
        (2, False),
        (None, False),
        ("maybe", False),
    ],
)
def test_flag_reads_like_the_bool_filter(value, expected):
    assert flag(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"), [(3, 3), ("3", 3), ("2.7", 2), (None, 0), ("x", 0), (True, 1)]
)
def test_count_reads_like_the_int_filter(value, expected):
    assert count(value) == expected


# --- the filter and the task -------------------------------------------------------------------


def test_filter_registered_and_checks_its_input():
    assert FilterModule().filters() == {"run_changes": run_changes_filter}
    assert run_changes_filter(QUIET) == []
    with pytest.raises(AnsibleFilterError, match="expected a mapping"):
        run_changes_filter([QUIET])
    with pytest.raises(AnsibleFilterError, match="app_release_id is not set"):
        run_changes_filter({**QUIET, "app_release_switched": True})
    with pytest.raises(AnsibleFilterError, match="an entry without 'pid'"):
        run_changes_filter({**QUIET, "dev_cleanup_result": {"stopped": [{"user": "root"}]}})


def test_task_passes_every_input_with_its_default():
    (task,) = yaml.safe_load(TASKS.read_text(encoding="utf-8"))
    assert task["ansible.builtin.set_fact"] == {
        "diagnostics_changes": "{{ __run | hardenkit.nodeapp.run_changes }}"
    }
    run = task["vars"]["__run"]
    assert tuple(run) == INPUTS
    for name, value in run.items():
        assert value.startswith(f"{{{{ {name} | default("), name
