"""Compare a diagnosis before a run with the one after: regressions, improvements, verdict.

The design's regression rules: a probe that passed before fails now; a new critical
finding; restarts the run's own reloads do not explain. Resource pressure (memory, disk,
load) right after a build is never a regression.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.findings import (
    CRITICAL,
    RESOURCE_CODES,
    WARNING,
    auto_restarted,
    unstable_restarts,
)

VERDICTS = ("improved", "unchanged", "regressed", "rolled_back", "failed")
OUTCOMES = ("rolled_back", "put_back", "failed", "failed_live")

Diagnosis = Mapping[str, Any]


def _findings(diag: Diagnosis | None) -> list[Mapping[str, Any]]:
    return list((diag or {}).get("findings") or [])


def _probes(diag: Diagnosis | None) -> list[Mapping[str, Any]]:
    return list((diag or {}).get("probes") or [])


def _probe_key(p: Mapping[str, Any]) -> tuple[str, str]:
    return (str(p.get("via", "direct")), str(p.get("path")))


def _probe_answer(p: Mapping[str, Any]) -> Any:
    return p.get("status") if p.get("status") is not None else (p.get("error") or "no answer")


def _pm2_processes(diag: Diagnosis | None) -> list[Mapping[str, Any]] | None:
    """The app's PM2 processes, [] when no PM2 runs, None when PM2 could not be asked."""
    pm2 = ((diag or {}).get("facts") or {}).get("pm2")
    if not isinstance(pm2, Mapping) or pm2.get("error"):
        return None
    return [p for p in pm2.get("processes") or [] if not p.get("is_module")]


def _issue_counts(diag: Diagnosis | None) -> dict[str, int]:
    found = _findings(diag)
    return {
        "critical": sum(1 for f in found if f.get("severity") == CRITICAL),
        "warning": sum(1 for f in found if f.get("severity") == WARNING),
        "failed_probes": sum(1 for p in _probes(diag) if not p.get("ok")),
    }


def probe_regressions(before: Diagnosis, after: Diagnosis) -> list[dict[str, Any]]:
    passed = {_probe_key(p): p for p in _probes(before) if p.get("ok")}
    out = []
    for p in _probes(after):
        prev = passed.get(_probe_key(p))
        if prev is not None and not p.get("ok"):
            out.append(
                {
                    "kind": "probe",
                    "via": p.get("via"),
                    "path": p.get("path"),
                    "before": _probe_answer(prev),
                    "after": _probe_answer(p),
                    "summary": f"GET {p.get('path')} via {p.get('via')} passed before "
                    f"({_probe_answer(prev)}), now {_probe_answer(p)}",
                }
            )
    return out


def finding_regressions(before: Diagnosis, after: Diagnosis) -> list[dict[str, Any]]:
    """Critical findings after whose code was not critical before (resource codes excepted)."""
    was_critical = {f.get("code") for f in _findings(before) if f.get("severity") == CRITICAL}
    out = []
    seen: set[str | None] = set()
    for f in _findings(after):
        code = f.get("code")
        if f.get("severity") != CRITICAL or code in RESOURCE_CODES:
            continue
        if code in was_critical or code in seen:
            continue
        seen.add(code)
        out.append(
            {
                "kind": "finding",
                "code": code,
                "summary": f"new critical finding {code}: {f.get('summary') or code}",
            }
        )
    return out


def restart_regressions(
    before: Diagnosis, after: Diagnosis, reloads: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """Restarts the run's own reloads do not explain.

    ``reloads`` is the number of process restarts the run caused on purpose (reloads x
    instances). Processes present before compare their ``restart_time``; a deliberate
    reload resets PM2's ``unstable_restarts``, so after a run that reloaded every unstable
    restart is new (less the one such a reload can leave itself, see
    findings.unstable_restarts), otherwise only an increase counts.
    """
    notes: list[str] = []
    prev_procs = _pm2_processes(before)
    now_procs = _pm2_processes(after)
    if prev_procs is None or now_procs is None:
        notes.append("PM2 state unknown before or after: restarts not compared")
        return [], notes
    prev = {(p.get("name"), p.get("pm_id")): p for p in prev_procs}
    restarts = 0
    unstable = 0
    for p in now_procs:
        old = prev.get((p.get("name"), p.get("pm_id")))
        rt = p.get("restart_time") or 0
        if old is None:
            # New since before: its restart_time may carry history (a resurrected dump,
            # earlier deploys), so only a crash since its last deliberate start counts.
            unstable += unstable_restarts(p)
            restarts += 1 if auto_restarted(p, unknown=False) else 0
            continue
        restarts += max(rt - (old.get("restart_time") or 0), 0)
        if reloads > 0:
            unstable += unstable_restarts(p)
        else:
            before_us = old.get("unstable_restarts") or 0
            unstable += max((p.get("unstable_restarts") or 0) - before_us, 0)
    out = []
    if unstable > 0:
        out.append(
            {
                "kind": "restarts",
                "unstable_restarts": unstable,
                "summary": f"{unstable} unstable restart(s) during the run "
                "(crashes soon after start)",
            }
        )
    if restarts > reloads:
        out.append(
            {
                "kind": "restarts",
                "restarts": restarts,
                "expected": reloads,
                "summary": f"{restarts} restart(s) during the run, "
                f"{reloads} expected from its reloads",
            }
        )
    return out, notes


def improvements(before: Diagnosis, after: Diagnosis) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    failed_before = {_probe_key(p): p for p in _probes(before) if not p.get("ok")}
    for p in _probes(after):
        old = failed_before.get(_probe_key(p))
        if old is not None and p.get("ok"):
            out.append(
                {
                    "kind": "probe",
                    "via": p.get("via"),
                    "path": p.get("path"),
                    "summary": f"GET {p.get('path')} via {p.get('via')} now passes "
                    f"(was {_probe_answer(old)})",
                }
            )
    after_codes = {f.get("code") for f in _findings(after)}
    for f in _findings(before):
        if f.get("code") not in after_codes and f.get("severity") in (CRITICAL, WARNING):
            out.append(
                {
                    "kind": "finding",
                    "code": f.get("code"),
                    "summary": f"resolved: {f.get('summary') or f.get('code')}",
                }
            )
    return out


def compare(
    before: Diagnosis | None,
    after: Diagnosis | None,
    reloads: int = 0,
    outcome: str | None = None,
) -> dict[str, Any]:
    """``{regressions, improvements, verdict, counts, notes}`` for two diagnoses.

    ``before``/``after`` are diagnose results (``findings``, ``probes``, ``facts``).
    ``outcome`` (one of ``OUTCOMES``), set by the playbook after a failed run, overrides the
    verdict: rolled back to the release live before; put back the processes the run stopped;
    failed with nothing live changed; failed after switching, with nothing to go back to.
    """
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    try:
        reloads = int(reloads)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"reloads must be an integer, got {reloads!r}") from exc
    if reloads < 0:
        raise ValueError(f"reloads must be >= 0, got {reloads}")
    before = before or {}
    after = after or {}
    restart_regs, notes = restart_regressions(before, after, reloads)
    regressions = (
        probe_regressions(before, after) + finding_regressions(before, after) + restart_regs
    )
    counts = {"before": _issue_counts(before), "after": _issue_counts(after)}
    b, a = counts["before"], counts["after"]
    if outcome:
        verdict = outcome
    elif regressions:
        verdict = "regressed"
    elif (a["critical"] + a["warning"] < b["critical"] + b["warning"]) or (
        a["failed_probes"] < b["failed_probes"]
    ):
        verdict = "improved"
    else:
        verdict = "unchanged"
    return {
        "regressions": regressions,
        "improvements": improvements(before, after),
        "verdict": verdict,
        "counts": counts,
        "notes": notes,
    }
