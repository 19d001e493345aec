"""Build completeness (module_utils/nextbuild.py): the pure helper behind the roles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nextbuild import check_next_build
from tests.unit.plugins.module_utils.test_srctree import write


def make_build(root: Path, *, drop: str | None = None) -> Path:
    release = root / "release"
    files = {
        ".next/BUILD_ID": "abc123",
        ".next/server/app-paths-manifest.json": json.dumps(
            {"/page": "app/page.js", "/api/health/route": "app/api/health/route.js"}
        ),
        ".next/server/pages-manifest.json": json.dumps(
            {"/_document": "pages/_document.js", "/404": "pages/404.html"}
        ),
        ".next/server/app/page.js": "",
        ".next/server/app/api/health/route.js": "",
        ".next/server/pages/_document.js": "",
        ".next/server/pages/404.html": "",
        "dist/server.js": "",
    }
    for rel, text in files.items():
        if rel != drop:
            write(release, rel, text)
    return release


def test_complete_build(tmp_path: Path):
    result = check_next_build(str(make_build(tmp_path)), required=["dist/server.js"])
    assert result["complete"] is True
    assert result["build_id"] == "abc123"
    assert "/api/health/route" in result["routes"]
    assert result["missing"] == []


@pytest.mark.parametrize(
    "drop",
    [
        # The incident's ENOENTs, one at a time.
        ".next/server/app/page.js",
        ".next/server/pages/_document.js",
        ".next/server/app/api/health/route.js",
        ".next/BUILD_ID",
        "dist/server.js",
    ],
)
def test_incomplete_build_names_the_missing_file(tmp_path: Path, drop: str):
    result = check_next_build(str(make_build(tmp_path, drop=drop)), required=["dist/server.js"])
    assert result["complete"] is False
    assert drop in result["missing"]


def test_unreadable_manifest_is_an_error_not_an_empty_build(tmp_path: Path):
    release = make_build(tmp_path)
    (release / ".next/server/app-paths-manifest.json").write_text("{not json")
    result = check_next_build(str(release))
    assert result["complete"] is False
    assert any("app-paths-manifest.json" in e for e in result["errors"])


def test_no_build_at_all(tmp_path: Path):
    result = check_next_build(str(tmp_path))
    assert result["complete"] is False
    assert ".next/BUILD_ID" in result["missing"]
    assert ".next/server/app-paths-manifest.json" in result["missing"]
