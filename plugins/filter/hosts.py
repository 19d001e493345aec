"""Which hosts the kit runs on: Debian 12 (bookworm) and 13 (trixie), the releases its
package names, unit settings and tests are made for."""

from __future__ import annotations

SUPPORTED = {"12": "bookworm", "13": "trixie"}


def host_refusal(facts) -> str:
    """Why the kit refuses this host ("" when it runs on it), from Ansible's facts."""
    facts = facts or {}
    name = str(facts.get("distribution") or "an unknown system")
    major = str(facts.get("distribution_major_version") or "")
    codename = str(facts.get("distribution_release") or "")
    if name == "Debian" and major in SUPPORTED and codename in (SUPPORTED[major], ""):
        return ""
    version = str(facts.get("distribution_version") or major or "").strip()
    found = " ".join(part for part in (name, version) if part and part != "NA")
    if codename and codename not in ("NA", "n/a") and codename not in found:
        found = f"{found} ({codename})"
    return (
        f"This host runs {found}, but hardenkit runs on Debian 12 (bookworm) and 13 (trixie)"
        " only: reinstall it with one of them, or take it out of app_servers and"
        " load_balancers."
    )


class FilterModule:
    def filters(self):
        return {"host_refusal": host_refusal}
