"""The strategy ansible.cfg selects: hardenkit.nodeapp.mitogen_linear.

Real ansible-playbook runs on the local connection: with Mitogen installed the tasks run
inside Mitogen's interpreter; without it (a stand-in package that fails to import) the
plugin is the linear strategy and says so.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hk_testlib import ROOT

STRATEGY = "hardenkit.nodeapp.mitogen_linear"

PLAYBOOK = """\
- name: Where do tasks run
  hosts: all
  gather_facts: false
  tasks:
    - name: Name the process that runs the module
      ansible.builtin.shell: tr '\\0' ' ' < /proc/$PPID/cmdline
      register: parent
      changed_when: false
    - name: Print it
      ansible.builtin.debug:
        msg: "PARENT={{ parent.stdout }}"
"""


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[name.split("[", 1)[0].lower()] = version
    return out


def run(
    tmp_path: Path, strategy: str, pythonpath: str | None = None, playbook: str = PLAYBOOK
) -> subprocess.CompletedProcess:
    (tmp_path / "pb.yml").write_text(playbook)
    (tmp_path / "inventory.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "here": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                        }
                    }
                }
            }
        )
    )
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_CONFIG": str(tmp_path / "none.cfg"),
        "ANSIBLE_STRATEGY": strategy,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
    }
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory.yml", "pb.yml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def parent_of_module(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [ln for ln in result.stdout.splitlines() if '"msg": "PARENT=' in ln]
    assert len(lines) == 1, result.stdout
    return lines[0]


def test_the_strategy_is_opt_in_and_mitogen_is_pinned():
    """linear stays the default (a Molecule run hung once under Mitogen, docs/scaling.md)."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "ansible.cfg")
    assert "strategy" not in cfg["defaults"]
    pinned = pins(ROOT / "requirements.txt")["mitogen"]
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert f"mitogen=={pinned}" in ee["dependencies"]["python"]
    # The plugin ships in the collection, so an installed collection can use it too.
    assert (ROOT / "plugins" / "strategy" / "mitogen_linear.py").is_file()


def test_tasks_run_inside_mitogen(tmp_path):
    result = run(tmp_path, STRATEGY)
    assert "mitogen:" in parent_of_module(result)
    assert "Mitogen for Ansible is not available" not in result.stdout + result.stderr


def test_linear_runs_each_module_in_its_own_python(tmp_path):
    """The comparison the check above needs: plain linear is not Mitogen."""
    assert "mitogen:" not in parent_of_module(run(tmp_path, "ansible.builtin.linear"))


def test_a_play_on_the_control_node_runs_as_linear(tmp_path):
    """``connection: local`` as a play keyword (Molecule's create and destroy playbooks):
    Mitogen's async runner never finishes community.docker's modules there."""
    playbook = PLAYBOOK.replace(
        "  gather_facts: false\n", "  gather_facts: false\n  connection: local\n"
    )
    assert "connection: local" in playbook
    assert "mitogen:" not in parent_of_module(run(tmp_path, STRATEGY, playbook=playbook))


@pytest.mark.parametrize(
    "failure",
    [
        "raise ImportError('no Mitogen here')",
        "from ansible.errors import AnsibleError\n"
        "raise AnsibleError('Mitogen refuses this Ansible')",
    ],
)
def test_without_mitogen_it_is_linear_with_a_warning(tmp_path, failure):
    fake = tmp_path / "fake"
    (fake / "ansible_mitogen").mkdir(parents=True)
    (fake / "ansible_mitogen" / "__init__.py").write_text(failure + "\n")
    result = run(tmp_path, STRATEGY, pythonpath=str(fake))
    assert "mitogen:" not in parent_of_module(result)
    output = " ".join((result.stdout + result.stderr).split())
    assert "Mitogen for Ansible is not available" in output
    assert "running the linear strategy" in output
