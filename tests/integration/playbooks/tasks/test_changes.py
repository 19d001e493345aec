"""The run's list of changes (playbooks/tasks/changes.yml, diagnostics_changes): the task
itself, run by ansible-playbook on two local hosts: one whose roles set nothing (every
default), one where every fact is set (``module_utils/changes.py`` over a table of runs:
tests/unit/plugins/module_utils/test_changes.py).
"""

from __future__ import annotations

import json
import sys

import yaml

from tests.hk_testlib import run_playbook
from tests.unit.plugins.module_utils.test_changes import NEW, OLD, PNPM, TASKS

# --- the task, run by ansible-playbook ---------------------------------------------------------

BUSY = {
    "app_release_switched": True,
    "app_release_live_id": OLD,
    "app_release_id": NEW,
    "pm2_reloads": 1,
    "dev_cleanup_result": {
        "stopped": [{"pid": 4034, "user": "root", "cmdline": PNPM}],
        "disabled": [{"kind": "cron", "unit": None, "file": "/var/spool/cron/crontabs/root"}],
    },
    "hardenkit_put_back": {
        "pm2_stopped": True,
        "current_removed": False,
        "started": [],
        "not_started": [],
    },
    "pm2_service_name": "pm2-workbot",
}


def test_task_run_by_ansible(tmp_path):
    """changes.yml on a host whose roles set nothing and on one where they did."""
    out = tmp_path / "out"
    out.mkdir()
    play = [
        {
            "name": "List the changes",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {"name": "List", "ansible.builtin.import_tasks": str(TASKS)},
                {
                    "name": "Write what the test reads",
                    "ansible.builtin.copy": {
                        "dest": f"{out}/{{{{ inventory_hostname }}}}.json",
                        "content": "{{ diagnostics_changes | to_json }}",
                        "mode": "0600",
                    },
                },
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {"quiet": {}, "busy": BUSY}
    (tmp_path / "inventory.yml").write_text(
        yaml.safe_dump({"all": {"hosts": hosts, "vars": local}})
    )
    (tmp_path / "vars.json").write_text("{}")
    proc = run_playbook(tmp_path, "play.yml")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert json.loads((out / "quiet.json").read_text()) == []
    assert json.loads((out / "busy.json").read_text()) == [
        f"release {OLD} -> {NEW}",
        "PM2 reloaded the app 1 time(s)",
        f"stopped pid 4034 (root): {PNPM}",
        "disabled boot hook: cron /var/spool/cron/crontabs/root",
        "PM2 unit pm2-workbot stopped and disabled: it did not serve the app",
    ]
