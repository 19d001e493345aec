"""Which hosts the kit runs on: Debian 12 (bookworm) and 13 (trixie), the releases its
package names, unit settings and tests are made for (``host_refusal``); and the addresses
one tier of hosts uses for the other (``peer_addresses``); and the apps one machine serves
(``machine_hosts``); and what is wrong with an address a server is to listen on
(``listen_address_error``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

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


def _given(value: Any) -> Any:
    """A setting counts when it is set and not empty (Jinja's ``default('', true)``)."""
    return value if value not in (None, "", 0) else None


def peer_addresses(
    hosts: Iterable[str],
    hostvars: Mapping[str, Any],
    address_var: str,
    port_vars: Iterable[str] = (),
    default_port: int = 80,
) -> list[dict[str, Any]]:
    """One ``{host, address}`` per host, in the order given: its ``address_var`` setting,
    else its default IPv4 address from its facts, else its ``ansible_host``, else its name.
    With ``port_vars``, also ``port``, the first of those settings the host gives, else
    ``default_port``, and an IPv6 address in brackets (as an Nginx ``server`` takes it)."""
    port_vars = list(port_vars)
    out = []
    for host in hosts:
        hv = hostvars[host]
        facts = hv.get("ansible_facts") or {}
        ipv4 = (facts.get("default_ipv4") or {}) if isinstance(facts, Mapping) else {}
        address = str(
            _given(hv.get(address_var))
            or _given(ipv4.get("address") if isinstance(ipv4, Mapping) else None)
            or _given(hv.get("ansible_host"))
            or host
        )
        entry: dict[str, Any] = {"host": host, "address": address}
        if port_vars:
            ports = [int(hv.get(v) or 0) for v in port_vars]
            entry["port"] = next((p for p in ports if p), int(default_port))
            if ":" in address:
                entry["address"] = f"[{address}]"
        out.append(entry)
    return out


def machine_hosts(hosts: Iterable[str], hostvars: Mapping[str, Any], machine: str) -> list[str]:
    """The hosts of ``hosts``, in their order, whose ``hardenkit_machine`` is ``machine``: the
    apps one machine serves, each an inventory host. A host without the setting is a machine
    of its own, named after it."""
    return [
        host
        for host in hosts
        if str(hostvars[host].get("hardenkit_machine") or host) == str(machine)
    ]


def listen_address_error(value: Any, name: str) -> str:
    """What is wrong with ``value`` as ``ADDRESS:PORT`` to listen on, ``[ADDRESS]:PORT`` for
    IPv6 ("" when nothing is): an IP address, not a name (a listener binds one address, and
    a name may resolve to another tomorrow), and a port from 1 to 65535."""
    text = value if isinstance(value, str) else ""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        six = True
    else:
        six = False
    try:
        ip = ipaddress.ip_address(host)
        number = int(port) if port.isdigit() else 0
    except ValueError:
        ip, number = None, 0
    if sep and ip is not None and (ip.version == 6) == six and 1 <= number <= 65535:
        return ""
    return (
        f"{name} must be an IP address and a port, as 127.0.0.1:9100 or [::1]:9100 (got {value!r})"
    )


class FilterModule:
    def filters(self):
        return {
            "host_refusal": host_refusal,
            "peer_addresses": peer_addresses,
            "machine_hosts": machine_hosts,
            "listen_address_error": listen_address_error,
        }
