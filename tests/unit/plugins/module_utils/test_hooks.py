"""Boot hooks (module_utils/hooks.py, the boot_hooks module): what is read, how each hook
is parsed, which are the app's, and how their commands are masked.

The expected values are those roles/dev_cleanup/tasks/hooks.yml computed with Jinja
before the module replaced it (find + slurp + "Parse the hooks" + "Decide which hooks are
the app's"), on the fixture files under fixtures/boot_hooks/.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
from pathlib import Path

import pytest
import yaml

from ansible_collections.hardenkit.nodeapp.plugins.module_utils import hooks as hooks_mod
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.classify import (
    dir_scope,
    package_name_of,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.hooks import (
    CRON_FILTER,
    UNIT_FILTER,
    collect,
    has_line,
    hook_scope,
    mask_command,
    named_paths,
    package_names,
    parse_crontab,
    parse_rc_local,
    parse_unit,
    read_hook_package_name,
    split_hooks,
)
from ansible_collections.hardenkit.nodeapp.plugins.modules import boot_hooks
from tests.hk_testlib import run_module

ROOT = Path(__file__).resolve().parents[4]
ROLE = ROOT / "roles" / "dev_cleanup"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "boot_hooks"

# The role's regexes: __dev_cleanup_regex is built from dev_cleanup_patterns as vars/main.yml
# builds it; __dev_cleanup_env_re is a plain string there.
PATTERNS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["dev_cleanup_patterns"]
DEV_RE = "|".join(f"(?:{p})" for p in PATTERNS)
ENV_RE = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__dev_cleanup_env_re"]
HOMES = {"root": "/root", "bob": "/home/bob", "alice": "/home/alice", "www-data": "/var/www"}


def home_of(user: str) -> str:
    return HOMES.get(user, "/")


def text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def unit(file: str, user: str, line: str, command: str, dirs: list[str]) -> dict:
    path = f"/etc/systemd/system/{file}"
    return {
        "kind": "systemd",
        "file": path,
        "unit": file,
        "user": user,
        "line": line,
        "command": command,
        "dirs": dirs,
    }


def cron(file: str, user: str, line: str, command: str, dirs: list[str]) -> dict:
    return {
        "kind": "cron",
        "file": file,
        "unit": "",
        "user": user,
        "line": line,
        "command": command,
        "dirs": dirs,
    }


BOB_DIRS = ["/home/bob/shop", "/srv/workbot/web"]

# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            # First User= only; every WorkingDirectory= ("-" dropped, "~" bob's home, value
            # trimmed); ExecStart prefixes (-@:+!) dropped from the command; ExecStop and
            # the ExecStartPre without a dev command are no hooks; an indented line is one.
            "workbot-dev.service",
            [
                unit(
                    "workbot-dev.service",
                    "bob",
                    "ExecStartPre=+/usr/bin/env NODE_ENV=development /usr/bin/pnpm run dev:prep",
                    "/usr/bin/env NODE_ENV=development /usr/bin/pnpm run dev:prep",
                    [*BOB_DIRS, "/usr/bin/env", "/usr/bin/pnpm"],
                ),
                unit(
                    "workbot-dev.service",
                    "bob",
                    "ExecStart=@/usr/bin/env DATABASE_URL=postgres://u:pw@h/db"
                    " /usr/bin/pnpm dev --dir /srv/workbot/web/",
                    "/usr/bin/env DATABASE_URL=postgres://u:pw@h/db"
                    " /usr/bin/pnpm dev --dir /srv/workbot/web/",
                    # /srv/workbot/web/ names /srv/workbot/web: already there, not repeated.
                    [*BOB_DIRS, "/usr/bin/env", "/usr/bin/pnpm"],
                ),
                unit(
                    "workbot-dev.service",
                    "bob",
                    "ExecStartPost=/bin/sh -c 'sleep 1; nodemon --version'",
                    "/bin/sh -c 'sleep 1; nodemon --version'",
                    [*BOB_DIRS, "/bin/sh"],
                ),
                unit("workbot-dev.service", "bob", "  ExecStart=next dev", "next dev", BOB_DIRS),
            ],
        ),
        (
            # No User=: root; no WorkingDirectory=: "/".
            "other-team.service",
            [
                unit(
                    "other-team.service",
                    "root",
                    "ExecStart=/usr/bin/npm run dev",
                    "/usr/bin/npm run dev",
                    ["/", "/usr/bin/npm"],
                )
            ],
        ),
        (
            # WorkingDirectory=~ without User=: root's home.
            "root-home.service",
            [
                unit(
                    "root-home.service",
                    "root",
                    "ExecStart=/usr/bin/env nodemon server.js",
                    "/usr/bin/env nodemon server.js",
                    ["/root", "/usr/bin/env"],
                )
            ],
        ),
        # The dev command is only in a comment.
        ("plain.service", []),
    ],
)
def test_parse_unit(name, expected):
    path = f"/etc/systemd/system/{name}"
    assert parse_unit(path, text(f"units/{name}"), DEV_RE, home_of) == expected


def test_parse_unit_unknown_user_home_is_root_dir():
    got = parse_unit(
        "/u/x.service",
        "[Service]\nUser=ghost\nWorkingDirectory=~/app\nExecStart=nodemon\n",
        DEV_RE,
        home_of,
    )
    assert got[0]["dirs"] == ["//app"]  # "/" + "/app", as the Jinja's regex_replace('^~')
    got = parse_unit("/u/x.service", "WorkingDirectory=\nExecStart=nodemon\n", DEV_RE, home_of)
    assert got[0]["dirs"] == [""]  # an empty WorkingDirectory= is kept, not "/"


SPOOL_BOB = "/var/spool/cron/crontabs/bob"
CROND = "/etc/cron.d/workbot"


@pytest.mark.parametrize(
    ("name", "path", "spool", "expected"),
    [
        (
            # A user's spool crontab: the user is the file's name, the command words[1:],
            # the directory the user's home. "*/5" and "#@reboot" lines are not @reboot.
            "spool/bob",
            SPOOL_BOB,
            True,
            [
                cron(
                    SPOOL_BOB,
                    "bob",
                    "@reboot cd /home/bob/shop && DATABASE_URL=postgres://u:pw@h/db pnpm dev",
                    "cd /home/bob/shop && DATABASE_URL=postgres://u:pw@h/db pnpm dev",
                    ["/home/bob", "/home/bob/shop"],
                ),
                cron(
                    SPOOL_BOB,
                    "bob",
                    "@reboot   nodemon /home/bob/tool/index.js >/tmp/tool.log 2>&1",
                    # Words joined by one space; >/tmp/tool.log names no directory.
                    "nodemon /home/bob/tool/index.js >/tmp/tool.log 2>&1",
                    ["/home/bob", "/home/bob/tool/index.js"],
                ),
            ],
        ),
        ("spool/carol", "/var/spool/cron/crontabs/carol", True, []),
        (
            # /etc/cron.d: the user is words[1], the command words[2:].
            "cron.d/workbot",
            CROND,
            False,
            [
                # workbot is not in passwd: home "/".
                cron(
                    CROND,
                    "workbot",
                    "@reboot workbot cd /srv/workbot && npm run dev",
                    "cd /srv/workbot && npm run dev",
                    ["/", "/srv/workbot"],
                ),
                cron(
                    CROND,
                    "root",
                    "@reboot root (cd /opt/shop; FOO='a b' pnpm dev)",
                    "(cd /opt/shop; FOO='a b' pnpm dev)",
                    ["/root", "/opt/shop"],
                ),
            ],
        ),
        (
            "crontab",
            "/etc/crontab",
            False,
            [
                cron(
                    "/etc/crontab",
                    "root",
                    "@reboot root API_TOKEN=tok123 /usr/local/bin/tsx watch /srv/workbot/server.ts",
                    "API_TOKEN=tok123 /usr/local/bin/tsx watch /srv/workbot/server.ts",
                    ["/root", "/usr/local/bin/tsx", "/srv/workbot/server.ts"],
                ),
            ],
        ),
    ],
)
def test_parse_crontab(name, path, spool, expected):
    assert parse_crontab(path, text(name), DEV_RE, home_of, spool) == expected


def test_parse_crontab_user_field():
    # A system crontab's second word is the user, even when it is the command.
    (hook,) = parse_crontab("/etc/crontab", "@reboot\tnodemon\n", DEV_RE, home_of)
    assert (hook["user"], hook["command"], hook["dirs"]) == ("nodemon", "", ["/"])
    # No second word: root's.
    (hook,) = parse_crontab("/etc/crontab", "@reboot \n", "", home_of)
    assert (hook["user"], hook["command"], hook["dirs"]) == ("root", "", ["/root"])
    assert parse_crontab("/etc/crontab", "@reboot\n", "", home_of) == []  # no blank after


def test_parse_rc_local():
    line = 'cd /srv/other && su bob -c "pnpm dev" &'
    assert parse_rc_local("/etc/rc.local", text("rc.local"), DEV_RE) == [
        {
            "kind": "rc.local",
            "file": "/etc/rc.local",
            "unit": "",
            "user": "root",
            "line": line,
            "command": line,
            "dirs": ["/", "/srv/other"],
        }
    ]
    # Trimmed for the command, verbatim for the line.
    (hook,) = parse_rc_local("/etc/rc.local", "  nodemon /opt/x  \n", DEV_RE)
    assert (hook["line"], hook["command"]) == ("  nodemon /opt/x  ", "nodemon /opt/x")


@pytest.mark.parametrize(
    ("command", "paths"),
    [
        ("cd /srv/app && pnpm dev", ["/srv/app"]),
        ("cd /srv/app/ && pnpm dev", ["/srv/app"]),
        ("node --prefix=/opt/x;(cd /a|/b&/c)", ["/opt/x", "/a", "/b", "/c"]),
        ("cd \"/srv/q\" && cd '/srv/s'", []),  # quoted: not named
        ("node >/tmp/log <x/y", []),
        ("postgres://u:pw@h/db", []),
        ("/", []),
        ("/srv/a /srv/a", ["/srv/a", "/srv/a"]),  # repeats are dropped with the dirs
    ],
)
def test_named_paths(command, paths):
    assert named_paths(command) == paths


@pytest.mark.parametrize(
    ("name", "pattern", "found"),
    [
        ("units/workbot-dev.service", UNIT_FILTER, True),
        ("units/plain.service", UNIT_FILTER, False),
        ("spool/bob", CRON_FILTER, True),
        ("spool/carol", CRON_FILTER, False),
        ("cron.d/workbot", CRON_FILTER, True),
    ],
)
def test_files_worth_parsing(name, pattern, found):
    assert has_line(text(name), pattern.format(DEV_RE)) is found


def test_files_worth_parsing_split_at_any_newline():
    assert has_line("x=1\r@reboot nodemon\r", CRON_FILTER.format(DEV_RE))
    assert not has_line("x=1 @reboot nodemon", CRON_FILTER.format(DEV_RE))


# --- package.json, scope, masking ------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "name"),
    [
        ('{"name": "workbot", "private": true}', "workbot"),
        ('\n  {"name": "@acme/web"}', "@acme/web"),
        ('{"version": "1.0.0"}', None),
        ('{"name": 5}', None),
        ('["workbot"]', None),
        ('"workbot"', None),
        ("{not json", None),
        ("", None),
    ],
)
def test_package_name_of(content, name):
    assert package_name_of(content) == name


ROOTS = ["/srv/workbot", "/home/bob/shop"]
NAMES = {"/opt/shop": "workbot", "/opt/other": "other", "/srv/x": None}


@pytest.mark.parametrize(
    ("dirs", "package", "scope"),
    [
        (["/srv/workbot"], "workbot", "cwd"),
        (["/", "/srv/workbot/web/"], "workbot", "cwd"),
        (["/srv/workbot2"], "workbot", ""),  # a prefix of the name is not a parent
        (["/opt/shop"], "workbot", "package"),
        (["/opt/shop"], "", ""),  # no package scope without a name
        (["/opt/other", "/srv/x"], "workbot", ""),
        # The first of the dirs that is the app's decides.
        (["/opt/shop", "/srv/workbot"], "workbot", "package"),
        (["/srv/workbot", "/opt/shop"], "workbot", "cwd"),
        # By path components (classify.path_under), not by string prefix.
        (["/srv/workbot/../other"], "workbot", ""),
        (["/srv//workbot/web"], "workbot", "cwd"),
        ([""], "workbot", ""),
        ([], "workbot", ""),
    ],
)
def test_hook_scope(dirs, package, scope):
    assert hook_scope(dirs, ROOTS, package, NAMES) == scope


def test_hook_scope_is_the_process_rule():
    # One rule: classify.dir_scope, also behind classify.in_scope (dev processes).
    for path in ("/srv/workbot/x", "/opt/shop", "/opt/other", "/srv/workbot/../x"):
        assert hook_scope([path], ROOTS, "workbot", NAMES) == (
            dir_scope(path, ROOTS, "workbot", NAMES.get) or ""
        )


@pytest.mark.parametrize(
    ("command", "masked"),
    [
        (
            "cd /home/bob/shop && DATABASE_URL=postgres://u:pw@h/db pnpm dev",
            "cd /home/bob/shop && DATABASE_URL=*** pnpm dev",
        ),
        ("(cd /opt/shop; FOO='a b' pnpm dev)", "(cd /opt/shop; FOO=*** pnpm dev)"),
        ('env node_env="x y";pnpm dev', "env node_env=***;pnpm dev"),
        ("pnpm dev --token tok123", "pnpm dev --token ***"),
        ("npx next dev postgres://u:pw@db/x", "npx next dev postgres://u:***@db/x"),
        ("pnpm dev", "pnpm dev"),
    ],
)
def test_mask_command(command, masked):
    assert mask_command(command, ENV_RE) == masked


def test_split_hooks_scopes_and_masks():
    hooks = parse_crontab(SPOOL_BOB, text("spool/bob"), DEV_RE, home_of, spool=True)
    hooks += parse_unit("/u/other-team.service", text("units/other-team.service"), DEV_RE, home_of)
    app, other = split_hooks(hooks, [*ROOTS, *ROOTS], "workbot", {}, ENV_RE)
    assert [(h["scope"], h["command"]) for h in app] == [
        ("cwd", "cd /home/bob/shop && DATABASE_URL=*** pnpm dev")
    ]
    assert app[0]["line"] == hooks[0]["line"]  # the line stays verbatim, to disable it
    assert [(h["scope"], h["command"]) for h in other] == [
        ("", "nodemon /home/bob/tool/index.js >/tmp/tool.log 2>&1"),
        ("", "/usr/bin/npm run dev"),
    ]


# --- reading the host -----------------------------------------------------------------------


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """The fixtures as a host: units, spool, cron.d, crontab, rc.local, plus what must be
    left out (a linked unit, a linked cron dir, a sub-directory, a FIFO)."""
    tree = tmp_path / "host"
    shutil.copytree(FIXTURES, tree)
    os.symlink(tree / "units" / "other-team.service", tree / "units" / "alias.service")
    (tree / "cron.d" / "sub").mkdir()
    (tree / "cron.d" / "sub" / "x").write_text("@reboot root pnpm dev\n")
    os.mkfifo(tree / "cron.d" / "fifo")
    os.symlink(tree / "cron.d", tree / "linked-cron.d")
    proj = tree / "proj"
    proj.mkdir()
    (proj / "package.json").write_text('{"name": "workbot"}')
    (tree / "units" / "pkg.service").write_text(
        f"[Service]\nWorkingDirectory={proj}\nExecStart=/usr/bin/npm run dev\n"
    )
    linked = tree / "linked"
    linked.mkdir()
    os.symlink(proj / "package.json", linked / "package.json")
    os.mkfifo(tree / "fifo-pkg")
    return tree


def where(tree: Path, hooks: list[dict]) -> list[tuple[str, str]]:
    return [(str(Path(h["file"]).relative_to(tree)), h["command"]) for h in hooks]


def test_collect_reads_regular_files_in_order(host):
    got = collect(
        str(host / "units"),
        [
            str(host / "spool"),
            str(host / "cron.d"),
            str(host / "missing"),
            str(host / "linked-cron.d"),
        ],
        [str(host / "crontab"), str(host / "rc.local"), str(host / "nofile")],
        DEV_RE,
        home_of,
    )
    # Units sorted by name (not alias.service, .hidden.service, notes.txt, plain.service),
    # then the spool, cron.d (not .placeholder, sub/, fifo), then the hook files.
    assert where(host, got) == [
        ("units/other-team.service", "/usr/bin/npm run dev"),
        ("units/pkg.service", "/usr/bin/npm run dev"),
        ("units/root-home.service", "/usr/bin/env nodemon server.js"),
        *[
            ("units/workbot-dev.service", h["command"])
            for h in parse_unit("x", text("units/workbot-dev.service"), DEV_RE, home_of)
        ],
        ("spool/alice", "/usr/bin/yarn dev"),
        ("spool/bob", "cd /home/bob/shop && DATABASE_URL=postgres://u:pw@h/db pnpm dev"),
        ("spool/bob", "nodemon /home/bob/tool/index.js >/tmp/tool.log 2>&1"),
        ("cron.d/workbot", "cd /srv/workbot && npm run dev"),
        ("cron.d/workbot", "(cd /opt/shop; FOO='a b' pnpm dev)"),
        ("crontab", "API_TOKEN=tok123 /usr/local/bin/tsx watch /srv/workbot/server.ts"),
        ("rc.local", 'cd /srv/other && su bob -c "pnpm dev" &'),
    ]
    by_file = {h["file"]: h for h in got}
    assert by_file[str(host / "spool" / "alice")]["user"] == "alice"  # spool: the file's name
    assert by_file[str(host / "rc.local")]["kind"] == "rc.local"
    crontab = by_file[str(host / "crontab")]
    st = os.stat(host / "crontab")
    assert crontab["mode"] == f"{st.st_mode & 0o7777:04o}"
    assert (crontab["owner"], crontab["group"]) == (
        pwd.getpwuid(st.st_uid).pw_name,
        grp.getgrgid(st.st_gid).gr_name,
    )


def test_collect_leaves_out_a_linked_unit_dir_and_unreadable_files(host, monkeypatch):
    os.symlink(host / "units", host / "linked-units")
    assert collect(str(host / "linked-units"), [], [], DEV_RE, home_of) == []
    os.symlink(host / "rc.local", host / "linked-rc.local")
    assert collect(str(host / "none"), [], [str(host / "linked-rc.local")], DEV_RE) == []

    real_open = os.open

    def refuse(path, *args, **kwargs):
        if str(path).endswith(("bob", "workbot-dev.service")):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(hooks_mod.os, "open", refuse)
    got = collect(str(host / "units"), [str(host / "spool")], [], DEV_RE, home_of)
    assert {Path(h["file"]).name for h in got} == {
        "other-team.service",
        "pkg.service",
        "root-home.service",
        "alice",
    }


def test_package_json_must_be_a_regular_file(host):
    assert read_hook_package_name(str(host / "proj")) == "workbot"
    assert read_hook_package_name(str(host / "linked")) is None  # a link: not read
    assert read_hook_package_name(str(host / "fifo-pkg")) is None  # not a directory
    assert read_hook_package_name(str(host / "nothing")) is None
    hooks = [{"dirs": [str(host / "proj"), "/usr/bin/env"]}, {"dirs": [str(host / "proj")]}]
    assert package_names(hooks) == {str(host / "proj"): "workbot", "/usr/bin/env": None}


# --- the module ---------------------------------------------------------------------------


def module_args(host: Path, **extra) -> dict:
    return {
        "unit_dir": str(host / "units"),
        "cron_dirs": [str(host / "spool"), str(host / "cron.d")],
        "hook_files": [str(host / "crontab"), str(host / "rc.local")],
        "dev_regex": DEV_RE,
        "env_regex": ENV_RE,
        "scope_paths": ["/srv/workbot", "/home/bob/shop"],
        "package_name": "workbot",
        **extra,
    }


@pytest.mark.parametrize("check_mode", [False, True])
def test_module_returns_the_apps_hooks_masked(host, tmp_path, check_mode):
    rc, out = run_module("boot_hooks", module_args(host, _ansible_check_mode=check_mode), tmp_path)
    assert rc == 0, out
    assert out["changed"] is False
    assert [(h["scope"], *where(host, [h])[0]) for h in out["app_hooks"]] == [
        ("package", "units/pkg.service", "/usr/bin/npm run dev"),
        (
            "cwd",
            "units/workbot-dev.service",
            "/usr/bin/env NODE_ENV=*** /usr/bin/pnpm run dev:prep",
        ),
        (
            "cwd",
            "units/workbot-dev.service",
            "/usr/bin/env DATABASE_URL=*** /usr/bin/pnpm dev --dir /srv/workbot/web/",
        ),
        ("cwd", "units/workbot-dev.service", "/bin/sh -c 'sleep 1; nodemon --version'"),
        ("cwd", "units/workbot-dev.service", "next dev"),
        ("cwd", "spool/bob", "cd /home/bob/shop && DATABASE_URL=*** pnpm dev"),
        ("cwd", "cron.d/workbot", "cd /srv/workbot && npm run dev"),
        ("cwd", "crontab", "API_TOKEN=*** /usr/local/bin/tsx watch /srv/workbot/server.ts"),
    ]
    assert [where(host, [h])[0] for h in out["other_hooks"]] == [
        ("units/other-team.service", "/usr/bin/npm run dev"),
        ("units/root-home.service", "/usr/bin/env nodemon server.js"),
        ("spool/alice", "/usr/bin/yarn dev"),
        ("spool/bob", "nodemon /home/bob/tool/index.js >/tmp/tool.log 2>&1"),
        ("cron.d/workbot", "(cd /opt/shop; FOO=*** pnpm dev)"),
        ("rc.local", 'cd /srv/other && su bob -c "pnpm dev" &'),
    ]
    hook = out["app_hooks"][5]
    assert set(hook) == {
        "kind",
        "file",
        "unit",
        "user",
        "line",
        "command",
        "dirs",
        "scope",
        "owner",
        "group",
        "mode",
    }
    assert "pw@h" in hook["line"] and "pw@h" not in hook["command"]
    # The checkout /opt/shop makes root's cron.d line the app's.
    rc, out = run_module(
        "boot_hooks", module_args(host, scope_paths=["/srv/workbot", "/opt/shop"]), tmp_path
    )
    assert "(cd /opt/shop; FOO=*** pnpm dev)" in [h["command"] for h in out["app_hooks"]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scope_paths": ["/srv/workbot", "/"]}, r"scope_paths\[1\] is '/'"),
        ({"scope_paths": ["srv"]}, r"scope_paths\[0\] must be an absolute path"),
        ({"dev_regex": "(nodemon"}, r"dev_regex is not a valid regular expression"),
        ({"env_regex": ""}, r"env_regex must not be empty"),
        ({"env_regex": "(a)=b"}, r"env_regex must have two groups"),
    ],
)
def test_bad_options_are_named(host, change, message):
    with pytest.raises(ValueError, match=message):
        boot_hooks.check_params(module_args(host, **change))


def test_module_fails_naming_the_option(host, tmp_path):
    rc, out = run_module("boot_hooks", module_args(host, dev_regex="(nodemon"), tmp_path)
    assert rc == 1 and out["failed"]
    assert out["msg"].startswith("dev_regex is not a valid regular expression")
