"""The database an app uses: its connection budget, and its address without credentials."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.database import endpoint, pool_plan


def db_pool_plan(budget, workers):
    try:
        return pool_plan(budget, workers)
    except ValueError as exc:
        raise AnsibleFilterError(f"db_pool_plan: {exc}") from exc


def db_endpoint(url, name="DATABASE_URL"):
    try:
        return {**endpoint(url, str(name)), "error": ""}
    except ValueError as exc:
        return {"scheme": "", "host": "", "port": 0, "error": str(exc)}


class FilterModule:
    def filters(self):
        return {"db_pool_plan": db_pool_plan, "db_endpoint": db_endpoint}
