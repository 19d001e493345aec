"""compare: each regression kind, what never counts as one, and the verdicts."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.compare import compare
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pm2 import parse_jlist
from tests.hk_testlib import fixture_text

NOW_MS = 1770717600000


def probe(path, via="direct", status=200, expected=200, error=None):
    return {
        "path": path,
        "via": via,
        "expected": expected,
        "status": status,
        "ok": status == expected,
        "error": error,
    }


def f(code, severity="critical"):
    return {"code": code, "severity": severity, "summary": f"{code} summary", "evidence": []}


def pm2(restarts=(3, 3), unstable=(0, 0), error=None, extra=()):
    procs = parse_jlist(fixture_text("pm2", "jlist_healthy.json"), NOW_MS)
    for p, r, u in zip(procs, restarts, unstable, strict=True):
        p["restart_time"] = r
        p["unstable_restarts"] = u
    procs += list(extra)
    return {"running": True, "error": error, "processes": None if error else procs}


def diag(findings=(), probes=None, pm2_facts=None):
    return {
        "facts": {"pm2": pm2_facts if pm2_facts is not None else pm2()},
        "findings": list(findings),
        "probes": probes if probes is not None else [probe("/"), probe("/api/health")],
    }


def kinds(result):
    return [r["kind"] for r in result["regressions"]]


def test_identical_diagnoses_are_unchanged():
    d = diag([f("no_log_rotation", "warning")])
    result = compare(d, copy.deepcopy(d))
    assert result["regressions"] == [] and result["improvements"] == []
    assert result["verdict"] == "unchanged"


def test_probe_that_passed_now_fails():
    before = diag()
    after = diag(probes=[probe("/"), probe("/api/health", status=404)])
    result = compare(before, after)
    assert result["regressions"] == [
        {
            "kind": "probe",
            "via": "direct",
            "path": "/api/health",
            "before": 200,
            "after": 404,
            "summary": "GET /api/health via direct passed before (200), now 404",
        }
    ]
    assert result["verdict"] == "regressed"


def test_probe_that_failed_before_is_no_regression():
    before = diag(probes=[probe("/api/health", status=404)])
    after = diag(probes=[probe("/api/health", status=None, error="connection refused")])
    assert compare(before, after)["regressions"] == []


def test_probe_new_after_is_no_regression():
    before = diag(probes=[probe("/")])
    after = diag(probes=[probe("/"), probe("/", via="proxy", status=502)])
    assert compare(before, after)["regressions"] == []


def test_new_critical_finding():
    result = compare(diag(), diag([f("crash_loop")]))
    assert kinds(result) == ["finding"]
    assert result["regressions"][0]["code"] == "crash_loop"


def test_critical_already_there_is_no_regression():
    before = diag([f("route_failed"), f("dev_mode")])
    after = diag([f("route_failed")])
    result = compare(before, after)
    assert result["regressions"] == []
    assert result["verdict"] == "improved"


def test_new_warning_is_no_regression():
    assert compare(diag(), diag([f("log_errors", "warning")]))["regressions"] == []


@pytest.mark.parametrize("code", ["memory_high", "disk_high", "load_high"])
def test_resource_findings_never_regress(code):
    result = compare(diag(), diag([f(code, "critical")]))
    assert result["regressions"] == []
    assert result["verdict"] == "unchanged"


def test_warning_becoming_critical_is_a_regression():
    result = compare(diag([f("log_errors", "warning")]), diag([f("log_errors", "critical")]))
    assert kinds(result) == ["finding"]


def test_reload_explained_restarts():
    # a graceful reload of a 2-instance cluster restarts each worker once
    before = diag(pm2_facts=pm2(restarts=(3, 3)))
    after = diag(pm2_facts=pm2(restarts=(4, 4)))
    assert compare(before, after, reloads=2)["regressions"] == []


def test_restarts_beyond_the_reloads():
    before = diag(pm2_facts=pm2(restarts=(3, 3)))
    after = diag(pm2_facts=pm2(restarts=(4, 7)))
    result = compare(before, after, reloads=2)
    assert result["regressions"] == [
        {
            "kind": "restarts",
            "restarts": 5,
            "expected": 2,
            "summary": "5 restart(s) during the run, 2 expected from its reloads",
        }
    ]
    assert result["verdict"] == "regressed"


def test_unexpected_restarts_without_reloads():
    result = compare(diag(pm2_facts=pm2(restarts=(3, 3))), diag(pm2_facts=pm2(restarts=(3, 4))))
    assert kinds(result) == ["restarts"]


def test_unstable_restarts_increase():
    before = diag(pm2_facts=pm2(unstable=(0, 1)))
    after = diag(pm2_facts=pm2(unstable=(0, 2)))
    result = compare(before, after)
    assert result["regressions"][0]["unstable_restarts"] == 1


def test_unstable_restarts_after_a_reload_are_new():
    # a reload resets unstable_restarts, so any after the run are the new release's
    before = diag(pm2_facts=pm2(restarts=(3, 3), unstable=(2, 0)))
    after = diag(pm2_facts=pm2(restarts=(4, 4), unstable=(2, 0)))
    result = compare(before, after, reloads=2)
    assert [r.get("unstable_restarts") for r in result["regressions"]] == [2]


def test_the_unstable_restart_a_reload_leaves_is_not_a_regression():
    # PM2 reloads a worker that is not online (launching, waiting after a crash) through
    # its restart path: counters reset, then the stop counts as one unstable restart that
    # the new worker inherits. The fixture's workers were not restarted since their start.
    before = diag(pm2_facts=pm2(restarts=(9, 9), unstable=(1, 2)))
    after = diag(pm2_facts=pm2(restarts=(10, 10), unstable=(1, 1)))
    assert compare(before, after, reloads=2)["regressions"] == []
    # without a reload in the run the same count is measured against before: +1 is new
    grew = diag(pm2_facts=pm2(restarts=(9, 9), unstable=(1, 3)))
    assert kinds(compare(before, grew)) == ["restarts"]
    # one unstable restart and an automatic restart since the reload: a crash
    crashed = pm2(restarts=(10, 11), unstable=(1, 1))
    crashed["processes"][1]["pm_uptime"] = crashed["processes"][1]["created_at"] + 3_000
    result = compare(before, diag(pm2_facts=crashed), reloads=2)
    assert [r.get("unstable_restarts") for r in result["regressions"]] == [1, None]


def test_first_deploy_new_processes():
    before = diag(pm2_facts={"running": False, "error": None, "processes": None})
    assert compare(before, diag(pm2_facts=pm2(restarts=(0, 0))))["regressions"] == []
    # restart_time history of a process new since before (a resurrected dump) is not ours
    assert compare(before, diag(pm2_facts=pm2(restarts=(3, 3))))["regressions"] == []
    # but a crash since its start is
    crashed = pm2(restarts=(0, 1))
    crashed["processes"][1]["pm_uptime"] = crashed["processes"][1]["created_at"] + 30_000
    assert kinds(compare(before, diag(pm2_facts=crashed))) == ["restarts"]
    assert kinds(compare(before, diag(pm2_facts=pm2(unstable=(0, 2))))) == ["restarts"]


def test_pm2_modules_do_not_count():
    module = {
        "name": "pm2-logrotate",
        "pm_id": 2,
        "restart_time": 9,
        "unstable_restarts": 4,
        "is_module": True,
    }
    assert compare(diag(), diag(pm2_facts=pm2(extra=[module])))["regressions"] == []


def test_pm2_unknown_skips_restart_check_with_a_note():
    result = compare(diag(), diag(pm2_facts=pm2(error="pm2 jlist timed out after 20s")))
    assert result["regressions"] == []
    assert result["notes"] == ["PM2 state unknown before or after: restarts not compared"]


def test_incident_to_hardened_is_improved():
    before = diag(
        [
            f("duplicate_processes"),
            f("dev_mode"),
            f("build_missing"),
            f("route_failed"),
            f("no_process_manager"),
            f("app_exposed"),
            f("log_errors", "warning"),
            f("no_reverse_proxy", "warning"),
            f("no_log_rotation", "warning"),
        ],
        probes=[
            probe("/"),
            probe("/api/health", status=404),
            probe("/", "proxy", None, error="connection refused"),
            probe("/api/health", "proxy", None, error="connection refused"),
        ],
        pm2_facts={"running": False, "error": None, "processes": None},
    )
    after = diag(
        [f("log_errors", "warning"), f("load_high", "warning")],
        probes=[
            probe("/"),
            probe("/api/health"),
            probe("/", "proxy"),
            probe("/api/health", "proxy"),
        ],
        pm2_facts=pm2(restarts=(0, 0)),
    )
    result = compare(before, after, reloads=0)
    assert result["verdict"] == "improved"
    assert result["regressions"] == []
    assert result["counts"] == {
        "before": {"critical": 6, "warning": 3, "failed_probes": 3},
        "after": {"critical": 0, "warning": 2, "failed_probes": 0},
    }
    resolved = {i.get("code") for i in result["improvements"] if i["kind"] == "finding"}
    assert resolved == {
        "duplicate_processes",
        "dev_mode",
        "build_missing",
        "route_failed",
        "no_process_manager",
        "app_exposed",
        "no_reverse_proxy",
        "no_log_rotation",
    }
    assert sum(1 for i in result["improvements"] if i["kind"] == "probe") == 3


def test_fewer_failed_probes_alone_is_improved():
    before = diag(probes=[probe("/"), probe("/api/health", status=404)])
    assert compare(before, diag())["verdict"] == "improved"


def test_regression_wins_over_improvement():
    before = diag([f("dev_mode"), f("duplicate_processes")])
    after = diag([f("crash_loop")])
    assert compare(before, after)["verdict"] == "regressed"


@pytest.mark.parametrize("outcome", ["rolled_back", "put_back", "failed", "failed_live"])
def test_outcome_overrides_verdict(outcome):
    result = compare(diag(), diag([f("crash_loop")]), outcome=outcome)
    assert result["verdict"] == outcome
    assert kinds(result) == ["finding"]  # the reasons are still reported


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outcome": "exploded"}, "outcome must be one of"),
        ({"reloads": -1}, "reloads must be >= 0"),
        ({"reloads": "two"}, "reloads must be an integer"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compare(diag(), diag(), **kwargs)


def test_missing_diagnoses_are_empty():
    assert compare(None, None)["verdict"] == "unchanged"
    assert compare({}, diag())["regressions"] == []
