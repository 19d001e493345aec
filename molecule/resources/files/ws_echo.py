#!/usr/bin/env python3
"""WebSocket echo check, standard library only: upgrade (101), send a frame, read the echo.

Usage: ws_echo.py URL [MESSAGE]  (ws:// or wss://; certificates are not verified)
Prints a JSON line; exits 1 on any failure.
"""

import base64
import hashlib
import json
import os
import socket
import ssl
import sys
from urllib.parse import urlsplit

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    head = bytes([0x81])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_exact(sock, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def main() -> int:
    url = urlsplit(sys.argv[1])
    message = sys.argv[2] if len(sys.argv) > 2 else "hello from hardenkit"
    port = url.port or (443 if url.scheme == "wss" else 80)
    sock = socket.create_connection((url.hostname, port), timeout=10)
    if url.scheme == "wss":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock, server_hostname=url.hostname)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {url.path or '/'} HTTP/1.1\r\nHost: {url.hostname}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    pairs = (x.partition(":") for x in lines[1:] if x)
    headers = {k.strip().lower(): v.strip() for k, _, v in pairs}
    expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    result = {"status": status, "accept_ok": headers.get("sec-websocket-accept") == expected}
    if status == 101:
        sock.sendall(frame(message.encode()))
        b1, b2 = read_exact(sock, 2)
        n = b2 & 0x7F
        if n == 126:
            n = int.from_bytes(read_exact(sock, 2), "big")
        elif n == 127:
            n = int.from_bytes(read_exact(sock, 8), "big")
        result["opcode"] = b1 & 0x0F
        result["echo"] = read_exact(sock, n).decode()
    sock.close()
    print(json.dumps(result))
    ok = status == 101 and result["accept_ok"] and result.get("echo") == message
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
