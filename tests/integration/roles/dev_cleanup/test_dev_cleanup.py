"""dev_cleanup's own tasks, run: which old checkouts may scope the app (M6), and what its
output shows (L8) (the rules themselves: tests/unit/roles/dev_cleanup/test_dev_cleanup.py).

- M6: the role's own tasks (find.yml's "Record the old checkouts", then hooks.yml) run by
  ``ansible-playbook --check`` on the local host, every hook path in a temporary
  directory: dev processes that ran in ``/``, ``/root`` or ``/home/bob`` give no checkout,
  so a unit without ``WorkingDirectory=`` and root's ``@reboot`` line stay another's.
- L8: the same run at ``-vvv`` prints no secret of the hook lines.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.hk_testlib import run_playbook
from tests.unit.roles.dev_cleanup.test_dev_cleanup import ROLE, load

# --- M6 and L8: the role's tasks, run --------------------------------------------------------

SECRET = "S3cretPw"
CRONTAB = (
    "# m h dom mon dow user command\n"
    f"@reboot root DATABASE_URL=postgres://wb:{SECRET}@db/wb pnpm dev\n"
    f"@reboot root cd /home/bob/shop && API_TOKEN={SECRET} pnpm dev\n"
)
# Another team's unit, without WorkingDirectory=: its directory is /.
UNIT = (
    "[Service]\n"
    f"ExecStart=/usr/bin/env SESSION_SECRET={SECRET} npm run dev\n"
    "[Install]\nWantedBy=multi-user.target\n"
)
STOPPED_CWDS = [
    "/",
    "/root",
    "/home/bob",
    "/home/bob/shop (deleted)",
    "/usr/lib/node_modules",
    "/srv/workbot/releases/a",
]


@pytest.fixture(scope="module")
def role_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
    work = tmp_path_factory.mktemp("dev_cleanup")
    for sub in ("units", "spool", "cron.d"):
        (work / sub).mkdir()
    (work / "units" / "other-team.service").write_text(UNIT)
    (work / "crontab").write_text(CRONTAB)
    find_tasks = [
        t
        for t in load(ROLE / "tasks" / "find.yml")
        if "hardenkit.nodeapp.reap_processes" not in t  # the scan itself: given below
    ]
    (work / "find_record.yml").write_text(yaml.safe_dump(find_tasks, sort_keys=False))
    defaults = load(ROLE / "defaults" / "main.yml")
    play_vars = {
        "app_name": "workbot",
        "app_root": "/srv/workbot",
        "app_user": "workbot",
        "app_port": 5000,
        "dev_cleanup_patterns": defaults["dev_cleanup_patterns"],
        "__dev_cleanup_roots": ["/srv/workbot"],
        "__dev_cleanup_package": "workbot",
        "__dev_cleanup_found": {"stopped": [{"pid": 1, "cwd": c} for c in STOPPED_CWDS]},
    }
    out = work / "out.json"
    playbook = [
        {
            "name": "Run dev_cleanup's checkout and hook tasks",
            "hosts": "all",
            "gather_facts": False,
            "vars": play_vars,
            "vars_files": [str(ROLE / "vars" / "main.yml")],
            "tasks": [
                {"name": "Record checkouts", "ansible.builtin.include_tasks": "find_record.yml"},
                {
                    "name": "Disable hooks",
                    "ansible.builtin.include_tasks": str(ROLE / "tasks" / "hooks.yml"),
                },
                {
                    "name": "Write what the test reads",
                    "ansible.builtin.copy": {
                        "dest": str(out),
                        "mode": "0600",
                        "content": "{{ {'checkouts': __dev_cleanup_checkouts,"
                        " 'refused': __dev_cleanup_checkouts_refused | map(attribute='path'),"
                        " 'app': __dev_cleanup_app_hooks | map(attribute='command'),"
                        " 'other': __dev_cleanup_other_hooks | map(attribute='command'),"
                        " 'disabled': __dev_cleanup_disabled | map(attribute='command')}"
                        " | to_json }}",
                    },
                    "check_mode": False,
                },
            ],
        }
    ]
    (work / "play.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    (work / "inventory.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {"local-host": {}},
                    "vars": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": sys.executable,
                    },
                }
            }
        )
    )
    # Extra vars: above the role vars loaded by vars_files.
    paths = {
        "__dev_cleanup_unit_dir": str(work / "units"),
        "__dev_cleanup_cron_dirs": [str(work / "spool"), str(work / "cron.d")],
        "__dev_cleanup_hook_files": [str(work / "crontab"), str(work / "rc.local")],
    }
    (work / "paths.json").write_text(json.dumps(paths))
    proc = run_playbook(work, "play.yml", "--check", "-vvv", extra_vars="paths.json")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc, json.loads(out.read_text())


def test_m6_role_uses_no_root_home_or_system_dir_as_checkout(role_run):
    _, out = role_run
    assert out["checkouts"] == ["/home/bob/shop"]
    assert sorted(out["refused"]) == ["/", "/home/bob", "/root", "/usr/lib/node_modules"]


def test_m6_hooks_of_root_and_of_units_without_a_directory_stay_anothers(role_run):
    _, out = role_run
    # Only the line that runs in the old checkout is the app's; with "/" or "/root" as a
    # checkout, the unit (dirs ["/"]) and root's first @reboot line (dirs ["/root"]) were.
    assert out["app"] == ["cd /home/bob/shop && API_TOKEN=*** pnpm dev"]
    assert out["disabled"] == out["app"]
    assert sorted(out["other"]) == [
        "/usr/bin/env SESSION_SECRET=*** npm run dev",
        "DATABASE_URL=*** pnpm dev",
    ]


def test_l8_verbose_run_prints_no_secret_of_the_hook_lines(role_run):
    proc, out = role_run
    text = proc.stdout + proc.stderr
    assert "TASK [Find the boot hooks and decide which are the app's]" in text, text[-3000:]
    assert SECRET not in text
    for content in (CRONTAB, UNIT):
        assert base64.b64encode(content.encode()).decode() not in text
    assert SECRET not in json.dumps(out)
