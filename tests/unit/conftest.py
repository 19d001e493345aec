"""Fixtures for the unit tests of the diagnosis (helpers live in tests/hk_testlib.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# --- HTTP servers -------------------------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[Callable[..., ThreadingHTTPServer]]:
    """Start a local HTTP server answering ``routes`` ({path: status}); 200 otherwise.

    ``server.seen`` records each request's path and Host header.
    """
    servers: list[ThreadingHTTPServer] = []

    def start(routes: dict[str, int] | None = None, default: int = 200) -> ThreadingHTTPServer:
        table = dict(routes or {})

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.server.seen.append({"path": self.path, "host": self.headers.get("Host")})
                status = table.get(self.path, default)
                body = f"<!DOCTYPE html><title>{status}</title>WorkBot {self.path}".encode()
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/login")
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.seen = []  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()
