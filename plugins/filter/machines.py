"""Apps that cannot share their machine (``machine_conflicts``).

Each app is an inventory host of its own; the inventory hosts that are one machine (one
server or container, reached through one connection) give it one name, ``hardenkit_machine``
(by default the inventory hostname). The apps of a machine share its Node.js link, Nginx,
log rotation, memory and ports, so some of their settings must differ and others must be
equal. The input is one "view" per app: a dict of its resolved settings, with ``host`` (the
inventory hostname), ``machine`` (its ``hardenkit_machine``) and ``target`` (its connection,
such as ``ssh:10.0.0.5:22``). docs/design/two-apps-per-host.md, "Proposed changes (phase 1)".
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

# reports/<machine>/ holds a machine's reports, and reports/fleet/ the fleet summary.
RESERVED_MACHINES = ("fleet",)

# Each app of a machine needs its own value of these (paths compared normalised).
UNIQUE_SETTINGS = (
    "app_name",
    "app_user",
    "app_root",
    "app_data_dir",
    "pm2_service_name",
    "pm2_home",
    "pm2_log_dir",
)
# Every one of these ports, of every app of a machine, must differ from the others: app A's
# gate must not take app B's port (app_port is unique across the apps through this rule).
PORT_SETTINGS = ("app_port", "app_release_gate_port")
# No app_root inside another app's app_root, no app_data_dir inside another app's app_root.
NESTING_SETTINGS = ("app_root", "app_data_dir")
# At most one default server and one catch-all name "_", which must be the default server;
# no server name in two apps.
NGINX_SETTINGS = ("app_server_name", "nginx_proxy_default_server")
# The apps of a machine share one install or one file for each of these: all equal.
EQUAL_SETTINGS = (
    "node_runtime_version_decided",
    "node_runtime_install_method",
    "node_runtime_prefix",
    "node_runtime_http_proxy",
    "node_runtime_https_proxy",
    "node_runtime_no_proxy",
    "node_runtime_extra_ca_certs",
    "nginx_proxy_listen_port",
    "nginx_proxy_tls_port",
    "nginx_proxy_listen_ipv6",
    "logrotate_hourly",
    "logrotate_manage_nginx",
    "logrotate_max_size",
    "logrotate_nginx_rotate",
    "hardenkit_reports_dir",
)
# Of EQUAL_SETTINGS, those only /etc/logrotate.d/nginx shares: they must be equal between
# the apps that write it (logrotate_manage_nginx true or not given, the role's default).
NGINX_LOGROTATE_SETTINGS = ("logrotate_max_size", "logrotate_nginx_rotate")
# The apps' pm2_memory_fraction added up must not exceed this share of the machine's memory
# (the rest is the system's, Nginx's and the builds'). pm2_instances is only reported.
MEMORY_SETTINGS = ("pm2_memory_fraction", "pm2_instances")
MEMORY_BUDGET = Decimal("0.8")

# Nginx's conventional "no name": a site named so answers only as the default server.
CATCH_ALL = "_"

_PATHS = frozenset(("app_root", "app_data_dir", "pm2_home", "pm2_log_dir", "node_runtime_prefix"))
_PORTS = frozenset(
    ("app_port", "app_release_gate_port", "nginx_proxy_listen_port", "nginx_proxy_tls_port")
)
_BOOLS = frozenset(
    (
        "nginx_proxy_default_server",
        "nginx_proxy_listen_ipv6",
        "logrotate_hourly",
        "logrotate_manage_nginx",
    )
)
# Set but empty means "not known" for these (the version is "" when the role did not decide one).
_BLANK_IS_MISSING = frozenset(("node_runtime_version_decided",))
_TRUE = frozenset(("1", "yes", "on", "true", "y", "t"))

_UNIQUE_WHY = {
    "app_name": "it names the app's units, Nginx site, logs and reports",
    "app_user": "each app runs as its own user, who owns its files",
    "app_root": "it holds the app's releases and shared files",
    "app_data_dir": "it holds the app's data",
    "pm2_service_name": "it is the app's systemd unit",
    "pm2_home": "it is the home of the app's PM2 daemon",
    "pm2_log_dir": "it holds the app's logs and their rotation",
}
# A value the kit decides, and the setting that decides it.
_SET_BY = {"node_runtime_version_decided": "node_runtime_version"}

_EQUAL_WHY = {
    "node_runtime_version_decided": "/usr/local/bin/node is one link per machine",
    "node_runtime_install_method": "/usr/local/bin/node is one link per machine",
    "node_runtime_prefix": "Node.js, pnpm and PM2 are installed once per machine",
    "node_runtime_http_proxy": "apt's and npm's proxy settings are one file per machine",
    "node_runtime_https_proxy": "apt's and npm's proxy settings are one file per machine",
    "node_runtime_no_proxy": "apt's and npm's proxy settings are one file per machine",
    "node_runtime_extra_ca_certs": "the system's CA store is one per machine",
    "nginx_proxy_listen_port": "one Nginx serves all the machine's sites",
    "nginx_proxy_tls_port": "one Nginx serves all the machine's sites",
    "nginx_proxy_listen_ipv6": "one Nginx serves all the machine's sites",
    "logrotate_hourly": "logrotate's timer is one per machine",
    "logrotate_manage_nginx": "/etc/logrotate.d/nginx is one file per machine",
    "logrotate_max_size": "/etc/logrotate.d/nginx is one file per machine",
    "logrotate_nginx_rotate": "/etc/logrotate.d/nginx is one file per machine",
    "hardenkit_reports_dir": "the machine's reports share its directory of reports",
}


@dataclass(frozen=True)
class _App:
    """One view: the inventory host, its machine, its connection ("" if not given)."""

    host: str
    machine: str
    target: str
    settings: Mapping[str, Any]


def _show(value: Any) -> str:
    """A value as the user wrote it, in JSON (strings quoted, lists in brackets)."""
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _names(items: Iterable[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    listed = list(items)
    return listed[0] if len(listed) == 1 else f"{', '.join(listed[:-1])} and {listed[-1]}"


def _together(hosts: Iterable[str]) -> str:
    """``a and b both``, ``a, b and c all``: the subject of a sentence on what they share."""
    listed = list(hosts)
    return f"{_names(listed)} {'both' if len(listed) == 2 else 'all'}"


def _bool(value: Any) -> bool:
    """Jinja's ``bool`` filter: true for True, 1 and "yes", "on", "true", "1" (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value == 1
    return str(value).strip().lower() in _TRUE


def _port(value: Any) -> int | None:
    """A port number, or None for what is not one (another check reports that)."""
    if isinstance(value, bool):
        return None
    try:
        port = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return port if port > 0 else None


def _path(value: Any) -> str:
    """A path without trailing slashes, ``.`` or ``..`` steps, or repeated slashes."""
    text = str(value).strip()
    if not text:
        return ""
    normal = posixpath.normpath(text)
    # POSIX keeps a leading "//" (implementation-defined); for Linux it is "/".
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal


def _inside(path: str, parent: str) -> bool:
    """``path`` is ``parent`` or below it, on whole path components."""
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _fraction(value: Any) -> Decimal | None:
    """pm2_memory_fraction as an exact decimal (0.1 + 0.7 is 0.8), None if not a number."""
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _decimal(number: Decimal) -> str:
    """0.4 for 0.40, 1 for 1.0, never an exponent."""
    return format(number.normalize(), "f")


def _given(app: _App, name: str) -> bool:
    """The view has the setting (a None value, or "" for some, counts as not given)."""
    if name not in app.settings or app.settings[name] is None:
        return False
    return not (name in _BLANK_IS_MISSING and str(app.settings[name]).strip() == "")


def _canonical(name: str, value: Any) -> str:
    """A key equal for values that mean the same (80 and "80", "yes" and true, "v22" and
    "22", "/srv/a/" and "/srv/a")."""
    if name in _BOOLS:
        return str(_bool(value))
    if name in _PORTS:
        port = _port(value)
        return str(port) if port is not None else _show(value)
    if name in _PATHS:
        return _path(value)
    if name == "node_runtime_version_decided":
        return str(value).strip().removeprefix("v")
    if isinstance(value, (list, tuple)):
        return _show([str(item) for item in value])
    return str(value) if isinstance(value, str) else _show(value)


def _apps(views: Iterable[Mapping[str, Any]] | None) -> list[_App]:
    """The views as apps, the first of a host's views winning."""
    apps: dict[str, _App] = {}
    for index, view in enumerate(views or []):
        if not isinstance(view, Mapping):
            raise TypeError(
                f"machine_conflicts takes a list of dicts, one per app (item {index} is"
                f" {type(view).__name__})"
            )
        host = str(view.get("host") or f"app #{index}")
        machine = str(view.get("machine") or host)
        target = str(view.get("target") or "")
        apps.setdefault(host, _App(host, machine, target, view))
    return sorted(apps.values(), key=lambda app: app.host)


def _target_conflicts(apps: list[_App]) -> list[str]:
    """Hosts with one connection but different ``hardenkit_machine`` values."""
    by_target: dict[str, list[_App]] = defaultdict(list)
    for app in apps:
        if app.target:
            by_target[app.target].append(app)
    out = []
    for target, members in sorted(by_target.items()):
        machines = Counter(app.machine for app in members)
        if len(machines) < 2:
            continue
        # The name most of them give already (ties: the first in order), if it may be used.
        usable = [item for item in machines.items() if item[0].lower() not in RESERVED_MACHINES]
        proposal = sorted(usable, key=lambda item: (-item[1], item[0]))[0][0] if usable else ""
        given = ", ".join(f"{app.host} {_show(app.machine)}" for app in members)
        out.append(
            f"Hosts {_names([app.host for app in members])} connect to the same machine"
            f" ({target}) but name it differently in hardenkit_machine ({given}): give them"
            " the same hardenkit_machine"
            + (f", e.g. {_show(proposal)}," if proposal else "")
            + " so that the checks and the lock of that machine cover all its apps."
        )
    return out


def _reserved_name(machine: str, apps: list[_App]) -> list[str]:
    """A machine named like a directory of reports/ that is not a machine's."""
    if machine.lower() not in RESERVED_MACHINES:
        return []
    return [
        f"Machine {machine} (hosts {_names([app.host for app in apps])}): hardenkit_machine"
        f" (by default the inventory hostname) cannot be {_show(machine)}, because"
        f" reports/{machine}/ holds the fleet summary: set hardenkit_machine on"
        f" {_names([app.host for app in apps])} to another name."
    ]


def _connection_conflicts(machine: str, apps: list[_App]) -> list[str]:
    """One machine name given to hosts with different connections."""
    targets = {app.target for app in apps if app.target}
    if len(targets) < 2:
        return []
    given = ", ".join(f"{app.host} {app.target}" for app in apps if app.target)
    return [
        f"Machine {machine}: its hosts connect to different machines ({given}), but one"
        " hardenkit_machine names one machine: give the hosts of each machine a"
        " hardenkit_machine of their own, or correct their connection (ansible_host,"
        " ansible_port, ansible_connection)."
    ]


def _unique(machine: str, apps: list[_App]) -> list[str]:
    """Settings two apps of the machine give the same value."""
    out = []
    for name in UNIQUE_SETTINGS:
        by_value: dict[str, list[str]] = defaultdict(list)
        for app in apps:
            if _given(app, name):
                by_value[_canonical(name, app.settings[name])].append(app.host)
        for value, hosts in sorted(by_value.items()):
            if len(hosts) < 2:
                continue
            out.append(
                f"Machine {machine}: {_together(hosts)} have {name} {_show(value)}, but each"
                f" app of a machine needs its own {name} ({_UNIQUE_WHY[name]}): give each of"
                f" them a different {name}."
            )
    return out


def _ports(machine: str, apps: list[_App]) -> list[str]:
    """A port that is the app port or gate port of two apps."""
    by_port: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for app in apps:
        for name in PORT_SETTINGS:
            port = _port(app.settings.get(name)) if _given(app, name) else None
            if port is not None:
                by_port[port].append((app.host, name))
    out = []
    for port, users in sorted(by_port.items()):
        if len({host for host, _ in users}) < 2:
            continue
        named = _names([f"{host}'s {name}" for host, name in sorted(users)])
        out.append(
            f"Machine {machine}: port {port} is {named}, but every app_port and"
            " app_release_gate_port of a machine's apps must differ from the others (the"
            " gate port is app_port + 10000 by default, or - 10000 above 55534): change one"
            " of them."
        )
    return out


def _nesting(machine: str, apps: list[_App]) -> list[str]:
    """An app_root or app_data_dir inside another app's app_root."""
    roots = {app.host: _path(app.settings["app_root"]) for app in apps if _given(app, "app_root")}
    roots = {host: root for host, root in roots.items() if root}
    out = []
    for app in apps:
        root = roots.get(app.host, "")
        data = _path(app.settings["app_data_dir"]) if _given(app, "app_data_dir") else ""
        for other, other_root in sorted(roots.items()):
            if other == app.host:
                continue
            if root and root != other_root and _inside(root, other_root):
                name = str(app.settings.get("app_name") or app.host)
                out.append(
                    f"Machine {machine}: {app.host}'s app_root {root} is inside {other}'s"
                    f" app_root {other_root}, so the cleanup and the releases of {other} would"
                    f" take {app.host}'s files for their own: give {app.host} an app_root"
                    f" outside the others', e.g. {posixpath.join('/srv', name)}."
                )
            if data and _inside(data, other_root):
                out.append(
                    f"Machine {machine}: {app.host}'s app_data_dir {data} is inside {other}'s"
                    f" app_root {other_root}, so the files of {other} would hold {app.host}'s"
                    f" data: move {app.host}'s app_data_dir under its own app_root (the"
                    " default is <app_root>/shared/data)."
                )
    return out


def _server_names(app: _App) -> list[str]:
    """The app's server names, lower case (Nginx compares them so), in order."""
    if not _given(app, "app_server_name"):
        return []
    return list(dict.fromkeys(str(app.settings["app_server_name"]).lower().split()))


def _nginx(machine: str, apps: list[_App]) -> list[str]:
    """Default servers, catch-all names and server names two apps share."""
    out = []
    defaults = [
        app.host
        for app in apps
        if _given(app, "nginx_proxy_default_server")
        and _bool(app.settings["nginx_proxy_default_server"])
    ]
    if len(defaults) > 1:
        out.append(
            f"Machine {machine}: {_together(defaults)} have nginx_proxy_default_server true,"
            " but the machine's Nginx has one default server: keep it true on the app that"
            " answers requests for unknown names and set it false on the others."
        )
    owners: dict[str, list[str]] = defaultdict(list)
    catch_all = []
    for app in apps:
        for name in _server_names(app):
            if name == CATCH_ALL:
                catch_all.append(app.host)
            else:
                owners[name].append(app.host)
    shared: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for name, owned_by in sorted(owners.items()):
        if len(owned_by) > 1:
            shared[tuple(owned_by)].append(name)
    for sharing, names in sorted(shared.items()):
        out.append(
            f"Machine {machine}: {_together(sharing)} have {_names(names)} in"
            " app_server_name, but Nginx sends a name's requests to one site only: give"
            " each server name to one app."
        )
    if len(catch_all) > 1:
        out.append(
            f"Machine {machine}: {_together(catch_all)} have the catch-all name"
            f" {_show(CATCH_ALL)} in app_server_name, but at most one app of a machine may"
            " (the default server): set app_server_name to the names each app serves."
        )
    for app in apps:
        if app.host not in catch_all or not _given(app, "nginx_proxy_default_server"):
            continue
        if _bool(app.settings["nginx_proxy_default_server"]):
            continue
        example = f"{app.settings.get('app_name') or app.host}.example.com"
        out.append(
            f"Machine {machine}: {app.host} has the catch-all name {_show(CATCH_ALL)} in"
            " app_server_name but nginx_proxy_default_server false, so Nginx sends it no"
            " requests, and the diagnosis and the watchdog, which probe it without a name,"
            f" would test the default server's app: set {app.host}'s app_server_name to its"
            f" real name(s), e.g. {_show(example)}."
        )
    return out


def _equal(machine: str, apps: list[_App]) -> list[str]:
    """Settings of one shared install or file that the apps give different values."""
    out = []
    for name in EQUAL_SETTINGS:
        members = [app for app in apps if _given(app, name)]
        if name in NGINX_LOGROTATE_SETTINGS:
            members = [
                app
                for app in members
                if not _given(app, "logrotate_manage_nginx")
                or _bool(app.settings["logrotate_manage_nginx"])
            ]
        by_value: dict[str, list[_App]] = defaultdict(list)
        for app in members:
            by_value[_canonical(name, app.settings[name])].append(app)
        if len(by_value) < 2:
            continue
        given = ", ".join(
            f"{_names([app.host for app in group])} {_show(group[0].settings[name])}"
            for _, group in sorted(by_value.items())
        )
        # The decided version comes from node_runtime_version, else from each app's
        # engines.node, .nvmrc or .node-version: the setting to give is node_runtime_version.
        setting = _SET_BY.get(name, name)
        decided = f" (decided from {setting} or each app's own files)" if setting != name else ""
        out.append(
            f"Machine {machine}: its apps must have the same {name}{decided}"
            f" ({_EQUAL_WHY[name]}), but they differ ({given}): give all of them one"
            f" {setting}, e.g. in the group_vars of the machine's hosts."
        )
    return out


def _memory(machine: str, apps: list[_App]) -> list[str]:
    """The apps' memory shares adding up to more than the machine can give."""
    shares = []
    for app in apps:
        fraction = (
            _fraction(app.settings["pm2_memory_fraction"])
            if _given(app, "pm2_memory_fraction")
            else None
        )
        if fraction is not None:
            shares.append((app, fraction))
    total = sum((fraction for _, fraction in shares), Decimal(0))
    if total <= MEMORY_BUDGET:
        return []
    given = ", ".join(
        f"{app.host} {_decimal(fraction)}"
        + (
            f" with pm2_instances {_show(app.settings['pm2_instances'])}"
            if _given(app, "pm2_instances")
            else ""
        )
        for app, fraction in shares
    )
    share = (MEMORY_BUDGET / len(apps)).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    return [
        f"Machine {machine}: its apps' pm2_memory_fraction add up to {_decimal(total)}"
        f" ({given}), above the {MEMORY_BUDGET} of the machine's memory its apps may share"
        f" (the rest is for the system, Nginx and the builds): lower them, e.g."
        f" pm2_memory_fraction {_decimal(share)} on each of {_names([app.host for app in apps])}"
        f" ({MEMORY_BUDGET} split evenly between {len(apps)} apps)."
    ]


_SHARED_MACHINE_CHECKS: tuple[Callable[[str, list[_App]], list[str]], ...] = (
    _unique,
    _ports,
    _nesting,
    _nginx,
    _equal,
    _memory,
)


def machine_conflicts(views: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """What stops the apps of ``views`` (one dict per app, see the module's docstring)
    from sharing their machines, as messages naming the machine, the hosts, the settings,
    their values and the fix; sorted, and empty when nothing does.

    Across all views: hosts with one ``target`` must name one ``machine``, and one
    ``machine`` must have one ``target``; no machine may be named ``fleet``. Between the
    apps of a machine with two or more: UNIQUE_SETTINGS and PORT_SETTINGS differ,
    NESTING_SETTINGS do not nest, NGINX_SETTINGS give one default server and one owner for
    each name, EQUAL_SETTINGS are equal (NGINX_LOGROTATE_SETTINGS between the apps that
    manage Nginx's log rotation) and pm2_memory_fraction adds up to MEMORY_BUDGET at most.
    A check that needs a setting a view does not give skips that view."""
    apps = _apps(views)
    by_machine: dict[str, list[_App]] = defaultdict(list)
    for app in apps:
        by_machine[app.machine].append(app)
    out = _target_conflicts(apps)
    for machine, members in sorted(by_machine.items()):
        out += _reserved_name(machine, members)
        out += _connection_conflicts(machine, members)
        if len(members) < 2:
            continue
        for check in _SHARED_MACHINE_CHECKS:
            out += check(machine, members)
    return sorted(set(out))


class FilterModule:
    def filters(self):
        return {"machine_conflicts": machine_conflicts}
