"""The Nginx configuration of each tier, rendered from roles/nginx_proxy's templates (as
tests/unit/roles/nginx_proxy/test_nginx_templates.py renders them), run by a real Nginx.

With an nginx binary (``HARDENKIT_NGINX``, else ``nginx`` on PATH or /usr/sbin/nginx) each
rendering is checked with ``nginx -t``, and a small fleet runs for real on loopback
ports: a TLS load balancer, two app servers' Nginx and a Python app behind each. Without
one those tests are skipped, and say so.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.hk_testlib import free_port
from tests.unit.roles.nginx_proxy.test_nginx_templates import (
    FLEET,
    FLEET_VARS,
    ROLE,
    SINGLE,
    TLS,
    directive,
    load,
    location,
    render,
)

# --- nginx -t and a live fleet, with an nginx binary ----------------------------------------------


def nginx_binary() -> str | None:
    given = os.environ.get("HARDENKIT_NGINX")
    if given:
        return given
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None
    )


NGINX = nginx_binary()
needs_nginx = pytest.mark.skipif(
    NGINX is None, reason="no nginx binary (set HARDENKIT_NGINX=/path/to/nginx)"
)


def self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "workbot.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def nginx_prefix(base: Path, conf: dict[str, str]) -> Path:
    """A self-contained Nginx prefix around the role's two files (its logs and temp paths
    under ``base``, where Debian's nginx.conf would put them under /var)."""
    logs = base / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # the page cache's parent: the role creates the cache directory itself
    (base / "cache").mkdir(exist_ok=True)
    (base / "http.conf").write_text(
        conf["http.conf"].replace("/var/cache/nginx/", f"{base}/cache/"), encoding="utf-8"
    )
    (base / "site.conf").write_text(
        conf["site.conf"].replace("/var/log/nginx/", f"{logs}/"), encoding="utf-8"
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {base}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (base / "nginx.conf").write_text(
        f"{user}pid {base}/nginx.pid;\nerror_log {logs}/error.log;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n{temp}    access_log off;\n"
        f"    include {base}/http.conf;\n    include {base}/site.conf;\n}}\n",
        encoding="utf-8",
    )
    return base


def nginx_t(base: Path) -> tuple[int, str]:
    """``nginx -t`` on the prefix: its exit code and every message it logged."""
    assert NGINX
    log = base / "logs" / "startup.log"
    log.unlink(missing_ok=True)
    result = subprocess.run(
        [NGINX, "-t", "-q", "-e", str(log), "-p", str(base), "-c", str(base / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    messages = result.stderr + (log.read_text() if log.exists() else "")
    return result.returncode, messages


@needs_nginx
@pytest.mark.parametrize(
    ("host", "groups", "hostvars", "tls"),
    [
        ("web1", SINGLE, {}, False),
        ("web1", SINGLE, {}, True),
        ("lb1", FLEET, FLEET_VARS, False),
        ("lb1", FLEET, FLEET_VARS, True),
        ("app1", FLEET, FLEET_VARS, False),
        ("web1", SINGLE, {}, "acme"),
        ("lb1", FLEET, FLEET_VARS, "acme"),
    ],
    ids=[
        "single",
        "single-tls",
        "load-balancer",
        "load-balancer-tls",
        "behind-load-balancer",
        "single-acme-before-the-certificate",
        "load-balancer-acme-before-the-certificate",
    ],
)
def test_nginx_accepts_the_configuration(tmp_path, host, groups, hostvars, tls):
    given: dict[str, Any] = {}
    if tls == "acme":
        # Before certbot's first certificate: plain HTTP with the challenge location.
        given = {
            "app_server_name": "shop.example.com",
            "nginx_proxy_acme_enabled": True,
            "nginx_proxy_acme_email": "ops@example.com",
        }
    elif tls:
        cert, key = self_signed(tmp_path / "tls")
        given = {
            **TLS,
            "nginx_proxy_tls_certificate": str(cert),
            "nginx_proxy_tls_certificate_key": str(key),
        }
    base = nginx_prefix(tmp_path / "nginx", render(host, groups, hostvars, **given))
    code, messages = nginx_t(base)
    # no error, and no warning either (a duplicate directive value is only a warning)
    assert code == 0 and messages.strip() == "", messages


@needs_nginx
def test_nginx_rejects_a_load_balancer_name_in_geo(tmp_path):
    """Why the load balancers' addresses must be IP addresses (tasks/peers.yml checks)."""
    conf = render("app1", FLEET, {"lb1": {"ansible_host": "lb1.example.com"}})
    code, messages = nginx_t(nginx_prefix(tmp_path / "nginx", conf))
    assert code != 0
    assert "invalid network" in messages, messages


# --- the live fleet -------------------------------------------------------------------------------

CLIENT = "127.0.0.2"  # the visitor; Nginx's own connections come from 127.0.0.1


class App(BaseHTTPRequestHandler):
    """The app behind one app server's Nginx: says who it is and which headers it got."""

    def do_GET(self) -> None:
        if self.path.startswith("/_next/static/"):
            status, body = 404, b"not here"
        else:
            status = 200
            body = json.dumps(
                {
                    "server": self.server.name,  # type: ignore[attr-defined]
                    "peer": self.client_address[0],
                    "x-real-ip": self.headers.get("X-Real-IP"),
                    "x-forwarded-for": self.headers.get("X-Forwarded-For"),
                    "x-forwarded-proto": self.headers.get("X-Forwarded-Proto"),
                }
            ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def wait_listening(port: int, proc: subprocess.Popen, base: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError((base / "logs" / "startup.log").read_text())
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nginx in {base} does not listen on {port}")


@pytest.fixture
def fleet(tmp_path) -> Iterator[dict[str, Any]]:
    """lb1 (TLS) in front of app1 and app2, every piece on its own loopback port."""
    if NGINX is None:
        pytest.skip("no nginx binary (set HARDENKIT_NGINX=/path/to/nginx)")
    procs: dict[str, subprocess.Popen] = {}
    servers: list[ThreadingHTTPServer] = []
    ports = {name: free_port() for name in ("app1", "app2", "lb1", "lb1_tls")}
    hostvars: dict[str, dict[str, Any]] = {
        "lb1": {"ansible_facts": {"default_ipv4": {"address": "127.0.0.1"}}},
    }
    common = {"nginx_proxy_listen_ipv6": False}
    try:
        for name in ("app1", "app2"):
            app = ThreadingHTTPServer(("127.0.0.1", 0), App)
            app.name = name  # type: ignore[attr-defined]
            threading.Thread(target=app.serve_forever, args=(0.05,), daemon=True).start()
            servers.append(app)
            app_root = tmp_path / name / "app"
            (app_root / "shared" / "static" / "_next" / "static").mkdir(parents=True)
            hostvars[name] = {
                "nginx_proxy_backend_address": "127.0.0.1",
                "nginx_proxy_listen_port": ports[name],
            }
            conf = render(
                name,
                FLEET,
                hostvars,
                app_port=app.server_address[1],
                app_root=str(app_root),
                nginx_proxy_listen_port=ports[name],
                **common,
            )
            procs[name] = start_nginx(nginx_prefix(tmp_path / name / "nginx", conf), ports[name])
        # a new release's asset, on app2's disk only (a deploy halfway through the fleet)
        (
            tmp_path / "app2" / "app" / "shared" / "static" / "_next" / "static" / "new.js"
        ).write_text("console.log('new')")
        cert, key = self_signed(tmp_path / "tls")
        conf = render(
            "lb1",
            FLEET,
            hostvars,
            **common,
            nginx_proxy_tls_enabled=True,
            nginx_proxy_listen_port=ports["lb1"],
            nginx_proxy_tls_port=ports["lb1_tls"],
            nginx_proxy_tls_certificate=str(cert),
            nginx_proxy_tls_certificate_key=str(key),
        )
        procs["lb1"] = start_nginx(nginx_prefix(tmp_path / "lb1" / "nginx", conf), ports["lb1_tls"])
        yield {"ports": ports, "procs": procs}
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for server in servers:
            server.shutdown()
            server.server_close()


def start_nginx(base: Path, port: int) -> subprocess.Popen:
    assert NGINX
    code, messages = nginx_t(base)
    assert code == 0, messages
    proc = subprocess.Popen(
        [
            NGINX,
            "-e",
            str(base / "logs" / "startup.log"),
            "-p",
            str(base),
            "-c",
            str(base / "nginx.conf"),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(port, proc, base)
    return proc


def get(
    port: int, path: str, headers: dict[str, str] | None = None, tls: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """GET from the visitor's address (127.0.0.2)."""
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=10, source_address=(CLIENT, 0), context=ctx
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(CLIENT, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@needs_nginx
def test_live_fleet(fleet):
    ports, procs = fleet["ports"], fleet["procs"]

    # Through the load balancer, over TLS, with a forged X-Forwarded-For and -Proto.
    seen = set()
    for _ in range(6):
        status, headers, body = get(
            ports["lb1_tls"],
            "/api/echo",
            tls=True,
            headers={"X-Forwarded-For": "203.0.113.66", "X-Forwarded-Proto": "gopher"},
        )
        assert status == 200, body
        got = json.loads(body)
        seen.add(got["server"])
        # the app server took the visitor's address from the load balancer, not the forgery
        assert got["x-real-ip"] == CLIENT, got
        assert got["x-forwarded-for"].split(", ")[-1] == CLIENT, got
        assert got["x-forwarded-proto"] == "https", got
        assert headers["x-content-type-options"] == "nosniff"
        assert "max-age=" in headers["strict-transport-security"]
    assert seen == {"app1", "app2"}, "the load balancer uses both app servers"

    # Straight to an app server, not from a load balancer: nothing forwarded is believed.
    status, _, body = get(
        ports["app1"],
        "/api/echo",
        headers={"X-Forwarded-For": "203.0.113.66", "X-Forwarded-Proto": "https"},
    )
    got = json.loads(body)
    assert status == 200 and got["x-real-ip"] == CLIENT and got["x-forwarded-proto"] == "http", got

    # A new release's asset on one app server only: found through the load balancer every
    # time, with that server's cache header.
    for _ in range(4):
        status, headers, body = get(ports["lb1_tls"], "/_next/static/new.js", tls=True)
        assert status == 200 and body == b"console.log('new')"
        assert "immutable" in headers["cache-control"]
    assert get(ports["lb1_tls"], "/_next/static/none.js", tls=True)[0] == 404

    # Plain HTTP at the load balancer redirects to HTTPS.
    status, headers, _ = get(ports["lb1"], "/login")
    assert status == 301 and headers["location"].startswith("https://")

    # app1's Nginx stops: every request still succeeds, on app2.
    procs["app1"].terminate()
    procs["app1"].wait(timeout=10)
    for _ in range(6):
        status, _, body = get(ports["lb1_tls"], "/api/echo", tls=True)
        assert status == 200 and json.loads(body)["server"] == "app2", body


# --- the page cache, live --------------------------------------------------------------------

# Next.js 15's Vary on pages.
NEXT_VARY = (
    "RSC, Next-Router-State-Tree, Next-Router-Prefetch, Next-Router-Segment-Prefetch,"
    " Accept-Encoding"
)


class Pages(BaseHTTPRequestHandler):
    """Answers like a Next.js app: each path one way of marking a response; counts renders."""

    MARKS: ClassVar[dict[str, tuple[int, str | None, bool]]] = {
        "/page": (200, "s-maxage=31536000, stale-while-revalidate", False),  # prerendered
        "/private": (200, "private, no-cache, no-store, max-age=0, must-revalidate", False),
        "/cookie": (200, "s-maxage=60", True),
        "/unmarked": (200, None, False),
        "/public": (200, "public, max-age=60", False),
        "/missing": (404, "s-maxage=60", False),
        "/api/data": (200, "s-maxage=60", False),
    }

    def do_GET(self) -> None:
        status, cache_control, cookie = self.MARKS[self.path.split("?")[0]]
        renders = self.server.renders  # type: ignore[attr-defined]
        renders[self.path] = renders.get(self.path, 0) + 1
        rsc = self.headers.get("RSC")
        body = json.dumps(
            {
                "path": self.path,
                "render": renders[self.path],
                "rsc": rsc,
                "tree": self.headers.get("Next-Router-State-Tree"),
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/x-component" if rsc else "text/html")
        if cache_control:
            self.send_header("Cache-Control", cache_control)
        if self.path == "/page":
            self.send_header("Vary", NEXT_VARY)
        if cookie:
            self.send_header("Set-Cookie", "session=abc; Path=/; HttpOnly")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def single(tmp_path, request) -> Iterator[dict[str, Any]]:
    """One server's Nginx, as the role writes it, in front of ``Pages``; the page cache's
    lifetime is the test's parameter."""
    if NGINX is None:
        pytest.skip("no nginx binary (set HARDENKIT_NGINX=/path/to/nginx)")
    app = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    app.renders = {}  # type: ignore[attr-defined]
    threading.Thread(target=app.serve_forever, args=(0.05,), daemon=True).start()
    port = free_port()
    app_root = tmp_path / "app"
    (app_root / "shared" / "static").mkdir(parents=True)
    conf = render(
        "web1",
        SINGLE,
        app_port=app.server_address[1],
        app_root=str(app_root),
        nginx_proxy_listen_port=port,
        nginx_proxy_listen_ipv6=False,
        nginx_proxy_rate_limit="1000r/s",
        nginx_proxy_page_cache_valid=request.param,
    )
    proc = start_nginx(nginx_prefix(tmp_path / "nginx", conf), port)
    try:
        yield {"port": port, "renders": app.renders}  # type: ignore[attr-defined]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        app.shutdown()
        app.server_close()


def fetcher(port: int):
    def fetch(path: str, **headers: str) -> tuple[int, str | None, dict[str, Any]]:
        status, got, body = get(port, path, headers=headers)
        return status, got.get("x-cache-status"), json.loads(body)

    return fetch


# A minute, so a slow machine never sees an entry expire in the middle of the test.
@needs_nginx
@pytest.mark.parametrize("single", [60], indirect=True)
def test_live_page_cache(single):
    port, renders = single["port"], single["renders"]
    fetch = fetcher(port)

    # A prerendered page: rendered once, then answered by Nginx with the security headers.
    assert fetch("/page")[1] == "MISS"
    status, headers, body = get(port, "/page")
    assert status == 200 and headers["x-cache-status"] == "HIT", headers
    assert json.loads(body)["render"] == 1 and renders["/page"] == 1
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"].startswith("s-maxage=31536000"), "the app's header goes on"

    # Its RSC payload and a prefetch are other entries, never the HTML.
    _, cache, body = fetch("/page", RSC="1")
    assert cache == "MISS" and body["rsc"] == "1"
    _, cache, body = fetch("/page", RSC="1")
    assert cache == "HIT" and body["rsc"] == "1"
    _, cache, body = fetch("/page", RSC="1", **{"Next-Router-Prefetch": "1"})
    assert cache == "MISS"
    # Vary: another router state is another variant
    _, cache, body = fetch("/page", RSC="1", **{"Next-Router-State-Tree": "%5B%22%22%5D"})
    assert cache == "MISS" and body["tree"] == "%5B%22%22%5D", body
    _, _, body = fetch("/page", RSC="1")
    assert body["tree"] is None, "a request without that state never gets that variant"

    # Credentials: the app answers, and what it answers is not kept.
    before = renders["/page"]
    for headers in ({"Cookie": "session=abc"}, {"Authorization": "Bearer x"}):
        _, cache, body = fetch("/page", **headers)
        assert cache == "BYPASS" and body["render"] > before, body
    _, cache, body = fetch("/page")
    assert cache == "HIT" and body["render"] == 1

    # Never kept: private / no-store, Set-Cookie, unmarked, public without s-maxage, a 404.
    for path in ("/private", "/cookie", "/unmarked", "/public", "/missing"):
        for _ in range(3):
            status, cache, _ = fetch(path)
            assert cache == "MISS", (path, cache)
        assert renders[path] == 3, path
    # The API is never cached, whatever it says.
    for _ in range(3):
        status, headers, _ = get(port, "/api/data")
        assert status == 200 and "x-cache-status" not in headers
    assert renders["/api/data"] == 3


@needs_nginx
@pytest.mark.parametrize("single", [2], indirect=True)
def test_live_page_cache_expires(single):
    """After nginx_proxy_page_cache_valid seconds the app renders the page again: never a
    stale page, even while it does. Nginx counts whole seconds (an entry stored at 10.0 s or
    at 10.9 s with 2 s to live expires after 12.999 s), so it may live up to a second more."""
    fetch = fetcher(single["port"])
    assert fetch("/page")[1] == "MISS"
    _, cache, body = fetch("/page")
    assert cache == "HIT" and body["render"] == 1, (cache, body)
    time.sleep(3.2)
    _, cache, body = fetch("/page")
    assert cache == "EXPIRED" and body["render"] == 2, (cache, body)
    _, cache, body = fetch("/page")
    assert cache == "HIT" and body["render"] == 2, (cache, body)


# --- the app's own headers, links in the static tree, Next.js's internal headers, limits ----

APP_CSP = "default-src 'self'; script-src 'self' 'nonce-r4nd0m'"
# Request headers only Next.js itself may set; a client's must never reach the app.
NEXT_INTERNAL = {
    "x-middleware-subrequest": "middleware:middleware:middleware:middleware:middleware",
    "x-middleware-subrequest-id": "1",
    "x-now-route-matches": "nxtPslug=admin",
    "x-matched-path": "/admin",
    "x-nextjs-data": "1",
    "x-middleware-rewrite": "/admin",
    "x-middleware-next": "1",
    "x-invoke-path": "/admin",
    "x-invoke-query": "%7B%7D",
    "x-invoke-status": "200",
    "x-invoke-output": "/admin",
    "x-invoke-error": "{}",
    "x-action-forwarded": "1",
}


class Headers(BaseHTTPRequestHandler):
    """An app that sets its own security headers on /own (and /own-cached, which the page
    cache keeps) and none elsewhere; it answers with the request headers it got."""

    def answer(self) -> None:
        if self.headers.get("Content-Length"):
            self.rfile.read(int(self.headers["Content-Length"]))
        path = self.path.split("?")[0]
        status = 404 if path.startswith("/_next/static/") else 200
        body = json.dumps(
            {
                "path": path,
                "method": self.command,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if path in ("/own", "/own-cached"):
            self.send_header("Content-Security-Policy", APP_CSP)
            self.send_header("X-Frame-Options", "DENY")
        if path == "/own-cached":
            self.send_header("Cache-Control", "s-maxage=60")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, *args: Any) -> None:
        pass


def send(
    port: int,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    source: str = CLIENT,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request; every response header in order, repeated ones included."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, [(k.lower(), v) for k, v in resp.getheaders()], resp.read()
    finally:
        conn.close()


def values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k == name.lower()]


@contextlib.contextmanager
def nginx_before_headers(
    tmp_path: Path,
    host: str,
    groups: dict[str, list[str]],
    hostvars: dict[str, dict[str, Any]] | None = None,
    **given: Any,
) -> Iterator[dict[str, Any]]:
    """``host``'s Nginx, as the role writes it, in front of ``Headers``."""
    if NGINX is None:
        pytest.skip("no nginx binary (set HARDENKIT_NGINX=/path/to/nginx)")
    app = ThreadingHTTPServer(("127.0.0.1", 0), Headers)
    threading.Thread(target=app.serve_forever, args=(0.05,), daemon=True).start()
    app_root = tmp_path / "app"
    static = app_root / "shared" / "static" / "_next" / "static"
    static.mkdir(parents=True)
    # free_port() releases the port it found: another process may take it before Nginx
    # binds it (Molecule's containers, in a parallel run). Then try another one.
    for attempt in range(3):
        port = free_port()
        conf = render(
            host,
            groups,
            hostvars,
            app_port=app.server_address[1],
            app_root=str(app_root),
            nginx_proxy_listen_port=port,
            nginx_proxy_listen_ipv6=False,
            **given,
        )
        try:
            proc = start_nginx(nginx_prefix(tmp_path / f"nginx{attempt}", conf), port)
            break
        except AssertionError:
            if attempt == 2:
                raise
    try:
        yield {"port": port, "static": static, "conf": conf}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        app.shutdown()
        app.server_close()


KIT_HEADERS = load(ROLE / "defaults" / "main.yml")["nginx_proxy_security_headers"]


@needs_nginx
def test_m14_the_apps_security_headers_reach_the_client_unchanged(tmp_path):
    with nginx_before_headers(tmp_path, "web1", SINGLE, nginx_proxy_rate_limit="1000r/s") as site:
        port = site["port"]
        (site["static"] / "app.js").write_text("console.log(1)")
        # The app's CSP (a nonce) and X-Frame-Options: DENY, each once and as the app sent
        # it, from the app and then from the page cache; the kit fills in the others.
        for path, cache in (("/own", None), ("/own-cached", "MISS"), ("/own-cached", "HIT")):
            status, headers, _ = send(port, path)
            assert status == 200
            assert values(headers, "Content-Security-Policy") == [APP_CSP], (path, headers)
            assert values(headers, "X-Frame-Options") == ["DENY"], (path, headers)
            assert values(headers, "X-Content-Type-Options") == ["nosniff"], (path, headers)
            assert values(headers, "Referrer-Policy") == [KIT_HEADERS["Referrer-Policy"]]
            if cache:
                assert values(headers, "X-Cache-Status") == [cache]
        # An app that sends none gets the kit's: from the app, the API, a static file, an
        # error Nginx answers itself.
        for method, path, expected in (
            ("GET", "/plain", 200),
            ("POST", "/api/x", 200),
            ("GET", "/_next/static/app.js", 200),
            ("GET", "/.env", 404),
        ):
            status, headers, _ = send(port, path, method)
            assert status == expected, path
            for name, value in KIT_HEADERS.items():
                assert values(headers, name) == [str(value)], (path, name, headers)
    # what Nginx hides from the app's answer: X-Powered-By only
    site_conf = render("web1", SINGLE)["site.conf"]
    assert set(directive(site_conf, "proxy_hide_header")) == {"X-Powered-By"}


@needs_nginx
def test_l6_links_in_the_static_tree_are_not_served(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("root-only-secret")
    with nginx_before_headers(tmp_path, "web1", SINGLE, nginx_proxy_rate_limit="1000r/s") as site:
        port, static = site["port"], site["static"]
        (static / "chunk.js").write_text("console.log('chunk')")
        (static / "leak.txt").symlink_to(outside / "secret.txt")
        (static / "dir").symlink_to(outside, target_is_directory=True)
        status, headers, body = send(port, "/_next/static/chunk.js")
        assert status == 200 and body == b"console.log('chunk')"
        assert "immutable" in values(headers, "Cache-Control")[0]
        for path in ("/_next/static/leak.txt", "/_next/static/dir/secret.txt"):
            status, _, body = send(port, path)
            # not from disk: on to the app, which has no such asset
            assert status in (403, 404) and b"root-only-secret" not in body, (path, status, body)
    assert directive(
        location(site["conf"]["site.conf"], "^~ /_next/static/"), "disable_symlinks"
    ) == ["on from=$document_root"]


@needs_nginx
def test_l7_next_internal_headers_never_reach_the_app(tmp_path):
    extra = [{"path": "/uploads/", "proxy": True}]
    with nginx_before_headers(
        tmp_path,
        "web1",
        SINGLE,
        nginx_proxy_rate_limit="1000r/s",
        nginx_proxy_extra_locations=extra,
    ) as site:
        port = site["port"]
        sent = {
            **NEXT_INTERNAL,
            "x-middleware-prefetch": "1",
            "RSC": "1",
            "Next-Router-State-Tree": "%5B%22%22%5D",
            "Next-Action": "abc123",
        }
        # every proxied location: pages (cached and not), the API, the WebSocket path, an
        # extra location, and a static asset that is not on disk (on to the app)
        for method, path in (
            ("GET", "/admin"),
            ("POST", "/admin"),
            ("GET", "/api/x"),
            ("GET", "/ws"),
            ("GET", "/uploads/a"),
            ("GET", "/_next/static/missing.js"),
        ):
            status, _, body = send(port, path, method, headers=sent)
            assert status in (200, 404), (path, status)
            got = json.loads(body)["headers"]
            assert got["host"], "the app answered"
            leaked = sorted(set(NEXT_INTERNAL) & set(got))
            assert leaked == [], (path, leaked)
            # the browser's own router headers go on
            assert got["x-middleware-prefetch"] == "1" and got["rsc"] == "1", (path, got)
            assert got["next-action"] == "abc123", (path, got)
    # every name the role clears is one this test sends (or covers by the same rule)
    cleared = {
        v.split()[0]
        for v in directive(site["conf"]["site.conf"], "proxy_set_header")
        if v.endswith('""')
    }
    assert set(NEXT_INTERNAL) <= cleared
    assert "x-middleware-prefetch" not in cleared


def statuses(
    port: int,
    count: int,
    method: str = "POST",
    path: str = "/",
    headers: dict[str, str] | None = None,
) -> list[int]:
    return [send(port, path, method, headers=headers)[0] for _ in range(count)]


@needs_nginx
def test_l13_server_actions_are_rate_limited_on_any_path(tmp_path):
    # one request a minute and a burst of 3: nothing refills during the test
    with nginx_before_headers(
        tmp_path,
        "web1",
        SINGLE,
        nginx_proxy_rate_limit="1r/m",
        nginx_proxy_rate_limit_burst=3,
        nginx_proxy_page_cache=False,
    ) as site:
        port = site["port"]
        action = {"Next-Action": "x"}
        # pages and plain POSTs are not limited
        assert set(statuses(port, 8, "GET", "/")) == {200}
        assert set(statuses(port, 8, "POST", "/")) == {200}
        # a Server Action to a page: the rate plus the burst, then 429
        got = statuses(port, 8, headers=action)
        assert got[:4] == [200] * 4 and set(got[4:]) == {429}, got
        # on another page as well: the same client's bucket
        assert statuses(port, 1, path="/settings", headers=action) == [429]
        # a GET with the header is no Server Action
        assert statuses(port, 2, "GET", "/", headers=action) == [200, 200]
        # the API keeps its own limit
        got = statuses(port, 6, "GET", "/api/x")
        assert got[:4] == [200] * 4 and set(got[4:]) == {429}, got


@needs_nginx
def test_l13_an_ipv6_client_is_limited_by_its_64(tmp_path):
    """Behind a load balancer (here: the test's client address, 127.0.0.2) the client is the
    last X-Forwarded-For address, so IPv6 visitors can be played without an IPv6 socket."""
    hostvars = {"lb1": {"nginx_proxy_lb_address": CLIENT}}
    with nginx_before_headers(
        tmp_path,
        "app1",
        FLEET,
        hostvars,
        nginx_proxy_rate_limit="1r/m",
        nginx_proxy_rate_limit_burst=3,
        nginx_proxy_page_cache=False,
    ) as site:
        port = site["port"]

        def action(address: str) -> int:
            return send(
                port, "/", "POST", headers={"Next-Action": "x", "X-Forwarded-For": address}
            )[0]

        def api(address: str) -> int:
            return send(port, "/api/x", headers={"X-Forwarded-For": address})[0]

        # one /64, a new address each time: one bucket
        got = [action(f"2001:db8:1:2::{i:x}") for i in range(1, 9)]
        assert got[:4] == [200] * 4 and set(got[4:]) == {429}, got
        assert action("2001:db8:1:2:ffff:ffff:ffff:fffe") == 429
        # the neighbouring /64 is someone else
        assert action("2001:db8:1:3::1") == 200
        # the API counts the same way
        got = [api(f"2001:db8:5:6:{i:x}::1") for i in range(1, 7)]
        assert got[:4] == [200] * 4 and set(got[4:]) == {429}, got
        # IPv4 clients: one bucket per address
        got = [action("203.0.113.7") for _ in range(5)]
        assert got[:4] == [200] * 4 and got[4] == 429, got
        assert action("203.0.113.8") == 200
