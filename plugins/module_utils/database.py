"""The database an app uses: its address, read from a URL, and its connection budget.

The app reaches its database through a URL in its environment (``DATABASE_URL``). The
kit never prints it: what it reads from it is the host and the port, and what it says
about a bad one names the variable, never the value.

PM2 runs the app as several workers, each with its own connection pool, and for a moment
one process more: a graceful reload starts each new worker before it stops the old one,
and the pre-traffic gate runs the new release beside the live workers. So the pool each
process may open is the budget divided by the workers plus one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

# The scheme's default port. Anything else is not a database this kit knows how to reach.
DEFAULT_PORTS = {"postgres": 5432, "postgresql": 5432, "mysql": 3306, "mariadb": 3306}

# The processes of one app that may hold connections at once besides its workers: the new
# worker of a graceful reload, or the pre-traffic gate's process (never both: the gate
# stops before the switch).
EXTRA_PROCESSES = 1


def endpoint(url: Any, name: str = "DATABASE_URL") -> dict[str, Any]:
    """``{"scheme", "host", "port"}`` of a database URL, or ValueError naming ``name``.

    A URL whose host is a Unix socket directory (``?host=/run/postgresql``, as libpq and
    node-postgres read it) has ``host`` set to that path and ``port`` to the default.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError(
            f"{name} in app_env must be the database's URL, e.g. postgres://host:5432/db"
        )
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"{name} in app_env is not a URL the kit can read (its port?)") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        known = ", ".join(f"{s}://" for s in DEFAULT_PORTS)
        raise ValueError(f"{name} in app_env must start with {known} (it does not)")
    host = parts.hostname or ""
    for item in parts.query.split("&"):
        key, _, value = item.partition("=")
        if key == "host" and value.startswith("/"):
            host = value
    if not host:
        raise ValueError(f"{name} in app_env names no database host")
    return {"scheme": scheme, "host": host, "port": port or DEFAULT_PORTS[scheme]}


def pool_plan(budget: Any, workers: Any) -> dict[str, Any]:
    """How many connections each process of the app may open within ``budget``.

    ``budget`` 0 means none is set: ``pool_max`` is 0 and the app keeps its own pool size.
    ``error`` says what does not fit and what would ("" when it fits).
    """
    try:
        budget = int(budget)
        workers = int(workers)
    except (TypeError, ValueError):
        raise ValueError("the budget and the workers must be whole numbers") from None
    if budget < 0:
        raise ValueError(f"app_db_connection_budget must be 0 (none) or more (got {budget})")
    if workers < 1:
        raise ValueError(f"the app runs at least one worker (got {workers})")
    processes = workers + EXTRA_PROCESSES
    plan = {
        "budget": budget,
        "workers": workers,
        "processes": processes,
        "pool_max": 0,
        "error": "",
    }
    if budget == 0:
        return plan
    plan["pool_max"] = budget // processes
    if plan["pool_max"] < 1:
        plan["error"] = (
            f"app_db_connection_budget {budget} is below what {workers} PM2 worker(s) need: "
            f"each of them, and the one more process a graceful reload or the pre-traffic "
            f"gate starts, needs a connection ({processes} in all). Raise "
            f"app_db_connection_budget to {processes} or more, or run fewer workers "
            f"(pm2_instances: {max(budget - EXTRA_PROCESSES, 1)})"
            if budget > EXTRA_PROCESSES
            else f"app_db_connection_budget {budget} leaves no connection for the app: "
            f"raise it to {processes} or more"
        )
    return plan
