"""Settings a role does not know: a typo such as pm2_instance is silently ignored by
Ansible, and the run goes on with the default the user meant to change
(``unknown_settings``); what is wrong with each of ``app_probes`` (``probe_errors``); and
with a webhook URL setting (``webhook_url_errors``, ``module_utils/options.py``)."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.options import (
    actions_key_error,
    hook_errors,
    is_list,
    release_hooks,
    shared_path_errors,
    webhook_url_errors,
)

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


def _as_int(value: Any) -> int:
    """Jinja's ``int`` filter: 0 for what is not a number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


def probe_errors(probes: Any, path_pattern: str) -> list[str]:
    """One message per entry of ``probes`` (app_probes) that is not ``{path, status}`` with a
    path matching ``path_pattern`` and a status from 100 to 599, naming its index. A value
    that is not a list gives none: the type check says so."""
    if not is_list(probes):
        return []
    out = []
    for index, probe in enumerate(probes):
        path = probe.get("path") if isinstance(probe, Mapping) else None
        status = _as_int(probe.get("status", 0)) if isinstance(probe, Mapping) else 0
        if isinstance(path, str) and re.match(path_pattern, path) and 100 <= status <= 599:
            continue
        try:
            got = json.dumps(probe)
        except (TypeError, ValueError):
            got = repr(probe)
        out.append(
            f"app_probes[{index}] must be {{path: /..., status: 100-599}}, the path without"
            f" spaces, control characters, quotes, backslashes or ;{{}} (got {got})"
        )
    return out


class FilterModule:
    def filters(self):
        return {
            "unknown_settings": unknown_settings,
            "probe_errors": probe_errors,
            "webhook_url_errors": webhook_url_errors,
            "shared_path_errors": shared_path_errors,
            "release_hook_errors": hook_errors,
            "release_hooks": release_hooks,
            "actions_key_error": actions_key_error,
        }
