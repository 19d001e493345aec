"""The fleet summary: one row per host of a play, from each host's report of this run.

``report_summary`` reduces one host's report (the document tasks/report.yml writes) to the
few fields a fleet table shows; the write_report action returns it for report.yml.
``fleet_summary`` lines up those summaries for every host of the play, in the play's
order, with a row for each host the run did not diagnose (not reached: a rollout stopped
before it, or it was unreachable) showing what is known of it, and the totals: hosts,
verdicts, and which hosts run which release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.compare import (
    VERDICTS,
    finding_regressions,
    probe_regressions,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pm2 import app_processes

# Every row has these keys, reached or not, so readers of the JSON need no special case.
ROW_KEYS = (
    "host",
    "reached",
    "app",
    "generated_at",
    "verdict",
    "outcome",
    "critical",
    "warning",
    "failed_probes",
    "codes",
    "release",
    "pm2_restarts",
    "regressions",
    "report",
)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def pm2_restarts(diag: Mapping[str, Any] | None, app_name: str | None) -> int | None:
    """Sum of ``restart_time`` over the app's PM2 processes; None when PM2 could not be
    asked or runs none of the app's processes (nothing to count, which is not zero)."""
    pm2 = _mapping(_mapping(_mapping(diag).get("facts")).get("pm2"))
    if not pm2 or pm2.get("error"):
        return None
    procs = app_processes(pm2.get("processes"), app_name)
    if not procs:
        return None
    total = 0
    for proc in procs:
        try:
            total += int(proc.get("restart_time") or 0)
        except (TypeError, ValueError):
            continue
    return total


def _why(report: Mapping[str, Any]) -> list[str]:
    """The report's regressions, and those of the release it rolled back from
    (``failed_release``, diagnosed before the rollback): after a rollback the diagnosis
    after shows the previous release again, so the reason is there. Probes and findings
    only; restarts need the run's reload count, which only the report's own comparison
    had."""
    found = list(report.get("regressions") or [])
    failed = report.get("failed_release")
    if isinstance(failed, Mapping):
        before = _mapping(report.get("before"))
        found += probe_regressions(before, failed) + finding_regressions(before, failed)
    out: list[str] = []
    for g in found:
        text = str(_mapping(g).get("summary") or _mapping(g).get("kind") or "?")
        if text not in out:
            out.append(text)
    return out


def report_summary(report: Mapping[str, Any], path: str | None = None) -> dict[str, Any]:
    """One host's report in a fleet row: verdict; findings, release and PM2 restarts as
    the diagnosis after the run saw them (else the one before: a diagnosis-only run, or a
    run that stopped before a diagnosis after); ``path`` is the host's own report."""
    if not isinstance(report, Mapping) or "verdict" not in report:
        raise ValueError("expected a report (the document tasks/report.yml writes)")
    after = report.get("after")
    has_after = isinstance(after, Mapping)
    seen = after if isinstance(after, Mapping) else _mapping(report.get("before"))
    counts = _mapping(_mapping(report.get("counts")).get("after" if has_after else "before"))
    release = _mapping(report.get("release"))
    codes: list[str] = []
    for finding in seen.get("findings") or []:
        code = _mapping(finding).get("code")
        if code and code not in codes:
            codes.append(str(code))
    return {
        "host": report.get("host"),
        "reached": True,
        "app": report.get("app"),
        "generated_at": report.get("generated_at"),
        "verdict": report.get("verdict"),
        "outcome": report.get("outcome") or None,
        "critical": int(counts.get("critical") or 0),
        "warning": int(counts.get("warning") or 0),
        "failed_probes": int(counts.get("failed_probes") or 0),
        "codes": codes,
        "release": {
            "live": release.get("after" if has_after else "before") or None,
            "attempted": release.get("attempted") or None,
            "before": release.get("before") or None,
        },
        "pm2_restarts": pm2_restarts(seen, report.get("app")),
        "regressions": _why(report),
        "report": path or None,
    }


def _not_reached(host: str, release: str | None) -> dict[str, Any]:
    return {
        "host": host,
        "reached": False,
        "app": None,
        "generated_at": None,
        "verdict": None,
        "outcome": None,
        "critical": None,
        "warning": None,
        "failed_probes": None,
        "codes": [],
        "release": {"live": release or None, "attempted": None, "before": release or None},
        "pm2_restarts": None,
        "regressions": [],
        "report": None,
    }


def fleet_summary(
    hosts: Sequence[str],
    summaries: Sequence[Mapping[str, Any] | None],
    releases_at_start: Sequence[str | None] | None = None,
    generated_at: str | None = None,
    app: str | None = None,
) -> dict[str, Any]:
    """``{generated_at, app, hosts: [row, ...], totals}`` for ``hosts``, in their order.

    ``summaries[i]`` is host i's ``report_summary`` of this run, or None when the run did
    not diagnose it; ``releases_at_start[i]`` is the release live on it when the run
    started (a playbook may read it before a rollout), shown for a host not reached.
    ``totals``: ``{hosts, reached, not_reached, verdicts: {verdict: n}, releases:
    [{release, hosts}], release_unknown: [host]}``: verdicts in the report's order,
    releases in order of first appearance (None: no release live).
    """
    hosts = [str(h) for h in hosts]
    if isinstance(summaries, (str, bytes, Mapping)) or len(summaries) != len(hosts):
        raise ValueError(f"expected one summary (or none) per host: {len(hosts)} host(s)")
    starts = list(releases_at_start or [None] * len(hosts))
    if len(starts) != len(hosts):
        raise ValueError(f"expected one release at start (or none) per host: {len(hosts)} host(s)")
    rows: list[dict[str, Any]] = []
    for host, summary, start in zip(hosts, summaries, starts, strict=True):
        if summary is None or summary == "":
            rows.append(_not_reached(host, str(start) if start else None))
            continue
        if not isinstance(summary, Mapping):
            raise ValueError(f"the summary of {host} is not a mapping: {summary!r}")
        row = {key: summary.get(key) for key in ROW_KEYS}
        row.update(host=host, reached=True)
        row["codes"] = list(row["codes"] or [])
        row["regressions"] = list(row["regressions"] or [])
        row["release"] = {
            "live": _mapping(summary.get("release")).get("live") or None,
            "attempted": _mapping(summary.get("release")).get("attempted") or None,
            "before": _mapping(summary.get("release")).get("before") or None,
        }
        rows.append(row)

    verdicts_seen = [str(r["verdict"]) for r in rows if r["reached"]]
    order = [*VERDICTS, *sorted(set(verdicts_seen) - set(VERDICTS))]
    verdicts = {v: verdicts_seen.count(v) for v in order if v in verdicts_seen}
    # Which hosts run which release. None is a host diagnosed with no release live; a host
    # not reached whose release was not read is listed apart, as unknown.
    releases: list[dict[str, Any]] = []
    unknown: list[str] = []
    for row in rows:
        live = row["release"]["live"]
        if live is None and not row["reached"]:
            unknown.append(row["host"])
            continue
        group = next((g for g in releases if g["release"] == live), None)
        if group is None:
            releases.append({"release": live, "hosts": [row["host"]]})
        else:
            group["hosts"].append(row["host"])
    reached = sum(1 for r in rows if r["reached"])
    return {
        "generated_at": generated_at,
        "app": app,
        "hosts": rows,
        "totals": {
            "hosts": len(rows),
            "reached": reached,
            "not_reached": len(rows) - reached,
            "verdicts": verdicts,
            "releases": releases,
            "release_unknown": unknown,
        },
    }
