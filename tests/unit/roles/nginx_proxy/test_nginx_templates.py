"""The Nginx configuration of each tier, rendered from roles/nginx_proxy's templates.

Rendered with Ansible's own templating (Templar over the role's defaults and vars/main.yml,
trim_blocks on and lstrip_blocks off, as the template action does) for the three places a
host can stand (DESIGN.md, inventory groups):

- one server: a host in both app_servers and load_balancers. Its output must not change
  with the load balancer tier: fixtures/nginx/ holds what the templates render for it (written
  before the tier existed, rewritten since only for a deliberate change: the page cache), and
  the rendering must equal it byte for byte.
- a load balancer (load_balancers only) in front of two app servers;
- an app server behind that load balancer.

With an nginx binary each rendering is also checked with ``nginx -t``, and a small fleet
runs for real on loopback ports: tests/integration/roles/nginx_proxy/test_nginx_templates.py.

``HARDENKIT_WRITE_NGINX_FIXTURES=1 .venv/bin/pytest tests/unit/roles/nginx_proxy`` rewrites the
single-server fixtures from the current templates (after a deliberate change).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from tests.hk_testlib import FIXTURES, trusted

ROOT = Path(__file__).resolve().parents[4]
ROLE = ROOT / "roles" / "nginx_proxy"
TEMPLATES = ("http.conf", "site.conf")
GOLDEN = FIXTURES / "nginx"
SEPARATOR = "\n# ---- site.conf ----\n"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def render(
    host: str,
    groups: dict[str, list[str]],
    hostvars: dict[str, dict[str, Any]] | None = None,
    **given: Any,
) -> dict[str, str]:
    """http.conf and site.conf as the role writes them on ``host``.

    ``given`` are the host's own settings; ``hostvars`` what the inventory and facts say
    about every host (the other tier's addresses come from there).
    """
    hostvars = {h: {} for hosts in groups.values() for h in hosts} | (hostvars or {})
    variables = {
        **trusted(load(ROOT / "roles" / "app" / "defaults" / "main.yml")),
        **trusted(load(ROLE / "defaults" / "main.yml")),
        "app_name": "workbot",
        "ansible_managed": "Ansible managed",
        "__nginx_proxy_version_number": "1.22.1",
        "inventory_hostname": host,
        "groups": groups,
        "hostvars": hostvars,
        **given,
        # role vars win over inventory variables, as in Ansible
        **trusted(load(ROLE / "vars" / "main.yml")),
    }
    templar = Templar(loader=DataLoader(), variables=variables)
    return {
        name: templar.template(
            trust_as_template((ROLE / "templates" / f"{name}.j2").read_text(encoding="utf-8")),
            escape_backslashes=False,
            overrides={"trim_blocks": True, "lstrip_blocks": False},
        )
        for name in TEMPLATES
    }


SINGLE = {"app_servers": ["web1"], "load_balancers": ["web1"]}
FLEET = {"app_servers": ["app1", "app2"], "load_balancers": ["lb1"]}
FLEET_VARS = {
    "lb1": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.5"}}},
    "app1": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.11"}}},
    # an address and port set in the inventory win over facts
    "app2": {
        "ansible_facts": {"default_ipv4": {"address": "192.168.7.12"}},
        "nginx_proxy_backend_address": "10.0.1.12",
        "nginx_proxy_backend_port": 8080,
    },
}
TLS = {
    "nginx_proxy_tls_enabled": True,
    "nginx_proxy_tls_certificate": "/etc/ssl/hk/cert.pem",
    "nginx_proxy_tls_certificate_key": "/etc/ssl/hk/key.pem",
}


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def directive(text: str, name: str) -> list[str]:
    """Every value of a directive, in order."""
    return re.findall(rf"^\s*{re.escape(name)}\s+([^;\n]*);", text, flags=re.M)


def location(site: str, head: str) -> str:
    """The body of the location block that starts with ``head``."""
    start = site.index(f"location {head} {{")
    return site[start : site.index("\n    }", start)]


# --- one server: exactly what it was before the load balancer tier ----------------------------


@pytest.mark.parametrize(
    ("name", "given"),
    [("single", {}), ("single-tls", TLS)],
    ids=["plain", "tls"],
)
def test_single_server_is_unchanged(name, given):
    conf = render("web1", SINGLE, **given)
    text = conf["http.conf"] + SEPARATOR + conf["site.conf"]
    path = GOLDEN / f"{name}.conf"
    if os.environ.get("HARDENKIT_WRITE_NGINX_FIXTURES") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_single_server_proxies_to_its_own_app():
    conf = render("web1", SINGLE)
    assert directive(conf["http.conf"], "server") == ["127.0.0.1:5000 max_fails=0"] * 4
    site = conf["site.conf"]
    assert set(directive(site, "proxy_next_upstream_tries")) == {"4"}
    assert set(directive(site, "proxy_connect_timeout")) == {"5s"}
    assert set(directive(site, "proxy_set_header X-Forwarded-Proto")) == {"$scheme"}
    assert directive(site, "root") == ["/srv/workbot/shared/static"]
    assert "set_real_ip_from" not in site and "geo " not in conf["http.conf"]


def test_a_host_in_neither_group_is_a_single_server():
    """The role used outside hardenkit's inventory (no groups at all) keeps its old output."""
    assert render("web1", {}) == render("web1", SINGLE)


# --- a load balancer in front of two app servers ----------------------------------------------


def test_load_balancer_upstream_is_every_app_server():
    http = render("lb1", FLEET, FLEET_VARS)["http.conf"]
    assert directive(http, "server") == [
        "10.0.0.11:80 max_fails=3 fail_timeout=10s",
        "10.0.1.12:8080 max_fails=3 fail_timeout=10s",
    ]
    assert directive(http, "keepalive") == ["32"]
    # below the app servers' own client keepalive_timeout (15 s)
    assert directive(http, "keepalive_timeout") == ["14s"]
    assert "127.0.0.1" not in http


def test_load_balancer_settings_reach_the_upstream():
    http = render(
        "lb1",
        FLEET,
        FLEET_VARS,
        nginx_proxy_lb_max_fails=1,
        nginx_proxy_lb_fail_timeout=30,
    )["http.conf"]
    assert directive(http, "server") == [
        "10.0.0.11:80 max_fails=1 fail_timeout=30s",
        "10.0.1.12:8080 max_fails=1 fail_timeout=30s",
    ]


@pytest.mark.parametrize(
    ("app_vars", "expected"),
    [
        # facts: the default IPv4 address
        ({"ansible_facts": {"default_ipv4": {"address": "10.0.0.11"}}}, "10.0.0.11:80"),
        # no facts: ansible_host, then the inventory name
        ({"ansible_host": "app1.internal"}, "app1.internal:80"),
        ({}, "app1:80"),
        # IPv6 goes in brackets; the port follows the host's own listen port
        (
            {"nginx_proxy_backend_address": "fd00::11", "nginx_proxy_listen_port": 8081},
            "[fd00::11]:8081",
        ),
        # an empty setting means "not set"
        (
            {
                "nginx_proxy_backend_address": "",
                "nginx_proxy_backend_port": 0,
                "ansible_host": "10.9.9.9",
            },
            "10.9.9.9:80",
        ),
    ],
    ids=["facts", "ansible_host", "name", "ipv6-listen-port", "empty-settings"],
)
def test_backend_address_and_port(app_vars, expected):
    http = render("lb1", {"app_servers": ["app1"], "load_balancers": ["lb1"]}, {"app1": app_vars})[
        "http.conf"
    ]
    assert [s.split()[0] for s in directive(http, "server")] == [expected]


def test_load_balancer_proxies_to_the_app_servers_of_its_own_app():
    """Two apps on one machine (docs/scaling.md): app1 also serves admin, an inventory host
    of its own; the workbot load balancer leaves that host out."""
    groups = {"app_servers": ["app1", "app1-admin", "app2"], "load_balancers": ["lb1"]}
    hostvars = {
        **FLEET_VARS,
        "app1": {**FLEET_VARS["app1"], "app_name": "workbot"},
        "app1-admin": {**FLEET_VARS["app1"], "app_name": "admin", "app_port": 3001},
        "app2": {**FLEET_VARS["app2"], "app_name": "workbot"},
    }
    http = render("lb1", groups, hostvars)["http.conf"]
    assert [s.split()[0] for s in directive(http, "server")] == ["10.0.0.11:80", "10.0.1.12:8080"]


def test_load_balancer_keepalive_follows_the_shortest_app_server():
    hostvars = {
        **FLEET_VARS,
        "app1": {**FLEET_VARS["app1"], "nginx_proxy_keepalive_timeout": 30},
        "app2": {**FLEET_VARS["app2"], "nginx_proxy_keepalive_timeout": 8},
    }
    http = render("lb1", FLEET, hostvars)["http.conf"]
    assert directive(http, "keepalive_timeout") == ["7s"]


def test_load_balancer_site_fails_over_and_keeps_the_protections():
    site = render("lb1", FLEET, FLEET_VARS)["site.conf"]
    # one try per app server, a short connect timeout, idempotent requests only
    assert set(directive(site, "proxy_next_upstream_tries")) == {"2"}
    assert set(directive(site, "proxy_connect_timeout")) == {"2s"}
    assert "non_idempotent" not in site
    nexts = directive(site, "proxy_next_upstream")
    assert nexts and all(n.startswith("error timeout http_502 http_503") for n in nexts)
    # the client's address and scheme go on to the app servers
    assert set(directive(site, "proxy_set_header X-Forwarded-For")) == {
        "$proxy_add_x_forwarded_for"
    }
    assert set(directive(site, "proxy_set_header X-Real-IP")) == {"$remote_addr"}
    assert set(directive(site, "proxy_set_header X-Forwarded-Proto")) == {"$scheme"}
    assert set(directive(site, "proxy_set_header Host")) == {"$host"}
    # no release on disk: static assets are proxied, and a 404 tries the next app server
    assert "shared/static" not in site and "root " not in site and "@app" not in site
    static = location(site, "^~ /_next/static/")
    assert "proxy_pass http://workbot_app;" in static
    assert directive(static, "proxy_next_upstream") == ["error timeout http_502 http_503 http_404"]
    # only the static location retries on 404
    assert sum("http_404" in n for n in nexts) == 1
    # what the app server's site does, the load balancer does too
    single = render("web1", SINGLE)["site.conf"]
    for name in (
        "add_header",
        "client_max_body_size",
        "large_client_header_buffers",
        "limit_req",
        "limit_conn",
        "limit_req_status",
        "proxy_buffering",
    ):
        assert set(directive(site, name)) >= set(directive(single, name)) - {
            'Cache-Control "public, max-age=31536000, immutable" always',
            "X-Cache-Status $upstream_cache_status always",
        }, name
    assert "location ~ /\\.(?!well-known(?:/|$)) {" in site
    assert "return 405;" in site
    ws = location(site, "= /ws")
    assert "proxy_set_header Upgrade $http_upgrade;" in ws
    assert "limit_conn workbot_ws_addr 20;" in ws


def test_load_balancer_terminates_tls():
    site = render("lb1", FLEET, FLEET_VARS, **TLS)["site.conf"]
    assert "listen 443 ssl http2 default_server;" in site  # Nginx 1.22, Debian 12's
    assert "ssl_certificate /etc/ssl/hk/cert.pem;" in site
    assert "Strict-Transport-Security" in site
    assert "proxy_cookie_flags ~ secure;" in site
    assert "return 301 https://$host$request_uri;" in site


def test_tries_follow_the_number_of_app_servers():
    groups = {"app_servers": ["a1", "a2", "a3"], "load_balancers": ["lb1"]}
    conf = render("lb1", groups)
    assert len(directive(conf["http.conf"], "server")) == 3
    assert set(directive(conf["site.conf"], "proxy_next_upstream_tries")) == {"3"}


# --- an app server behind the load balancer ---------------------------------------------------


def test_app_server_behind_a_load_balancer_trusts_it_for_the_client_address():
    conf = render("app1", FLEET, FLEET_VARS)
    site, http = conf["site.conf"], conf["http.conf"]
    assert directive(site, "set_real_ip_from") == ["10.0.0.5"]
    assert directive(site, "real_ip_header") == ["X-Forwarded-For"]
    assert directive(site, "real_ip_recursive") == ["on"]
    # X-Forwarded-Proto from the load balancer only
    assert "geo $realip_remote_addr $hardenkit_workbot_from_lb {" in http
    assert lines(http)[lines(http).index("default 0;") + 1] == "10.0.0.5 1;"
    assert set(directive(site, "proxy_set_header X-Forwarded-Proto")) == {
        "$hardenkit_workbot_forwarded_proto"
    }
    # otherwise the app server's own site
    single = render("web1", SINGLE)
    assert directive(http, "server") == directive(single["http.conf"], "server")
    assert directive(site, "root") == ["/srv/workbot/shared/static"]
    assert set(directive(site, "proxy_next_upstream_tries")) == {"4"}


def test_load_balancer_address_setting_and_several_load_balancers():
    groups = {"app_servers": ["app1"], "load_balancers": ["lb1", "lb2"]}
    hostvars = {
        "lb1": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.5"}}},
        "lb2": {
            "ansible_facts": {"default_ipv4": {"address": "203.0.113.20"}},
            "nginx_proxy_lb_address": "10.0.2.0/24",
        },
    }
    conf = render("app1", groups, hostvars)
    assert directive(conf["site.conf"], "set_real_ip_from") == ["10.0.0.5", "10.0.2.0/24"]


def test_a_host_in_both_groups_beside_a_separate_load_balancer():
    """Mixed: web1 serves clients itself and is also behind lb1; it trusts lb1."""
    groups = {"app_servers": ["web1"], "load_balancers": ["web1", "lb1"]}
    conf = render("web1", groups, {"lb1": {"ansible_host": "10.0.0.5"}})
    assert directive(conf["http.conf"], "server") == ["127.0.0.1:5000 max_fails=0"] * 4
    assert directive(conf["site.conf"], "set_real_ip_from") == ["10.0.0.5"]
    lb = render("lb1", groups, {"web1": {"ansible_host": "10.0.0.1"}})
    assert [s.split()[0] for s in directive(lb["http.conf"], "server")] == ["10.0.0.1:80"]


# --- the page cache ----------------------------------------------------------------------------


def test_page_cache_on_hosts_that_run_the_app():
    for host, groups, hostvars in (("web1", SINGLE, {}), ("app1", FLEET, FLEET_VARS)):
        conf = render(host, groups, hostvars)
        assert directive(conf["http.conf"], "proxy_cache_path") == [
            "/var/cache/nginx/hardenkit-workbot levels=1:2 keys_zone=workbot_pages:10m "
            "max_size=256m inactive=10m use_temp_path=off"
        ]
        page = location(conf["site.conf"], "/")
        assert directive(page, "proxy_cache") == ["workbot_pages"]
        assert directive(page, "proxy_cache_valid") == ["200 1s"]
        assert directive(page, "proxy_no_cache") == [
            "$hardenkit_workbot_credentials $hardenkit_workbot_no_store"
        ]
        assert directive(page, "proxy_cache_bypass") == ["$hardenkit_workbot_credentials"]
        assert "proxy_cache_lock" not in page
        # only the pages: not the API, the WebSocket or the static fallback
        site = conf["site.conf"]
        assert site.count("proxy_cache workbot_pages;") == 1
        for head in ("^~ /api/", "= /ws", "@app"):
            assert "proxy_cache" not in location(site, head), head


def test_page_cache_off_and_on_a_load_balancer():
    for conf in (
        render("web1", SINGLE, nginx_proxy_page_cache=False),
        render("lb1", FLEET, FLEET_VARS),
    ):
        assert "proxy_cache" not in conf["http.conf"] + conf["site.conf"]
        assert "X-Cache-Status" not in conf["site.conf"]
    conf = render(
        "web1", SINGLE, nginx_proxy_page_cache_valid=30, nginx_proxy_page_cache_max_size="1g"
    )
    assert "max_size=1g " in conf["http.conf"]
    assert directive(location(conf["site.conf"], "/"), "proxy_cache_valid") == ["200 30s"]


# --- the settings ------------------------------------------------------------------------------


def test_fallback_defaults_match_the_role_defaults():
    """vars/main.yml stands in for another host's role defaults; they must agree."""
    defaults, role_vars = load(ROLE / "defaults" / "main.yml"), load(ROLE / "vars" / "main.yml")
    assert role_vars["__nginx_proxy_default_listen_port"] == defaults["nginx_proxy_listen_port"]
    assert (
        role_vars["__nginx_proxy_default_keepalive_timeout"]
        == defaults["nginx_proxy_keepalive_timeout"]
    )


ROLE_VARS = load(ROLE / "vars" / "main.yml")


@pytest.mark.parametrize(
    ("value", "ip", "cidr", "name"),
    [
        ("10.0.0.5", True, True, True),
        ("fd00::5", True, True, False),
        ("::ffff:10.0.0.5", True, True, False),
        ("10.0.0.0/24", False, True, False),
        ("fd00::/64", False, True, False),
        ("app1.example.com", False, False, True),
        ("10.0.0.5:80", False, False, False),
        ("[fd00::5]", False, False, False),
        ("app1; return 200", False, False, False),
        ("-app1", False, False, False),
        # L1: `$` would let a trailing newline through
        ("10.0.0.5\n", False, False, False),
        ("app1.example.com\n", False, False, False),
    ],
)
def test_address_patterns(value, ip, cidr, name):
    assert bool(re.match(ROLE_VARS["__nginx_proxy_ip_pattern"], value)) is ip
    assert bool(re.match(ROLE_VARS["__nginx_proxy_cidr_pattern"], value)) is cidr
    assert bool(re.match(ROLE_VARS["__nginx_proxy_name_pattern"], value)) is name


# --- ACME: the challenge served from the kit's webroot, TLS once the certificate is there ----

ACME = {
    "app_server_name": "shop.example.com www.shop.example.com",
    "nginx_proxy_acme_enabled": True,
    "nginx_proxy_acme_email": "ops@example.com",
}
WEBROOT = "/var/lib/hardenkit/acme/workbot/webroot"
LIVE = "/etc/hardenkit/acme/workbot/live/workbot"


def test_acme_before_the_certificate_serves_http_and_the_challenge():
    site = render("web1", SINGLE, **ACME)["site.conf"]
    assert "ssl_certificate" not in site and "return 301" not in site
    assert directive(location(site, "^~ /.well-known/acme-challenge/"), "root") == [WEBROOT]
    assert "location / {" in site  # the app, over plain HTTP as before


def test_acme_with_the_certificate_serves_tls_and_the_challenge_over_http():
    site = render("web1", SINGLE, __nginx_proxy_acme_cert={"stat": {"exists": True}}, **ACME)[
        "site.conf"
    ]
    assert directive(site, "ssl_certificate") == [f"{LIVE}/fullchain.pem"]
    assert directive(site, "ssl_certificate_key") == [f"{LIVE}/privkey.pem"]
    http = site[: site.index("server {", site.index("server {") + 1)]
    assert directive(location(http, "^~ /.well-known/acme-challenge/"), "root") == [WEBROOT]
    assert directive(location(http, "/"), "return") == ["301 https://$host$request_uri"]
    assert site.count("location ^~ /.well-known/acme-challenge/") == 1


def test_tls_with_own_files_keeps_the_challenge_in_the_distributions_webroot():
    site = render("web1", SINGLE, **TLS)["site.conf"]
    assert directive(location(site, "^~ /.well-known/acme-challenge/"), "root") == ["/var/www/html"]
    assert directive(site, "ssl_certificate") == ["/etc/ssl/hk/cert.pem"]


def render_unit(name: str, **given: Any) -> str:
    """templates/<name>.j2 of the role, as its ACME tasks write it (an app named workbot)."""
    variables = {
        **trusted(load(ROOT / "roles" / "app" / "defaults" / "main.yml")),
        **trusted(load(ROLE / "defaults" / "main.yml")),
        "app_name": "workbot",
        "ansible_managed": "Ansible managed",
        **given,
        **trusted(load(ROLE / "vars" / "main.yml")),
    }
    templar = Templar(loader=DataLoader(), variables=variables)
    source = (ROLE / "templates" / f"{name}.j2").read_text(encoding="utf-8")
    return templar.template(trust_as_template(source), overrides={"trim_blocks": True})


@pytest.mark.parametrize("ca", ["", "/srv/ca.pem"], ids=["public CA", "private CA"])
def test_acme_renewal_unit_renews_this_certificate_only(ca):
    unit = render_unit("acme.service", nginx_proxy_acme_ca_bundle=ca)
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert exec_start.split() == [
        "ExecStart=/usr/bin/certbot",
        "renew",
        "--quiet",
        "--non-interactive",
        "--no-random-sleep-on-renew",
        "--cert-name",
        "workbot",
        "--config-dir",
        "/etc/hardenkit/acme/workbot",
        "--work-dir",
        "/var/lib/hardenkit/acme/workbot/work",
        "--logs-dir",
        "/var/lib/hardenkit/acme/workbot/logs",
    ]
    # The CA file on the host, not the control node's path.
    expected = ["Environment=REQUESTS_CA_BUNDLE=/etc/hardenkit/acme/workbot-ca.pem"] if ca else []
    assert [line for line in unit.splitlines() if line.startswith("Environment=")] == expected
    assert "Type=oneshot" in unit.splitlines()


def test_acme_timer_runs_twice_a_day_spread_and_persistent():
    timer = render_unit("acme.timer")
    for line in ("OnCalendar=*-*-* 00,12:00:00", "RandomizedDelaySec=12h", "Persistent=true"):
        assert line in timer.splitlines()
    assert "WantedBy=timers.target" in timer.splitlines()
