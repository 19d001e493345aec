"""machine_conflicts: what stops the apps of one machine (inventory hosts that share a
connection and a hardenkit_machine) from living together. Each rule has a case that breaks
it, with the message naming the machine, the hosts, the settings and the values, and a case
that keeps it."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.hardenkit.nodeapp.plugins.filter.machines import (
    CATCH_ALL,
    EQUAL_SETTINGS,
    MEMORY_BUDGET,
    MEMORY_SETTINGS,
    NESTING_SETTINGS,
    NGINX_LOGROTATE_SETTINGS,
    NGINX_SETTINGS,
    PORT_SETTINGS,
    RESERVED_MACHINES,
    UNIQUE_SETTINGS,
    FilterModule,
    machine_conflicts,
)
from ansible_collections.hardenkit.nodeapp.plugins.filter.settings import known_settings

TARGET = "ssh:10.0.0.5:22"


def view(app: str, machine: str = "web1", target: str = TARGET, **given: Any) -> dict[str, Any]:
    """App ``app``'s view as the roles' validation builds it, the settings apart from the
    shared ones each its own (the roles' defaults for an app of that name)."""
    settings: dict[str, Any] = {
        "host": f"{machine}-{app}",
        "machine": machine,
        "target": target,
        "app_name": app,
        "app_user": app,
        "app_root": f"/srv/{app}",
        "app_data_dir": f"/srv/{app}/shared/data",
        "app_port": 3000,
        "app_release_gate_port": 13000,
        "app_server_name": f"{app}.example.com",
        "nginx_proxy_default_server": False,
        "pm2_memory_fraction": 0.4,
        "pm2_instances": 0,
        "pm2_service_name": f"pm2-{app}",
        "pm2_home": f"/srv/{app}/.pm2",
        "pm2_log_dir": f"/var/log/{app}",
        "node_runtime_version_decided": "22.23.5",
        "node_runtime_install_method": "official",
        "node_runtime_prefix": "/opt/hardenkit",
        "node_runtime_http_proxy": "",
        "node_runtime_https_proxy": "",
        "node_runtime_no_proxy": "localhost,127.0.0.1,::1",
        "node_runtime_extra_ca_certs": [],
        "nginx_proxy_listen_port": 80,
        "nginx_proxy_tls_port": 443,
        "nginx_proxy_listen_ipv6": True,
        "logrotate_hourly": True,
        "logrotate_manage_nginx": True,
        "logrotate_max_size": "100M",
        "logrotate_nginx_rotate": 14,
        "hardenkit_reports_dir": "/work/reports",
    }
    settings.update(given)
    return settings


def pair(shop: dict[str, Any] | None = None, admin: dict[str, Any] | None = None) -> list[dict]:
    """web1's two apps, set right (shop the default server, ports 3000/3001 and gates
    13000/13001, 0.4 of the memory each), with ``shop`` and ``admin`` changing them."""
    return [
        view("shop", **{"nginx_proxy_default_server": True, **(shop or {})}),
        view("admin", **{"app_port": 3001, "app_release_gate_port": 13001, **(admin or {})}),
    ]


def having(messages: list[str], *fragments: str) -> list[str]:
    """The messages that contain every fragment."""
    return [m for m in messages if all(f in m for f in fragments)]


def test_a_machine_set_right_has_no_conflicts():
    assert machine_conflicts(pair()) == []


def test_no_apps_no_conflicts():
    assert machine_conflicts([]) == []
    assert machine_conflicts(None) == []


def test_the_filter_is_registered():
    assert FilterModule().filters() == {"machine_conflicts": machine_conflicts}


def test_an_item_that_is_not_a_dict_is_refused_by_its_index():
    with pytest.raises(TypeError, match=r"item 1 is str"):
        machine_conflicts([view("shop"), "web1-admin"])


# --- one machine, one connection ----------------------------------------------------------


def test_one_connection_with_two_machine_names_is_refused():
    views = [view("shop"), view("admin", machine="web1b", app_port=3001)]
    views[1]["host"] = "web1-admin"
    assert machine_conflicts(views) == [
        f"Hosts web1-admin and web1-shop connect to the same machine ({TARGET}) but name it"
        ' differently in hardenkit_machine (web1-admin "web1b", web1-shop "web1"): give'
        ' them the same hardenkit_machine, e.g. "web1", so that the checks and the lock of'
        " that machine cover all its apps."
    ]


def test_the_name_most_hosts_of_a_connection_give_is_proposed():
    views = [
        view("a", machine="web1"),
        view("b", machine="web1", app_port=3001, app_release_gate_port=13001),
        view("c", machine="zzz"),
    ]
    views[0]["pm2_memory_fraction"] = views[1]["pm2_memory_fraction"] = 0.2
    (message,) = machine_conflicts(views)
    assert 'e.g. "web1"' in message
    assert "web1-a, web1-b and zzz-c" in message


def test_the_fleet_name_is_never_proposed():
    views = [view("shop", machine="fleet"), view("admin", machine="fleet"), view("x", "web9")]
    message = having(machine_conflicts(views), "connect to the same machine")[0]
    assert 'e.g. "web9"' in message
    only_fleet = having(machine_conflicts([*views[:1], view("y", "Fleet")]), "connect to")[0]
    assert "e.g." not in only_fleet


def test_one_machine_name_with_two_connections_is_refused():
    views = pair(admin={"target": "ssh:10.0.0.6:22"})
    assert machine_conflicts(views) == [
        "Machine web1: its hosts connect to different machines (web1-admin ssh:10.0.0.6:22,"
        " web1-shop ssh:10.0.0.5:22), but one hardenkit_machine names one machine: give the"
        " hosts of each machine a hardenkit_machine of their own, or correct their connection"
        " (ansible_host, ansible_port, ansible_connection)."
    ]


def test_different_machines_on_different_connections_share_nothing():
    # The same settings are fine on two machines: each has one app.
    views = [view("shop", "web1", "ssh:10.0.0.5:22"), view("shop", "web2", "ssh:10.0.0.6:22")]
    views[0]["pm2_memory_fraction"] = views[1]["pm2_memory_fraction"] = 0.9
    assert machine_conflicts(views) == []


def test_a_view_without_a_connection_skips_the_connection_checks():
    views = [view("shop", target=""), view("admin", machine="web2", app_port=3001)]
    del views[1]["target"]
    views[0]["target"] = None
    assert machine_conflicts(views) == []


def test_the_machine_defaults_to_the_inventory_hostname():
    views = [view("shop"), view("admin", app_port=3001)]
    for v in views:
        del v["machine"]
    # Each host is then a machine of its own: one connection, two names.
    assert having(machine_conflicts(views), "name it differently", '"web1-shop"', '"web1-admin"')


# --- the name fleet -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fleet", "Fleet"])
def test_a_machine_named_fleet_is_refused_even_alone(name):
    assert machine_conflicts([view("shop", machine=name)]) == [
        f"Machine {name} (hosts {name}-shop): hardenkit_machine (by default the inventory"
        f' hostname) cannot be "{name}", because reports/{name}/ holds the fleet summary: set'
        f" hardenkit_machine on {name}-shop to another name."
    ]


def test_a_host_named_fleet_by_default_is_refused():
    lone = {"host": "fleet", "target": TARGET}
    assert having(machine_conflicts([lone]), "Machine fleet (hosts fleet)", "hardenkit_machine")


@pytest.mark.parametrize("name", ["fleet-1", "fleets", "web1"])
def test_other_names_are_not_reserved(name):
    assert machine_conflicts([view("shop", machine=name)]) == []


def test_the_reserved_names_are_the_reports_directories():
    assert RESERVED_MACHINES == ("fleet",)


# --- a one-app machine --------------------------------------------------------------------


def test_a_machine_with_one_app_has_no_conflicts_whatever_its_settings():
    alone = view(
        "shop",
        app_server_name=CATCH_ALL,
        nginx_proxy_default_server=False,
        pm2_memory_fraction=1.0,
        app_port=3000,
        app_release_gate_port=3000,
    )
    assert machine_conflicts([alone]) == []


# --- unique settings ----------------------------------------------------------------------


@pytest.mark.parametrize("name", UNIQUE_SETTINGS)
def test_a_setting_each_app_needs_for_itself_is_refused_when_two_share_it(name):
    value = view("shop")[name]
    # A trailing slash makes no other path.
    shared = f"{value}/" if str(value).startswith("/") else value
    messages = machine_conflicts(pair(admin={name: shared}))
    found = having(messages, f"have {name} ")
    assert len(found) == 1
    assert found[0].startswith(
        f'Machine web1: web1-admin and web1-shop both have {name} "{value}", but each app of'
        f" a machine needs its own {name} ("
    )
    assert found[0].endswith(f"): give each of them a different {name}.")


def test_three_apps_sharing_a_user_are_named_together():
    views = [*pair(admin={"app_user": "web"}, shop={"app_user": "web"})]
    views.append(view("blog", app_user="web", app_port=3002, app_release_gate_port=13002))
    for v in views:
        v["pm2_memory_fraction"] = 0.2
    assert having(machine_conflicts(views), "web1-admin, web1-blog and web1-shop all have app_user")


@pytest.mark.parametrize(
    ("shop", "admin"),
    [
        ({"app_name": "shop"}, {"app_name": "Shop"}),  # systemd and paths tell case apart
        ({"pm2_log_dir": "/var/log/shop"}, {"pm2_log_dir": "/var/log/shop2"}),
        ({"app_root": "/srv/shop"}, {"app_root": "/srv/shopping"}),
    ],
    ids=["case", "log-dir-prefix", "root-prefix"],
)
def test_settings_that_only_look_alike_are_their_own(shop, admin):
    assert machine_conflicts(pair(shop, admin)) == []


# --- ports --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shop", "admin", "port", "named"),
    [
        ({}, {"app_port": 3000}, 3000, "web1-admin's app_port and web1-shop's app_port"),
        (
            {},
            {"app_port": 13000, "app_release_gate_port": 3001},
            13000,
            "web1-admin's app_port and web1-shop's app_release_gate_port",
        ),
        (
            {},
            {"app_release_gate_port": 13000},
            13000,
            "web1-admin's app_release_gate_port and web1-shop's app_release_gate_port",
        ),
        ({"app_port": "3001"}, {}, 3001, "web1-admin's app_port and web1-shop's app_port"),
    ],
    ids=["app-ports", "gate-on-app-port", "gates", "port-as-text"],
)
def test_a_port_two_apps_use_is_refused_naming_whose_setting_it_is(shop, admin, port, named):
    assert machine_conflicts(pair(shop, admin)) == [
        f"Machine web1: port {port} is {named}, but every app_port and app_release_gate_port"
        " of a machine's apps must differ from the others (the gate port is app_port + 10000"
        " by default, or - 10000 above 55534): change one of them."
    ]


def test_an_app_port_equal_to_its_own_gate_is_not_a_conflict_between_apps():
    # The app's own validation reports that; here only apps' ports against each other count.
    assert machine_conflicts(pair(shop={"app_release_gate_port": 3000})) == []


def test_a_port_that_is_not_a_number_is_left_to_the_roles_checks():
    assert machine_conflicts(pair(admin={"app_port": "x", "app_release_gate_port": None})) == []


# --- nesting ------------------------------------------------------------------------------


def test_an_app_root_inside_another_is_refused():
    messages = machine_conflicts(
        pair(admin={"app_root": "/srv/shop/admin/", "app_data_dir": "/srv/admin/data"})
    )
    assert messages == [
        "Machine web1: web1-admin's app_root /srv/shop/admin is inside web1-shop's app_root"
        " /srv/shop, so the cleanup and the releases of web1-shop would take web1-admin's files"
        " for their own: give web1-admin an app_root outside the others', e.g. /srv/admin."
    ]


@pytest.mark.parametrize("data", ["/srv/shop/data", "/srv/shop", "/srv//shop/./x/../data/"])
def test_an_app_data_dir_inside_another_apps_root_is_refused(data):
    messages = machine_conflicts(pair(admin={"app_data_dir": data}))
    assert len(messages) == 1
    assert messages[0].startswith("Machine web1: web1-admin's app_data_dir /srv/shop")
    assert "inside web1-shop's app_root /srv/shop" in messages[0]
    assert "move web1-admin's app_data_dir under its own app_root" in messages[0]


def test_a_root_of_slash_holds_every_other_path():
    messages = machine_conflicts(pair(shop={"app_root": "/"}))
    assert having(messages, "web1-admin's app_root /srv/admin is inside web1-shop's app_root /")
    assert having(messages, "web1-admin's app_data_dir /srv/admin/shared/data is inside")


@pytest.mark.parametrize(
    "admin",
    [
        {"app_data_dir": "/data/admin"},
        {"app_root": "/srv/shop-admin", "app_data_dir": "/srv/shop-admin/data"},
        {"app_root": "", "app_data_dir": ""},
    ],
    ids=["data-elsewhere", "sibling-with-prefix", "empty"],
)
def test_paths_beside_each_other_are_fine(admin):
    assert machine_conflicts(pair(admin=admin)) == []


# --- Nginx --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, "yes", "true", 1])
def test_two_default_servers_are_refused(value):
    assert machine_conflicts(pair(admin={"nginx_proxy_default_server": value})) == [
        "Machine web1: web1-admin and web1-shop both have nginx_proxy_default_server true, but"
        " the machine's Nginx has one default server: keep it true on the app that answers"
        " requests for unknown names and set it false on the others."
    ]


def test_a_machine_may_have_no_default_server_of_its_apps():
    assert machine_conflicts(pair(shop={"nginx_proxy_default_server": "no"})) == []


def test_a_server_name_in_two_apps_is_refused_in_any_case():
    messages = machine_conflicts(
        pair(
            shop={"app_server_name": "shop.example.com www.example.com api.example.com"},
            admin={"app_server_name": "admin.example.com  API.example.com\tWWW.example.com"},
        )
    )
    assert messages == [
        "Machine web1: web1-admin and web1-shop both have api.example.com and www.example.com"
        " in app_server_name, but Nginx sends a name's requests to one site only: give each"
        " server name to one app."
    ]


def test_the_catch_all_name_on_the_default_server_is_fine():
    assert machine_conflicts(pair(shop={"app_server_name": CATCH_ALL})) == []


def test_the_catch_all_name_in_two_apps_is_refused():
    messages = machine_conflicts(
        pair(shop={"app_server_name": "_"}, admin={"app_server_name": "admin.example.com _"})
    )
    assert having(
        messages,
        'Machine web1: web1-admin and web1-shop both have the catch-all name "_" in'
        " app_server_name, but at most one app of a machine may",
    )
    # And the one that is not the default server gets told so.
    assert having(messages, 'web1-admin has the catch-all name "_"')
    assert len(messages) == 2


def test_the_catch_all_name_off_the_default_server_is_refused_with_a_name_proposed():
    assert machine_conflicts(pair(admin={"app_server_name": "_"})) == [
        'Machine web1: web1-admin has the catch-all name "_" in app_server_name but'
        " nginx_proxy_default_server false, so Nginx sends it no requests, and the diagnosis"
        " and the watchdog, which probe it without a name, would test the default server's"
        " app: set web1-admin's app_server_name to its real name(s), e.g."
        ' "admin.example.com".'
    ]


def test_the_catch_all_rule_needs_the_default_server_setting():
    admin = view("admin", app_port=3001, app_release_gate_port=13001, app_server_name="_")
    del admin["nginx_proxy_default_server"]
    assert machine_conflicts([pair()[0], admin]) == []


# --- settings the apps share --------------------------------------------------------------

OTHER_VALUES = {
    "node_runtime_version_decided": "24.22.3",
    "node_runtime_install_method": "tarball",
    "node_runtime_prefix": "/opt/other",
    "node_runtime_http_proxy": "http://proxy:3128",
    "node_runtime_https_proxy": "http://proxy:3128",
    "node_runtime_no_proxy": "localhost",
    "node_runtime_extra_ca_certs": ["files/ca.pem"],
    "nginx_proxy_listen_port": 8080,
    "nginx_proxy_tls_port": 8443,
    "nginx_proxy_listen_ipv6": False,
    "logrotate_hourly": False,
    "logrotate_manage_nginx": False,
    "logrotate_max_size": "50M",
    "logrotate_nginx_rotate": 7,
    "hardenkit_reports_dir": "/tmp/reports",
}


def test_every_shared_setting_has_another_value_to_test():
    assert set(OTHER_VALUES) == set(EQUAL_SETTINGS)


@pytest.mark.parametrize("name", EQUAL_SETTINGS)
def test_a_setting_the_apps_share_is_refused_when_they_differ(name):
    ours = json.dumps(view("shop")[name])
    theirs = json.dumps(OTHER_VALUES[name])
    messages = machine_conflicts(pair(admin={name: OTHER_VALUES[name]}))
    found = having(messages, f"must have the same {name} ")
    setting = "node_runtime_version" if name == "node_runtime_version_decided" else name
    assert len(found) == 1
    assert found[0].startswith(f"Machine web1: its apps must have the same {name} (")
    assert ("decided from node_runtime_version" in found[0]) == (setting != name)
    assert f"web1-admin {theirs}" in found[0]
    assert f"web1-shop {ours}" in found[0]
    assert found[0].endswith(
        f"give all of them one {setting}, e.g. in the group_vars of the machine's hosts."
    )
    # Only that setting is named (turning Nginx's rotation off spares its two settings).
    assert messages == found


def test_three_apps_are_grouped_by_the_value_they_have():
    views = [*pair(), view("blog", app_port=3002, app_release_gate_port=13002)]
    for v in views:
        v["pm2_memory_fraction"] = 0.2
    views[2]["node_runtime_prefix"] = "/opt/other"
    assert having(
        machine_conflicts(views),
        'differ (web1-admin and web1-shop "/opt/hardenkit", web1-blog "/opt/other")',
    )


@pytest.mark.parametrize(
    ("name", "shop", "admin"),
    [
        ("nginx_proxy_listen_port", 80, "80"),
        ("logrotate_nginx_rotate", 14, "14"),
        ("nginx_proxy_listen_ipv6", True, "yes"),
        ("logrotate_hourly", False, "false"),
        ("node_runtime_version_decided", "22.23.5", "v22.23.5"),
        ("node_runtime_prefix", "/opt/hardenkit", "/opt/hardenkit/"),
        ("node_runtime_extra_ca_certs", ["a.pem", "b.pem"], ("a.pem", "b.pem")),
    ],
)
def test_values_written_differently_that_mean_the_same_are_equal(name, shop, admin):
    assert machine_conflicts(pair({name: shop}, {name: admin})) == []


def test_the_order_of_extra_ca_certificates_counts():
    # Their files are numbered by their index: another order is other files.
    messages = machine_conflicts(
        pair(
            {"node_runtime_extra_ca_certs": ["a.pem", "b.pem"]},
            {"node_runtime_extra_ca_certs": ["b.pem", "a.pem"]},
        )
    )
    assert having(messages, "node_runtime_extra_ca_certs", '["a.pem", "b.pem"]')


@pytest.mark.parametrize("name", NGINX_LOGROTATE_SETTINGS)
def test_nginx_rotation_settings_count_only_for_the_apps_that_write_its_file(name):
    other = OTHER_VALUES[name]
    # Neither writes /etc/logrotate.d/nginx: each app's own value is its own business.
    off = {"logrotate_manage_nginx": False}
    assert machine_conflicts(pair({**off}, {**off, name: other})) == []
    # Only one writes it: the apps disagree on that, not on the file's settings.
    assert having(machine_conflicts(pair(admin={**off, name: other})), "must have the same") == [
        having(machine_conflicts(pair(admin=off)), "same logrotate_manage_nginx ")[0]
    ]
    # Not given means the role's default: it writes the file.
    shop = view("shop", nginx_proxy_default_server=True)
    del shop["logrotate_manage_nginx"]
    admin = pair(admin={name: other})[1]
    assert having(machine_conflicts([shop, admin]), f"same {name} ")


def test_an_empty_decided_version_is_not_known():
    # node_runtime decides none when it does not install Node.js.
    assert machine_conflicts(pair(admin={"node_runtime_version_decided": ""})) == []


# --- memory -------------------------------------------------------------------------------


def test_memory_shares_above_the_budget_are_refused_with_shares_proposed():
    messages = machine_conflicts(
        pair(
            shop={"pm2_memory_fraction": 0.7, "pm2_instances": "max"},
            admin={"pm2_memory_fraction": 0.7, "pm2_instances": 2},
        )
    )
    assert messages == [
        "Machine web1: its apps' pm2_memory_fraction add up to 1.4 (web1-admin 0.7 with"
        ' pm2_instances 2, web1-shop 0.7 with pm2_instances "max"), above the 0.8 of the'
        " machine's memory its apps may share (the rest is for the system, Nginx and the"
        " builds): lower them, e.g. pm2_memory_fraction 0.4 on each of web1-admin and"
        " web1-shop (0.8 split evenly between 2 apps)."
    ]


@pytest.mark.parametrize(
    "fractions",
    [(0.4, 0.4), (0.1, 0.7), (0.3, 0.5), ("0.4", 0.4), (0.8, "not a number")],
    ids=["even", "float-sum-below", "uneven", "text", "not-a-number-skipped"],
)
def test_memory_shares_up_to_the_budget_are_fine(fractions):
    shop, admin = fractions
    assert (
        machine_conflicts(pair({"pm2_memory_fraction": shop}, {"pm2_memory_fraction": admin})) == []
    )


def test_the_proposed_share_is_rounded_down():
    views = [*pair(), view("blog", app_port=3002, app_release_gate_port=13002)]
    (message,) = machine_conflicts(views)
    assert "add up to 1.2" in message
    assert "pm2_memory_fraction 0.26 on each of web1-admin, web1-blog and web1-shop" in message
    assert "0.8 split evenly between 3 apps" in message


def test_the_apps_that_give_a_share_are_summed():
    admin = view("admin", app_port=3001, app_release_gate_port=13001)
    del admin["pm2_memory_fraction"]
    del admin["pm2_instances"]
    assert machine_conflicts([pair()[0], admin]) == []
    (message,) = machine_conflicts([pair(shop={"pm2_memory_fraction": 0.9})[0], admin])
    assert "add up to 0.9 (web1-shop 0.9 with pm2_instances 0)" in message
    assert "pm2_memory_fraction 0.4 on each of web1-admin and web1-shop" in message


def test_the_memory_budget():
    assert float(MEMORY_BUDGET) == 0.8
    assert MEMORY_SETTINGS == ("pm2_memory_fraction", "pm2_instances")


# --- what is given ------------------------------------------------------------------------

# Every check of the two apps, each broken once.
BROKEN: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "app_user": ({}, {"app_user": "shop"}),
    "port": ({}, {"app_port": 3000}),
    "nested": ({}, {"app_root": "/srv/shop/admin"}),
    "default_server": ({}, {"nginx_proxy_default_server": True}),
    "server_name": ({}, {"app_server_name": "shop.example.com"}),
    "catch_all": ({}, {"app_server_name": "_"}),
    "equal": ({}, {"node_runtime_prefix": "/opt/other"}),
    "memory": ({}, {"pm2_memory_fraction": 0.5}),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_every_check_is_skipped_when_its_settings_are_missing(case):
    shop, admin = BROKEN[case]
    views = pair(shop, admin)
    assert machine_conflicts(views), "the case must break a rule"
    for name in set(views[1]) - {"host", "machine", "target"}:
        del views[1][name]
    assert machine_conflicts(views) == []


def test_views_with_only_their_host_have_no_conflicts():
    assert machine_conflicts([{"host": "a", "machine": "m"}, {"host": "b", "machine": "m"}]) == []


def test_a_view_without_a_host_is_named_by_its_index():
    views = pair(admin={"app_user": "shop"})
    del views[1]["host"]
    assert having(machine_conflicts(views), "app #1 and web1-shop both have app_user")


def test_a_host_given_twice_counts_once():
    views = pair()
    assert machine_conflicts([*views, dict(views[0], app_port=3001)]) == []


def test_the_messages_are_sorted_and_do_not_depend_on_the_order_of_the_views():
    views = [
        view("shop", nginx_proxy_default_server=True, pm2_memory_fraction=0.7),
        view("admin", app_user="shop", node_runtime_prefix="/x", pm2_memory_fraction=0.7),
        view("blog", app_server_name="_", app_port=3002, app_release_gate_port=3000),
        view("x", machine="web2", target=TARGET),
        view("y", machine="fleet", target="ssh:10.0.0.9:22"),
    ]
    expected = machine_conflicts(views)
    assert expected == sorted(expected)
    # web2 and web1 on one connection, fleet, web1's user, ports 3000 and 13000, blog's
    # catch-all name, Node.js's prefix and memory.
    assert len(expected) == 8
    for order in itertools.permutations(views):
        assert machine_conflicts(list(order)) == expected


def test_every_message_names_its_machine():
    views = [
        view("shop", nginx_proxy_default_server=True, pm2_memory_fraction=0.7),
        view("admin", app_user="shop", pm2_memory_fraction=0.7),
    ]
    for message in machine_conflicts(views):
        assert message.startswith("Machine web1: ")
        assert "web1-admin" in message


def test_the_checked_settings_are_the_roles_own():
    # A typo in a constant would check a setting no view has, silently.
    names = {
        *UNIQUE_SETTINGS,
        *PORT_SETTINGS,
        *NESTING_SETTINGS,
        *NGINX_SETTINGS,
        *EQUAL_SETTINGS,
        *MEMORY_SETTINGS,
    }
    computed = {"node_runtime_version_decided", "hardenkit_reports_dir"}
    assert names - computed <= known_settings()
    assert set(NGINX_LOGROTATE_SETTINGS) <= set(EQUAL_SETTINGS)
    assert set(NESTING_SETTINGS) <= set(UNIQUE_SETTINGS)
    assert not set(PORT_SETTINGS) & set(UNIQUE_SETTINGS)
    assert set(view("shop")) - {"host", "machine", "target"} == names


def test_ansible_calls_it_by_its_name_on_hostvars():
    hostvars = {v["host"]: {"__hardenkit_machine_view": v} for v in pair(admin={"app_port": 3000})}
    templar = Templar(
        loader=DataLoader(),
        variables={"hostvars": hostvars, "ansible_play_hosts": sorted(hostvars)},
    )
    result = templar.template(
        trust_as_template(
            "{{ ansible_play_hosts | map('extract', hostvars, '__hardenkit_machine_view')"
            " | hardenkit.nodeapp.machine_conflicts }}"
        )
    )
    assert result == machine_conflicts(pair(admin={"app_port": 3000}))
    assert len(result) == 1
    assert "port 3000 is web1-admin's app_port and web1-shop's app_port" in result[0]
