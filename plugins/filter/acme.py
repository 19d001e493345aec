"""ACME certificates for Nginx: what is wrong with the settings (``acme_settings_errors``),
from ``module_utils/acme.py``, which the ``acme_certificate`` module shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.acme import settings_errors


def acme_settings_errors(settings: Mapping[str, Any]) -> list[str]:
    """One message per wrong ACME setting, each naming the variable and the fix; none when
    ``enabled`` is false. ``settings``: ``{enabled, server_name, email, directory,
    tls_enabled, certificate, certificate_key, behind_lb, ca_bundle}``."""
    s = dict(settings or {})
    return settings_errors(
        bool(s.get("enabled")),
        s.get("server_name", ""),
        s.get("email", ""),
        s.get("directory", ""),
        bool(s.get("tls_enabled")),
        s.get("certificate", ""),
        s.get("certificate_key", ""),
        bool(s.get("behind_lb")),
        s.get("ca_bundle", ""),
    )


class FilterModule:
    def filters(self):
        return {"acme_settings_errors": acme_settings_errors}
