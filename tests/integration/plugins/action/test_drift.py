"""The ``drift`` action plugin and ``system_packages``, run by a real ansible-playbook on
this machine: a file stated once (path, template or copy or content, owner, group, mode)
is written by Ansible's own template and copy modules, and the action plugin, which
computes each SHA-1 on the control node, then finds no drift; a change to what the
template renders, to the mode or to the content is found. system_packages asks the real
dpkg."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.hk_testlib import run_playbook

PLAYBOOK = """
- name: State files once, write them, read their drift
  hosts: all
  gather_facts: false
  vars:
    greeting: hello
    files:
      - {path: "{{ dest }}/site.conf", template: site.conf.j2, mode: "0640"}
      - {path: "{{ dest }}/script.sh", file: script.sh, mode: "0755"}
      - {path: "{{ dest }}/note.txt", content: "a note\\n", mode: "0644", validate: "true %s"}
  tasks:
    - name: Write the templates
      ansible.builtin.template:
        src: "{{ item.template }}"
        dest: "{{ item.path }}"
        mode: "{{ item.mode }}"
      loop: "{{ files | selectattr('template', 'defined') }}"
    - name: Copy the files and contents
      ansible.builtin.copy:
        src: "{{ item.file | default(omit) }}"
        content: "{{ item.content | default(omit) }}"
        dest: "{{ item.path }}"
        mode: "{{ item.mode }}"
      loop: "{{ files | rejectattr('template', 'defined') }}"
    - name: Read the drift as written
      hardenkit.nodeapp.drift:
        paths: "{{ files }}"
      register: as_written
    - name: Read the drift of other wishes
      hardenkit.nodeapp.drift:
        paths:
          - {path: "{{ dest }}/site.conf", template: site.conf.j2, mode: "0640"}
          - {path: "{{ dest }}/script.sh", file: script.sh, mode: "0700"}
          - {path: "{{ dest }}/note.txt", content: "another note\\n"}
      vars:
        greeting: goodbye
      register: other
    - name: Ask dpkg about packages, in check mode (nothing is installed)
      hardenkit.nodeapp.system_packages:
        names: [dpkg, hk-no-such-package]
      check_mode: true
      register: pkgs_check
    - name: Ask dpkg about an installed package
      hardenkit.nodeapp.system_packages:
        names: [dpkg]
      register: pkgs
    - name: Keep the results
      ansible.builtin.copy:
        content: >-
          {{ {'as_written': as_written, 'other': other, 'pkgs_check': pkgs_check,
              'pkgs': pkgs} | to_json }}
        dest: "{{ out }}"
        mode: "0600"
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("drift")
    (work / "templates").mkdir()
    (work / "templates" / "site.conf.j2").write_text(
        "server {{ greeting }};\n# {{ ansible_managed }}\n"
    )
    (work / "files").mkdir()
    (work / "files" / "script.sh").write_text("#!/bin/sh\necho hi\n")
    dest = work / "dest"
    dest.mkdir()
    (work / "inventory.yml").write_text(
        "all:\n  hosts:\n    local-host:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    (work / "vars.json").write_text(json.dumps({"dest": str(dest), "out": str(work / "out.json")}))
    (work / "play.yml").write_text(PLAYBOOK)
    run = run_playbook(work, "play.yml")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return json.loads((work / "out.json").read_text())


def test_files_written_by_ansible_do_not_drift(results):
    assert results["as_written"]["drift"] == [], results["as_written"]["reasons"]


def test_a_changed_template_mode_or_content_drifts(results):
    reasons = results["other"]["reasons"]
    assert [Path(p).name for p in results["other"]["drift"]] == [
        "site.conf",
        "script.sh",
        "note.txt",
    ]
    assert [reasons[p] for p in results["other"]["drift"]] == [["content"], ["mode"], ["content"]]


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="no dpkg on this machine")
def test_system_packages_asks_dpkg_and_reports_what_is_missing(results):
    check = results["pkgs_check"]
    assert check["changed"] is True and check["missing"] == ["hk-no-such-package"]
    assert list(check["versions"]) == ["dpkg"]
    assert results["pkgs"]["changed"] is False and results["pkgs"]["missing"] == []
    assert results["pkgs"]["versions"]["dpkg"][0].isdigit()
