"""The database check against real sockets: a listener on loopback, a refused port, a
PostgreSQL-style Unix socket, and this process's own connections read from /proc/net/tcp."""

from __future__ import annotations

import os
import socket

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.dbcheck import (
    check,
    count_established,
)


@pytest.fixture
def listener():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server
    server.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_listening_database_answers_and_the_apps_connections_are_counted(listener):
    port = listener.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        got = check({"host": "127.0.0.1", "port": port, "budget": 10}, os.getuid())
    finally:
        for client in clients:
            client.close()
    assert got["reachable"] is True
    assert got["error"] == ""
    assert got["connect_ms"] >= 0
    # The three clients: neither the server's ends nor the probe's own closed connection.
    assert got["connections"] == 3
    assert (got["host"], got["port"], got["budget"]) == ("127.0.0.1", port, 10)


def test_another_users_connections_are_not_the_apps(listener):
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    try:
        got = check({"host": "127.0.0.1", "port": port}, os.getuid() + 4242)
    finally:
        client.close()
    assert got["connections"] == 0


def test_a_refused_port_is_unreachable_with_the_reason():
    port = free_port()
    got = check({"host": "127.0.0.1", "port": port, "budget": 10}, os.getuid())
    assert got["reachable"] is False
    assert got["error"] == f"connect to 127.0.0.1:{port}: Connection refused"


def test_a_name_that_does_not_resolve_is_unreachable():
    got = check({"host": "db.invalid", "port": 5432}, os.getuid())
    assert got["reachable"] is False
    assert got["error"].startswith("resolving db.invalid")
    assert got["connections"] is None


def test_a_postgresql_socket_directory(tmp_path):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / ".s.PGSQL.5433"))
    server.listen(1)
    try:
        up = check({"host": str(tmp_path), "port": 5433}, os.getuid())
    finally:
        server.close()
    down = check({"host": str(tmp_path), "port": 5434}, os.getuid())
    assert up["reachable"] is True
    assert up["connections"] is None  # no TCP to count
    assert down["reachable"] is False
    assert ".s.PGSQL.5434" in down["error"]


def test_a_mysql_server_is_counted_but_never_connected_to(listener):
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    try:
        got = check({"scheme": "mysql", "host": "127.0.0.1", "port": port}, os.getuid())
    finally:
        client.close()
    assert got["reachable"] is None
    assert got["connections"] == 1


def row(local: str, remote: str, state: str, uid: int) -> str:
    """One line of /proc/net/tcp or tcp6 (the fields after the inode left short)."""
    return f"   0: {local} {remote} {state} 00000000:00000000 00:00000000 00000000 {uid} 0 1001 1"


HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
# Addresses as the kernel prints them on a little-endian host: 127.0.0.1, 10.0.0.9 and
# the same as IPv4-mapped IPv6 addresses (four 32-bit words, each in host order).
LOCAL4, DB4 = "0100007F:9C50", "0900000A:1538"  # port 0x1538 = 5432
MAPPED = "0000000000000000FFFF0000"
LOCAL6, DB6 = f"{MAPPED}0100007F:9C40", f"{MAPPED}0900000A:1538"
OTHER_PORT6 = f"{MAPPED}0900000A:1539"
ANY6 = "0" * 32

# Two established connections of uid 997 to 10.0.0.9:5432 (one as a mapped address), one
# of another user, one to another port, one in TIME_WAIT (06) and a listener (0A).
TCP6 = "\n".join(
    [
        HEADER,
        row(LOCAL6, DB6, "01", 997),
        row(LOCAL6, DB6, "01", 1000),
        row(LOCAL6, OTHER_PORT6, "01", 997),
        row(f"{ANY6}:1388", f"{ANY6}:0000", "0A", 997),
    ]
)
TCP4 = "\n".join([HEADER, row(LOCAL4, DB4, "01", 997), row(LOCAL4, DB4, "06", 997)])


def test_established_connections_by_user_address_and_port():
    assert count_established(TCP6, ["10.0.0.9"], 5432, 997, "little") == 1
    assert count_established(TCP4, ["10.0.0.9"], 5432, 997, "little") == 1  # TIME_WAIT not
    assert count_established(TCP4, ["10.0.0.8"], 5432, 997, "little") == 0
