#!/usr/bin/python
# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: diagnose
short_description: Diagnose a Node.js / Next.js app host without changing anything
version_added: "0.1.0"
description:
  - Collects facts about a host that runs (or should run) a Node.js / Next.js app
    (memory, swap, load, disk, TCP listeners and their processes, the app's process table,
    PM2 state, the live build, recent log errors, log rotation), probes the app's routes
    directly on O(app_port) and through the reverse proxy on O(proxy_port), and returns
    findings with a code and a severity.
  - Read-only. It never starts, stops or writes anything, always returns C(changed=false)
    and runs the same in check mode.
  - Something missing on the host (no app, no PM2, no nginx, no logrotate) is a finding,
    never a module failure. Only invalid options fail.
  - PM2 is queried as O(app_user) and only when its daemon already runs (socket and pid
    file in O(pm2_home)); any C(pm2) command would otherwise start a daemon.
  - No environment values are returned. PM2's process list is reduced to a fixed set of
    fields, and command lines and log samples have credentials and C(NAME=value)
    assignments masked.
author:
  - hardenkit developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
    details: Linux only; reads C(/proc).
options:
  app_name:
    description: App identifier; also the PM2 process name of the app.
    type: str
    required: true
  app_root:
    description:
      - Base directory of the app on the host (C(releases/), C(current), C(shared/)).
      - The live build is C(<app_root>/current). It need not exist.
    type: path
    required: true
  app_user:
    description: User that runs the app and owns its PM2 daemon. Defaults to O(app_name).
    type: str
  app_port:
    description: Port the app listens on.
    type: int
    default: 5000
  package_name:
    description:
      - The app's C(package.json) C(name). A process whose cwd holds a C(package.json)
        with this name is the app's, wherever it runs.
    type: str
  scope_paths:
    description:
      - Further directories whose processes belong to the app (for example where it ran
        before hardening, such as C(/workspace/projects)). O(app_root) always does.
    type: list
    elements: path
    default: []
  probes:
    description:
      - HTTP GET probes, each a dict with C(path) (starting with C(/)) and C(status)
        (expected HTTP status, 100-599, default 200). Each is sent directly to
        O(app_port) and through the proxy on O(proxy_port). Redirects are not followed.
    type: list
    elements: dict
    default: [{path: /, status: 200}]
  proxy_port:
    description: Port of the reverse proxy (nginx) in front of the app.
    type: int
    default: 80
  proxy_scheme:
    description:
      - Scheme of the probes through the proxy. With C(https) (a proxy that redirects
        plain HTTP to HTTPS, O(proxy_port) its TLS port) the certificate is not verified;
        the probes ask whether the site answers, not whether its certificate is valid.
    type: str
    choices: [http, https]
    default: http
  proxy_host_header:
    description: C(Host) header for probes through the proxy (its C(server_name)).
    type: str
  proxy_site:
    description:
      - The enabled Nginx site file of the kit's proxy for this app, for example
        C(/etc/nginx/sites-enabled/hardenkit-workbot.conf). Where it exists (a dangling
        link counts), a proxy is expected to answer. When no probe through it passes,
        because nothing there gives an HTTP answer or Nginx answers 5xx on paths the app
        itself answers below 500, the finding is C(proxy_down), critical, instead of
        C(no_reverse_proxy).
      - Empty, the default, for a host where no proxy is expected yet.
    type: path
    default: ""
  nginx_conf_dir:
    description:
      - Nginx's configuration directory. The C(error_log) files that C(nginx.conf) and
        the files it includes name are scanned with O(log_paths), besides them (C(stderr),
        C(syslog), C(memory) targets, C(/dev/null) and relative paths are left out).
      - Without C(nginx.conf) there (no Nginx) nothing is added.
    type: path
    default: /etc/nginx
  pm2_home:
    description: C(PM2_HOME) of the app's PM2. Defaults to C(<app_root>/.pm2).
    type: path
  pm2_bin:
    description: The C(pm2) executable, a name looked up in C(PATH) or an absolute path.
    type: str
    default: pm2
  log_paths:
    description:
      - App, PM2 and nginx error logs to scan; glob patterns allowed.
      - Defaults to C(<pm2_home>/logs/*.log), C(<app_root>/shared/logs/*.log),
        C(/var/log/nginx/error.log) and the kit's site error log
        C(/var/log/nginx/hardenkit-<app_name>.error.log). The log files PM2 reports and
        the C(error_log) files of the Nginx configuration in O(nginx_conf_dir) are always
        added, but for the kit's site logs of other apps on the machine
        (C(hardenkit-<other app>.error.log)).
    type: list
    elements: path
  log_tail_lines:
    description: How many of the last lines of each log to scan.
    type: int
    default: 500
  logrotate_dir:
    description: Directory of logrotate configs checked for the logs' rotation.
    type: path
    default: /etc/logrotate.d
  probe_timeout:
    description: Seconds each probe waits for an answer.
    type: float
    default: 5
  thresholds:
    description:
      - Resource and restart thresholds; given keys override the defaults.
      - C(memory_warn_pct) 85, C(memory_crit_pct) 95, C(disk_warn_pct) 85,
        C(disk_crit_pct) 95, C(load_warn_per_cpu) 2.0, C(load_crit_per_cpu) 4.0 (5-minute
        load average per CPU), C(crash_loop_restarts) 5, C(crash_loop_window_s) 300,
        C(db_connections_pct) 90 (of the database budget).
    type: dict
    default: {}
  required_files:
    description:
      - Files, relative to C(<app_root>/current), that the live build must contain
        besides Next.js's own (for example C(dist/server.js) for a compiled custom server).
    type: list
    elements: str
    default: []
  dist_dir:
    description:
      - The Next.js build directory of the live release, relative to C(<app_root>/current)
        (C(apps/web/.next) for an app in a monorepo).
    type: str
    default: .next
  database:
    description:
      - The app's database, read from its URL without the credentials (the filter
        C(hardenkit.nodeapp.db_endpoint)), with the app's connection budget (0 for none).
        A PostgreSQL server is connected to once and the connection closed before a byte
        is sent (PostgreSQL logs nothing for it); a MySQL or MariaDB server, which counts
        such a connection against the client, is not. The app user's established
        connections to it are counted from C(/proc/net/tcp) and C(tcp6).
    type: dict
    suboptions:
      scheme:
        description: The URL's scheme.
        type: str
        default: postgres
      host:
        description: Host name, address, or a Unix socket directory (C(/run/postgresql)).
        type: str
        required: true
      port:
        description: The port.
        type: int
        required: true
      budget:
        description:
          - The connections the app may hold at once (C(app_db_connection_budget)); 0 for none.
        type: int
        default: 0
notes:
  - Run it with root privileges (C(become)) for complete facts; without root, other
    users' sockets and working directories cannot be read, and such gaps are listed in
    C(facts.errors).
seealso:
  - module: hardenkit.nodeapp.reap_processes
"""

EXAMPLES = r"""
- name: Diagnose the app before changing anything
  hardenkit.nodeapp.diagnose:
    app_name: workbot
    app_root: /srv/workbot
    app_port: 5000
    package_name: workbot
    scope_paths:
      - /workspace/projects
    probes:
      - path: /
        status: 200
      - path: /login
        status: 200
      - path: /api/health
        status: 200
    proxy_host_header: workbot.example.com
  become: true
  register: diagnosis_before

- name: Show the critical findings
  ansible.builtin.debug:
    msg: "{{ diagnosis_before.findings | selectattr('severity', 'eq', 'critical') | list }}"

- name: Compare with a later diagnosis
  ansible.builtin.set_fact:
    diagnosis_delta: >-
      {{ diagnosis_before
         | hardenkit.nodeapp.diagnosis_compare(diagnosis_after, reloads=2) }}
"""

RETURN = r"""
facts:
  description:
    - What was collected. Keys C(memory), C(swap) (kB and C(used_pct)), C(load)
      (C(load1), C(load5), C(load15)), C(cpu_count), C(disk) (one entry per filesystem
      holding the app root, PM2 home and log directories), C(listeners) (TCP listeners
      with C(address), C(port), C(loopback), owning C(pid) and C(process), C(user),
      C(manager), and C(owner_guess) where the holder could not be read, with the
      Node.js C(pids) of the socket's user, their C(trees) and whether C(all), C(none)
      or C(some) are C(managed)), C(processes) (the app's and all Node.js processes with C(cmdline),
      C(cwd), C(user), C(start_time), C(rss_kb), C(manager) C(pm2)/C(systemd)/null,
      C(in_scope) C(cwd)/C(package)/C(port)/C(pm2)/null, or where the cwd could not be
      read C(cmdline)/C(user)/C(socket) (judged by command line, app user or the app
      port's socket user), C(unreadable) (C(cwd), C(fd) refused by the kernel) and
      C(dev), the dev tool if any), C(unreadable) (C(count) of processes whose C(cwd)
      or C(fd) could not be read, how many were C(judged) the app's, and the first of
      them with C(pid), C(user), masked C(cmdline), C(in_scope)),
      C(pm2) (C(running), C(queried), C(error), C(processes) without environment),
      C(nginx) (C(conf_dir), C(conf_files) read, C(error_logs) they name, C(site) and
      C(site_present), from O(proxy_site)),
      C(build) (C(current), C(build_id), C(missing), C(ok)), C(release) (the
      release id C(<app_root>/current) links to, or null), C(release_dir) (the
      directory it resolves to, or null), C(logs) (per file
      C(counts) and C(samples)), C(logrotate) (C(covered), C(uncovered)), C(database)
      (null without O(database); else its C(scheme), C(host), C(port), C(budget),
      C(reachable) (null when not tried), C(error), C(connect_ms), and C(connections),
      the app user's established ones), C(errors) (what could not be read).
  returned: always
  type: dict
probes:
  description: One result per probe and route, C(via) C(direct) or C(proxy).
  returned: always
  type: list
  elements: dict
  contains:
    url:
      description: The URL requested.
      type: str
    path:
      description: The probed path.
      type: str
    via:
      description: C(direct) (the app port) or C(proxy) (the proxy port).
      type: str
    expected:
      description: The expected status.
      type: int
    status:
      description: The status received; null when nothing answered.
      type: int
    ok:
      description: Whether C(status) equals C(expected).
      type: bool
    latency_ms:
      description: Time to the answer (or the error).
      type: float
    body_sample:
      description: The first 200 characters of the body.
      type: str
    error:
      description: Why nothing answered (C(connection refused), C(timed out after 5s)).
      type: str
  sample:
    - {url: "http://127.0.0.1:5000/api/health", path: /api/health, via: direct, expected: 200,
       status: 404, ok: false, latency_ms: 12.3, body_sample: "<!DOCTYPE html>...", error: null}
findings:
  description:
    - Problems found, critical first. C(code) is one of C(duplicate_processes),
      C(dev_mode), C(build_missing), C(route_failed), C(proxy_down), C(log_errors),
      C(no_process_manager), C(app_exposed), C(no_reverse_proxy), C(no_log_rotation),
      C(memory_high), C(disk_high), C(load_high), C(crash_loop), C(stale_workers),
      C(db_unreachable), C(db_connections_high), C(diagnosis_incomplete).
  returned: always
  type: list
  elements: dict
  contains:
    code:
      description: Finding code.
      type: str
    severity:
      description: C(critical), C(warning) or C(info).
      type: str
    summary:
      description: One line for a human.
      type: str
    evidence:
      description: A few short lines supporting it.
      type: list
      elements: str
  sample:
    - code: dev_mode
      severity: critical
      summary: the app runs under a dev server/watcher (tsx watch), not a production build
      evidence:
        - "tsx watch: pid 173 user root cwd /workspace/projects:
          node .../tsx/dist/cli.mjs watch server.ts"
duration_ms:
  description: How long the diagnosis took.
  returned: always
  type: int
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.diagnosis import (
    DiagnoseOptions,
    diagnose,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.options import (
    OptionError,
    merge_thresholds,
    validate_port,
    validate_probes,
)

ARGUMENT_SPEC = {
    "app_name": {"type": "str", "required": True},
    "app_root": {"type": "path", "required": True},
    "app_user": {"type": "str"},
    "app_port": {"type": "int", "default": 5000},
    "package_name": {"type": "str"},
    "scope_paths": {"type": "list", "elements": "path", "default": []},
    "probes": {"type": "list", "elements": "dict", "default": [{"path": "/", "status": 200}]},
    "proxy_port": {"type": "int", "default": 80},
    "proxy_scheme": {"type": "str", "choices": ["http", "https"], "default": "http"},
    "proxy_host_header": {"type": "str"},
    "proxy_site": {"type": "path", "default": ""},
    "nginx_conf_dir": {"type": "path", "default": "/etc/nginx"},
    "pm2_home": {"type": "path"},
    "pm2_bin": {"type": "str", "default": "pm2"},
    "log_paths": {"type": "list", "elements": "path"},
    "log_tail_lines": {"type": "int", "default": 500},
    "logrotate_dir": {"type": "path", "default": "/etc/logrotate.d"},
    "probe_timeout": {"type": "float", "default": 5.0},
    "thresholds": {"type": "dict", "default": {}},
    "required_files": {"type": "list", "elements": "str", "default": []},
    "dist_dir": {"type": "str", "default": ".next"},
    "database": {
        "type": "dict",
        "options": {
            "scheme": {"type": "str", "default": "postgres"},
            "host": {"type": "str", "required": True},
            "port": {"type": "int", "required": True},
            "budget": {"type": "int", "default": 0},
        },
    },
}


def build_options(params: dict) -> DiagnoseOptions:
    """Module parameters -> validated options; ``OptionError`` names the bad input."""
    if not params["app_root"].startswith("/"):
        raise OptionError(f"app_root must be an absolute path, got {params['app_root']!r}")
    tail = params["log_tail_lines"]
    if not 1 <= tail <= 100000:
        raise OptionError(f"log_tail_lines must be 1-100000, got {tail}")
    timeout = params["probe_timeout"]
    if not 0 < timeout <= 120:
        raise OptionError(f"probe_timeout must be > 0 and <= 120 seconds, got {timeout:g}")
    for name in ("proxy_site", "nginx_conf_dir"):
        if params[name] and not params[name].startswith("/"):
            raise OptionError(f"{name} must be an absolute path, got {params[name]!r}")
    if not params["nginx_conf_dir"]:
        raise OptionError("nginx_conf_dir must not be empty")
    dist = params["dist_dir"]
    if not dist or dist.startswith("/") or ".." in dist.split("/"):
        raise OptionError(f"dist_dir must be relative to <app_root>/current, got {dist!r}")
    for idx, rel in enumerate(params["required_files"]):
        if rel.startswith("/") or ".." in rel.split("/"):
            raise OptionError(
                f"required_files[{idx}] must be relative to <app_root>/current, got {rel!r}"
            )
    return DiagnoseOptions(
        app_name=params["app_name"],
        app_root=params["app_root"],
        app_user=params["app_user"],
        app_port=validate_port(params["app_port"], "app_port"),
        package_name=params["package_name"],
        scope_paths=list(params["scope_paths"]),
        probes=validate_probes(params["probes"]),
        proxy_port=validate_port(params["proxy_port"], "proxy_port"),
        proxy_scheme=params["proxy_scheme"],
        proxy_host_header=params["proxy_host_header"],
        pm2_home=params["pm2_home"],
        pm2_bin=params["pm2_bin"],
        log_paths=params["log_paths"],
        log_tail_lines=tail,
        logrotate_dir=params["logrotate_dir"],
        probe_timeout=timeout,
        thresholds=merge_thresholds(params["thresholds"]),
        required_files=list(params["required_files"]),
        dist_dir=dist,
        proxy_site=params["proxy_site"] or "",
        nginx_conf_dir=params["nginx_conf_dir"],
        database=_database(params["database"]),
    )


def _database(db: dict | None) -> dict | None:
    if not db:
        return None
    validate_port(db["port"], "database.port")
    if not db["host"] or any(c.isspace() for c in db["host"]):
        raise OptionError("database.host must be a host name, an address or a socket directory")
    if db["budget"] < 0:
        raise OptionError(f"database.budget must be 0 or more, got {db['budget']}")
    return dict(db)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        opts = build_options(module.params)
    except OptionError as exc:
        module.fail_json(msg=str(exc))
    try:
        result = diagnose(opts)
    except Exception as exc:  # a bug, not the host's state: say so, with the traceback
        module.fail_json(
            msg=f"diagnose failed unexpectedly: {exc}", exception=traceback.format_exc()
        )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
