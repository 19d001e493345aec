"""HTTPS probes through a TLS proxy: answered without verifying the certificate.

With ``nginx_proxy_tls_enabled`` plain HTTP only redirects, so the proxy's probes go to
its TLS port; its certificate names the public host (here: self-signed for another name),
never 127.0.0.1, and a probe must still see the site's answer.
"""

from __future__ import annotations

import datetime
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.diagnosis import (
    DiagnoseOptions,
    diagnose,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.probes import (
    http_probe,
    probe_url,
)
from ansible_collections.hardenkit.nodeapp.plugins.modules import diagnose as diagnose_module
from tests.hk_testlib import build_fake_proc


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_proxy(tmp_path):
    """An HTTPS server with a self-signed certificate for workbot.example.com."""
    cert, key = self_signed(tmp_path, "workbot.example.com")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.server.seen.append({"path": self.path, "host": self.headers.get("Host")})
            status = 404 if self.path.startswith("/api/") else 200
            body = f"<!DOCTYPE html>WorkBot {self.path}".encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_probe_url_scheme():
    assert probe_url("127.0.0.1", 443, "/x", "https") == "https://127.0.0.1:443/x"
    assert probe_url("127.0.0.1", 80, "/x") == "http://127.0.0.1:80/x"


@pytest.mark.parametrize(("path", "status", "ok"), [("/", 200, True), ("/api/health", 404, False)])
def test_https_probe_ignores_the_certificate(tls_proxy, path, status, ok):
    url = probe_url("127.0.0.1", tls_proxy.server_port, path, "https")
    result = http_probe(url, 200, timeout=3, host_header="workbot.example.com", via="proxy")
    assert (result["status"], result["ok"], result["error"]) == (status, ok, None)
    assert result["body_sample"].startswith("<!DOCTYPE html>")
    assert tls_proxy.seen[-1] == {"path": path, "host": "workbot.example.com"}


def test_plain_http_to_a_tls_port_is_no_answer(tls_proxy):
    url = probe_url("127.0.0.1", tls_proxy.server_port, "/")
    result = http_probe(url, 200, timeout=3)
    assert result["status"] is None and result["ok"] is False and result["error"]


def test_diagnose_probes_the_proxy_over_https(tmp_path, http_server, tls_proxy):
    app = http_server()
    proc = build_fake_proc(
        tmp_path / "proc",
        "hardened",
        {"APP": app.server_port, "PROXY": tls_proxy.server_port},
        str(tmp_path / "srv" / "workbot"),
    )
    opts = DiagnoseOptions(
        app_name="workbot",
        app_root=str(tmp_path / "srv" / "workbot"),
        app_port=app.server_port,
        probes=[{"path": "/", "status": 200}],
        proxy_port=tls_proxy.server_port,
        proxy_scheme="https",
        proxy_host_header="workbot.example.com",
        log_paths=[],
        logrotate_dir=str(tmp_path),
        probe_timeout=3,
        proc_root=str(proc),
    )
    result = diagnose(opts)
    proxy = [p for p in result["probes"] if p["via"] == "proxy"]
    assert [(p["url"].split(":")[0], p["status"], p["ok"]) for p in proxy] == [("https", 200, True)]
    assert result["facts"]["app"]["proxy_scheme"] == "https"
    codes = {f["code"] for f in result["findings"]}
    assert "route_failed" not in codes and "no_reverse_proxy" not in codes


def test_module_option_proxy_scheme():
    spec = diagnose_module.ARGUMENT_SPEC["proxy_scheme"]
    assert spec == {"type": "str", "choices": ["http", "https"], "default": "http"}
    base = {name: s.get("default") for name, s in diagnose_module.ARGUMENT_SPEC.items()}
    base.update(app_name="workbot", app_root="/srv/workbot", proxy_scheme="https")
    assert diagnose_module.build_options(base).proxy_scheme == "https"
