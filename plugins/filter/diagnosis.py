# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Filters over diagnose results, for playbooks and report templates.

``diagnosis_compare``: ``before | hardenkit.nodeapp.diagnosis_compare(after, reloads=2)``
returns ``{regressions, improvements, verdict, counts, notes}`` (see
``module_utils/compare.py``); ``outcome='rolled_back'`` or ``'failed'`` overrides the verdict.

``finding_codes``: ``result.findings | hardenkit.nodeapp.finding_codes`` lists the codes;
``severity='critical'`` keeps one severity. A whole diagnose result is accepted too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.compare import compare


def diagnosis_compare(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    reloads: int = 0,
    outcome: str | None = None,
) -> dict[str, Any]:
    for name, value in (("before", before), ("after", after)):
        if value is not None and not isinstance(value, Mapping):
            raise AnsibleFilterError(
                f"diagnosis_compare: {name} must be a diagnose result (a dict), "
                f"got {type(value).__name__}"
            )
    try:
        return compare(before, after, reloads=reloads, outcome=outcome or None)
    except ValueError as exc:
        raise AnsibleFilterError(f"diagnosis_compare: {exc}") from exc


def finding_codes(findings: Any, severity: str | None = None) -> list[str]:
    if isinstance(findings, Mapping):
        findings = findings.get("findings") or []
    if not isinstance(findings, list):
        raise AnsibleFilterError(
            f"finding_codes: expected a list of findings, got {type(findings).__name__}"
        )
    codes: list[str] = []
    for idx, item in enumerate(findings):
        if not isinstance(item, Mapping) or "code" not in item:
            raise AnsibleFilterError(f"finding_codes: findings[{idx}] has no code")
        if severity and item.get("severity") != severity:
            continue
        if item["code"] not in codes:
            codes.append(item["code"])
    return codes


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"diagnosis_compare": diagnosis_compare, "finding_codes": finding_codes}
