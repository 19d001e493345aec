"""Every role's meta/argument_specs.yml and defaults/main.yml agree.

The spec is what Ansible validates and what users read; the defaults are what runs. A
default without a spec entry is an undocumented knob, a spec default that differs from
defaults/main.yml is a lie, and the app_* contract must mean the same in every role.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLES = sorted(p.parent.parent for p in ROOT.glob("roles/*/meta/argument_specs.yml"))
ROLE_IDS = [r.name for r in ROLES]


def load(path: Path):
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def entry_points(role: Path) -> dict:
    return load(role / "meta" / "argument_specs.yml")["argument_specs"]


def test_every_role_has_specs_and_defaults():
    names = {p.name for p in (ROOT / "roles").iterdir() if p.is_dir()}
    assert names, "no roles found"
    for name in names:
        role = ROOT / "roles" / name
        assert (role / "meta" / "argument_specs.yml").is_file(), f"{name}: no argument_specs.yml"
        assert (role / "defaults" / "main.yml").is_file(), f"{name}: no defaults/main.yml"


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_defaults_match_spec(role: Path):
    defaults = load(role / "defaults" / "main.yml")
    options = entry_points(role)["main"]["options"]
    for name, spec in options.items():
        assert "description" in spec, f"{role.name}: {name} has no description"
        assert "type" in spec, f"{role.name}: {name} has no type"
        if spec.get("required"):
            assert name not in defaults, f"{role.name}: required {name} must not have a default"
            assert "default" not in spec, f"{role.name}: required {name} has a spec default"
            continue
        assert name in defaults, f"{role.name}: {name} is in the spec but not in defaults"
        assert spec.get("default") == defaults[name], (
            f"{role.name}: {name} defaults to {defaults[name]!r} but the spec says "
            f"{spec.get('default')!r}"
        )
    undocumented = set(defaults) - set(options)
    assert not undocumented, f"{role.name}: defaults without a spec entry: {sorted(undocumented)}"


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_entry_points_share_the_main_spec(role: Path):
    specs = entry_points(role)
    assert "validate" in specs, f"{role.name}: no validate entry point (harden.yml step 0)"
    for name, spec in specs.items():
        assert spec["options"] == specs["main"]["options"], f"{role.name}: {name} differs from main"
        assert (role / "tasks" / f"{name}.yml").is_file(), f"{role.name}: no tasks/{name}.yml"


def test_only_the_app_role_defines_the_app_contract():
    """app_* defaults live once, in hardenkit.nodeapp.app, which every role depends on."""
    for role in ROLES:
        if role.name == "app":
            continue
        defaults = load(role / "defaults" / "main.yml")
        owned = {n for n in defaults if n.startswith("app_") and not n.startswith("app_release_")}
        assert not owned, f"{role.name} redefines {sorted(owned)}"
        uses_app = any("app_" in p.read_text() for p in (role / "tasks").glob("*.yml"))
        deps = load(role / "meta" / "main.yml").get("dependencies") or []
        names = [d["role"] if isinstance(d, dict) else d for d in deps]
        if uses_app and role.name != "node_runtime":
            assert "hardenkit.nodeapp.app" in names, f"{role.name} uses app_* without the app role"


def test_role_knobs_carry_the_role_prefix():
    for role in ROLES:
        for name in entry_points(role)["main"]["options"]:
            assert name.startswith(f"{role.name}_"), f"{role.name}: {name} lacks the role prefix"
