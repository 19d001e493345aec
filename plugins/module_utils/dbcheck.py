"""Whether the app's database answers, and how many connections the app holds to it.

Read-only, and from the database's address alone (module_utils/database.py reads it from
the app's URL): no credentials, no query. Reachability is one TCP (or Unix socket)
connection, closed before it sends a byte; PostgreSQL logs nothing for such a connection.
A MySQL or MariaDB server counts it against the client (``max_connect_errors`` can block
the app's host), so those are not connected to: only their connections are counted.

The connections are counted from ``/proc/net/tcp`` and ``tcp6``: established sockets to
the database's address and port that belong to the app's user, the user every process of
the app runs as. That needs no access to the processes' file descriptors, so it works
where root lacks CAP_SYS_PTRACE too.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import time
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import (
    ProcfsError,
    decode_address,
)

TCP_ESTABLISHED = "01"
PROBED_SCHEMES = frozenset({"postgres", "postgresql"})
CONNECT_TIMEOUT = 2.0
# getaddrinfo has no timeout of its own: a resolver that does not answer must not hold
# the diagnosis up longer than a connection would.
RESOLVE_TIMEOUT = 2.0


def resolve(host: str, port: int, timeout: float = RESOLVE_TIMEOUT) -> tuple[list[str], str]:
    """The addresses of ``host`` (``([], reason)`` when it has none or takes too long)."""
    try:
        return [str(ipaddress.ip_address(host))], ""
    except ValueError:
        pass
    box: dict[str, Any] = {}

    def lookup() -> None:
        try:
            box["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            box["error"] = exc.strerror or str(exc)

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return [], f"resolving {host} took over {timeout:g} s"
    if "error" in box:
        return [], f"resolving {host}: {box['error']}"
    return sorted({str(info[4][0]) for info in box.get("infos", [])}), ""


def reach(
    host: str, port: int, addresses: list[str], timeout: float = CONNECT_TIMEOUT
) -> dict[str, Any]:
    """One connection to the database, closed at once: ``{reachable, error, connect_ms}``."""
    started = time.monotonic()
    if host.startswith("/"):
        path = os.path.join(host, f".s.PGSQL.{port}")
        targets: list[tuple[int, Any]] = [(socket.AF_UNIX, path)]
    else:
        targets = [
            (socket.AF_INET6 if ":" in addr else socket.AF_INET, (addr, port)) for addr in addresses
        ]
    error = "no address to connect to"
    for family, target in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(target)
        except OSError as exc:
            where = target if isinstance(target, str) else f"{target[0]}:{target[1]}"
            error = f"connect to {where}: {exc.strerror or exc}"
            continue
        finally:
            sock.close()
        return {
            "reachable": True,
            "error": "",
            "connect_ms": round((time.monotonic() - started) * 1000, 1),
        }
    return {"reachable": False, "error": error, "connect_ms": None}


def _same(address: str, wanted: set[str]) -> bool:
    if address in wanted:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped is not None and str(mapped) in wanted


def count_established(
    text: str, addresses: list[str], port: int, uid: int, byteorder: str = sys.byteorder
) -> int:
    """Established sockets in ``/proc/net/tcp``-format ``text`` from ``uid`` to one of
    ``addresses`` on ``port``."""
    wanted = set(addresses)
    count = 0
    for lineno, line in enumerate(text.splitlines()):
        fields = line.split()
        if (lineno == 0 and fields[:1] == ["sl"]) or len(fields) < 10:
            continue
        if fields[3] != TCP_ESTABLISHED or fields[7] != str(uid):
            continue
        addr_hex, _, port_hex = fields[2].partition(":")
        try:
            if int(port_hex, 16) != port:
                continue
            if _same(decode_address(addr_hex, byteorder), wanted):
                count += 1
        except (ValueError, OSError, ProcfsError):
            continue
    return count


def connections(addresses: list[str], port: int, uid: int, proc_root: str = "/proc") -> int:
    total = 0
    for name in ("tcp", "tcp6"):
        try:
            with open(f"{proc_root}/net/{name}", encoding="ascii", errors="replace") as fh:
                total += count_established(fh.read(), addresses, port, uid)
        except OSError:  # no IPv6 in this kernel or namespace
            continue
    return total


def check(database: dict[str, Any], uid: int | None, proc_root: str = "/proc") -> dict[str, Any]:
    """The diagnosis's ``database`` facts: where it is (never who logs in), whether it
    answers, and the app's connections to it against the budget."""
    host = str(database["host"])
    port = int(database["port"])
    scheme = str(database.get("scheme") or "postgres")
    out: dict[str, Any] = {
        "host": host,
        "port": port,
        "scheme": scheme,
        "budget": int(database.get("budget") or 0),
        "reachable": None,
        "error": "",
        "connect_ms": None,
        "connections": None,
    }
    addresses: list[str] = []
    if not host.startswith("/"):
        addresses, out["error"] = resolve(host, port)
        if out["error"]:
            out["reachable"] = False
            return out
    if scheme in PROBED_SCHEMES:
        out.update(reach(host, port, addresses))
    if addresses and uid is not None:
        out["connections"] = connections(addresses, port, uid, proc_root)
    return out
