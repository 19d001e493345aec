"""The run's report: the diagnostics role's JSON document and Markdown template.

Realistic data: the incident's broken server and the same host hardened
(fixtures/scenarios), diagnosed through module_utils like test_diagnosis_scenarios does.
The Markdown is rendered with Ansible's own templating (Templar, as the template action
does it); the role's report entry point run end to end by ansible-playbook:
tests/integration/roles/diagnostics/test_report.py.

``HARDENKIT_WRITE_SAMPLES=1 .venv/bin/pytest tests/unit/roles/diagnostics/test_report.py -k
sample`` rewrites docs/sample-report.zh.md from the same pair. docs/sample-report.md is a
real run's report (molecule/broken_server's converge, its first line says which); both are
checked here against the current wording.
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.hardenkit.nodeapp.plugins.module_utils import diagnosis
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.compare import compare
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.diagnosis import (
    DiagnoseOptions,
    diagnose,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.findings import (
    CODES,
    DEFAULT_THRESHOLDS,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pm2 import parse_jlist
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import user_name
from tests.hk_testlib import (
    FIXTURES,
    build_fake_proc,
    build_hardened_host,
    fixture_text,
    free_port,
    trusted,
)

ROOT = Path(__file__).resolve().parents[4]
ROLE = ROOT / "roles" / "diagnostics"
TEMPLATE = ROLE / "templates" / "report.md.j2"
I18N = yaml.safe_load((ROLE / "vars" / "main" / "i18n.yml").read_text(encoding="utf-8"))[
    "__diagnostics_i18n"
]
DOCS = ROOT / "docs"
LANGS = ["en", "zh"]

# Environment values in the fixtures (PM2's env dump, a log line with a database URL).
SECRETS = ["s3cr3t-pw", "hk-session-7f3a9c1e5b", "sk-test-abcdef0123456789"]
PROBES = [
    {"path": "/", "status": 200},
    {"path": "/login", "status": 200},
    {"path": "/api/health", "status": 200},
]
# The test machine's disk must not decide the findings.
THRESHOLDS = {**DEFAULT_THRESHOLDS, "disk_warn_pct": 100, "disk_crit_pct": 100}
REPORT_KEYS = {
    "host",
    "app",
    "generated_at",
    "release",
    "before",
    "after",
    "failed_release",
    "changed",
    "node",
    "sandbox_left_out",
    "tls",
    "regressions",
    "improvements",
    "verdict",
    "outcome",
    "failure",
    "counts",
    "notes",
}
RECORDED_USERS = {0: "root", 33: "www-data", 105: "postgres", 998: "workbot", 1001: "alice"}
CJK = re.compile(r"[\u4e00-\u9fff]")


# --- the scenario pair ---------------------------------------------------------------------


@contextmanager
def serve(routes: dict[str, int] | None = None) -> Iterator[ThreadingHTTPServer]:
    table = dict(routes or {})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = table.get(self.path, 200)
            body = f"<!DOCTYPE html><title>{status}</title>WorkBot {self.path}".encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def incident_diagnosis(base: Path, stack: ExitStack) -> tuple[dict, dict[int, int]]:
    app = stack.enter_context(serve({"/api/health": 404, "/api/chat": 404}))
    proxy_port = free_port()  # no nginx
    proc = build_fake_proc(base / "proc", "incident", {"APP": app.server_port, "PROXY": proxy_port})
    rotate = base / "logrotate.d"
    rotate.mkdir(parents=True)
    opts = DiagnoseOptions(
        app_name="workbot",
        app_root=str(base / "srv" / "workbot"),
        app_port=app.server_port,
        package_name="workbot",
        scope_paths=["/workspace/projects"],
        probes=PROBES,
        proxy_port=proxy_port,
        log_paths=[
            str(FIXTURES / "logs" / "workbot-error.log"),
            str(FIXTURES / "logs" / "nginx-error.log"),
        ],
        logrotate_dir=str(base / "logrotate.d"),
        probe_timeout=3,
        thresholds=THRESHOLDS,
        proc_root=str(proc),
    )
    return diagnose(opts), {app.server_port: 5000, proxy_port: 80}


def hardened_diagnosis(base: Path, stack: ExitStack) -> tuple[dict, dict[int, int]]:
    app = stack.enter_context(serve())
    proxy = stack.enter_context(serve())
    app_root, proc = build_hardened_host(base, app.server_port, proxy.server_port)
    # Four dev copies gone: most of the memory is back.
    meminfo = (proc / "meminfo").read_text()
    meminfo = meminfo.replace("MemAvailable:    1548212", "MemAvailable:    5402116")
    (proc / "meminfo").write_text(meminfo)
    jlist = parse_jlist(fixture_text("pm2", "jlist_healthy.json"), 1770717600000)

    def fake_query(pm2_bin, pm2_home, app_user, timeout=20.0, proc_root="/proc"):
        return {
            "home": pm2_home,
            "running": True,
            "queried": True,
            "note": "PM2 daemon pid 2290",
            "error": None,
            "processes": jlist,
        }

    opts = DiagnoseOptions(
        app_name="workbot",
        app_root=str(app_root),
        app_port=app.server_port,
        package_name="workbot",
        probes=PROBES,
        proxy_port=proxy.server_port,
        proxy_host_header="workbot.example.com",
        logrotate_dir=str(base / "logrotate.d"),
        probe_timeout=3,
        thresholds=THRESHOLDS,
        proc_root=str(proc),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(diagnosis, "query_pm2", fake_query)
        result = diagnose(opts)
    return result, {app.server_port: 5000, proxy.server_port: 80}


def normalize(result: dict, base: Path, ports: dict[int, int]) -> dict:
    """Test-run artefacts out: temporary directories, random ports, the checkout's path.

    The data is otherwise what the module returned; this only makes it read like the host
    it stands for (app root /srv/workbot, app on 5000, nginx on 80).
    """
    paths = {
        str(FIXTURES / "logs" / "workbot-error.log"): "/var/log/workbot/workbot-error.log",
        str(FIXTURES / "logs" / "nginx-error.log"): "/var/log/nginx/error.log",
        str(base / "logrotate.d"): "/etc/logrotate.d",
        str(base) + "/": "/",
    }
    # The fake /proc's uids, named as on the recorded host rather than on this machine.
    users = {user_name(uid): name for uid, name in RECORDED_USERS.items()}
    port_re = re.compile(r"(?<![0-9])(" + "|".join(str(p) for p in ports) + r")(?![0-9])")

    def walk(value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if isinstance(value, str) and key == "user":
            return users.get(value, value)
        if isinstance(value, str):
            if value == str(base):
                return "/"
            for old, new in paths.items():
                value = value.replace(old, new)
            return port_re.sub(lambda m: str(ports[int(m.group(1))]), value)
        if isinstance(value, int) and not isinstance(value, bool) and key in ("port", "proxy_port"):
            return ports.get(value, value)
        return value

    return walk(result)


def keep(result: dict, release: str | None) -> dict:
    """What the role keeps of a diagnose result (diagnostics_<phase>), with the release
    that ``current`` pointed to (tasks/collect.yml)."""
    return {
        "facts": {**result["facts"], "release": release},
        "findings": result["findings"],
        "probes": result["probes"],
    }


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[dict, dict]:
    """(before, after): the broken server, then the same host hardened."""
    base = tmp_path_factory.mktemp("scenarios")
    with ExitStack() as stack:
        before, before_ports = incident_diagnosis(base / "incident", stack)
        after, after_ports = hardened_diagnosis(base / "hardened", stack)
    return (
        keep(normalize(before, base / "incident", before_ports), None),
        keep(normalize(after, base / "hardened", after_ports), "3f9a2c1b7e4d"),
    )


# --- the document and its rendering -------------------------------------------------------


def make_report(
    before: dict,
    after: dict | None,
    *,
    reloads: int = 0,
    outcome: str = "",
    failure: str = "",
    changed: list[str] | None = None,
    generated_at: str = "2026-02-10T10:02:00Z",
    failed: dict | None = None,
    sandbox_left_out: list[dict] | None = None,
    node: dict | None = None,
) -> dict:
    """The document tasks/report.yml assembles (test_role_end_to_end checks the keys)."""
    cmp = compare(before, after if after is not None else before, reloads, outcome or None)
    notes = list(cmp["notes"])
    if after is None:
        notes.append("no diagnosis after the run: the diagnosis before was compared with itself")
    return {
        "host": "web-1",
        "app": "workbot",
        "generated_at": generated_at,
        "release": {
            "before": before["facts"].get("release"),
            "after": after["facts"].get("release") if after is not None else None,
        },
        "before": before,
        "after": after,
        "failed_release": failed,
        "changed": changed or [],
        "node": node or {"version": None, "method": None, "source": None, "spec": None},
        "sandbox_left_out": sandbox_left_out or [],
        # No nginx_proxy in the run: TLS as served is unknown, no ACME certificate.
        "tls": {"live": None, "acme_certificate": None, "acme_obtained": False, "acme_error": None},
        "regressions": cmp["regressions"],
        "improvements": cmp["improvements"],
        "verdict": cmp["verdict"],
        "outcome": outcome or None,
        "failure": failure or None,
        "counts": cmp["counts"],
        "notes": notes,
    }


def render(report: dict, lang: str) -> str:
    """report.md.j2 as the template action renders it (trim_blocks on, lstrip_blocks off)."""
    templar = Templar(
        loader=DataLoader(),
        variables={"__diagnostics_report": report, "__diagnostics_t": I18N[lang]},
    )
    return templar.template(
        trust_as_template(TEMPLATE.read_text(encoding="utf-8")),
        escape_backslashes=False,
        overrides={"trim_blocks": True, "lstrip_blocks": False},
    )


CHANGES = [
    "stopped 4 stray dev processes (tsx watch server.ts)",
    "release 3f9a2c1b7e4d built and switched live",
    "PM2 cluster with 2 workers under pm2-workbot.service",
    "Nginx site workbot in front of 127.0.0.1:5000",
    "logrotate for /var/log/workbot and PM2's logs",
]


@pytest.fixture(scope="module")
def improved(pair) -> dict:
    before, after = pair
    return make_report(before, after, changed=CHANGES)


def first_lines(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.strip()]


def headings(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("#")]


def section(md: str, heading: str) -> str:
    """The text under a ``## heading`` up to the next ``## ``."""
    start = md.index(f"\n## {heading}\n")
    end = md.find("\n## ", start + 1)
    return md[start : end if end != -1 else len(md)]


# --- the scenario itself ------------------------------------------------------------------


def test_pair_is_the_incident_then_hardened(pair):
    before, after = pair
    assert {f["code"] for f in before["findings"]} == {
        "duplicate_processes",
        "dev_mode",
        "build_missing",
        "route_failed",
        "no_process_manager",
        "app_exposed",
        "log_errors",
        "no_reverse_proxy",
        "no_log_rotation",
    }
    assert after["findings"] == []
    # normalized to the host they stand for
    assert before["facts"]["app"] == {
        "name": "workbot",
        "root": "/srv/workbot",
        "port": 5000,
        "proxy_port": 80,
        "proxy_scheme": "http",
    }
    assert "0.0.0.0:5000" in json.dumps(before)


# --- Markdown ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_verdict_comes_first(improved, lang):
    md = render(improved, lang)
    lines = first_lines(md)
    t = I18N[lang]
    assert lines[0] == "# " + t["title"] % {
        "app": "workbot",
        "host": "web-1",
        "date": "2026-02-10 10:02 UTC",
    }
    verdict = t["verdict_line"].split("%(")[0]  # the bold "Verdict: " in either language
    assert lines[1].startswith(verdict + t["verdicts"]["improved"])
    # the counts of the incident: 6 critical and 3 warnings, all gone; 4 failed probes
    # (one API route directly, three through the missing proxy), none after
    assert "6 → 0" in lines[1] and "3 → 0" in lines[1] and "4 → 0" in lines[1]


@pytest.mark.parametrize("lang", LANGS)
def test_each_finding_before_has_its_fix(improved, lang):
    md = render(improved, lang)
    t = I18N[lang]
    findings = section(md, t["findings"]["heading"])
    for f in improved["before"]["findings"]:
        code = f["code"]
        head = f"### {t['codes'][code]['title']} (`{code}`)"
        assert head in findings, code
        block = findings[findings.index(head) :].split("\n### ")[0]
        assert f"**{t['findings']['fix']}** {t['codes'][code]['fix']}" in block, code
        assert t["findings"]["resolved"] in block, code
        assert f["evidence"][0] in block, code
    assert findings.count("\n### ") == len(improved["before"]["findings"])


@pytest.mark.parametrize("lang", LANGS)
def test_sections_in_incident_report_order(improved, lang):
    t = I18N[lang]
    md = render(improved, lang)
    assert [h for h in headings(md) if h.startswith("## ")] == [
        f"## {t['resources']['heading']}",
        f"## {t['probes']['heading']}",
        f"## {t['processes']['heading']}",
        f"## {t['findings']['heading']}",
        f"## {t['changed']['heading']}",
        f"## {t['regressions']['heading']}",
        f"## {t['left']['heading']}",
    ]  # and no Notes: nothing to note in this pair
    for change in CHANGES:
        assert f"- {change}" in section(md, t["changed"]["heading"])
    assert t["regressions"]["empty"] in section(md, t["regressions"]["heading"])
    assert t["left"]["empty"] in section(md, t["left"]["heading"])


def test_zh_is_chinese(improved):
    md = render(improved, "zh")
    for heading in headings(md):
        assert CJK.search(heading), heading
    # no English wording left: every English string that is not also the Chinese one
    en, zh = I18N["en"], I18N["zh"]
    for key in ("heading",):
        for part in ("resources", "probes", "processes", "findings", "changed", "left"):
            assert en[part][key] not in md
            assert zh[part][key] in md
    assert en["codes"]["dev_mode"]["fix"] not in md


def test_resources_before_and_after(improved):
    md = render(improved, "en")
    rows = section(md, "Resources").splitlines()
    memory = next(r for r in rows if r.startswith("| Memory used |"))
    # the incident's 81 % (6.4 of 7.8 GiB), then the hardened host's own meminfo
    assert memory.startswith("| Memory used | 81.0 % (6445 of 7957 MiB) | 33.7 % (")
    assert any(r.startswith("| Load average") and "on " in r for r in rows)
    assert any(r.startswith("| Disk /") for r in rows)


def test_probes_before_and_after(improved):
    md = render(improved, "en")
    rows = [r for r in section(md, "Service probes").splitlines() if r.startswith("| `")]
    assert len(rows) == 6  # three paths, directly and through the proxy
    health = next(r for r in rows if r.startswith("| `/api/health` | app port |"))
    assert "| 404 ✗ | 200 ✓ |" in health
    proxy_root = next(r for r in rows if r.startswith("| `/` | proxy |"))
    assert "| ✗ connection refused | 200 ✓ |" in proxy_root


def test_processes_before_and_after(improved):
    md = render(improved, "en")
    procs = section(md, "The app's processes")
    before, after = procs.split("**After**")
    # the four tsx watch copies and the one serving, not alice's next dev
    for pid in (173, 180, 503, 944, 2207):
        assert f"\n| {pid} |" in before
    assert "| tsx watch |" in before
    assert "/home/alice" not in procs
    assert "| 2301 |" in after and "| pm2 |" in after
    assert "tsx" not in after


@pytest.mark.parametrize("lang", LANGS)
def test_no_environment_value_leaks(pair, improved, lang):
    _, after = pair
    # the data really went through the fixtures that hold them
    assert "DATABASE_URL" not in json.dumps(after)
    md = render(improved, lang)
    for text in (md, json.dumps(improved)):
        for secret in SECRETS:
            assert secret not in text


@pytest.mark.parametrize("lang", LANGS)
def test_rolled_back_run_lists_its_regressions(pair, lang):
    hardened, incident = pair[1], pair[0]
    # The reverse pair: a healthy host broken by the run, then rolled back.
    report = make_report(hardened, incident, outcome="rolled_back")
    t = I18N[lang]
    md = render(report, lang)
    assert first_lines(md)[1].startswith(
        t["verdict_line"].split("%(")[0] + t["verdicts"]["rolled_back"]
    )
    regs = section(md, t["regressions"]["heading"])
    via = t["probes"]["direct"]
    assert (
        t["regressions"]["probe"] % {"path": "/api/health", "via": via, "before": 200, "after": 404}
        in regs
    )
    for g in report["regressions"]:
        if g["kind"] == "finding":
            assert f"`{g['code']}`" in regs
    assert regs.count("\n- ") == len(report["regressions"]) >= 5
    # what is left: every finding of the broken state, marked new, with its fix
    left = section(md, t["left"]["heading"])
    for f in incident["findings"]:
        assert t["codes"][f["code"]]["fix"] in left
    assert t["findings"]["new"] in left


@pytest.mark.parametrize("lang", LANGS)
def test_rolled_back_release_is_described(pair, lang):
    """The release a run rolled back from, diagnosed before the rollback (report key
    ``failed_release``): its findings (a crash loop) and failing probes have a section of their own,
    since the diagnosis after the rollback shows only the previous release again."""
    _, hardened = pair
    crashed = copy.deepcopy(hardened)
    crashed["facts"]["release"] = "9d8e7f6a5b4c"
    crashed["findings"].append(
        {
            "code": "crash_loop",
            "severity": "critical",
            "summary": "the app's PM2 processes keep restarting",
            "evidence": ["workbot (pm_id 0, online): 6 restarts, up only 1s since the last crash"],
        }
    )
    crashed["probes"][0] = {**crashed["probes"][0], "ok": False, "status": None, "error": "refused"}
    report = make_report(hardened, hardened, outcome="rolled_back", failed=crashed)
    t = I18N[lang]
    md = render(report, lang)
    part = section(md, t["failed_release"]["heading"])
    assert "`9d8e7f6a5b4c`" in part
    assert t["codes"]["crash_loop"]["title"] in part and "`crash_loop`" in part
    assert "6 restarts, up only 1s since the last crash" in part
    probe = crashed["probes"][0]
    assert f"`{probe['path']}`" in part and "refused" in part
    # before the list of what is left, after the regressions
    heads = headings(md)
    assert heads.index(f"## {t['failed_release']['heading']}") == (
        heads.index(f"## {t['regressions']['heading']}") + 1
    )
    # no such section when nothing was rolled back
    assert t["failed_release"]["heading"] not in render(make_report(*pair), lang)


def test_restart_regressions_are_worded(pair):
    _, after = pair
    crashed = copy.deepcopy(after)
    for p in crashed["facts"]["pm2"]["processes"]:
        p["unstable_restarts"] = 2
    report = make_report(after, crashed, reloads=0)
    assert report["verdict"] == "regressed"
    md = render(report, "en")
    assert "- 4 unstable restart(s) during the run: crashes soon after a start." in md


def test_without_a_diagnosis_after(pair):
    before, _ = pair
    report = make_report(before, None, outcome="failed")
    md = render(report, "en")
    assert first_lines(md)[1].startswith("**Verdict: failed.** The run stopped before switching")
    # no after column at all
    assert "| Memory used | 81.0 % (6445 of 7957 MiB) |\n" in md
    assert "| After |" not in md and "**After**" not in md
    assert "| `/api/health` | app port | 200 | 404 ✗ | " in md
    left = section(md, "What is left to do")
    for f in before["findings"]:
        assert I18N["en"]["codes"][f["code"]]["fix"] in left
    assert "no diagnosis after the run" in section(md, "Notes")


@pytest.mark.parametrize("lang", LANGS)
def test_a_failed_run_says_why_it_stopped(pair, lang):
    before, _ = pair
    why = (
        "Stop when a hook failed: before_switch hooks of workbot r1 failed with exit status 3."
        " Output (the end): hardenkit: the before_switch hook migrate failed (exit 3) ``` |"
    )
    md = render(make_report(before, None, outcome="failed", failure=why), lang)
    lines = md.splitlines()
    at = lines.index(I18N[lang]["failure_heading"])
    assert lines[at + 2 : at + 5] == ["```text", why.replace("```", "'''"), "```"], lines[at:]
    # Only a run that stopped has it.
    assert I18N[lang]["failure_heading"] not in render(make_report(before, None), lang)


@pytest.mark.parametrize("lang", LANGS)
def test_diagnosis_only(pair, lang):
    """playbooks/diagnose.yml: one diagnosis, no outcome; no before/after claim."""
    before, _ = pair
    md = render(make_report(before, None), lang)
    t = I18N[lang]
    assert first_lines(md)[1] == t["verdict_line"] % {
        "verdict": t["verdicts"]["unchanged"],
        "text": t["verdict_text_single"] % {"cb": 6, "wb": 3, "pb": 4},
    }
    assert t["after"] not in md


@pytest.mark.parametrize("lang", LANGS)
def test_sandbox_left_out_is_named(pair, lang):
    """A host that cannot apply a protection: the notes name it, with systemd's reason."""
    left_out = [
        {
            "setting": "PrivateUsers=yes",
            "status": "217/USER",
            "message": "Failed to set up user namespacing: No such file or directory",
        }
    ]
    md = render(make_report(*pair, sandbox_left_out=left_out), lang)
    notes = section(md, I18N[lang]["notes"]["heading"])
    assert "PrivateUsers=yes" in notes
    assert "217/USER; Failed to set up user namespacing" in notes
    assert "PrivateUsers" not in render(make_report(*pair), lang)


NODES = [
    (
        {"version": "24.22.3", "method": "official", "source": "the newest LTS", "spec": None},
        "node_newest",
        {"version": "24.22.3"},
    ),
    (
        {"version": "22.23.5", "method": "official", "source": ".nvmrc", "spec": "lts/jod"},
        "node_from",
        {"version": "22.23.5", "source": ".nvmrc", "spec": "lts/jod"},
    ),
    (
        {"version": "18.20.4", "method": "distro", "source": None, "spec": None},
        "distro",
        {"version": "18.20.4"},
    ),
]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("node", "key", "args"), NODES, ids=["newest-lts", "nvmrc", "distro"])
def test_the_node_version_and_what_decided_it(pair, lang, node, key, args):
    meta = I18N[lang]["meta"]
    wording = meta["node_method"][key] if key == "distro" else meta[key]
    md = render(make_report(*pair, node=node), lang)
    assert f"| {meta['node']} | {wording % args} |" in md


def test_no_node_row_before_node_is_installed(pair):
    assert "| Node.js |" not in render(make_report(*pair), "en")


@pytest.mark.parametrize("lang", LANGS)
def test_a_failed_run_that_put_back_what_it_stopped(pair, lang):
    changed = [
        "stopped pid 101 (root): pnpm dev",
        "PM2 unit pm2-workbot stopped and disabled: it did not serve the app",
        "started again as it ran: pid 101 -> 877 (root, port 5000): pnpm dev",
    ]
    md = render(make_report(pair[0], pair[0], outcome="put_back", changed=changed), lang)
    t = I18N[lang]
    assert first_lines(md)[1].startswith(t["verdict_line"].split("%")[0])
    assert t["verdict_text"]["put_back"][:12] in md
    for line in changed:
        assert f"- {line}" in section(md, t["changed"]["heading"])


def test_markdown_survives_hostile_data(pair):
    before, after = pair
    after = copy.deepcopy(after)
    proc = next(p for p in after["facts"]["processes"] if p["in_scope"])
    proc["cmdline"] = "node server.js --flag `x` | tee log"
    after["findings"] = [
        {
            "code": "some_future_code",
            "severity": "warning",
            "summary": "a summary",
            "evidence": ["```", "a | b"],
        }
    ]
    md = render(make_report(before, after), "en")
    row = next(r for r in md.splitlines() if "tee log" in r)
    assert row.count(" | ") == 4  # five cells: the command's pipe is escaped
    assert "`node server.js --flag 'x' \\| tee log`" in row
    assert I18N["en"]["code_unknown"]["fix"] in md
    assert md.count("```") % 2 == 0


def test_template_has_no_prose_of_its_own():
    text = TEMPLATE.read_text(encoding="utf-8")
    text = re.sub(r"\{#.*?#\}", "", text, flags=re.S)
    text = re.sub(r"\{%.*?%\}", "", text, flags=re.S)
    text = re.sub(r"\{\{.*?\}\}", "", text, flags=re.S)
    words = set(re.findall(r"[A-Za-z]{2,}|[\u4e00-\u9fff]", text))
    assert words == {"text"}, words  # the info string of the evidence blocks


def test_languages_say_the_same_things():
    def keys(d: Any, prefix: str = "") -> set[str]:
        if isinstance(d, dict):
            return set().union(*(keys(v, f"{prefix}.{k}") for k, v in d.items()))
        return {prefix}

    assert set(I18N) == set(LANGS)
    assert keys(I18N["en"]) == keys(I18N["zh"])
    for lang in LANGS:
        assert set(I18N[lang]["codes"]) == set(CODES), lang
        for code, text in I18N[lang]["codes"].items():
            assert text["title"] and text["fix"], (lang, code)
        for fmt in ("title", "verdict_line", "summary"):
            assert "%(" in I18N[lang][fmt]


# --- role variables ----------------------------------------------------------------------------


def role_vars(**given: Any) -> Templar:
    """vars/main/main.yml as the role sees it, over ``given`` (play/host variables)."""

    loaded = yaml.safe_load((ROLE / "vars" / "main" / "main.yml").read_text(encoding="utf-8"))
    return Templar(loader=DataLoader(), variables={**given, **trusted(loaded)})


@pytest.mark.parametrize(
    ("playbook_dir", "given", "expected"),
    [
        # ansible-playbook harden.yml: the plays are in playbooks/harden.yml
        ("/repo/playbooks", None, "/repo/reports"),
        ("/repo", None, "/repo/reports"),
        ("/repo/molecule/resources/playbooks", None, "/repo/reports"),
        ("/home/me/site", None, "/home/me/site/reports"),
        ("/repo/playbooks", "", "/repo/reports"),
        ("/repo/playbooks", "out/reports", "/repo/out/reports"),
        ("/repo/playbooks", "/var/tmp/hk/", "/var/tmp/hk"),
        ("/repo/playbooks", "/", "/"),
    ],
)
def test_reports_dir(playbook_dir, given, expected):
    variables: dict[str, Any] = {"playbook_dir": playbook_dir}
    if given is not None:
        variables["hardenkit_reports_dir"] = given
    templar = role_vars(**variables)
    assert templar.template(trust_as_template("{{ __diagnostics_reports_dir }}")) == expected


def test_reports_dir_expands_home():
    templar = role_vars(playbook_dir="/repo", hardenkit_reports_dir="~/hk-reports")
    got = templar.template(trust_as_template("{{ __diagnostics_reports_dir }}"))
    assert got == os.path.expanduser("~/hk-reports") and not got.startswith("~")


@pytest.mark.parametrize(
    ("pm2_reloads", "after_procs", "expected"),
    [
        (0, 2, 0),
        (1, 2, 2),  # one reload restarts each of the two workers once
        (2, 2, 4),
        (1, 0, 1),  # nothing seen under PM2: still one restart per reload
    ],
)
def test_reloads_count_process_restarts(pair, pm2_reloads, after_procs, expected):
    _, after = pair
    after = copy.deepcopy(after)
    procs = after["facts"]["pm2"]["processes"][:after_procs]
    procs.append({"name": "pm2-logrotate", "pm_id": 9, "is_module": True})
    after["facts"]["pm2"]["processes"] = procs
    templar = role_vars(
        playbook_dir="/repo", app_name="workbot", pm2_reloads=pm2_reloads, diagnostics_after=after
    )
    assert templar.template(trust_as_template("{{ __diagnostics_reloads | int }}")) == expected


# --- docs -------------------------------------------------------------------------------------


def sample_comment(lang: str) -> str:
    return (
        f"<!-- A sample report (hardenkit_report_lang: {lang}). Generated from the unit-test\n"
        "     fixtures in tests/unit/fixtures/scenarios, the incident's broken server (before)\n"
        "     and the same host hardened (after), diagnosed by plugins/module_utils and\n"
        "     rendered with roles/diagnostics/templates/report.md.j2 by\n"
        "       HARDENKIT_WRITE_SAMPLES=1 .venv/bin/pytest tests/unit/roles/diagnostics/test_report.py -k sample\n"  # noqa: E501
        "     A real run writes the same report to reports/<host>/latest.md. -->\n\n"
    )


@pytest.mark.parametrize("lang", LANGS)
def test_sample_reports_in_docs(improved, lang):
    path = DOCS / ("sample-report.md" if lang == "en" else f"sample-report.{lang}.md")
    if os.environ.get("HARDENKIT_WRITE_SAMPLES") == "1" and lang != "en":
        path.parent.mkdir(exist_ok=True)
        path.write_text(sample_comment(lang) + render(improved, lang), encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    t = I18N[lang]
    # current wording: every section heading, and each finding shown with its fix
    for part in ("resources", "probes", "processes", "findings", "changed", "regressions", "left"):
        assert f"\n## {t[part]['heading']}\n" in text, part
    shown = re.findall(r"^### .* \(`([a-z_]+)`\)$", text, flags=re.M)
    assert shown
    for code in shown:
        assert t["codes"][code]["fix"] in text, code
    for secret in SECRETS:
        assert secret not in text
