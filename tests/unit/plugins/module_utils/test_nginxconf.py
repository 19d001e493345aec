"""The error logs Nginx's configuration names are scanned: the kit's site logs its upstream
errors to /var/log/nginx/hardenkit-<app>.error.log, which Nginx's main error log never sees.

A fake configuration tree in tmp_path (nginx.conf, includes by glob and by name, relative
and absolute, error_log targets that are not files) stands for /etc/nginx.
"""

from __future__ import annotations

import os
from pathlib import Path

import jinja2
import pytest
import yaml

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.diagnosis import (
    DiagnoseOptions,
    collect_logs,
    collect_nginx,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.findings import find_log_errors
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.logscan import scan_lines
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nginxconf import (
    error_log_target,
    error_logs,
    parse_directives,
)
from tests.hk_testlib import FIXTURES, ROOT

# Nginx's lines when the app behind the kit's site is down, restarting or slow (the upstream
# is http.conf.j2's <app>_app), with the lines around them that are no upstream error.
KIT_ERROR_LOG = """\
2026/02/10 09:14:01 [notice] 2417#2417: signal process started
2026/02/10 09:14:02 [error] 2420#2420: *88 connect() failed (111: Connection refused) while \
connecting to upstream, client: 203.0.113.9, server: workbot.example.com, request: "GET / \
HTTP/1.1", upstream: "http://127.0.0.1:5000/", host: "workbot.example.com"
2026/02/10 09:14:02 [warn] 2420#2420: *88 upstream server temporarily disabled while \
connecting to upstream, client: 203.0.113.9, server: workbot.example.com, request: "GET / \
HTTP/1.1", upstream: "http://127.0.0.1:5000/", host: "workbot.example.com"
2026/02/10 09:14:03 [error] 2420#2420: *90 no live upstreams while connecting to upstream, \
client: 198.51.100.23, server: workbot.example.com, request: "GET /login HTTP/1.1", \
upstream: "http://workbot_app/login", host: "workbot.example.com"
2026/02/10 09:15:40 [error] 2421#2421: *131 upstream timed out (110: Connection timed out) \
while reading response header from upstream, client: 203.0.113.9, server: \
workbot.example.com, request: "GET /api/health HTTP/1.1", upstream: \
"http://127.0.0.1:5000/api/health", host: "workbot.example.com"
2026/02/10 09:16:12 [error] 2421#2421: *150 recv() failed (104: Connection reset by peer) \
while reading response header from upstream, client: 203.0.113.9, server: \
workbot.example.com, request: "GET /api/chat HTTP/1.1", upstream: \
"http://127.0.0.1:5000/api/chat", host: "workbot.example.com"
2026/02/10 09:17:30 [warn] 2421#2421: *201 an upstream response is buffered to a temporary \
file /var/lib/nginx/proxy/2/00/0000000002 while reading upstream, client: 203.0.113.9, \
server: workbot.example.com, request: "GET /_next/static/chunks/app.js HTTP/1.1", \
upstream: "http://127.0.0.1:5000/_next/static/chunks/app.js", host: "workbot.example.com"
"""

# The same site on a quiet day: notices and warnings, no upstream error.
CLEAN_ERROR_LOG = """\
2026/02/11 03:00:01 [notice] 2417#2417: signal process started
2026/02/11 03:00:01 [notice] 2417#2417: signal 10 (SIGUSR1) received from 31402, reopening logs
2026/02/11 10:21:09 [warn] 2423#2423: *4410 an upstream response is buffered to a temporary \
file /var/lib/nginx/proxy/3/00/0000000003 while reading upstream, client: 203.0.113.9, \
server: workbot.example.com, request: "GET /_next/static/chunks/app.js HTTP/1.1", \
upstream: "http://127.0.0.1:5000/_next/static/chunks/app.js", host: "workbot.example.com"
2026/02/11 10:40:55 [error] 2423#2423: *4502 limiting requests, excess: 20.560 by zone \
"workbot_api", client: 198.51.100.23, server: workbot.example.com, request: "POST \
/api/chat HTTP/1.1", host: "workbot.example.com"
"""


def conf_tree(base: Path) -> tuple[Path, Path]:
    """A Debian-like /etc/nginx under ``base`` with the kit's site enabled, and its log dir.

    Returns ``(conf_dir, log_dir)``.
    """
    conf, logs = base / "etc" / "nginx", base / "var" / "log" / "nginx"
    for sub in ("conf.d", "sites-available", "sites-enabled", "modules-enabled", "snippets"):
        (conf / sub).mkdir(parents=True)
    logs.mkdir(parents=True)
    (conf / "nginx.conf").write_text(
        f"""user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log {logs}/error.log;
include modules-enabled/*.conf;   # relative: to the directory of nginx.conf

events {{
    worker_connections 768;
}}

http {{
    include mime.types;
    default_type application/octet-stream;
    access_log {logs}/access.log;
    # error_log {logs}/commented-out.log;
    error_log stderr;
    include {conf}/conf.d/*.conf;
    include {conf}/sites-enabled/*;
}}
"""
    )
    (conf / "mime.types").write_text("types {\n    text/html html htm;\n}\n")
    (conf / "modules-enabled" / "50-mod-stream.conf").write_text(
        'load_module "modules/ngx_stream_module.so";\n'
    )
    (conf / "conf.d" / "hardenkit-workbot.conf").write_text(
        "upstream workbot_app {\n    server 127.0.0.1:5000 max_fails=0;\n}\n"
        "error_log syslog:server=unix:/dev/log,tag=nginx warn;\n"
        "error_log memory:32m debug;\n"
    )
    site = conf / "sites-available" / "hardenkit-workbot.conf"
    site.write_text(
        f"""server {{
    listen 80 default_server;
    server_name workbot.example.com;
    access_log {logs}/hardenkit-workbot.access.log;
    error_log {logs}/hardenkit-workbot.error.log warn;
    location ~ /\\.(?!well-known(?:/|$)) {{
        return 404;
    }}
    location / {{
        include snippets/proxy.conf;
        proxy_pass http://workbot_app;
    }}
}}
"""
    )
    (conf / "sites-enabled" / "hardenkit-workbot.conf").symlink_to(site)
    (conf / "snippets" / "proxy.conf").write_text(
        "proxy_set_header Host $host;\nproxy_set_header X-Request-Id ${request_id};\n"
    )
    # Another site an admin left: its log named twice and quoted, and targets that are no file.
    (conf / "sites-enabled" / "legacy").write_text(
        f"""server {{
    listen 8080;
    error_log "{logs}/legacy site.error.log" error;
    error_log '{logs}/legacy site.error.log';
    error_log {logs}/error.log;   # the main one again
    error_log /dev/null crit;
    error_log logs/relative.log;  # relative to Nginx's compiled-in prefix: unknown here
    include {conf}/nginx.conf;    # a loop Nginx itself would refuse; read once
}}
"""
    )
    return conf, logs


# --- parsing ---------------------------------------------------------------------------------


def test_parse_directives_reads_nginx_syntax():
    text = """
    # a comment; with a semicolon
    error_log  /var/log/nginx/a.log  warn;  # trailing comment
    http { server { location ~ ^/(a|b)$ { return 404; } } }
    set $x "a;b # not a comment";
    proxy_set_header X-Id ${request_id};
    log_format main '$remote_addr - "$request"';
    """
    assert parse_directives(text) == [
        ("error_log", ["/var/log/nginx/a.log", "warn"]),
        ("return", ["404"]),
        ("set", ["$x", "a;b # not a comment"]),
        ("proxy_set_header", ["X-Id", "${request_id}"]),
        ("log_format", ["main", '$remote_addr - "$request"']),
    ]


@pytest.mark.parametrize(
    ("args", "target"),
    [
        (
            ["/var/log/nginx/hardenkit-workbot.error.log", "warn"],
            "/var/log/nginx/hardenkit-workbot.error.log",
        ),
        (["/var/log/nginx//x/../error.log"], "/var/log/nginx/error.log"),
        (["stderr"], None),
        (["syslog:server=unix:/dev/log"], None),
        (["memory:32m", "debug"], None),
        (["/dev/null", "crit"], None),
        (["logs/error.log"], None),
        ([], None),
    ],
)
def test_error_log_target(args, target):
    assert error_log_target(args) == target


def test_the_kit_site_as_rendered_names_its_error_log():
    # fixtures/nginx/single.conf: what nginx_proxy's templates render for one server
    directives = parse_directives((FIXTURES / "nginx" / "single.conf").read_text())
    targets = [error_log_target(args) for name, args in directives if name == "error_log"]
    assert targets == ["/var/log/nginx/hardenkit-workbot.error.log"]


# --- the configuration tree --------------------------------------------------------------------


def test_error_logs_of_a_configuration_tree(tmp_path):
    conf, logs = conf_tree(tmp_path)
    (conf / "sites-enabled" / "broken").symlink_to(conf / "sites-available" / "gone")
    found, files, errors = error_logs(str(conf))
    assert found == [
        f"{logs}/error.log",
        f"{logs}/hardenkit-workbot.error.log",
        f"{logs}/legacy site.error.log",
    ]
    assert files[0] == str(conf / "nginx.conf")
    assert str(conf / "snippets" / "proxy.conf") in files  # an include inside an include
    assert str(conf / "modules-enabled" / "50-mod-stream.conf") in files  # relative
    assert files.count(str(conf / "nginx.conf")) == 1
    # A dangling link the glob matches is not a file: Nginx would fail on it, nginx -t says so.
    assert errors == []


def test_error_logs_reports_what_it_cannot_read(tmp_path):
    conf, _ = conf_tree(tmp_path)
    (conf / "conf.d" / "missing.conf").write_text(f"include {conf}/not-there.conf;\n")
    _, _, errors = error_logs(str(conf))
    assert errors == [f"nginx config: cannot read {conf}/not-there.conf"]


def test_no_nginx_is_no_error(tmp_path):
    assert error_logs(str(tmp_path / "etc" / "nginx")) == ([], [], [])


# --- through the diagnosis -------------------------------------------------------------------


def options(tmp_path: Path, conf: Path, site: str = "") -> DiagnoseOptions:
    return DiagnoseOptions(
        app_name="workbot",
        app_root=str(tmp_path / "srv" / "workbot"),
        log_paths=[],  # only what the Nginx configuration names
        logrotate_dir=str(tmp_path / "logrotate.d"),
        nginx_conf_dir=str(conf),
        proxy_site=site,
        proc_root=str(tmp_path / "proc"),
    )


def test_upstream_errors_in_the_kit_site_log_are_a_finding(tmp_path):
    conf, logs = conf_tree(tmp_path)
    (logs / "error.log").write_text("")  # the main log: nothing, as on the reported host
    (logs / "hardenkit-workbot.error.log").write_text(KIT_ERROR_LOG)
    site = str(conf / "sites-enabled" / "hardenkit-workbot.conf")
    opts = options(tmp_path, conf, site)
    errors: list[str] = []
    nginx = collect_nginx(opts, errors)
    assert nginx["site_present"] is True and nginx["site"] == site and errors == []
    logs_fact, rotate, _ = collect_logs(opts, {}, [], nginx["error_logs"])
    by_path = {scan["path"]: scan for scan in logs_fact["files"]}
    assert set(by_path) == {f"{logs}/error.log", f"{logs}/hardenkit-workbot.error.log"}
    kit = by_path[f"{logs}/hardenkit-workbot.error.log"]
    # connect() failed, no live upstreams, upstream timed out, recv() reset; not the
    # "temporarily disabled" or "buffered" warnings
    assert kit["counts"]["upstream"] == 4
    assert logs_fact["counts"]["upstream"] == 4
    [found] = find_log_errors(logs_fact)
    assert (found["code"], found["severity"]) == ("log_errors", "warning")
    assert found["summary"] == "error patterns in recent logs: upstream 4"
    assert found["evidence"][0].startswith(f"upstream x4 in {logs}/hardenkit-workbot.error.log:")
    assert "recv() failed (104: Connection reset by peer)" in found["evidence"][0]
    # found logs must be rotated like any other
    assert f"{logs}/hardenkit-workbot.error.log" in rotate["uncovered"]


def test_a_clean_kit_site_log_is_no_finding(tmp_path):
    conf, logs = conf_tree(tmp_path)
    (logs / "hardenkit-workbot.error.log").write_text(CLEAN_ERROR_LOG)
    opts = options(tmp_path, conf)
    nginx = collect_nginx(opts, [])
    assert nginx["site_present"] is False and nginx["site"] is None  # none named
    logs_fact, _, _ = collect_logs(opts, {}, [], nginx["error_logs"])
    assert [scan["path"] for scan in logs_fact["files"]] == [f"{logs}/hardenkit-workbot.error.log"]
    assert sum(logs_fact["counts"].values()) == 0
    assert find_log_errors(logs_fact) == []


def test_nginx_logs_are_added_to_the_given_paths_once(tmp_path):
    conf, logs = conf_tree(tmp_path)
    (logs / "hardenkit-workbot.error.log").write_text(KIT_ERROR_LOG)
    opts = options(tmp_path, conf)
    opts.log_paths = [f"{logs}/*.error.log"]
    logs_fact, _, _ = collect_logs(opts, {}, [], error_logs(str(conf))[0])
    assert logs_fact["patterns"] == [
        f"{logs}/*.error.log",
        f"{logs}/error.log",
        f"{logs}/hardenkit-workbot.error.log",
        f"{logs}/legacy site.error.log",
    ]
    assert [scan["path"] for scan in logs_fact["files"]] == [f"{logs}/hardenkit-workbot.error.log"]


def test_a_dangling_site_link_still_expects_the_proxy(tmp_path):
    conf, _ = conf_tree(tmp_path)
    link = conf / "sites-enabled" / "hardenkit-workbot.conf"
    os.unlink(conf / "sites-available" / "hardenkit-workbot.conf")
    assert collect_nginx(options(tmp_path, conf, str(link)), [])["site_present"] is True
    absent = str(conf / "sites-enabled" / "hardenkit-other.conf")
    assert collect_nginx(options(tmp_path, conf, absent), [])["site_present"] is False


@pytest.mark.parametrize(
    "line",
    [
        "2026/02/10 09:14:02 [error] 2420#2420: *88 connect() failed (111: Connection refused) "
        "while connecting to upstream",
        "2026/02/10 09:14:02 [error] 2420#2420: *89 connect() to unix:/run/workbot.sock failed "
        "(2: No such file or directory) while connecting to upstream",
        "2026/02/10 09:14:02 [error] 2420#2420: *90 connect() to 10.0.0.7:80 failed "
        "(113: No route to host) while connecting to upstream",
        "2026/02/10 09:14:03 [error] 2420#2420: *91 no live upstreams while connecting to upstream",
        "2026/02/10 09:15:40 [error] 2421#2421: *92 upstream timed out (110: Connection timed "
        "out) while reading response header from upstream",
        "2026/02/10 09:16:12 [error] 2421#2421: *93 recv() failed (104: Connection reset by "
        "peer) while reading response header from upstream",
        "2026/02/10 09:16:13 [error] 2421#2421: *94 upstream prematurely closed connection "
        "while reading response header from upstream",
    ],
)
def test_upstream_error_lines(line):
    assert scan_lines([line])["counts"]["upstream"] == 1


@pytest.mark.parametrize("line", CLEAN_ERROR_LOG.splitlines())
def test_lines_that_are_no_upstream_error(line):
    assert scan_lines([line])["counts"]["upstream"] == 0


# --- the diagnostics role names what nginx_proxy writes -------------------------------------


def role_vars(path: Path, names: list[str], **given: str) -> dict[str, str]:
    """``names`` of a role's vars file rendered in order (each may use the ones before)."""
    raw = yaml.safe_load(path.read_text())
    out: dict[str, str] = dict(given)
    for name in names:
        out[name] = jinja2.Template(raw[name]).render(out)
    return out


def test_diagnostics_names_the_kit_site_and_its_error_log():
    nginx = role_vars(
        ROOT / "roles" / "nginx_proxy" / "vars" / "main.yml",
        ["__nginx_proxy_id", "__nginx_proxy_site", "__nginx_proxy_site_link"],
        app_name="workbot",
    )
    diag_vars = ROOT / "roles" / "diagnostics" / "vars" / "main" / "main.yml"
    diag = role_vars(
        diag_vars, ["__diagnostics_nginx_id", "__diagnostics_proxy_site"], app_name="workbot"
    )
    assert diag["__diagnostics_proxy_site"] == nginx["__nginx_proxy_site_link"]
    assert diag["__diagnostics_proxy_site"] == "/etc/nginx/sites-enabled/hardenkit-workbot.conf"
    # the error_log of the kit's site is among the role's default log paths
    site = (ROOT / "roles" / "nginx_proxy" / "templates" / "site.conf.j2").read_text()
    [line] = [ln for ln in site.splitlines() if ln.strip().startswith("error_log ")]
    rendered = jinja2.Template(line).render(nginx)
    target = error_log_target(parse_directives(rendered)[0][1])
    assert target == "/var/log/nginx/hardenkit-workbot.error.log"
    defaults = yaml.safe_load(diag_vars.read_text())["__diagnostics_default_log_paths"]
    assert target in [jinja2.Template(p).render(diag) for p in defaults if "nginx" in p]
    # and the role hands the site to the module
    collect = yaml.safe_load((ROOT / "roles" / "diagnostics" / "tasks" / "collect.yml").read_text())
    assert (
        collect[0]["hardenkit.nodeapp.diagnose"]["proxy_site"] == "{{ __diagnostics_proxy_site }}"
    )


def test_another_apps_site_log_on_the_machine_is_left_to_its_own_diagnosis(tmp_path):
    """Two apps on one machine: the other app's upstream errors are not this app's."""
    conf, logs = conf_tree(tmp_path)
    for app in ("workbot-admin", "shop"):
        (conf / "sites-enabled" / f"hardenkit-{app}.conf").write_text(
            f"server {{ error_log {logs}/hardenkit-{app}.error.log; }}\n"
        )
        (logs / f"hardenkit-{app}.error.log").write_text(KIT_ERROR_LOG)
    (logs / "hardenkit-workbot.error.log").write_text(CLEAN_ERROR_LOG)
    opts = options(tmp_path, conf)
    nginx = collect_nginx(opts, [])
    assert f"{logs}/hardenkit-shop.error.log" in nginx["error_logs"]
    logs_fact, _, _ = collect_logs(opts, {}, [], nginx["error_logs"])
    scanned = [scan["path"] for scan in logs_fact["files"]]
    assert scanned == [f"{logs}/hardenkit-workbot.error.log"]
    assert find_log_errors(logs_fact) == []
