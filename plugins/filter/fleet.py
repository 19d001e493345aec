# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Filters for the fleet summary (roles/diagnostics/tasks/fleet.yml).

``report_summary``: ``report | hardenkit.nodeapp.report_summary(path)`` reduces one host's
report to its fleet row: verdict, critical/warning counts and finding codes, the release
live and the one attempted, PM2 restarts, the path of the host's report (see
``module_utils/fleet.py``).

``fleet_summary``: ``hosts | hardenkit.nodeapp.fleet_summary(summaries, releases_at_start,
generated_at=..., app=...)`` returns ``{generated_at, app, hosts, totals}``, one row per
host (``summaries[i]`` None: the run did not reach host i).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.module_utils import fleet


def report_summary(report: Mapping[str, Any], path: str | None = None) -> dict[str, Any]:
    try:
        return fleet.report_summary(report, path)
    except ValueError as exc:
        raise AnsibleFilterError(f"report_summary: {exc}") from exc


def fleet_summary(
    hosts: list[str],
    summaries: list[Mapping[str, Any] | None],
    releases_at_start: list[str | None] | None = None,
    generated_at: str | None = None,
    app: str | None = None,
) -> dict[str, Any]:
    if isinstance(hosts, (str, bytes, Mapping)):
        raise AnsibleFilterError(f"fleet_summary: hosts must be a list, got {hosts!r}")
    try:
        return fleet.fleet_summary(hosts, summaries, releases_at_start, generated_at, app)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"fleet_summary: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"report_summary": report_summary, "fleet_summary": fleet_summary}
