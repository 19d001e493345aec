# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Filter for the run's list of changes (playbooks/tasks/changes.yml).

``run_changes``: ``{app_release_switched: ..., app_release_live_id: ..., ...} |
hardenkit.nodeapp.run_changes`` returns the run's changes, a line each (the report's
``diagnostics_changes``). The mapping has every fact the list is made from, each with its
default when the run never set it (``module_utils/changes.py``, ``INPUTS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.module_utils import changes


def run_changes(run: Mapping[str, Any]) -> list[str]:
    if not isinstance(run, Mapping):
        raise AnsibleFilterError(f"run_changes: expected a mapping of facts, got {run!r}")
    try:
        return changes.run_changes(run)
    except KeyError as exc:
        raise AnsibleFilterError(f"run_changes: an entry without {exc}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise AnsibleFilterError(f"run_changes: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"run_changes": run_changes}
