"""The run's report, end to end: the diagnostics role's report entry point run by
ansible-playbook, in check mode, on the scenario pair of
tests/unit/roles/diagnostics/test_report.py (which checks the document and the Markdown
template with Templar).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.compare import compare
from tests.hk_testlib import run_check_playbook, write_local_run
from tests.unit.roles.diagnostics.test_report import (
    CHANGES,
    I18N,
    REPORT_KEYS,
    SECRETS,
    make_report,
    render,
)

# The scenario pair: a module-scoped fixture, imported (``as``: used, not re-defined).
from tests.unit.roles.diagnostics.test_report import pair as pair

# --- the role, end to end ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def role_run(pair, tmp_path_factory) -> dict[str, Any]:
    """The report entry point run by ansible-playbook, in check mode, in Chinese (the
    English rendering is the same template: the Templar tests of
    tests/unit/roles/diagnostics/test_report.py)."""
    before, after = pair
    work = tmp_path_factory.mktemp("role")
    write_local_run(
        work,
        {"web-1": {"hardenkit_report_lang": "zh"}},
        {
            "diagnostics_before": before,
            "diagnostics_after": after,
            "diagnostics_changes": CHANGES,
            "pm2_reloads": 1,
        },
    )
    (work / "report.yml").write_text(
        "- name: Report\n"
        "  hosts: all\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Write the report\n"
        "      ansible.builtin.include_role:\n"
        "        name: hardenkit.nodeapp.diagnostics\n"
        "        tasks_from: report\n"
    )
    proc = run_check_playbook(work, "report.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"dir": work / "reports", "stdout": proc.stdout}


def test_role_end_to_end(role_run, pair):
    before, after = pair
    out = role_run["stdout"]
    for host, lang in (("web-1", "zh"),):
        d = role_run["dir"] / host
        stamped = sorted(p.name for p in d.iterdir() if not p.name.startswith("latest"))
        assert len(stamped) == 2, stamped
        stamp = stamped[0].rsplit(".", 1)[0]
        assert re.fullmatch(r"\d{8}T\d{6}Z", stamp)
        assert stamped == [f"{stamp}.json", f"{stamp}.md"]
        for ext in ("json", "md"):
            latest = d / f"latest.{ext}"
            assert latest.is_file() and not latest.is_symlink()
            assert latest.read_text() == (d / f"{stamp}.{ext}").read_text()
        doc = json.loads((d / "latest.json").read_text())
        assert set(doc) == REPORT_KEYS
        assert set(make_report(before, after)) == REPORT_KEYS
        assert (doc["host"], doc["app"], doc["verdict"]) == (host, "workbot", "improved")
        assert doc["generated_at"] == (
            f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"
        )
        assert doc["release"] == {"before": None, "after": "3f9a2c1b7e4d", "attempted": None}
        assert doc["before"] == before and doc["after"] == after
        assert doc["changed"] == CHANGES
        assert doc["tls"] == make_report(before, after)["tls"]
        expected = compare(before, after, reloads=2)  # 1 reload x 2 PM2 workers
        for key in ("regressions", "improvements", "verdict", "counts", "notes"):
            assert doc[key] == expected[key], key
        md = (d / "latest.md").read_text()
        assert md == render(doc, lang)
        for secret in SECRETS:
            assert secret not in md and secret not in (d / "latest.json").read_text()
        summary = I18N[lang]["summary"] % {
            "host": host,
            "verdict": I18N[lang]["verdicts"]["improved"],
            "code": "improved",
            "cb": 6,
            "ca": 0,
            "wb": 3,
            "wa": 0,
            "path": str(d / f"{stamp}.md"),
        }
        assert f'"msg": "{summary}"' in out
    # writing reports is not a change of the host, and check mode still writes them
    recap = out[out.index("PLAY RECAP") :]
    assert re.search(r"web-1 +: ok=\d+ +changed=0 +unreachable=0 +failed=0", recap), recap
