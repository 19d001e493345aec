# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Filters for what roles/dev_cleanup found and did (``module_utils/cleanup.py``).

``port_holders``: ``facts | hardenkit.nodeapp.port_holders(port=..., app_user=...,
ss_lines=..., passwd=..., reaped=..., package_users=...)`` returns one entry per listener
on ``port`` in diagnose's ``facts``: ``{pid, user, process, manager, address, cwd, scope,
ours, reaped}`` (tasks/takeover.yml).

``dev_cleanup_result``: ``{reaped, takeover, disabled, left_alone, other_hooks, checkouts}
| hardenkit.nodeapp.dev_cleanup_result`` returns ``{stopped, disabled, skipped,
checkouts}``, the role's ``dev_cleanup_result`` (tasks/report.yml).

``dev_cleanup_summary``: ``dev_cleanup_result | hardenkit.nodeapp.dev_cleanup_summary(
dev_regex, app_port, check_mode=ansible_check_mode)`` says it in one line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.module_utils import cleanup

_ERRORS = (TypeError, ValueError, AttributeError, re.error)


def _mapping(name: str, value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise AnsibleFilterError(f"{name}: expected {what}, got {value!r}")
    return value


def port_holders(
    facts: Mapping[str, Any],
    port: int,
    app_user: str,
    ss_lines: Any = None,
    passwd: Any = None,
    reaped: Any = None,
    package_users: Any = None,
) -> list[dict[str, Any]]:
    facts = _mapping("port_holders", facts, "diagnose's facts")
    try:
        return cleanup.port_holders(
            facts["listeners"],
            facts["processes"],
            int(port),
            app_user,
            ss_lines or [],
            passwd or {},
            reaped or [],
            package_users or [],
        )
    except KeyError as exc:
        raise AnsibleFilterError(f"port_holders: a listener or process without {exc}") from exc
    except _ERRORS as exc:
        raise AnsibleFilterError(f"port_holders: {exc}") from exc


def dev_cleanup_result(done: Mapping[str, Any]) -> dict[str, Any]:
    done = _mapping("dev_cleanup_result", done, "a mapping of what the role did")
    try:
        return cleanup.cleanup_result(done)
    except KeyError as exc:
        raise AnsibleFilterError(f"dev_cleanup_result: an entry without {exc}") from exc
    except _ERRORS as exc:
        raise AnsibleFilterError(f"dev_cleanup_result: {exc}") from exc


def dev_cleanup_summary(
    result: Mapping[str, Any], dev_regex: str, app_port: Any, check_mode: bool = False
) -> str:
    result = _mapping("dev_cleanup_summary", result, "dev_cleanup_result")
    try:
        return cleanup.cleanup_summary(result, dev_regex, app_port, bool(check_mode))
    except KeyError as exc:
        raise AnsibleFilterError(f"dev_cleanup_summary: an entry without {exc}") from exc
    except _ERRORS as exc:
        raise AnsibleFilterError(f"dev_cleanup_summary: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "port_holders": port_holders,
            "dev_cleanup_result": dev_cleanup_result,
            "dev_cleanup_summary": dev_cleanup_summary,
        }
