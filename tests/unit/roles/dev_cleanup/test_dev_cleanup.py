"""dev_cleanup: which old checkouts may scope the app (M6), and what its output shows (L8).

- M6: ``classify.checkout_refusal`` over a table of directories; the ``split_checkouts``
  filter.
- L8: the tasks whose arguments or results hold raw hook lines or command lines are
  ``no_log``, and the commands it keeps for the report are masked by the ``redact_text``
  filter.

The role's own tasks, run by ``ansible-playbook``:
tests/integration/roles/dev_cleanup/test_dev_cleanup.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.filter.dev_cleanup import (
    FilterModule,
    redact_text,
    split_checkouts,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.classify import (
    checkout_refusal,
)

ROOT = Path(__file__).resolve().parents[4]
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


def test_a_checkout_inside_another_apps_root_on_the_machine_is_theirs():
    """Two apps on one machine: a dev process of this app's package under the other app's
    root (two instances of one source) does not make that tree this app's old checkout."""
    out = split_checkouts(
        ["/srv/admin/current", "/srv/admin", "/srv/administration/x", "/home/bob/shop"],
        None,
        "/srv/shop",
        ["/srv/admin/"],
    )
    assert out["checkouts"] == ["/home/bob/shop", "/srv/administration/x"]
    assert out["refused"] == [
        {
            "path": "/srv/admin",
            "reason": "inside /srv/admin, another app's directory on this machine",
        },
        {
            "path": "/srv/admin/current",
            "reason": "inside /srv/admin, another app's directory on this machine",
        },
    ]
    assert split_checkouts(["/srv/admin"], None, "/srv/shop", "/srv/admin")["checkouts"] == []
