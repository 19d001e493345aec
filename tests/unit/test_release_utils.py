"""Release naming, memory sizing and build completeness: the pure helpers behind the roles."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.memory import memory_plan
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nextbuild import check_next_build
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.srctree import (
    is_excluded,
    release_id,
    tree_hash,
)


@pytest.mark.parametrize(
    ("path", "excludes", "expected"),
    [
        ("node_modules/next/index.js", ["node_modules"], True),
        ("app/node_modules/x.js", ["node_modules"], True),
        ("app/page.tsx", ["node_modules", ".next"], False),
        (".next/BUILD_ID", [".next"], True),
        ("public/big/file.bin", ["public/big"], True),
        ("public/bigger.bin", ["public/big"], False),
        ("dist/server.js", ["./dist"], True),
        ("distant/file", ["dist"], False),
        ("app/page.tsx", [""], False),
    ],
)
def test_is_excluded(path, excludes, expected):
    assert is_excluded(path, excludes) is expected


def write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def test_tree_hash_depends_on_content_not_on_location(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        write(root, "package.json", '{"name": "x"}')
        write(root, "app/page.tsx", "export default 1")
    write(b, "node_modules/big.js", "ignored")
    assert tree_hash(str(a), ["node_modules"]) == tree_hash(str(b), ["node_modules"])
    write(b, "app/page.tsx", "export default 2")
    assert tree_hash(str(a), ["node_modules"]) != tree_hash(str(b), ["node_modules"])


def test_tree_hash_sees_the_executable_bit_and_symlinks(tmp_path: Path):
    write(tmp_path, "run.sh", "echo hi", 0o644)
    before = tree_hash(str(tmp_path), [])
    os.chmod(tmp_path / "run.sh", 0o755)
    assert tree_hash(str(tmp_path), []) != before
    with_exec = tree_hash(str(tmp_path), [])
    os.symlink("run.sh", tmp_path / "link")
    assert tree_hash(str(tmp_path), []) != with_exec


def test_tree_hash_of_a_missing_directory_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tree_hash(str(tmp_path / "nope"), [])


def test_release_id_changes_with_every_input_and_hides_env_values():
    base = release_id("tree:abc", "pnpm build", {"A": "secret"})
    assert len(base) == 12
    assert release_id("tree:abc", "pnpm build", {"A": "secret"}) == base
    assert release_id("tree:abd", "pnpm build", {"A": "secret"}) != base
    assert release_id("tree:abc", "pnpm run build", {"A": "secret"}) != base
    assert release_id("tree:abc", "pnpm build", {"A": "other"}) != base
    assert release_id("tree:abc", "pnpm build", {"A": "secret"}, {"node": "20"}) != base
    assert "secret" not in base


@pytest.mark.parametrize(
    ("mem", "instances", "restart", "heap"),
    [
        (2048, 2, 716, 572),
        (24000, 2, 8400, 6720),
        (1024, 4, 179, 143),
        (512, 8, 128, 128),
    ],
)
def test_memory_plan(mem, instances, restart, heap):
    plan = memory_plan(mem, instances)
    assert plan == {"max_memory_restart_mb": restart, "max_old_space_size_mb": heap}
    assert plan["max_old_space_size_mb"] <= plan["max_memory_restart_mb"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 2), "host memory"),
        ((2048, 0), "instances"),
        ((2048, 2, 1.5), "fraction"),
        ((2048, 2, 0.7, 1.0), "heap_ratio"),
    ],
)
def test_memory_plan_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        memory_plan(*args)


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
