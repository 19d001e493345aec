"""Filters for release naming and Node.js memory sizing."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.memory import memory_plan
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.srctree import release_id


def _release_id(source, build_command, build_env=None, extra=None):
    if not isinstance(build_env or {}, dict):
        raise AnsibleFilterError("release_id: build_env must be a mapping")
    return release_id(str(source), str(build_command), build_env or {}, extra or {})


def _memory_plan(mem_total_mb, instances, fraction=0.7, heap_ratio=0.8, min_mb=128):
    try:
        return memory_plan(
            int(mem_total_mb), int(instances), float(fraction), float(heap_ratio), int(min_mb)
        )
    except ValueError as exc:
        raise AnsibleFilterError(f"node_memory_plan: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"release_id": _release_id, "node_memory_plan": _memory_plan}
