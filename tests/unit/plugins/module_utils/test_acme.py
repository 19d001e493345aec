"""ACME certificates (module_utils/acme.py, filter acme_settings_errors, module
acme_certificate): the settings refused before any change, the certificate read with the
host's openssl, when certbot runs, and what its failures say. The certificate obtained from
a real ACME server (Pebble) is molecule/acme's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.filter.acme import acme_settings_errors
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.acme import (
    certbot_argv,
    certbot_reason,
    issue_reason,
    name_error,
    parse_server,
    parse_x509,
    read_certificate,
    settings_errors,
)
from tests.hk_testlib import run_module

GOOD = {
    "enabled": True,
    "server_name": "shop.example.com www.shop.example.com",
    "email": "ops@example.com",
    "directory": "https://acme-v02.api.letsencrypt.org/directory",
    "tls_enabled": False,
    "certificate": "",
    "certificate_key": "",
    "behind_lb": False,
    "ca_bundle": "",
}


def errors(**given) -> list[str]:
    return acme_settings_errors({**GOOD, **given})


def test_good_settings_and_acme_off_pass():
    assert errors() == []
    assert errors(enabled=False, server_name="_", email="", directory="http://x") == []


@pytest.mark.parametrize(
    ("server_name", "says"),
    [
        ("_", "'_' is a catch-all"),
        ("", "it is empty"),
        ("203.0.113.7", "is an IP address"),
        ("[2001:db8::1]", "is an IP address"),
        ("*.example.com", "wildcard"),
        ("~^shop", "regex"),
        ("localhost", "not a DNS name with a dot"),
        ("shop.example.com bad_name.com", "'bad_name.com' is not a DNS name"),
        ("10.0.0", "ends in a number"),
    ],
)
def test_acme_needs_real_names(server_name, says):
    (msg,) = errors(server_name=server_name)
    assert msg.startswith("nginx_proxy_acme_enabled needs app_server_name") and says in msg


@pytest.mark.parametrize("email", ["", "ops", "ops@", "ops@example", "a b@example.com", None])
def test_acme_needs_a_contact_address(email):
    (msg,) = errors(email=email)
    assert msg.startswith("nginx_proxy_acme_email must be")


@pytest.mark.parametrize(
    "directory", ["http://acme.example.com/dir", "acme.example.com", "https://", "", 3]
)
def test_acme_directory_must_be_https(directory):
    (msg,) = errors(directory=directory)
    assert msg.startswith("nginx_proxy_acme_directory must be the ACME server's https://")


@pytest.mark.parametrize(
    "given",
    [{"tls_enabled": True}, {"certificate": "/etc/ssl/c.pem"}, {"certificate_key": "/k.pem"}],
)
def test_acme_leaves_tls_to_itself(given):
    (msg,) = errors(**given)
    assert "leave nginx_proxy_tls_enabled false" in msg


def test_acme_is_for_the_load_balancers_of_a_tier():
    (msg,) = errors(behind_lb=True)
    assert "false on app servers behind a separate load balancer" in msg


def test_ca_bundle_is_read_on_the_control_node(tmp_path: Path):
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    assert errors(ca_bundle=str(pem)) == []
    (msg,) = errors(ca_bundle=str(tmp_path / "none.pem"))
    assert msg.startswith("nginx_proxy_acme_ca_bundle cannot be read on the control node")
    (tmp_path / "text").write_text("not a certificate")
    (msg,) = errors(ca_bundle=str(tmp_path / "text"))
    assert "holds no PEM certificate" in msg


def test_every_wrong_setting_is_said_at_once():
    assert len(settings_errors(True, "_", "", "http://x", True, "", "", True)) == 5


@pytest.mark.parametrize("name", ["a.b", "xn--bcher-kva.example", "a-1.example.co.uk"])
def test_names_that_pass(name):
    assert name_error(name) == ""


# --- the certificate on the host ---------------------------------------------------------

X509 = """serial=5F3A9C01
notAfter=Mar  7 10:00:00 2027 GMT
issuer=CN = Pebble Intermediate CA 0a1b2c
X509v3 Subject Alternative Name:
    DNS:Shop.example.com, DNS:www.shop.example.com, IP Address:203.0.113.7
"""


def test_parse_x509():
    assert parse_x509(X509) == {
        "serial": "5F3A9C01",
        "not_after": "Mar  7 10:00:00 2027 GMT",
        "issuer": "CN = Pebble Intermediate CA 0a1b2c",
        "names": ["shop.example.com", "www.shop.example.com"],
    }


def make_cert(key: Path, cert: Path, names: list[str]) -> None:
    """A self-signed certificate for ``names`` (the first its subject), by the host's openssl."""
    sans = ",".join(f"DNS:{name}" for name in names)
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2"),
            *("-subj", f"/CN={names[0]}", "-addext", f"subjectAltName={sans}"),
        ],
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_read_certificate_with_openssl(tmp_path: Path):
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    make_cert(key, cert, ["shop.example.com", "www.shop.example.com"])
    read = read_certificate(str(cert))
    assert read is not None and read["names"] == ["shop.example.com", "www.shop.example.com"]
    assert read["issuer"] == "CN = shop.example.com" and read["serial"] and read["not_after"]
    assert read_certificate(str(tmp_path / "none.pem")) is None
    assert read_certificate(str(key)) is None  # not a certificate


def test_parse_server():
    conf = "# renew_before_expiry = 30 days\nversion = 2.1.0\n[renewalparams]\nserver = https://p:14000/dir\n"
    assert parse_server(conf) == "https://p:14000/dir"
    assert parse_server("version = 2.1.0\n") == ""


CURRENT = {"names": ["shop.example.com", "www.shop.example.com"]}
DIR = "https://acme.example/dir"


@pytest.mark.parametrize(
    ("current", "server", "names", "reason"),
    [
        (None, "", ["shop.example.com"], "no certificate yet"),
        (CURRENT, DIR, ["www.shop.example.com", "Shop.example.com"], ""),
        (CURRENT, DIR + "/", ["shop.example.com", "www.shop.example.com"], ""),
        (
            CURRENT,
            DIR,
            ["shop.example.com"],
            "the certificate names shop.example.com, www.shop.example.com, not shop.example.com",
        ),
        (
            CURRENT,
            "https://other/dir",
            ["shop.example.com", "www.shop.example.com"],
            f"the certificate is from https://other/dir, not {DIR}",
        ),
    ],
)
def test_issue_reason(current, server, names, reason):
    assert issue_reason(current, server, names, DIR) == reason


def test_certbot_argv():
    argv = certbot_argv(
        "/usr/bin/certbot",
        names=["a.example", "b.example"],
        email="ops@example.com",
        directory=DIR,
        cert_name="shop",
        webroot="/w",
        dirs={"config": "/c", "work": "/wk", "logs": "/l"},
        deploy_hook="nginx -t -q && systemctl reload nginx",
    )
    assert argv[:3] == ["/usr/bin/certbot", "certonly", "--non-interactive"]
    pairs = {argv[i]: argv[i + 1] for i in range(3, len(argv) - 1)}
    assert pairs["--webroot-path"] == "/w" and pairs["--server"] == DIR
    assert pairs["--config-dir"] == "/c" and pairs["--cert-name"] == "shop"
    assert pairs["--deploy-hook"] == "nginx -t -q && systemctl reload nginx"
    assert argv[-4:] == ["--domain", "a.example", "--domain", "b.example"]


# What certbot 2.1 prints when the CA could not reach the challenge, and when it could not
# reach the CA.
ASK = (
    "Ask for help or search for solutions at https://community.letsencrypt.org. See the"
    " logfile /l/letsencrypt.log or re-run Certbot with -v for more details."
)
CHALLENGE_FAILED = "\n".join(
    [
        "Saving debug log to /var/lib/hardenkit/acme/shop/logs/letsencrypt.log",
        "Requesting a certificate for shop.example.com",
        "",
        "Certbot failed to authenticate some domains (authenticator: webroot). The Certificate"
        " Authority reported these problems:",
        "  Domain: shop.example.com",
        "  Type:   connection",
        "  Detail: 198.51.100.4: Fetching http://shop.example.com/.well-known/acme-challenge/x:"
        " Connection refused",
        "",
        "Hint: The Certificate Authority failed to download the temporary challenge files.",
        "",
        "Some challenges have failed.",
        ASK,
    ]
)
UNREACHABLE = "\n".join(
    [
        "Saving debug log to /l/letsencrypt.log",
        "An unexpected error occurred:",
        "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='pebble', port=14000):"
        " Max retries exceeded",
        ASK,
    ]
)


@pytest.mark.parametrize(
    ("out", "err", "reason"),
    [
        (
            "",
            CHALLENGE_FAILED,
            "shop.example.com: connection: 198.51.100.4: Fetching "
            "http://shop.example.com/.well-known/acme-challenge/x: Connection refused",
        ),
        (
            "",
            UNREACHABLE,
            "An unexpected error occurred: requests.exceptions.ConnectionError: "
            "HTTPSConnectionPool(host='pebble', port=14000): Max retries exceeded",
        ),
        ("", "", "certbot failed without a message"),
    ],
)
def test_certbot_reason(out, err, reason):
    assert certbot_reason(out, err) == reason


# --- the module, with certbot a script on PATH ---------------------------------------------


def module_args(tmp_path: Path, **given) -> dict:
    return {
        "names": ["shop.example.com"],
        "email": "ops@example.com",
        "directory": DIR,
        "cert_name": "shop",
        "config_dir": str(tmp_path / "config"),
        "work_dir": str(tmp_path / "work"),
        "logs_dir": str(tmp_path / "logs"),
        "webroot": str(tmp_path / "webroot"),
        **given,
    }


@pytest.fixture
def certbot(tmp_path: Path, monkeypatch) -> Path:
    """A ``certbot`` first on PATH that records its arguments and fails as the CA would."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "certbot-calls"
    exe = bindir / "certbot"
    exe.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nprintf %s "$FAIL_WITH" >&2\nexit 1\n')
    exe.chmod(0o755)
    monkeypatch.setenv("FAIL_WITH", CHALLENGE_FAILED)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    return calls


def test_module_fails_with_the_ca_reason_and_changes_nothing(certbot, tmp_path: Path):
    rc, out = run_module("acme_certificate", module_args(tmp_path), tmp_path)
    assert rc != 0 and out["certificate"] is None and out["reason"] == "no certificate yet"
    assert out["msg"] == (
        f"certbot could not obtain a certificate for shop.example.com from {DIR}: "
        "shop.example.com: connection: 198.51.100.4: Fetching "
        "http://shop.example.com/.well-known/acme-challenge/x: Connection refused"
    )
    assert "--domain shop.example.com" in certbot.read_text()


def test_module_in_check_mode_asks_no_server(certbot, tmp_path: Path):
    rc, out = run_module(
        "acme_certificate", {**module_args(tmp_path), "_ansible_check_mode": True}, tmp_path
    )
    assert rc == 0 and out["changed"] and out["reason"] == "no certificate yet", out
    assert not certbot.exists()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
@pytest.mark.parametrize(
    ("names", "server", "runs"),
    [
        (["shop.example.com"], DIR, False),
        (["shop.example.com", "www.shop.example.com"], DIR, True),
        (["shop.example.com"], "https://staging.example/dir", True),
    ],
    ids=["fits", "a name added", "another server"],
)
def test_module_runs_certbot_only_when_the_certificate_does_not_fit(
    certbot, tmp_path: Path, names, server, runs
):
    live = tmp_path / "config" / "live" / "shop"
    live.mkdir(parents=True)
    make_cert(live / "privkey.pem", live / "cert.pem", ["shop.example.com"])
    (tmp_path / "config" / "renewal").mkdir()
    (tmp_path / "config" / "renewal" / "shop.conf").write_text(f"[renewalparams]\nserver = {DIR}\n")
    rc, out = run_module(
        "acme_certificate", module_args(tmp_path, names=names, directory=server), tmp_path
    )
    assert certbot.exists() is runs
    assert (rc != 0) is runs, out
    assert out["certificate"]["names"] == ["shop.example.com"]
    assert out["certificate"]["fullchain"] == f"{live}/fullchain.pem"
