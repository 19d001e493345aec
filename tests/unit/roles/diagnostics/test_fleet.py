"""The fleet summary: module_utils/fleet.py's document and templates/fleet.md.j2.

Realistic data, as in test_report.py: the incident's broken server and the same host
hardened, diagnosed through module_utils, turned into reports by that file's make_report.
A fleet of three: web-1 improved, web-2 rolled back from the release it attempted, web-3
not reached (the rollout stopped before it). The Markdown is rendered with Ansible's own
templating; the role's fleet entry point run end to end by ansible-playbook:
tests/integration/roles/diagnostics/test_fleet.py.
"""

from __future__ import annotations

import copy
import json
import re
from contextlib import ExitStack
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.hardenkit.nodeapp.plugins.filter.fleet import (
    fleet_summary as fleet_filter,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.fleet import (
    ROW_KEYS,
    fleet_summary,
    report_summary,
)
from tests.unit.roles.diagnostics.test_report import (
    CHANGES,
    I18N,
    LANGS,
    ROLE,
    hardened_diagnosis,
    incident_diagnosis,
    keep,
    make_report,
    normalize,
)

TEMPLATE = ROLE / "templates" / "fleet.md.j2"
HOSTS = ["web-1", "web-2", "web-3"]
NEW = "9d8e7f6a5b4c"  # the release the rollout attempted
LIVE = "3f9a2c1b7e4d"  # the release of the pair's hardened host
OLD = "1a2b3c4d5e6f"  # what web-3 ran when the rollout started
STAMP = "2026-02-10T10:02:00Z"
REPORTS = "/srv/hk/reports"


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[dict, dict]:
    """(before, after): the broken server, then the same host hardened (test_report.py)."""
    base = tmp_path_factory.mktemp("scenarios")
    with ExitStack() as stack:
        before, before_ports = incident_diagnosis(base / "incident", stack)
        after, after_ports = hardened_diagnosis(base / "hardened", stack)
    return (
        keep(normalize(before, base / "incident", before_ports), None),
        keep(normalize(after, base / "hardened", after_ports), LIVE),
    )


def crashed(hardened: dict) -> dict:
    """The attempted release, diagnosed before its rollback: crash-looping, /api/health down."""
    out = copy.deepcopy(hardened)
    out["facts"]["release"] = NEW
    out["findings"].append(
        {
            "code": "crash_loop",
            "severity": "critical",
            "summary": "the app's PM2 processes keep restarting",
            "evidence": ["workbot (pm_id 0, online): 6 restarts, up only 1s since the last crash"],
        }
    )
    idx = next(i for i, p in enumerate(out["probes"]) if p["path"] == "/api/health")
    out["probes"][idx] = {**out["probes"][idx], "ok": False, "status": None, "error": "refused"}
    return out


def reports(pair) -> dict[str, dict]:
    """web-1 hardened by the run; web-2 rolled back from NEW to the release it ran before."""
    incident, hardened = pair
    improved = make_report(incident, hardened, changed=CHANGES, generated_at=STAMP)
    improved["release"]["attempted"] = LIVE
    rolled = make_report(
        hardened, hardened, outcome="rolled_back", generated_at=STAMP, failed=crashed(hardened)
    )
    rolled["host"] = "web-2"
    rolled["release"]["attempted"] = NEW
    return {"web-1": improved, "web-2": rolled}


def path_of(host: str) -> str:
    return f"{REPORTS}/{host}/20260210T100200Z.md"


def fleet_doc(pair) -> dict:
    """The document tasks/fleet.yml writes for HOSTS (web-3 not reached, OLD at start)."""
    reps = reports(pair)
    summaries = [report_summary(reps[h], path_of(h)) if h in reps else None for h in HOSTS]
    return fleet_summary(HOSTS, summaries, ["", "", OLD], generated_at=STAMP, app="workbot")


def render(doc: dict, lang: str, reports_dir: str | None = None) -> str:
    """fleet.md.j2 as the template action renders it (trim_blocks on, lstrip_blocks off),
    with the role's reports directory when given."""
    variables = {"__diagnostics_fleet": doc, "__diagnostics_t": I18N[lang]}
    if reports_dir is not None:
        variables["__diagnostics_reports_dir"] = reports_dir
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(
        trust_as_template(TEMPLATE.read_text(encoding="utf-8")),
        escape_backslashes=False,
        overrides={"trim_blocks": True, "lstrip_blocks": False},
    )


def table_rows(md: str) -> dict[str, list[str]]:
    """The summary table's body rows by host: cells split on unescaped pipes."""
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[cells[0]] = cells
    return rows


def totals_lines(md: str) -> list[str]:
    """The paragraphs between the intro and the table: totals, then releases."""
    head = md[: md.index("\n| ")].split("\n\n")
    return [p.strip() for p in head[2:]]


# --- the document --------------------------------------------------------------------------


def test_report_summary_of_an_improved_host(pair):
    _, hardened = pair
    s = report_summary(reports(pair)["web-1"], path_of("web-1"))
    assert set(s) == set(ROW_KEYS)
    assert (s["host"], s["app"], s["verdict"], s["outcome"]) == (
        "web-1",
        "workbot",
        "improved",
        None,
    )
    # findings of the diagnosis after the run
    assert s["codes"] == [f["code"] for f in hardened["findings"]]
    assert s["critical"] == sum(f["severity"] == "critical" for f in hardened["findings"]) == 0
    assert s["warning"] == sum(f["severity"] == "warning" for f in hardened["findings"])
    assert s["release"] == {"live": LIVE, "attempted": LIVE, "before": None}
    # jlist_healthy: two workbot workers with restart_time 3 each
    procs = [p for p in hardened["facts"]["pm2"]["processes"] if p["name"] == "workbot"]
    assert len(procs) == 2
    assert s["pm2_restarts"] == sum(p["restart_time"] for p in procs) == 6
    assert s["regressions"] == [] and s["report"] == path_of("web-1")
    assert s["generated_at"] == STAMP


def test_report_summary_of_a_rolled_back_host(pair):
    s = report_summary(reports(pair)["web-2"], path_of("web-2"))
    assert s["verdict"] == "rolled_back" and s["outcome"] == "rolled_back"
    # live: the previous release, back after the rollback; attempted: the one rolled back
    assert s["release"] == {"live": LIVE, "attempted": NEW, "before": LIVE}
    # why: from the diagnosis of the attempted release before the rollback
    assert any("crash_loop" in r for r in s["regressions"])
    assert any("/api/health" in r for r in s["regressions"])


def test_report_summary_of_a_diagnosis_only(pair):
    incident, _ = pair
    s = report_summary(make_report(incident, None), None)
    # no diagnosis after: the one before counts
    assert s["codes"] == [f["code"] for f in incident["findings"]]
    assert (s["critical"], s["warning"]) == (6, 3)
    assert s["release"] == {"live": None, "attempted": None, "before": None}
    assert s["pm2_restarts"] is None  # no PM2 on the broken server: unknown, not zero
    assert s["report"] is None


def test_pm2_restarts_count_only_the_apps_processes(pair):
    _, hardened = pair
    after = copy.deepcopy(hardened)
    procs = after["facts"]["pm2"]["processes"]
    procs.append({"name": "pm2-logrotate", "pm_id": 9, "is_module": True, "restart_time": 40})
    procs.append({"name": "other-app", "pm_id": 10, "restart_time": 7})
    assert report_summary(make_report(hardened, after))["pm2_restarts"] == 6
    after["facts"]["pm2"]["error"] = "pm2 jlist timed out"
    assert report_summary(make_report(hardened, after))["pm2_restarts"] is None


def test_fleet_document(pair):
    doc = fleet_doc(pair)
    assert set(doc) == {"generated_at", "app", "hosts", "totals"}
    assert [h["host"] for h in doc["hosts"]] == HOSTS
    assert all(set(h) == set(ROW_KEYS) for h in doc["hosts"])
    web1, web2, web3 = doc["hosts"]
    assert (web1["reached"], web1["verdict"]) == (True, "improved")
    assert (web2["reached"], web2["verdict"]) == (True, "rolled_back")
    assert web3 == {
        "host": "web-3",
        "reached": False,
        "app": None,
        "generated_at": None,
        "verdict": None,
        "outcome": None,
        "critical": None,
        "warning": None,
        "failed_probes": None,
        "codes": [],
        "release": {"live": OLD, "attempted": None, "before": OLD},
        "pm2_restarts": None,
        "regressions": [],
        "report": None,
    }
    assert doc["totals"] == {
        "hosts": 3,
        "reached": 2,
        "not_reached": 1,
        "verdicts": {"improved": 1, "rolled_back": 1},
        "releases": [
            {"release": LIVE, "hosts": ["web-1", "web-2"]},
            {"release": OLD, "hosts": ["web-3"]},
        ],
        "release_unknown": [],
    }
    json.dumps(doc)  # what the role writes as JSON


def test_fleet_releases_none_and_unknown(pair):
    incident, _ = pair
    fresh = report_summary(make_report(incident, None))  # diagnosed, nothing live
    doc = fleet_summary(["a", "b", "c"], [fresh, None, None], ["", "", OLD])
    assert doc["totals"]["releases"] == [
        {"release": None, "hosts": ["a"]},
        {"release": OLD, "hosts": ["c"]},
    ]
    assert doc["totals"]["release_unknown"] == ["b"]
    assert doc["totals"]["verdicts"] == {"unchanged": 1}


@pytest.mark.parametrize(
    ("hosts", "summaries", "starts"),
    [
        (["a", "b"], [None], None),
        (["a"], [None], ["x", "y"]),
        (["a"], ["not a summary"], None),
        (["a"], "a", None),
    ],
)
def test_fleet_rejects_mismatched_input(hosts, summaries, starts):
    with pytest.raises(AnsibleFilterError, match="fleet_summary"):
        fleet_filter(hosts, summaries, starts)


# --- the Markdown ----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_table_rows(pair, lang):
    t = I18N[lang]
    f = t["fleet"]
    md = render(fleet_doc(pair), lang)
    assert md.startswith(
        "# " + f["title"] % {"app": "workbot", "date": "2026-02-10 10:02 UTC"} + "\n"
    )
    header = next(line for line in md.splitlines() if line.startswith("| "))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        f[k]
        for k in (
            "host",
            "verdict",
            "critical",
            "warning",
            "codes",
            "release",
            "attempted",
            "restarts",
            "report",
        )
    ]
    rows = table_rows(md)
    assert list(rows) == HOSTS
    assert all(len(r) == 9 for r in rows.values())
    doc = fleet_doc(pair)
    web1 = doc["hosts"][0]
    assert rows["web-1"] == [
        "web-1",
        t["verdicts"]["improved"],
        "0",
        str(web1["warning"]),
        f["separator"].join(f"`{c}`" for c in web1["codes"]) or "-",
        f"`{LIVE}`",
        f"`{LIVE}`",
        "6",
        "[web-1/20260210T100200Z.md](../web-1/20260210T100200Z.md)",
    ]
    assert rows["web-2"][1:3] == [t["verdicts"]["rolled_back"], "0"]
    assert rows["web-2"][5:8] == [f"`{LIVE}`", f"`{NEW}`", "6"]
    assert rows["web-3"] == ["web-3", f["not_reached"], "-", "-", "-", f"`{OLD}`", "-", "-", "-"]


@pytest.mark.parametrize("lang", LANGS)
def test_totals_and_release_grouping(pair, lang):
    t = I18N[lang]
    f = t["fleet"]
    md = render(fleet_doc(pair), lang)
    counts = [
        f["verdict_count"] % {"n": 1, "verdict": t["verdicts"]["improved"]},
        f["verdict_count"] % {"n": 1, "verdict": t["verdicts"]["rolled_back"]},
        f["verdict_count"] % {"n": 1, "verdict": f["not_reached"]},
    ]
    groups = [
        f["release_group"] % {"release": f"`{LIVE}`", "hosts": f["separator"].join(HOSTS[:2])},
        f["release_group"] % {"release": f"`{OLD}`", "hosts": "web-3"},
    ]
    assert totals_lines(md) == [
        f["totals"] % {"n": 3, "verdicts": f["separator"].join(counts)},
        f["releases"] % {"groups": f["group_separator"].join(groups)},
    ]
    why = md[md.index(f"\n## {f['regressions']['heading']}\n") :]
    items = [line for line in why.splitlines() if line.startswith("- ")]
    assert items and all(line.startswith("- web-2") for line in items)
    assert any("crash_loop" in line for line in items)
    assert md.rstrip().endswith(f"*{f['footer']}*")


def test_english_totals_read_as_the_issue_asks(pair):
    md = render(fleet_doc(pair), "en")
    assert totals_lines(md) == [
        "3 host(s): 1 improved, 1 rolled back, 1 not reached in this run.",
        f"Releases: `{LIVE}` on web-1, web-2; `{OLD}` on web-3.",
    ]


def test_zh_is_chinese(pair):
    md = render(fleet_doc(pair), "zh")
    assert "共 3 台主机" in md and "本次未触达" in md
    for word in ("Host", "Verdict", "not reached", "Releases"):
        assert word not in md


def test_diagnosis_only_fleet(pair):
    """playbooks/diagnose.yml: reports without a diagnosis after; the findings are those
    the diagnosis saw, codes listed in the table."""
    incident, hardened = pair
    summaries = [
        report_summary(make_report(incident, None), path_of("web-1")),
        report_summary(make_report(hardened, None), path_of("web-2")),
    ]
    doc = fleet_summary(["web-1", "web-2"], summaries, None, STAMP, "workbot")
    t = I18N["en"]
    md = render(doc, "en")
    rows = table_rows(md)
    codes = [f["code"] for f in incident["findings"]]
    assert rows["web-1"][1:5] == [
        t["verdicts"]["unchanged"],
        "6",
        "3",
        t["fleet"]["separator"].join(f"`{c}`" for c in codes),
    ]
    assert rows["web-1"][5] == t["meta"]["none"] and rows["web-1"][7] == "-"
    assert rows["web-2"][5:8] == [f"`{LIVE}`", "-", "6"]
    assert totals_lines(md) == [
        "2 host(s): 2 unchanged.",
        f"Releases: none on web-1; `{LIVE}` on web-2.",
    ]


def test_unknown_and_no_release_are_told_apart(pair):
    incident, _ = pair
    fresh = report_summary(make_report(incident, None))
    doc = fleet_summary(["a", "b"], [fresh, None], ["", ""], generated_at=STAMP, app="workbot")
    f = I18N["en"]["fleet"]
    md = render(doc, "en")
    assert totals_lines(md)[1] == f["releases"] % {
        "groups": f["group_separator"].join(
            [
                f["release_group"] % {"release": I18N["en"]["meta"]["none"], "hosts": "a"},
                f["release_unknown"] % {"hosts": "b"},
            ]
        )
    }
    rows = table_rows(md)
    assert rows["a"][5] == I18N["en"]["meta"]["none"] and rows["a"][7] == "-"
    assert rows["b"][5] == "-"
    assert f["regressions"]["heading"] not in md  # nobody regressed


def test_markdown_survives_hostile_data(pair):
    evil = "web|4\nbad"
    reps = reports(pair)
    rolled = reps["web-2"]
    rolled["regressions"] = [{"kind": "other", "summary": "a | b\n## not a heading"}]
    s2 = report_summary(rolled, f"{REPORTS}/{evil}/x.md")
    s2["codes"].append("weird`code|x")
    doc = fleet_summary(
        [evil, "web-2", "web]3"], [None, s2, None], ["rel|1\nx", "", ""], STAMP, "work|bot"
    )
    md = render(doc, "en")
    rows = table_rows(md)
    assert len(rows) == 3 and all(len(r) == 9 for r in rows.values())
    assert "web\\|4 bad" in rows
    assert rows["web\\|4 bad"][5] == "`rel\\|1 x`"
    assert "`weird'code\\|x`" in rows["web-2"][4]
    # the link to web-2's report: text escaped, target percent-encoded
    assert rows["web-2"][8] == "[web\\|4 bad/x.md](../web%7C4%0Abad/x.md)"
    assert "- web-2: a \\| b ## not a heading" in md
    assert not any(line.startswith("## not") for line in md.splitlines())
    assert "`rel\\|1 x` on web\\|4 bad" in md
    assert md.splitlines()[0] == "# Fleet summary: work\\|bot, 2026-02-10 10:02 UTC"


def test_links_reach_an_apps_report_on_a_machine_with_several_apps(pair):
    """reports/<machine>/<app>/: the link keeps every part below the reports directory."""
    reps = reports(pair)
    paths = {"web-1": f"{REPORTS}/web/shop/a.md", "web-2": f"{REPORTS}/web-2/b.md"}
    summaries = [report_summary(reps[h], paths[h]) if h in paths else None for h in HOSTS]
    doc = fleet_summary(HOSTS, summaries, ["", "", OLD], generated_at=STAMP, app="workbot")
    rows = table_rows(render(doc, "en", reports_dir=REPORTS + "\n"))
    assert rows["web-1"][8] == "[web/shop/a.md](../web/shop/a.md)"
    assert rows["web-2"][8] == "[web-2/b.md](../web-2/b.md)"


def test_template_has_no_prose_of_its_own():
    text = TEMPLATE.read_text(encoding="utf-8")
    text = re.sub(r"\{#.*?#\}", "", text, flags=re.S)
    text = re.sub(r"\{%.*?%\}", "", text, flags=re.S)
    text = re.sub(r"\{\{.*?\}\}", "", text, flags=re.S)
    assert not re.findall(r"[A-Za-z]{2,}|[\u4e00-\u9fff]", text)


def test_every_fleet_string_is_in_both_languages():
    def keys(d: Any, prefix: str = "") -> set[str]:
        if isinstance(d, dict):
            return set().union(*(keys(v, f"{prefix}.{k}") for k, v in d.items()))
        return {prefix}

    assert keys(I18N["en"]["fleet"]) == keys(I18N["zh"]["fleet"])
    used = set(re.findall(r"\bf\.([a-z_]+(?:\.[a-z_]+)?)", TEMPLATE.read_text(encoding="utf-8")))
    assert used <= {k.lstrip(".") for k in keys(I18N["en"]["fleet"])}, used
