"""L11: developers' .env*.local files never leave the control node.

`next build` and `next start` load .env.local and .env.production.local, and inline their
NEXT_PUBLIC_ values into the client bundle. The default app_src_exclude drops them from both
things made of app_src: the release id (the source_hash lookup) and the archive copied to
the host (pack_local.yml's tar, run as the role renders it:
tests/integration/roles/app_release/test_pack_local.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.hardenkit.nodeapp.plugins.lookup.source_hash import (
    glob_excluded,
    source_manifest,
)
from ansible_collections.hardenkit.nodeapp.plugins.lookup.source_hash import (
    source_hash as plugin_source_hash,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.srctree import (
    tree_hash,
)
from tests.hk_testlib import trusted

ROOT = Path(__file__).resolve().parents[4]
PACK_LOCAL = ROOT / "roles" / "app_release" / "tasks" / "pack_local.yml"
DEFAULTS = yaml.safe_load((ROOT / "roles" / "app" / "defaults" / "main.yml").read_text())
EXCLUDE = DEFAULTS["app_src_exclude"]
LOCAL_ENV = [
    ".env.local",
    ".env.development.local",
    ".env.production.local",
    ".env.test.local",
    "apps/web/.env.local",
]


def app_tree(root: Path, local_env: bool) -> Path:
    files = {
        "package.json": "{}",
        "pnpm-lock.yaml": "lockfileVersion: '9.0'\n",
        "app/page.tsx": "export default () => null\n",
        "apps/web/app/page.tsx": "export default () => null\n",
        ".env": "NEXT_PUBLIC_SITE=shared\n",
        ".env.production": "A=1\n",
        "node_modules/x/index.js": "",
        ".next/BUILD_ID": "x",
    }
    if local_env:
        files |= dict.fromkeys(LOCAL_ENV, "NEXT_PUBLIC_X=leak\n")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def lookup(root: Path, exclude: list[str]) -> str:
    """What the lookup returns for one directory (its run() calls this per term)."""
    return plugin_source_hash(str(root), exclude)


def source_hash(root: Path) -> str:
    return lookup(root, EXCLUDE)


def test_l11_env_local_is_excluded_by_default():
    assert ".env*.local" in EXCLUDE
    spec = yaml.safe_load((ROOT / "roles" / "app" / "meta" / "argument_specs.yml").read_text())
    assert spec["argument_specs"]["main"]["options"]["app_src_exclude"]["default"] == EXCLUDE


def test_l11_source_hash_is_the_same_with_and_without_env_local(tmp_path):
    without = app_tree(tmp_path / "a", local_env=False)
    with_local = app_tree(tmp_path / "b", local_env=True)
    assert source_hash(without) == source_hash(with_local)
    # the shared .env files still count
    (with_local / ".env.production").write_text("A=2\n")
    assert source_hash(without) != source_hash(with_local)
    # without a pattern among the excludes: the digest release ids always had
    plain = [e for e in EXCLUDE if "*" not in e]
    assert lookup(without, plain) == tree_hash(str(without), plain)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".env.local", True),
        (".env.production.local", True),
        ("apps/web/.env.test.local", True),
        (".env", False),
        (".env.production", False),
        ("docs/env.local", False),
        (".env.local.example", False),
        ("config/.env.staging.local/x", True),
    ],
)
def test_l11_patterns_match_like_tar(path, expected):
    assert glob_excluded(path, [".env*.local"]) is expected


def pack_local_task(name: str) -> dict:
    return next(t for t in yaml.safe_load(PACK_LOCAL.read_text()) if t["name"] == name)


def render(template: str, src: Path, **extra) -> str:
    variables = {
        **trusted(DEFAULTS),
        "app_name": "workbot",
        "app_release_id": "abc123",
        "app_src": str(src),
        "app_src_exclude": EXCLUDE,
        "__app_release_src_files": source_manifest(str(src), EXCLUDE),
        **extra,
    }
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(template))


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=dev@example.test", "-c", "user.name=Dev",
         "-c", "commit.gpgsign=false", "-C", str(root), *args],
        check=True, capture_output=True,
    )  # fmt: skip


ODD = ["odd\nname", "back\\slash", "-dash", "sp ace"]


def git_app(root: Path) -> Path:
    """app_tree as a git work tree: everything committed (the .env*.local too), then an
    ignored, an untracked, a staged, a modified and a deleted file."""
    app_tree(root, local_env=True)
    for name in ODD:
        (root / name).write_text(name)
    (root / ".gitignore").write_text("node_modules/\n.next/\n*.log\n")
    (root / "gone.txt").write_text("x")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    (root / "debug.log").write_text("ignored")
    (root / "notes.txt").write_text("untracked")
    (root / "staged.ts").write_text("staged")
    git(root, "add", "staged.ts")
    (root / "app" / "page.tsx").write_text("export default () => 1\n")
    (root / "gone.txt").unlink()
    return root


def test_uncommitted_changes_are_a_warning(tmp_path):
    src = git_app(tmp_path / "src")
    task = pack_local_task("Warn about uncommitted changes in app_src")
    assert set(task) == {"name", "ansible.builtin.debug", "vars", "when"}
    manifest = source_manifest(str(src), EXCLUDE)
    assert manifest["changes"] == ["app/page.tsx", "gone.txt", "staged.ts"]
    msg = render(task["ansible.builtin.debug"]["msg"], src, **trusted(task["vars"]))
    assert msg.startswith("WARNING:")
    assert msg.endswith(": app/page.tsx, gone.txt, staged.ts")
    # at most 20 names
    many = {**manifest, "changes": [f"f{i:02}" for i in range(25)]}
    msg = render(task["ansible.builtin.debug"]["msg"], src, **trusted(task["vars"]),
                 __app_release_src_files=many)  # fmt: skip
    assert msg.endswith(": " + ", ".join(f"f{i:02}" for i in range(20)) + ", and 5 more")
    # nothing to say for a clean work tree, nor outside git
    git(src, "add", "-A")
    git(src, "commit", "-qm", "all")
    assert source_manifest(str(src), EXCLUDE)["changes"] == []
    plain = app_tree(tmp_path / "plain", local_env=False)
    assert source_manifest(str(plain), EXCLUDE) == {
        "git": False, "files": [], "tar_list": "", "changes": []
    }  # fmt: skip


def test_git_must_track_package_json(tmp_path):
    src = app_tree(tmp_path / "src", local_env=False)
    git(src, "init", "-q")
    git(src, "add", "app")
    task = pack_local_task("Check that git tracks the app's package.json")
    that = task["ansible.builtin.assert"]["that"]
    check = "{{ " + that + " }}"
    assert render(check, src) is False
    git(src, "add", "package.json")
    assert render(check, src) is True
