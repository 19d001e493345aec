"""L11: developers' .env*.local files never leave the control node.

`next build` and `next start` load .env.local and .env.production.local, and inline their
NEXT_PUBLIC_ values into the client bundle. The default app_src_exclude drops them from both
things made of app_src: the release id (the source_hash lookup) and the archive copied to
the host (copy_local.yml's tar, run here as the role renders it).
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from hk_testlib import trusted

from ansible_collections.hardenkit.nodeapp.plugins.lookup.source_hash import (
    glob_excluded,
)
from ansible_collections.hardenkit.nodeapp.plugins.lookup.source_hash import (
    source_hash as plugin_source_hash,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.srctree import tree_hash

ROOT = Path(__file__).resolve().parents[2]
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


def test_l11_tar_with_the_default_excludes_drops_env_local(tmp_path):
    """copy_local.yml's pack step, rendered by Ansible and run by bash: the archive holds the
    files source_hash counts, and no .env*.local."""
    src = app_tree(tmp_path / "src", local_env=True)
    copy_local = ROOT / "roles" / "app_release" / "tasks" / "copy_local.yml"
    task = yaml.safe_load(copy_local.read_text())[0]
    variables = {
        **trusted(DEFAULTS),
        "app_name": "workbot",
        "app_release_id": "abc123",
        "app_src": str(src),
        "app_src_exclude": EXCLUDE,
    }
    cmd = Templar(loader=DataLoader(), variables=variables).template(
        trust_as_template(task["ansible.builtin.shell"]["cmd"])
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = subprocess.run(
        ["bash", "-c", cmd], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    with tarfile.open(result.stdout) as tar:
        packed = {m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()}
    assert not any(name.endswith(".local") for name in packed), packed
    assert {".env", ".env.production", "apps/web/app/page.tsx"} <= packed
    hashed = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    hashed = {
        p
        for p in hashed
        if not p.startswith(("node_modules/", ".next/")) and not glob_excluded(p, [".env*.local"])
    }
    assert packed == hashed
