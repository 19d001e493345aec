"""Every filter has its documentation file (plugins/filter/<name>.yml), and ansible-doc
renders each one without a warning."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

# tests/unit/plugins/filter/<this file>: the checkout, which is the collection, is 4 up.
ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = ROOT / "collections"
FILTERS = ROOT / "plugins" / "filter"
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))
COLLECTION = f"{GALAXY['namespace']}.{GALAXY['name']}"

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


def filter_names() -> dict[str, str]:
    """``{filter name: the plugin file's stem}``, from each file's FilterModule().filters()."""
    names: dict[str, str] = {}
    for path in sorted(FILTERS.glob("*.py")):
        if path.stem == "__init__":
            continue
        module = importlib.import_module(
            f"ansible_collections.{COLLECTION}.plugins.filter.{path.stem}"
        )
        for name in module.FilterModule().filters():
            assert name not in names, f"{name} is in both {names.get(name)}.py and {path.name}"
            names[name] = path.stem
    return names


NAMES = filter_names()


def load_doc(name: str) -> dict[str, Any]:
    return yaml.safe_load((FILTERS / f"{name}.yml").read_text(encoding="utf-8"))


def ansible_doc(*args: str) -> subprocess.CompletedProcess[str]:
    """ansible-doc of the Python running the tests (the venv's), on this checkout."""
    exe = Path(sys.executable).with_name("ansible-doc")
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(exe) if exe.exists() else shutil.which("ansible-doc") or "ansible-doc", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ansible_complaints(stderr: str) -> list[str]:
    """Ansible's own warnings and errors (not Python's, such as a dependency's deprecation)."""
    marks = ("[WARNING]", "[ERROR]", "[DEPRECATION WARNING]", "ERROR!")
    return [line for line in stderr.splitlines() if line.lstrip().startswith(marks)]


def test_filters_found():
    assert NAMES, f"no filters in {FILTERS}"


@pytest.mark.parametrize("name", sorted(NAMES))
def test_doc_file(name):
    path = FILTERS / f"{name}.yml"
    assert path.is_file(), f"{name} (plugins/filter/{NAMES[name]}.py) has no {path.name}"
    doc = load_doc(name)
    assert isinstance(doc, dict)
    assert {"DOCUMENTATION", "EXAMPLES", "RETURN"} <= set(doc)
    documentation = doc["DOCUMENTATION"]
    assert documentation["name"] == name
    for key in ("version_added", "short_description", "description"):
        assert documentation.get(key), f"{path.name}: DOCUMENTATION has no {key}"
    assert "_input" in (documentation.get("options") or {})
    # The examples are YAML too (a playbook's tasks), and the return value is documented.
    assert yaml.safe_load(doc["EXAMPLES"])
    assert "_value" in (doc["RETURN"] or {})


def test_no_doc_file_without_its_filter():
    orphans = sorted(p.name for p in FILTERS.glob("*.yml") if p.stem not in NAMES)
    assert not orphans


def test_ansible_doc_renders_every_filter():
    fqcns = [f"{COLLECTION}.{name}" for name in sorted(NAMES)]
    text = ansible_doc("-t", "filter", *fqcns)
    assert text.returncode == 0, text.stderr
    assert not ansible_complaints(text.stderr)
    # ansible-doc exits 0 even when a name is not found: its JSON says which were.
    found = ansible_doc("-j", "-t", "filter", *fqcns)
    assert found.returncode == 0, found.stderr
    assert not ansible_complaints(found.stderr)
    docs = json.loads(found.stdout)
    assert sorted(docs) == fqcns
    for fqcn, entry in docs.items():
        assert entry["doc"]["name"] == fqcn.rsplit(".", 1)[1]
        assert entry["doc"].get("short_description")


def test_ansible_doc_lists_none_undocumented():
    listed = ansible_doc("-j", "-t", "filter", "-l", COLLECTION)
    assert listed.returncode == 0, listed.stderr
    docs = json.loads(listed.stdout)
    assert sorted(docs) == sorted(f"{COLLECTION}.{name}" for name in NAMES)
    assert "UNDOCUMENTED" not in docs.values()
