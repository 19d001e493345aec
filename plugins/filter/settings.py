"""Settings a role does not know: a typo such as pm2_instance is silently ignored by
Ansible, and the run goes on with the default the user meant to change."""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
# Each role's prefix. app_ covers app_release_ too; each prefix's known names are every
# role's options (a variable of one role may be read by another: app_port by nginx_proxy).
PREFIXES = (
    "app_",
    "node_runtime_",
    "dev_cleanup_",
    "pm2_",
    "nginx_proxy_",
    "logrotate_",
    "watchdog_",
    "diagnostics_",
)


def known_settings(roles: Path = ROLES) -> set[str]:
    """Every option of every entry point of every role (meta/argument_specs.yml)."""
    known: set[str] = set()
    for spec in sorted(roles.glob("*/meta/argument_specs.yml")):
        doc = yaml.safe_load(spec.read_text(encoding="utf-8")) or {}
        for entry in (doc.get("argument_specs") or {}).values():
            known.update((entry or {}).get("options") or {})
    return known


def unknown_settings(names, allowed=(), roles: Path = ROLES) -> list[dict[str, str]]:
    """Each role-prefixed name in ``names`` that no role knows, with the nearest known name
    ("" when none is close)."""
    known = known_settings(roles) | set(allowed)
    out = []
    for name in sorted(str(n) for n in names):
        if not name.startswith(PREFIXES) or name in known:
            continue
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        out.append({"name": name, "suggestion": near[0] if near else ""})
    return out


class FilterModule:
    def filters(self):
        return {"unknown_settings": unknown_settings}
