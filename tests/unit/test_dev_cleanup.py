"""dev_cleanup: which old checkouts may scope the app (M6), and what its output shows (L8).

- M6: ``classify.checkout_refusal`` over a table of directories; the ``split_checkouts``
  filter; and the role's own tasks (find.yml's "Record the old checkouts", then hooks.yml)
  run by ``ansible-playbook --check`` on the local host, every hook path in a temporary
  directory: dev processes that ran in ``/``, ``/root`` or ``/home/bob`` give no checkout,
  so a unit without ``WorkingDirectory=`` and root's ``@reboot`` line stay another's.
- L8: the tasks whose arguments or results hold raw hook lines or command lines are
  ``no_log``; the same run at ``-vvv`` prints no secret of the hook lines, and the
  commands it keeps for the report are masked by the ``redact_text`` filter.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from hk_testlib import run_playbook

from ansible_collections.hardenkit.nodeapp.plugins.filter.dev_cleanup import (
    FilterModule,
    redact_text,
    split_checkouts,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.classify import (
    checkout_refusal,
)

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "dev_cleanup"
HOMES = ["/root", "/home/bob", "/var/www", "/nonexistent", "/srv/deploy", "/usr/sbin"]


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --- M6: the rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/", "the root directory"),
        ("//", "the root directory"),
        ("/root", "a user's home directory"),
        ("/root/", "a user's home directory"),
        ("/home/bob", "a user's home directory"),
        ("/home/alice", "a user's home directory"),  # /home/<x>, in passwd or not
        ("/srv/deploy", "a user's home directory"),  # a passwd home elsewhere
        ("/var/www", "a user's home directory"),  # www-data's
        ("/home", "a directory shared by the system or its users"),
        ("/srv", "a directory shared by the system or its users"),
        ("/opt", "a directory shared by the system or its users"),
        ("/tmp", "a directory shared by the system or its users"),
        ("/var", "a directory shared by the system or its users"),
        ("/usr/local", "a directory shared by the system or its users"),
        ("/usr", "inside the system directory /usr"),
        ("/usr/lib/node_modules", "inside the system directory /usr"),
        ("/etc", "inside the system directory /etc"),
        ("/etc/nginx", "inside the system directory /etc"),
        ("/var/lib/docker", "inside the system directory /var/lib"),
        ("/proc/1/cwd", "inside the system directory /proc"),
        ("relative/dir", "not an absolute path"),
        ("/srv/../etc", "has a '..' component"),
        ("/srv/apps", "holds /srv/apps/workbot, so more than the app's checkout"),
    ],
)
def test_m6_checkout_refused(path, reason):
    assert checkout_refusal(path, HOMES, ["/srv/apps/workbot"]) == reason


@pytest.mark.parametrize(
    "path",
    [
        "/home/bob/shop",
        "/root/workbot",
        "/opt/old-checkout",
        "/srv/shop",
        "/srv/apps/workbot",  # the app root itself (find.yml drops it before)
        "/var/www/shop",
        "/tmp/workbot",
        "/workspace/projects",
    ],
)
def test_m6_checkout_accepted(path):
    assert checkout_refusal(path, HOMES, ["/srv/apps/workbot"]) is None


def test_m6_split_checkouts_filter_reads_getent():
    getent = {
        "root": ["x", "0", "0", "root", "/root", "/bin/bash"],
        "bob": ["x", "1000", "1000", "", "/data/bob", "/bin/bash"],
    }
    out = split_checkouts(
        ["/", "/data/bob", "/data/bob/shop", "/data/bob/shop/", "/root"], getent, "/srv/workbot"
    )
    assert out["checkouts"] == ["/data/bob/shop"]
    assert out["refused"] == [
        {"path": "/", "reason": "the root directory"},
        {"path": "/data/bob", "reason": "a user's home directory"},
        {"path": "/root", "reason": "a user's home directory"},
    ]
    assert split_checkouts([], None) == {"checkouts": [], "refused": []}
    with pytest.raises(AnsibleFilterError, match="expected a list of paths"):
        split_checkouts("/home/bob/shop", getent)


def test_filters_registered():
    assert set(FilterModule().filters()) == {"split_checkouts", "redact_text"}


# --- L8: what the role prints -----------------------------------------------------------------


def test_l8_redact_text_filter_masks_hook_lines():
    line = "@reboot root DATABASE_URL=postgres://wb:S3cretPw@db/wb pnpm dev --token tok123"
    out = redact_text(line)
    assert "S3cretPw" not in out and "tok123" not in out
    assert out.endswith("pnpm dev --token ***")
    assert redact_text([line, "pnpm dev"])[1] == "pnpm dev"
    assert redact_text(None) is None


# Tasks whose arguments or results hold raw hook lines or a port holder's command line.
NO_LOG_TASKS = {
    "hooks.yml": [
        "Find the boot hooks and decide which are the app's",
        "Record the app's hooks",
        "Comment out the app's @reboot and rc.local lines",
        "Record the disabled hooks",
    ],
    "takeover.yml": [
        "Read the command lines of the app's processes on the port",
        "Stop the app's processes on the port",
    ],
}


@pytest.mark.parametrize(("file", "name"), [(f, n) for f, ns in NO_LOG_TASKS.items() for n in ns])
def test_l8_tasks_holding_raw_lines_are_no_log(file, name):
    (task,) = [t for t in load(ROLE / "tasks" / file) if t["name"] == name]
    assert task.get("no_log") is True


def test_l8_messages_built_from_commands_are_redacted():
    takeover = (ROLE / "tasks" / "takeover.yml").read_text(encoding="utf-8")
    hooks = (ROLE / "tasks" / "hooks.yml").read_text(encoding="utf-8")
    report = (ROLE / "tasks" / "report.yml").read_text(encoding="utf-8")
    assert "h.process | default('unknown', true) | hardenkit.nodeapp.redact_text" in takeover
    assert "map('hardenkit.nodeapp.redact_text')" in takeover  # the takeover's failure
    # The command kept for the report: masked by boot_hooks with the role's env regex
    # (module_utils/hooks.py, mask_command: then redact.redact_text, the filter's rules).
    assert 'env_regex: "{{ __dev_cleanup_env_re }}"' in hooks
    assert "item.cmdline | default(item.command) | hardenkit.nodeapp.redact_text" in report


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


# --- L12: the role limits the package scope -----------------------------------------------


@pytest.mark.parametrize("file", ["find.yml", "stop.yml", "takeover.yml"])
def test_l12_role_passes_package_users_to_reap_processes(file):
    tasks = [t for t in load(ROLE / "tasks" / file) if "hardenkit.nodeapp.reap_processes" in t]
    assert tasks
    for task in tasks:
        args = task["hardenkit.nodeapp.reap_processes"]
        assert args["scope_package_users"] == "{{ __dev_cleanup_package_users }}"
    scope = (ROLE / "tasks" / "scope.yml").read_text(encoding="utf-8")
    assert "__dev_cleanup_package_users:" in scope and "[app_user, 'root']" in scope
