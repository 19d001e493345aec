"""hostfacts: the live build's integrity, logrotate coverage, disk use, log discovery."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.hostfacts import (
    build_integrity,
    disk_usage,
    existing_parent,
    expand_log_paths,
    logrotate_coverage,
    logrotate_patterns,
    read_logrotate_dir,
    read_small_text,
)
from tests.hk_testlib import FIXTURES, fixture_text

APP_PATHS = {
    "/page": "app/page.js",
    "/login/page": "app/login/page.js",
    "/api/health/route": "app/api/health/route.js",
}
PAGES = {
    "/_app": "pages/_app.js",
    "/_document": "pages/_document.js",
    "/_error": "pages/_error.js",
    "/404": "pages/404.html",
}


def make_release(
    app_root: Path, drop: tuple[str, ...] = (), build_id: str | None = "k3Yq8vPq"
) -> Path:
    """<app_root>/releases/<id> with a finished `next build`, <app_root>/current -> it."""
    release = app_root / "releases" / "3f9a2c1b7e4d"
    server = release / ".next" / "server"
    server.mkdir(parents=True)
    if build_id is not None:
        (release / ".next" / "BUILD_ID").write_text(build_id)
    (server / "app-paths-manifest.json").write_text(json.dumps(APP_PATHS))
    (server / "pages-manifest.json").write_text(json.dumps(PAGES))
    for rel in [*APP_PATHS.values(), *PAGES.values()]:
        if rel in drop:
            continue
        (server / rel).parent.mkdir(parents=True, exist_ok=True)
        (server / rel).write_text("module.exports = {}")
    (app_root / "current").symlink_to(release)
    return app_root / "current"


def check(current: Path, required=()):
    return build_integrity(str(current), os.path.exists, read_small_text, required)


def test_complete_build(tmp_path):
    result = check(make_release(tmp_path))
    assert result["ok"] is True
    assert result["build_id"] == "k3Yq8vPq"
    assert result["routes"] == 7
    assert result["missing"] == [] and result["missing_count"] == 0


def test_a_monorepo_app_is_checked_in_its_own_directory(tmp_path):
    # app_subdir apps/web: the build is apps/web/.next, none at the release's top
    current = make_release(tmp_path)
    release = current.resolve()
    (release / "apps" / "web").mkdir(parents=True)
    (release / ".next").rename(release / "apps" / "web" / ".next")
    top = check(current)
    nested = build_integrity(str(current), os.path.exists, read_small_text, (), "apps/web/.next")
    assert top["ok"] is False and ".next/BUILD_ID" in top["missing"]
    assert nested["ok"] is True and nested["routes"] == 7


def test_incident_build_route_files_missing(tmp_path):
    # the incident's ENOENTs: page.js, _document.js, api/health/route.js
    current = make_release(
        tmp_path, drop=("app/page.js", "pages/_document.js", "app/api/health/route.js")
    )
    result = check(current)
    assert result["ok"] is False
    assert sorted(result["missing"]) == [
        ".next/server/app/api/health/route.js",
        ".next/server/app/page.js",
        ".next/server/pages/_document.js",
    ]


def test_build_without_build_id(tmp_path):
    result = check(make_release(tmp_path, build_id=None))
    assert result["ok"] is False
    assert ".next/BUILD_ID" in result["missing"]


def test_no_current_release(tmp_path):
    result = check(tmp_path / "current")
    assert result == {
        "current": str(tmp_path / "current"),
        "exists": False,
        "build_id": None,
        "routes": 0,
        "missing": [str(tmp_path / "current")],
        "missing_count": 1,
        "errors": [],
        "ok": False,
    }


def test_required_files(tmp_path):
    current = make_release(tmp_path)
    assert check(current, ["dist/server.js"])["missing"] == ["dist/server.js"]
    (current / "dist").mkdir()
    (current / "dist" / "server.js").write_text("")
    assert check(current, ["dist/server.js"])["ok"] is True


def test_missing_list_is_bounded(tmp_path):
    release = tmp_path / "r"
    (release / ".next" / "server").mkdir(parents=True)
    (release / ".next" / "BUILD_ID").write_text("x")
    many = {f"/p{i}/page": f"app/p{i}/page.js" for i in range(50)}
    (release / ".next" / "server" / "app-paths-manifest.json").write_text(json.dumps(many))
    result = check(release)
    assert result["missing_count"] == 50
    assert len(result["missing"]) == 20


# --- logrotate ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "patterns"),
    [
        ("nginx", ["/var/log/nginx/*.log"]),
        ("apt", ["/var/log/apt/term.log", "/var/log/apt/history.log"]),
        ("rsyslog", ["/var/log/syslog", "/var/log/mail.log", "/var/log/kern.log"]),
        # quoted, one per line, and a postrotate script with braces inside
        ("workbot", ["/srv/workbot/shared/logs/*.log", "/srv/workbot/.pm2/logs/*.log"]),
    ],
)
def test_logrotate_patterns(fixture, patterns):
    assert logrotate_patterns(fixture_text("logrotate", fixture)) == patterns


def test_logrotate_one_line_stanza_and_globals():
    text = "weekly\ninclude /etc/logrotate.d\n/a/*.log { weekly }\n/b.log {\n daily\n}\n"
    assert logrotate_patterns(text) == ["/a/*.log", "/b.log"]


def test_read_logrotate_dir_skips_taboo_files():
    configs, error = read_logrotate_dir(str(FIXTURES / "logrotate"))
    assert error is None
    assert sorted(configs) == ["apt", "nginx", "rsyslog", "workbot"]  # not workbot.dpkg-old


def test_read_logrotate_dir_missing(tmp_path):
    configs, error = read_logrotate_dir(str(tmp_path / "logrotate.d"))
    assert configs == {} and "does not exist" in error


@pytest.mark.parametrize(
    ("path", "is_dir", "covered_by"),
    [
        ("/var/log/nginx/error.log", False, "nginx"),
        ("/srv/workbot/shared/logs/workbot-error.log", False, "workbot"),
        ("/srv/workbot/shared/logs", True, "workbot"),
        ("/srv/workbot/.pm2/logs", True, "workbot"),
        ("/srv/workbot/.pm2/logs/workbot-out-0.log", False, "workbot"),
        ("/workspace/projects/nohup.out", False, None),
        ("/srv/workbot/shared", True, None),  # a parent is not rotated by a child's glob
        ("/srv/old-workbot/logs", True, None),  # only in a .dpkg-old file
    ],
)
def test_logrotate_coverage(path, is_dir, covered_by):
    configs, _ = read_logrotate_dir(str(FIXTURES / "logrotate"))
    result = logrotate_coverage({path: is_dir}, configs)
    if covered_by:
        assert result == {"covered": {path: covered_by}, "uncovered": []}
    else:
        assert result == {"covered": {}, "uncovered": [path]}


# --- disk and logs --------------------------------------------------------------------------


def test_disk_usage_one_entry_per_filesystem(tmp_path):
    (tmp_path / "a").mkdir()
    entries = disk_usage([str(tmp_path / "a"), str(tmp_path / "not-yet" / "b"), "/proc"])
    here = next(e for e in entries if str(tmp_path / "a") in e["paths"])
    assert str(tmp_path / "not-yet" / "b") in here["paths"]  # measured at its parent
    assert 0 <= here["used_pct"] <= 100
    assert here["total_kb"] >= here["used_kb"]
    assert len({e["path"] for e in entries}) == len(entries)


def test_existing_parent(tmp_path):
    assert existing_parent(str(tmp_path / "x" / "y")) == str(tmp_path)
    assert existing_parent("/") == "/"


def test_expand_log_paths(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("workbot-out.log", "workbot-error.log", "workbot-error.log.1"):
        (logs / name).write_text("x\n")
    (logs / "dir.log").mkdir()
    got = expand_log_paths(
        [str(logs / "*.log"), str(tmp_path / "missing.log"), str(logs / "workbot-out.log")]
    )
    assert got == [str(logs / "workbot-error.log"), str(logs / "workbot-out.log")]
    assert len(expand_log_paths([str(logs / "*")], limit=1)) == 1
