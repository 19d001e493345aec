"""The fleet summary, end to end: the diagnostics role's fleet entry point run by
ansible-playbook over three local hosts in serial batches, on the fleet of
tests/unit/roles/diagnostics/test_fleet.py (which checks module_utils/fleet.py's document
and templates/fleet.md.j2 with Templar).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.fleet import report_summary
from tests.hk_testlib import run_check_playbook, write_local_run
from tests.unit.roles.diagnostics.test_fleet import HOSTS, LIVE, NEW, OLD, crashed, render

# The fleet's scenario pair: a module-scoped fixture, imported (``as``: used, not re-defined).
from tests.unit.roles.diagnostics.test_fleet import pair as pair
from tests.unit.roles.diagnostics.test_report import CHANGES

# --- the role, end to end ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet_run(pair, tmp_path_factory) -> dict[str, Any]:
    """report, then fleet, over three local hosts one batch at a time (serial: 1), in check
    mode: web-1 hardened, web-2 rolled back, web-3 ends before its report (not reached)."""
    incident, hardened = pair
    work = tmp_path_factory.mktemp("fleet")
    hosts = {
        "web-1": {
            "diagnostics_before": incident,
            "diagnostics_after": hardened,
            "diagnostics_changes": CHANGES,
            "diagnostics_release_attempted": LIVE,
        },
        "web-2": {
            "diagnostics_before": hardened,
            "diagnostics_after": hardened,
            "diagnostics_failed": crashed(hardened),
            "diagnostics_outcome": "rolled_back",
            "diagnostics_release_attempted": NEW,
        },
        "web-3": {"diagnostics_release_at_start": OLD},
    }
    write_local_run(work, hosts, {"hardenkit_report_lang": "zh", "pm2_reloads": 1})
    (work / "fleet.yml").write_text(
        "- name: Report and fleet\n"
        "  hosts: all\n"
        "  gather_facts: false\n"
        "  serial: 1\n"
        "  tasks:\n"
        "    - name: Stop before web-3, as a rollout that stopped\n"
        "      ansible.builtin.meta: end_host\n"
        "      when: inventory_hostname == 'web-3'\n"
        "    - name: Write the report\n"
        "      ansible.builtin.include_role:\n"
        "        name: hardenkit.nodeapp.diagnostics\n"
        "        tasks_from: report\n"
        "    - name: Write the fleet summary\n"
        "      ansible.builtin.include_role:\n"
        "        name: hardenkit.nodeapp.diagnostics\n"
        "        tasks_from: fleet\n"
    )
    proc = run_check_playbook(work, "fleet.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"dir": work / "reports", "stdout": proc.stdout}


def test_role_end_to_end(fleet_run, pair):
    d = fleet_run["dir"] / "fleet"
    stamped = sorted(p.name for p in d.iterdir() if not p.name.startswith("latest"))
    # one write per batch that reached a host; two in the same second share a name
    assert len(stamped) in (2, 4), stamped
    stamp = stamped[-1].rsplit(".", 1)[0]
    assert re.fullmatch(r"\d{8}T\d{6}Z", stamp)
    assert stamped[-2:] == [f"{stamp}.json", f"{stamp}.md"]
    for ext in ("json", "md"):
        latest = d / f"latest.{ext}"
        assert latest.is_file() and not latest.is_symlink()
        assert latest.read_text() == (d / f"{stamp}.{ext}").read_text()
    doc = json.loads((d / "latest.json").read_text())
    assert doc["generated_at"] == (
        f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"
    )
    assert doc["app"] == "workbot"
    # every host of the play, the ones of later batches and the one never reached included
    assert [h["host"] for h in doc["hosts"]] == HOSTS
    web1, web2, web3 = doc["hosts"]
    assert (web1["verdict"], web1["release"], web1["pm2_restarts"]) == (
        "improved",
        {"live": LIVE, "attempted": LIVE, "before": None},
        6,
    )
    assert (web2["verdict"], web2["release"]) == (
        "rolled_back",
        {"live": LIVE, "attempted": NEW, "before": LIVE},
    )
    assert any("crash_loop" in r for r in web2["regressions"])
    assert (web3["reached"], web3["release"]) == (
        False,
        {"live": OLD, "attempted": None, "before": OLD},
    )
    for row in (web1, web2):
        report = Path(row["report"])
        assert report.is_file() and report.parent == fleet_run["dir"] / row["host"]
        own = json.loads(report.with_suffix(".json").read_text())
        assert report_summary(own, str(report)) == row
    assert doc["totals"]["releases"] == [
        {"release": LIVE, "hosts": ["web-1", "web-2"]},
        {"release": OLD, "hosts": ["web-3"]},
    ]
    md = (d / "latest.md").read_text()
    assert md == render(doc, "zh")
    assert "[web-1/" in md and "](../web-1/" in md
    out = fleet_run["stdout"]
    assert str(d / f"{stamp}.md") in out
    # writing reports is not a change of any host, and check mode still writes them
    recap = out[out.index("PLAY RECAP") :]
    for host in HOSTS[:2]:
        assert re.search(rf"{host} +: ok=\d+ +changed=0 +unreachable=0 +failed=0", recap), recap
    assert not re.search(r"changed=[1-9]", recap), recap
