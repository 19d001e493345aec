"""The write_report action: real ansible-playbook runs.

The host is one Ansible cannot reach (ssh to a name that does not resolve): the action
writes on the control node and never connects, so the runs pass anyway.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.hk_testlib import ansible_env

PLAYBOOK = """\
- name: Write a report
  hosts: all
  gather_facts: false
  tasks:
    - name: Write it
      hardenkit.nodeapp.write_report:
        dir: "{{ out }}/{{ inventory_hostname }}"
        stem: "{{ stem }}"
        files:
          json: "{{ report | default({'host': inventory_hostname}) | to_nice_json }}"
          md: "# Report on {{ inventory_hostname }}"
        summarize: "{{ summarize | default(false) }}"
      register: written
    - name: Show the result
      ansible.builtin.debug:
        msg: "RESULT={{ written | to_json }}"
"""


def run(tmp_path: Path, *extra: str, stem: str = "20261129T050000Z"):
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    (tmp_path / "inventory.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "web1": {
                            "ansible_connection": "ssh",
                            "ansible_host": "unreachable.invalid",
                            "ansible_python_interpreter": sys.executable,
                        }
                    }
                }
            }
        )
    )
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "inventory.yml",
            "pb.yml",
            "-e",
            f"out={tmp_path / 'reports'}",
            "-e",
            f"stem={stem}",
            *extra,
        ],
        cwd=tmp_path,
        env=ansible_env(tmp_path),
        text=True,
        capture_output=True,
        timeout=120,
    )


def result(proc: subprocess.CompletedProcess) -> dict:
    line = next(ln for ln in proc.stdout.splitlines() if "RESULT=" in ln)
    return json.loads(line.split("RESULT=", 1)[1].rstrip('"').replace('\\"', '"'))


@pytest.mark.parametrize("extra", [(), ("--check", "--diff")], ids=["run", "check-mode"])
def test_writes_the_files_and_latest_copies_without_connecting(tmp_path, extra):
    proc = run(tmp_path, *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed=0" in proc.stdout and "unreachable=0" in proc.stdout
    host = tmp_path / "reports" / "web1"
    assert json.loads((host / "20261129T050000Z.json").read_text()) == {"host": "web1"}
    assert (host / "20261129T050000Z.md").read_text() == "# Report on web1\n"
    for ext in ("json", "md"):
        latest = host / f"latest.{ext}"
        assert not latest.is_symlink()
        assert latest.read_text() == (host / f"20261129T050000Z.{ext}").read_text()
        assert latest.stat().st_mode & 0o777 == 0o640
    assert host.stat().st_mode & 0o777 == 0o750
    assert [p.name for p in host.iterdir() if p.name.startswith(".")] == []  # no temp files
    out = result(proc)
    assert out["changed"] is False
    assert out["paths"] == {
        "json": str(host / "20261129T050000Z.json"),
        "md": str(host / "20261129T050000Z.md"),
    }


def test_a_second_report_replaces_latest_and_keeps_the_first(tmp_path):
    assert run(tmp_path).returncode == 0
    assert run(tmp_path, stem="20261129T060000Z").returncode == 0
    host = tmp_path / "reports" / "web1"
    assert sorted(p.name for p in host.iterdir()) == [
        "20261129T050000Z.json",
        "20261129T050000Z.md",
        "20261129T060000Z.json",
        "20261129T060000Z.md",
        "latest.json",
        "latest.md",
    ]


@pytest.mark.parametrize("stem", ["latest", "../escape", "a/b"])
def test_a_stem_that_is_not_a_plain_name_fails_naming_stem(tmp_path, stem):
    proc = run(tmp_path, stem=stem)
    assert proc.returncode != 0
    assert "stem must be a plain file name other than 'latest'" in proc.stdout
    assert not (tmp_path / "reports").exists()


REPORT = {
    "host": "web1",
    "app": "workbot",
    "generated_at": "2026-11-29T05:00:00Z",
    "verdict": "improved",
    "outcome": None,
    "release": {"before": None, "after": "3f9a", "attempted": "3f9a"},
    "before": {"findings": [{"code": "dev_mode"}], "facts": {}},
    "after": {"findings": [{"code": "log_errors"}], "facts": {}},
    "counts": {"before": {"critical": 1, "warning": 0}, "after": {"critical": 0, "warning": 1}},
}


def test_summarize_returns_the_fleet_row_of_the_report(tmp_path):
    (tmp_path / "vars.json").write_text(json.dumps({"report": REPORT, "summarize": True}))
    proc = run(tmp_path, "-e", f"@{tmp_path / 'vars.json'}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = result(proc)["summary"]
    assert summary["verdict"] == "improved" and summary["codes"] == ["log_errors"]
    assert (summary["critical"], summary["warning"]) == (0, 1)
    assert summary["release"] == {"live": "3f9a", "attempted": "3f9a", "before": None}
    assert summary["report"] == str(tmp_path / "reports" / "web1" / "20261129T050000Z.md")


def test_summarize_of_something_else_than_a_report_fails_before_writing(tmp_path):
    proc = run(tmp_path, "-e", "summarize=true")
    assert proc.returncode != 0
    assert "summarize needs files.json to be a report" in proc.stdout
    assert not (tmp_path / "reports").exists()


def test_without_summarize_there_is_no_summary(tmp_path):
    proc = run(tmp_path)
    assert proc.returncode == 0
    assert "summary" not in result(proc)
