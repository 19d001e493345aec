"""The diagnosis filter plugin (plugins/filter/diagnosis.py): finding_codes and
diagnosis_compare."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.filter.diagnosis import (
    FilterModule,
    diagnosis_compare,
    finding_codes,
)

# --- filter plugin --------------------------------------------------------------------------


FINDINGS = [
    {"code": "dev_mode", "severity": "critical", "summary": "", "evidence": []},
    {"code": "log_errors", "severity": "warning", "summary": "", "evidence": []},
    {"code": "dev_mode", "severity": "critical", "summary": "", "evidence": []},
]


def test_filters_registered():
    assert set(FilterModule().filters()) == {"diagnosis_compare", "finding_codes"}


def test_finding_codes():
    assert finding_codes(FINDINGS) == ["dev_mode", "log_errors"]
    assert finding_codes(FINDINGS, severity="warning") == ["log_errors"]
    assert finding_codes({"findings": FINDINGS, "facts": {}}) == ["dev_mode", "log_errors"]
    assert finding_codes([]) == []
    with pytest.raises(AnsibleFilterError, match=r"findings\[0\] has no code"):
        finding_codes([{"severity": "critical"}])
    with pytest.raises(AnsibleFilterError, match="expected a list"):
        finding_codes("dev_mode")


def test_diagnosis_compare_filter():
    before = {"findings": FINDINGS, "probes": [], "facts": {}}
    after = {"findings": FINDINGS[1:2], "probes": [], "facts": {}}
    assert diagnosis_compare(before, after)["verdict"] == "improved"
    assert diagnosis_compare(before, after, outcome="rolled_back")["verdict"] == "rolled_back"
    assert diagnosis_compare(before, after, reloads=2, outcome="")["verdict"] == "improved"
    with pytest.raises(AnsibleFilterError, match="outcome must be one of"):
        diagnosis_compare(before, after, outcome="nope")
    with pytest.raises(AnsibleFilterError, match="before must be a diagnose result"):
        diagnosis_compare(["x"], after)
