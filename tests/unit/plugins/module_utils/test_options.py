"""The diagnose options' checks (module_utils/options.py): probes, thresholds, ports."""

from __future__ import annotations

import base64

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.findings import (
    DEFAULT_THRESHOLDS,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.options import (
    OptionError,
    actions_key_error,
    hook_errors,
    merge_thresholds,
    release_hooks,
    shared_path_errors,
    validate_port,
    validate_probes,
)

# --- probes and other diagnose options ------------------------------------------------------


@pytest.mark.parametrize(
    ("probes", "message"),
    [
        ([{"path": "api/health", "status": 200}], r"probes\[0\]\.path must be a string starting"),
        (
            [{"path": "/", "status": 200}, {"path": "/x", "status": 99}],
            r"probes\[1\]\.status must be an HTTP status 100-599, got 99",
        ),
        ([{"path": "/", "status": 600}], r"probes\[0\]\.status must be an HTTP status"),
        ([{"path": "/", "status": "ok"}], r"probes\[0\]\.status must be an integer"),
        ([{"path": "/", "status": True}], r"probes\[0\]\.status must be an integer"),
        ([{"path": "/", "status": 200.5}], r"probes\[0\]\.status must be an integer"),
        ([{"path": "/", "stauts": 200}], r"probes\[0\] has unknown key\(s\) stauts"),
        ([{"status": 200}], r"probes\[0\]\.path must be a string"),
        ([{"path": "/a b"}], r"probes\[0\]\.path must not contain whitespace"),
        (["/"], r"probes\[0\] must be a dict"),
        ("/", r"probes must be a list"),
    ],
)
def test_bad_probes_are_named(probes, message):
    with pytest.raises(OptionError, match=message):
        validate_probes(probes)


def test_good_probes_normalised():
    assert validate_probes([{"path": "/api/health"}, {"path": "/old", "status": "301"}]) == [
        {"path": "/api/health", "status": 200},
        {"path": "/old", "status": 301},
    ]
    assert validate_probes(None) == [{"path": "/", "status": 200}]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"memory_warn": 80}, r"thresholds\.memory_warn is not a known threshold"),
        ({"memory_warn_pct": "high"}, r"thresholds\.memory_warn_pct must be a number"),
        ({"disk_warn_pct": 0}, r"thresholds\.disk_warn_pct must be > 0"),
        ({"disk_crit_pct": 120}, r"thresholds\.disk_crit_pct must be <= 100"),
        ({"memory_warn_pct": 96}, r"thresholds\.memory_warn_pct \(96\) must not exceed"),
        ({"load_crit_per_cpu": 1.0}, r"must not exceed thresholds\.load_crit_per_cpu"),
    ],
)
def test_bad_thresholds_are_named(given, message):
    with pytest.raises(OptionError, match=message):
        merge_thresholds(given)


def test_thresholds_merge_over_defaults():
    merged = merge_thresholds({"memory_warn_pct": "80", "crash_loop_restarts": 3})
    assert merged == {**DEFAULT_THRESHOLDS, "memory_warn_pct": 80.0, "crash_loop_restarts": 3.0}


@pytest.mark.parametrize("port", [0, 65536, -1, "http"])
def test_bad_port(port):
    with pytest.raises(OptionError, match="app_port"):
        validate_port(port, "app_port")


# --- shared paths (app_release_shared_paths) ------------------------------------------------


def test_shared_paths_of_the_apps_own_directories_pass():
    paths = ["public/uploads", "data", "var/sqlite", "public/media@2x"]
    assert shared_path_errors(paths, "app_release_shared_paths", ".next") == []
    assert shared_path_errors([], "app_release_shared_paths", ".next") == []


@pytest.mark.parametrize(
    ("paths", "words"),
    [
        ("public/uploads", "must be a list"),
        ({"p": "data"}, "must be a list"),
        (["../etc"], "[0] must be a relative path"),
        (["/srv/data"], "[0] must be a relative path"),
        (["data/"], "[0] must be a relative path"),
        (["ok", ".env"], "[1] must be a relative path"),
        (["a b"], "[0] must be a relative path"),
        ([5], "[0] must be a relative path"),
        (["node_modules/x"], "[0] (node_modules/x) is the build's or the kit's own"),
        (["public"], "[0] (public) is the build's or the kit's own"),
        (["build"], "[0] (build) is the build's or the kit's own"),
        (["data", "data/img"], "[1] (data/img) overlaps data"),
        (["data/img", "data"], "[1] (data) overlaps data/img"),
        (["data", "data"], "[1] (data) overlaps data"),
    ],
)
def test_shared_paths_that_are_not_the_apps_own_are_refused(paths, words):
    errors = shared_path_errors(paths, "app_release_shared_paths", "build")
    assert len(errors) == 1 and errors[0].startswith("app_release_shared_paths"), errors
    assert words in errors[0], errors


# --- release hooks (app_release_hooks) ------------------------------------------------------


def test_hooks_as_commands_or_mappings_pass_and_are_named_by_place():
    hooks = {
        "before_switch": [
            {"name": "migrate", "command": "npx prisma migrate deploy", "once": True},
            "node scripts/warm.js",
        ],
        "after_switch": [],
    }
    assert hook_errors(hooks, "app_release_hooks") == []
    assert hook_errors({}, "app_release_hooks") == []
    assert release_hooks(hooks, "before_switch") == [
        {"name": "migrate", "command": "npx prisma migrate deploy", "once": True},
        {"name": "before_switch[1]", "command": "node scripts/warm.js", "once": False},
    ]
    assert release_hooks(hooks, "after_switch") == []
    assert release_hooks({}, "after_switch") == []


@pytest.mark.parametrize(
    ("hooks", "words"),
    [
        (["npm run migrate"], "must be a mapping of before_switch and after_switch"),
        ({"before_deploy": []}, "app_release_hooks.before_deploy is not a hook phase"),
        ({"before_switch": "npm run migrate"}, "app_release_hooks.before_switch must be a list"),
        ({"before_switch": [""]}, "app_release_hooks.before_switch[0] must be a command"),
        ({"after_switch": [{"name": "x"}]}, "app_release_hooks.after_switch[0] must be a command"),
        ({"before_switch": [{"command": "x", "run_once": True}]}, "unknown keys run_once"),
        ({"before_switch": [{"command": "x", "once": "yes"}]}, "[0].once must be true or false"),
        ({"before_switch": [{"command": "x", "name": "a;b"}]}, "[0].name must be up to 63"),
        (
            {"before_switch": [{"command": "x", "name": "m"}, {"command": "y", "name": "m"}]},
            "[1].name m is given twice",
        ),
    ],
)
def test_hooks_that_cannot_run_are_refused_by_entry(hooks, words):
    errors = hook_errors(hooks, "app_release_hooks")
    assert len(errors) == 1 and errors[0].startswith("app_release_hooks"), errors
    assert words in errors[0], errors


@pytest.mark.parametrize(
    "key",
    [base64.b64encode(bytes(range(n))).decode() for n in (16, 24, 32)],
)
def test_server_actions_keys_of_aes_sizes_pass(key):
    assert actions_key_error(key, "app_env.K") == ""


@pytest.mark.parametrize(
    "key",
    [
        base64.b64encode(b"x" * 20).decode(),  # 160 bits: no AES key
        "not base64 at all!",
        base64.b64encode(bytes(32)).decode()[:-1],  # cut short
        "",
        32,
    ],
)
def test_other_server_actions_keys_are_refused_without_their_value(key):
    message = actions_key_error(key, "app_env.K")
    assert message.startswith("app_env.K must be an AES key") and "openssl rand" in message
    assert not (isinstance(key, str) and key and key in message)
