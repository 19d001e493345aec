"""The run's notification: one message per run of harden.yml or deploy.yml with the fleet
summary, to ``hardenkit_notify_webhook_url``.

A playbook writes the fleet summary more than once: after each serial batch, and from the
rescue of a host that failed (``playbooks/tasks/recover.yml``), while the other hosts of its
batch go on. ``due`` decides which of those writes is the run's last and whether it sends:
the last one of the last batch, or of the batch where a host failed (the rollout stops
there); sent when a host failed or was rolled back, or on every run when asked. ``body``
shapes the message: a generic JSON document, or Slack's (``{"text": ...}``).
``settings_errors`` checks the settings before any host changes.

The URL is a secret (a Slack-style webhook carries its credential in it): no message here
names it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.options import webhook_url_errors

# The verdicts a message is always sent for.
PROBLEMS = ("failed", "rolled_back")
FORMATS = ("generic", "slack")
# Which fleet write this is: after a batch, or from a failing host's rescue.
WRITES = ("batch_end", "failing")


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def flag(value: Any) -> bool | None:
    """A boolean setting as Ansible reads one (``-e name=true`` gives a string); None when
    it is neither."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def settings_errors(url: Any, fmt: Any, always: Any, allow_http: Any) -> list[str]:
    """One message per wrong notification setting, each naming the variable and the fix;
    none when ``url`` is empty (notifications off). The URL is never shown."""
    errors: list[str] = []
    url = "" if url is None else url
    if not isinstance(url, str):
        return ["hardenkit_notify_webhook_url must be a string (an https URL), or empty"]
    if fmt not in FORMATS:
        errors.append(f"hardenkit_notify_format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    for name, value in (("always", always), ("allow_http", allow_http)):
        if flag(value) is None:
            errors.append(f"hardenkit_notify_{name} must be true or false (got {value!r})")
    return errors + webhook_url_errors(
        url,
        "hardenkit_notify_webhook_url",
        flag(allow_http) is True,
        "hardenkit_notify_allow_http",
        "the fleet summary (and the URL's credential)",
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _rows(fleet: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rows = fleet.get("hosts") if isinstance(fleet, Mapping) else None
    if not isinstance(rows, list):
        raise ValueError("expected a fleet summary (fleet_summary's {hosts, totals})")
    return [r for r in rows if isinstance(r, Mapping)]


def problems(fleet: Mapping[str, Any]) -> list[str]:
    """The hosts of ``fleet`` whose run failed or was rolled back, in its order."""
    return [str(r.get("host")) for r in _rows(fleet) if r.get("verdict") in PROBLEMS]


def due(
    fleet: Mapping[str, Any],
    write: str,
    batch: Sequence[str],
    failing: Sequence[str],
    last_host: str,
    always: bool = False,
) -> bool:
    """Whether this write of the fleet summary sends the run's one message.

    ``write``: ``batch_end`` (after a batch, by the hosts still in it) or ``failing`` (from
    the rescue of ``failing``, the hosts failing now). ``batch``: the batch's hosts still
    active (``ansible_play_batch``: a host that failed earlier is gone from it, one failing
    now is still there). ``last_host``: the play's last host (``ansible_play_hosts_all``).

    A failing write is the batch's last only when no other host of the batch goes on (each
    would write again at the batch's end). The batch's last write is the run's when the
    batch holds the play's last host, or when a host failed (the rollout stops after it).
    """
    if write not in WRITES:
        raise ValueError(f"write must be one of {', '.join(WRITES)} (got {write!r})")
    if write == "failing" and set(map(str, batch)) - set(map(str, failing)):
        return False
    bad = problems(fleet)
    if not bad and str(last_host) not in set(map(str, batch)):
        return False
    return bool(bad) or bool(always)


def _line(row: Mapping[str, Any]) -> str:
    release = _mapping(row.get("release"))
    before, after = release.get("before"), release.get("live")
    if not row.get("reached"):
        return f"{row.get('host')}: not reached, still on {after or 'no release'}"
    move = f"{before or 'none'} → {after or 'none'}" if before != after else f"{after or 'none'}"
    attempted = release.get("attempted")
    tried = f" (tried {attempted})" if attempted and attempted != after else ""
    outcome = f", {row['outcome']}" if row.get("outcome") else ""
    return f"{row.get('host')}: {row.get('verdict')}{outcome}, release {move}{tried}"


def summary(fleet: Mapping[str, Any], play: str) -> str:
    """One line: the play, the app and each verdict's count."""
    totals = _mapping(fleet.get("totals"))
    counts = [f"{n} {v}" for v, n in _mapping(totals.get("verdicts")).items()]
    if totals.get("not_reached"):
        counts.append(f"{totals['not_reached']} not reached")
    app = fleet.get("app") or "the app"
    return f"hardenkit {play} of {app}: {', '.join(counts) or 'no host reached'}"


def body(fleet: Mapping[str, Any], fmt: str, play: str, summary_path: str = "") -> dict[str, Any]:
    """The message. ``generic``: ``{source, play, app, generated_at, summary, problems,
    hosts: [{host, reached, verdict, outcome, release: {before, after, attempted}, report}],
    totals, fleet_report}``. ``slack``: ``{text}``, the summary line then a line per host."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    rows = _rows(fleet)
    line = summary(fleet, play)
    if fmt == "slack":
        text = "\n".join([line, *(f"• {_line(r)}" for r in rows)])
        if summary_path:
            text += f"\nFleet summary: {summary_path}"
        return {"text": text}
    hosts = []
    for r in rows:
        release = _mapping(r.get("release"))
        hosts.append(
            {
                "host": r.get("host"),
                "reached": bool(r.get("reached")),
                "verdict": r.get("verdict"),
                "outcome": r.get("outcome"),
                "release": {
                    "before": release.get("before"),
                    "after": release.get("live"),
                    "attempted": release.get("attempted"),
                },
                "report": r.get("report"),
            }
        )
    return {
        "source": "hardenkit",
        "play": play,
        "app": fleet.get("app"),
        "generated_at": fleet.get("generated_at"),
        "summary": line,
        "problems": problems(fleet),
        "hosts": hosts,
        "totals": fleet.get("totals"),
        "fleet_report": summary_path or None,
    }
