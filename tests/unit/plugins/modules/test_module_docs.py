"""Every module's documentation parses, and its options are the ones the module takes."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

MODULES = sorted((Path(__file__).resolve().parents[4] / "plugins" / "modules").glob("*.py"))


def constants(path: Path) -> dict[str, object]:
    out = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


def documented_options(doc: dict) -> dict:
    """The options a module documents, with those of this collection's doc fragments it
    extends (a key the module states replaces the fragment's, as ansible-doc merges them)."""
    options = {}
    for name in doc.get("extends_documentation_fragment") or []:
        namespace, collection, fragment = name.split(".", 2)
        if (namespace, collection) != ("hardenkit", "nodeapp"):
            continue
        module = importlib.import_module(
            f"ansible_collections.hardenkit.nodeapp.plugins.doc_fragments.{fragment}"
        )
        options.update(yaml.safe_load(module.ModuleDocFragment.DOCUMENTATION)["options"])
    for key, value in (doc.get("options") or {}).items():
        options[key] = {**options.get(key, {}), **value}
    return options


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_documentation_parses_and_names_every_option(path):
    found = constants(path)
    docs = {name: yaml.safe_load(found[name]) for name in ("DOCUMENTATION", "EXAMPLES", "RETURN")}
    assert docs["DOCUMENTATION"]["module"] == path.stem
    spec = found.get("ARGUMENT_SPEC")
    if spec is None and "ARGUMENT_SPEC" in path.read_text(encoding="utf-8"):
        # Built from shared parts (probes.probe_spec): read it from the module itself.
        module = importlib.import_module(
            f"ansible_collections.hardenkit.nodeapp.plugins.modules.{path.stem}"
        )
        spec = module.ARGUMENT_SPEC
    if isinstance(spec, dict):
        assert set(documented_options(docs["DOCUMENTATION"])) == set(spec)
