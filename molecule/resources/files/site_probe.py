"""Probes of a live site the uri module cannot make: raw sockets, held connections, TLS
handshakes, the certificate served. Standard library only; one JSON object on stdout.

Usage: site_probe.py MODE ARGS... (verify_security.yml and the apps scenario's ACME checks)
"""

import base64
import json
import os
import socket
import ssl
import sys
import threading
import time


def connect(host, port, tls, timeout=5):
    sock = socket.create_connection((host, port), timeout=timeout)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        sock = ctx.wrap_socket(sock, server_hostname=host)
    return sock


def cut_off(host, port, tls, bound, first, drip, out, key):
    """Send `first`, then one byte of `drip` a second: when does the server hang up?"""
    sock, start, i, answer = connect(host, port, tls), time.monotonic(), 0, b""
    sock.sendall(first)
    sock.settimeout(1)
    while time.monotonic() - start < bound:
        try:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
        except TimeoutError:
            pass
        except OSError:
            break
        if drip:
            try:
                sock.sendall(drip[i % len(drip) : i % len(drip) + 1])
            except OSError:
                break
            i += 1
    else:
        out[key] = {"cut_off_after": None, "answer": answer[:60].decode("latin-1")}
        return
    out[key] = {
        "cut_off_after": round(time.monotonic() - start, 1),
        "answer": answer.split(b"\r\n")[0].decode("latin-1"),
    }


def slow(host, port, tls, bound):
    out, threads = {}, []
    for key, first, drip in (
        ("header", b"GET / HTTP/1.1\r\nHost: localhost\r\n", b"X-Slow: a\r\n"),
        (
            "body",
            b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"x" * 10,
            b"",
        ),
    ):
        t = threading.Thread(target=cut_off, args=(host, port, tls, bound, first, drip, out, key))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return out


def ws(host, port, tls, path, count):
    statuses, held = {}, []
    for _ in range(count):
        sock = connect(host, port, tls)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            if not chunk:
                break
            head += chunk
        status = head.split(b" ")[1].decode() if head.count(b" ") else "closed"
        statuses[status] = statuses.get(status, 0) + 1
        held.append(sock)
    for sock in held:
        sock.close()
    return statuses


def reach(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return f"unreachable: {exc}"


def handshake(host, port, version, ciphers):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    if ciphers:
        ctx.set_ciphers(ciphers)
    try:
        with ctx.wrap_socket(
            socket.create_connection((host, port), timeout=5), server_hostname=host
        ) as sock:
            return {"accepted": True, "detail": f"{sock.version()} {sock.cipher()[0]}"}
    except ssl.SSLError as exc:
        return {"accepted": False, "detail": exc.reason or str(exc)}


def tls(host, port):
    offers = {
        "TLSv1.1": ("TLSv1_1", "DEFAULT:@SECLEVEL=0"),
        "TLSv1.2 CBC": ("TLSv1_2", "ECDHE-RSA-AES128-SHA:@SECLEVEL=0"),
        "TLSv1.2 RSA key exchange": ("TLSv1_2", "AES128-GCM-SHA256:@SECLEVEL=0"),
        "TLSv1.2": ("TLSv1_2", None),
        "TLSv1.3": ("TLSv1_3", None),
    }
    return {name: handshake(host, port, *offer) for name, offer in offers.items()}


def raw(host, port, tls, request):
    sock, answer = connect(host, port, tls), b""
    sock.sendall(request.encode().decode("unicode_escape").encode("latin-1"))
    while chunk := sock.recv(4096):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return {"status": lines[0], "server": headers.get("server"), "body": body.decode("latin-1")}


def peer(host, port, cafile, name):
    """The certificate served for ``name``, its chain verified against ``cafile`` alone."""
    ctx = ssl.create_default_context(cafile=cafile)
    with ctx.wrap_socket(
        socket.create_connection((host, port), timeout=5), server_hostname=name
    ) as sock:
        cert = sock.getpeercert()
    return {
        "serial": cert["serialNumber"],
        "issuer": dict(pair for rdn in cert["issuer"] for pair in rdn),
        "names": [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"],
        "not_after": cert["notAfter"],
    }


mode, args = sys.argv[1], sys.argv[2:]
if mode == "slow":
    result = slow(args[0], int(args[1]), args[2] == "tls", int(args[3]))
elif mode == "ws":
    result = ws(args[0], int(args[1]), args[2] == "tls", args[3], int(args[4]))
elif mode == "reach":
    result = {"app": reach(args[0], int(args[1])), "nginx": reach(args[0], int(args[2]))}
elif mode == "tls":
    result = tls(args[0], int(args[1]))
elif mode == "peer":
    result = peer(args[0], int(args[1]), args[2], args[3])
else:
    result = raw(args[0], int(args[1]), args[2] == "tls", args[3])
print(json.dumps(result))
