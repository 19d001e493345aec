"""ACME certificates for Nginx (issue 21): which settings are wrong, what the certificate
on the host is, whether it must be obtained again, and why certbot could not.

The kit obtains certificates with Debian's certbot over HTTP-01 (``--webroot``), in a
configuration directory of its own per app, so a host's other certbot certificates and
Debian's ``certbot.timer`` are left as they are. Everything here is pure (text in, text or
data out) but ``read_certificate`` and ``read_server``, which read files.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

# A DNS name with at least one dot: ACME's CAs issue for public names only, and HTTP-01
# cannot prove a wildcard.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_NAME = re.compile(rf"(?:{_LABEL}\.)+{_LABEL}\Z")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def name_error(name: str) -> str:
    """Why ``name`` (one of ``app_server_name``'s) cannot be in a certificate, or ""."""
    if name == "_" or name.startswith("~") or "*" in name:
        return f"{name!r} is a catch-all, regex or wildcard, not a name"
    if _is_ip(name):
        return f"{name!r} is an IP address"
    if len(name) > 253 or not _NAME.match(name):
        return f"{name!r} is not a DNS name with a dot (as app.example.com)"
    if name.rsplit(".", 1)[1].isdigit():
        return f"{name!r} ends in a number, not a top-level domain"
    return ""


def settings_errors(
    enabled: Any,
    server_name: Any,
    email: Any,
    directory: Any,
    tls_enabled: Any,
    certificate: Any,
    certificate_key: Any,
    behind_lb: Any,
    ca_bundle: Any = "",
) -> list[str]:
    """What is wrong with the ACME settings, one message each naming the variable and the
    fix; none when ACME is off. ``ca_bundle`` is a path on the control node (read here)."""
    if not enabled:
        return []
    errors = []
    names = str(server_name or "").split()
    bad = [name_error(name) for name in names]
    if not names or any(bad):
        errors.append(
            "nginx_proxy_acme_enabled needs app_server_name to be the site's DNS names, "
            'space-separated (as "shop.example.com www.shop.example.com"), each pointing at '
            f"this host: {'; '.join(b for b in bad if b) or 'it is empty'}"
        )
    if not isinstance(email, str) or not _EMAIL.match(email):
        errors.append(
            "nginx_proxy_acme_email must be the contact address the ACME server sends expiry "
            f"and account notices to, as ops@example.com (got {email!r})"
        )
    parts = urlsplit(directory) if isinstance(directory, str) else None
    if parts is None or parts.scheme != "https" or not parts.hostname:
        errors.append(
            "nginx_proxy_acme_directory must be the ACME server's https:// directory URL, as "
            f"https://acme-v02.api.letsencrypt.org/directory (got {directory!r})"
        )
    if tls_enabled or certificate or certificate_key:
        errors.append(
            "nginx_proxy_acme_enabled turns TLS on with the certificate it obtains: leave "
            "nginx_proxy_tls_enabled false and nginx_proxy_tls_certificate and "
            "nginx_proxy_tls_certificate_key empty, or turn ACME off to use your own files"
        )
    if behind_lb:
        errors.append(
            "nginx_proxy_acme_enabled must be false on app servers behind a separate load "
            "balancer: the load balancers terminate TLS and hold the certificate; enable it "
            "for the load_balancers group only"
        )
    if ca_bundle:
        try:
            with open(str(ca_bundle), encoding="utf-8", errors="replace") as fh:
                pem = fh.read()
        except OSError as exc:
            errors.append(f"nginx_proxy_acme_ca_bundle cannot be read on the control node: {exc}")
        else:
            if "-----BEGIN CERTIFICATE-----" not in pem:
                errors.append(
                    f"nginx_proxy_acme_ca_bundle ({ca_bundle}) holds no PEM certificate "
                    "(-----BEGIN CERTIFICATE-----)"
                )
    return errors


# --- the certificate on the host -----------------------------------------------------------


def parse_x509(text: str) -> dict[str, Any]:
    """``openssl x509 -noout -serial -enddate -issuer -ext subjectAltName`` read: ``{serial,
    not_after, issuer, names}`` (names: the DNS entries, lower case, in order)."""
    out: dict[str, Any] = {"serial": "", "not_after": "", "issuer": "", "names": []}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        key, sep, value = line.partition("=")
        if sep and key in ("serial", "notAfter", "issuer"):
            out[{"notAfter": "not_after"}.get(key, key)] = value.strip()
        elif line.startswith("X509v3 Subject Alternative Name") and i + 1 < len(lines):
            entries = [e.strip() for e in lines[i + 1].split(",")]
            out["names"] = [e[4:].lower() for e in entries if e.startswith("DNS:")]
    return out


def read_certificate(path: str, openssl: str = "openssl") -> dict[str, Any] | None:
    """The certificate at ``path`` (``parse_x509``), None when there is none."""
    if not os.path.isfile(path):
        return None
    run = subprocess.run(
        [
            openssl,
            "x509",
            "-in",
            path,
            "-noout",
            "-serial",
            "-enddate",
            "-issuer",
            "-ext",
            "subjectAltName",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
    )
    if run.returncode != 0:
        return None
    return parse_x509(run.stdout)


def parse_server(text: str) -> str:
    """The ACME directory a certbot renewal configuration names (``server = URL``)."""
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "server":
            return value.strip()
    return ""


def read_server(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return parse_server(fh.read())
    except FileNotFoundError:
        return ""


def issue_reason(
    current: dict[str, Any] | None, server: str, names: Sequence[str], directory: str
) -> str:
    """Why the certificate must be obtained now, or "" when the one there serves: none yet,
    other names, or another ACME server. Renewal before expiry is the timer's."""
    if current is None:
        return "no certificate yet"
    want = sorted({n.lower() for n in names})
    have = sorted(set(current["names"]))
    if have != want:
        return f"the certificate names {', '.join(have) or 'nothing'}, not {', '.join(want)}"
    if server.rstrip("/") != directory.rstrip("/"):
        return f"the certificate is from {server or 'an unknown server'}, not {directory}"
    return ""


def certbot_argv(
    certbot: str,
    *,
    names: Iterable[str],
    email: str,
    directory: str,
    cert_name: str,
    webroot: str,
    dirs: dict[str, str],
    deploy_hook: str,
) -> list[str]:
    """``certbot certonly`` over HTTP-01 from ``webroot``, in the kit's own directories
    (``dirs``: config, work, logs), the deploy hook kept for renewals."""
    argv = [
        certbot,
        "certonly",
        "--non-interactive",
        "--agree-tos",
        "--webroot",
        "--webroot-path",
        webroot,
        "--email",
        email,
        "--server",
        directory,
        "--cert-name",
        cert_name,
        "--config-dir",
        dirs["config"],
        "--work-dir",
        dirs["work"],
        "--logs-dir",
        dirs["logs"],
        "--deploy-hook",
        deploy_hook,
        "--force-renewal",
    ]
    for name in names:
        argv += ["--domain", name]
    return argv


_NOISE = re.compile(
    r"(Saving debug log|Ask for help|See the logfile|Some challenges have failed|"
    r"Hint:|Requesting a certificate|Account registered|- - -)",
)


def certbot_reason(stdout: str, stderr: str) -> str:
    """What the ACME server (or certbot) said went wrong, in one line: each domain's
    ``Detail:`` with its type, else certbot's error lines without its advice."""
    text = f"{stdout}\n{stderr}"
    details = []
    domain = kind = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Domain:"):
            domain = line[7:].strip()
        elif line.startswith("Type:"):
            kind = line[5:].strip()
        elif line.startswith("Detail:"):
            details.append(f"{domain}: {kind}: {line[7:].strip()}".strip(": "))
    if details:
        return "; ".join(details)
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not _NOISE.search(line) and not line.startswith("Simulating")
    ]
    errors = [line for line in lines if "rror" in line or "failed" in line.lower()]
    return " ".join(errors[-3:] or lines[-3:]) or "certbot failed without a message"
