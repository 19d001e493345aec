"""The run's notification (``module_utils/notify.py``): what is wrong with its settings
(``notify_settings_errors``), whether a write of the fleet summary sends it
(``notify_due``, ``notify.due`` itself) and the message (``notify_body``, ``notify.body``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils import notify


def notify_settings_errors(settings: Mapping[str, Any]) -> list[str]:
    """One message per wrong setting; ``settings``: ``{url, format, always, allow_http}``."""
    s = dict(settings or {})
    return notify.settings_errors(
        s.get("url", ""), s.get("format"), s.get("always"), s.get("allow_http")
    )


class FilterModule:
    def filters(self):
        return {
            "notify_settings_errors": notify_settings_errors,
            "notify_due": notify.due,
            "notify_body": notify.body,
        }
