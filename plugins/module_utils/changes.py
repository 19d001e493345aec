"""What a run changed, a line each, for the report (diagnostics_changes).

``run_changes`` reads the facts the roles and the recovery leave behind and lists, in the
order the run does them: the release switch, what PM2 did, what dev cleanup stopped and
disabled, what a failed run put back, and the Nginx reload. PM2's restart for a variable
that went away from the app's environment is said with the names, never the values.
Command lines and the stale workers' reasons are cut short (``truncate``) so that one
change stays one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# What run_changes reads, each passed by playbooks/tasks/changes.yml with its default for
# a run that never set it (a role that did not run, a run that did not fail).
INPUTS = (
    "app_release_switched",
    "app_release_live_id",
    "app_release_id",
    "pm2_started",
    "pm2_reloads",
    "pm2_stale_fix",
    "pm2_stale_workers",
    "pm2_env_removed",
    "dev_cleanup_result",
    "hardenkit_put_back",
    "pm2_service_name",
    "nginx_proxy_changed",
)

# The strings Ansible's `bool` filter takes for true (any case); facts set from templates
# can arrive as "True" or "yes".
_TRUE = frozenset({"yes", "on", "true", "1"})


def flag(value: Any) -> bool:
    """``value`` as Ansible's ``bool`` filter reads it: True, 1, 1.0 and "yes", "on",
    "true", "1" in any case are true; everything else is false."""
    if isinstance(value, str):
        return value.lower() in _TRUE
    if isinstance(value, int):  # bool too
        return str(value).lower() in _TRUE
    return bool(value == 1)


def count(value: Any) -> int:
    """``value`` as Jinja's ``int`` filter reads it: 2, "2", "2.7" give 2; anything that
    is no number gives 0."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return 0


def truncate(text: str, length: int, end: str = "...", leeway: int = 5) -> str:
    """Jinja's ``truncate(length)``: kept whole up to ``length + leeway`` characters;
    otherwise cut to ``length - len(end)`` characters, back to the last space if there is
    one, and ``end`` appended."""
    if len(text) <= length + leeway:
        return text
    return text[: length - len(end)].rsplit(" ", 1)[0] + end


def _joined(items: Iterable[Any], sep: str) -> str:
    return sep.join(str(item) for item in items)


def _required(run: Mapping[str, Any], name: str, because: str) -> Any:
    value = run[name]
    if value is None:
        raise ValueError(f"{name} is not set, but {because}")
    return value


def run_changes(run: Mapping[str, Any]) -> list[str]:
    """The run's changes, one line each, from ``run``: a mapping with every key of
    ``INPUTS``.

    ``dev_cleanup_result`` is the role's ``{stopped, disabled, ...}`` and
    ``hardenkit_put_back`` the recovery's ``{pm2_stopped, current_removed, started,
    not_started}``; an empty mapping says the step did nothing. ``app_release_id`` and
    ``pm2_service_name`` may be None unless the release switched or the recovery stopped
    the PM2 unit (ValueError then).
    """
    missing = [name for name in INPUTS if name not in run]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    out: list[str] = []
    if flag(run["app_release_switched"]):
        release = _required(run, "app_release_id", "app_release_switched is true")
        out.append(f"release {run['app_release_live_id'] or 'none'} -> {release}")
    if flag(run["pm2_started"]):
        out.append("PM2 started the app under systemd")
    if count(run["pm2_reloads"]) > 0:
        out.append(f"PM2 reloaded the app {run['pm2_reloads']} time(s)")
    if run["pm2_stale_fix"]:
        fix = "restarted" if run["pm2_stale_fix"] == "restart" else "reloaded"
        why = truncate(_joined(run["pm2_stale_workers"], "; "), 160)
        out.append(f"PM2 {fix}: its workers ran another release than the live one ({why})")
    if run["pm2_env_removed"]:
        names = truncate(_joined(run["pm2_env_removed"], ", "), 160)
        out.append(
            f"PM2 restarted: the app's environment no longer sets {names}, which a reload "
            "keeps (pm2#3486)"
        )
    cleanup = run["dev_cleanup_result"]
    for p in cleanup.get("stopped", []):
        cmd = truncate(str(p.get("cmdline") or ""), 80)
        out.append(f"stopped pid {p['pid']} ({p.get('user', '?')}): {cmd}")
    for h in cleanup.get("disabled", []):
        out.append(f"disabled boot hook: {h['kind']} {h.get('unit') or h.get('file') or ''}")
    put_back = run["hardenkit_put_back"]
    if flag(put_back.get("pm2_stopped", False)):
        unit = _required(run, "pm2_service_name", "the recovery stopped the PM2 unit")
        out.append(f"PM2 unit {unit} stopped and disabled: it did not serve the app")
    if flag(put_back.get("current_removed", False)):
        out.append("current removed again: no release was live before this run")
    for p in put_back.get("started", []):
        cmd = truncate(str(p["cmdline"] or ""), 80)
        out.append(
            f"started again as it ran: pid {p['pid']} -> {p['new_pid']} ({p['user'] or '?'}, "
            f"port {_joined(p['served'], ', ')}): {cmd}"
        )
    for p in put_back.get("not_started", []):
        cmd = truncate(str(p["cmdline"] or ""), 60)
        out.append(f"left stopped: pid {p['pid']} ({p['user'] or '?'}): {cmd}, {p['why']}")
    if flag(run["nginx_proxy_changed"]):
        out.append("Nginx configuration changed, checked with nginx -t and reloaded")
    return out
