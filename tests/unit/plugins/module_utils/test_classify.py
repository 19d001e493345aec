"""classify: dev servers by argv, process managers by ancestry and cgroup, the app's scope."""

from __future__ import annotations

import json

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.classify import (
    cmdline_under,
    dev_tool,
    in_scope,
    is_dev_process,
    is_node_process,
    is_pm2_daemon,
    judge_scope,
    managed_by,
    normalize_cmdline,
    path_under,
    read_package_name,
    socket_suspects,
    tree_tops,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import Listener, Process

DEV = [
    ("node /x/node_modules/.bin/../tsx/dist/cli.mjs watch server.ts", "tsx watch"),
    (
        "/usr/bin/node /srv/w/node_modules/tsx/dist/cli.mjs watch --clear-screen=false server.ts",
        "tsx watch",
    ),
    ("/x/node_modules/.bin/tsx watch server.ts", "tsx watch"),
    ("npx tsx watch server.ts", "tsx watch"),
    ("pnpm exec tsx watch server.ts", "tsx watch"),
    ("node /x/node_modules/next/dist/bin/next dev", "next dev"),
    ("node /x/node_modules/.bin/next dev --turbopack -p 5000", "next dev"),
    ("/x/node_modules/.bin/nodemon server.js", "nodemon"),
    ("node /usr/lib/node_modules/nodemon/bin/nodemon.js --watch src server.js", "nodemon"),
    ("node /x/node_modules/ts-node-dev/lib/bin.js --respawn src/index.ts", "ts-node-dev"),
    ("/x/node_modules/.bin/tsnd src/index.ts", "ts-node-dev"),
    ("pnpm dev", "pnpm dev"),
    ("pnpm run dev", "pnpm run dev"),
    ("pnpm --filter web dev", "pnpm dev"),
    ("node /usr/local/lib/node_modules/pnpm/bin/pnpm.cjs dev", "pnpm dev"),
    ("npm run dev", "npm run dev"),
    ("node /usr/lib/node_modules/npm/bin/npm-cli.js run dev", "npm run dev"),
    ("npm run-script dev:server", "npm run dev:server"),
    ("yarn dev", "yarn dev"),
    ("node --watch server.js", "node --watch"),
    ("/usr/bin/node --watch-path=./src server.js", "node --watch"),
    ("node18 --watch server.js", "node --watch"),
    ("env NODE_ENV=development /x/node_modules/.bin/next dev", "next dev"),
    ("corepack pnpm dev", "pnpm dev"),
    ("node -r dotenv/config /x/node_modules/.bin/../tsx/dist/cli.mjs watch s.ts", "tsx watch"),
]
NOT_DEV = [
    "node /srv/workbot/current/node_modules/next/dist/bin/next start --hostname 127.0.0.1",
    "next-server (v15.1.6)",
    "PM2 v5.4.2: God Daemon (/srv/workbot/.pm2)",
    "node dist/server.js",
    "node --require /x/tsx/dist/preflight.cjs --import file:///x/tsx/dist/loader.mjs server.ts",
    "tsx server.ts",
    "node server.js --watch",  # an argument of the app, not Node's option
    "pnpm start",
    "pnpm run build",
    "npm install",
    "/usr/sbin/nginx -g daemon off;",
    "vim server.ts",
    "grep -r tsx watch .",
    "less next dev",
    "ps -ef --forest nodemon",
    "python3 -m http.server 5000",
    "",
]


@pytest.mark.parametrize(("cmd", "tool"), DEV)
def test_dev_tools(cmd, tool):
    assert dev_tool(cmd.split()) == tool
    assert is_dev_process(cmd.split())


@pytest.mark.parametrize("cmd", NOT_DEV)
def test_not_dev(cmd):
    argv = cmd.split() if not cmd.startswith(("next-server", "PM2")) else [cmd]
    assert dev_tool(argv) is None


@pytest.mark.parametrize(
    ("argv", "tool"),
    [
        (["sh", "-c", "tsx watch server.ts"], "tsx watch"),
        (["/bin/sh", "-c", "cd /workspace/projects && pnpm dev"], "pnpm dev"),
        (["bash", "-lc", "NODE_ENV=development next dev -p 5000"], "next dev"),
        (["sh", "-c", "next", "dev"], "next dev"),
        (["sh", "-c", "next build && next start"], None),
        (["sh", "-c", "echo 'unbalanced"], None),
        (["bash", "deploy.sh", "-c", "tsx watch"], None),  # -c after the script is its argument
    ],
)
def test_dev_through_shell(argv, tool):
    assert dev_tool(argv) == tool


@pytest.mark.parametrize(
    ("argv", "node"),
    [
        (["node", "server.js"], True),
        (["/usr/local/bin/node", "x.js"], True),
        (["next-server (v15.1.6)"], True),
        (["PM2 v5.4.2: God Daemon (/root/.pm2)"], True),
        (["/x/node_modules/.bin/tsx", "watch", "s.ts"], True),
        (["pnpm", "dev"], True),
        (["sh", "-c", "tsx watch server.ts"], False),  # the wrapper, not a copy of the app
        (["-bash"], False),
        (["/usr/lib/postgresql/15/bin/postgres"], False),
        ([], False),
    ],
)
def test_is_node_process(argv, node):
    assert is_node_process(argv) is node


@pytest.mark.parametrize(
    ("argv", "pm2"),
    [
        (["PM2 v5.4.2: God Daemon (/srv/workbot/.pm2)"], True),
        (["node", "/usr/lib/node_modules/pm2/lib/Daemon.js"], True),
        (["node", "/usr/lib/node_modules/pm2/bin/pm2", "jlist"], False),
        (["node", "server.js"], False),
    ],
)
def test_is_pm2_daemon(argv, pm2):
    assert is_pm2_daemon(argv) is pm2


def test_normalize_cmdline_basename_and_secrets():
    assert normalize_cmdline(["/usr/bin/node", "a.js"]) == normalize_cmdline(["node", "a.js"])
    assert normalize_cmdline(["node", "x.js", "--db-password", "hunter2"]) == (
        "node x.js --db-password ***"
    )
    assert normalize_cmdline([]) == ""


# --- managed_by -----------------------------------------------------------------------------


def proc(pid, ppid, cmd, unit=None, cwd="/srv/workbot/current", user="workbot"):
    argv = cmd if isinstance(cmd, list) else cmd.split()
    return Process(
        pid=pid,
        ppid=ppid,
        uid=998,
        user=user,
        cmdline=argv,
        cwd=cwd,
        start_time=1.0,
        rss_kb=1,
        unit=unit,
    )


TREE = {
    p.pid: p
    for p in [
        proc(1, 0, "/sbin/init", cwd="/"),
        proc(2290, 1, ["PM2 v5.4.2: God Daemon (/srv/workbot/.pm2)"], unit="pm2-workbot.service"),
        proc(2301, 2290, ["next-server (v15.1.6)"], unit="pm2-workbot.service"),
        proc(2400, 2301, "sh -c convert x.png", unit="pm2-workbot.service"),
        proc(3000, 1, "node server.js", unit="workbot.service"),
        proc(173, 1, "node /x/tsx/dist/cli.mjs watch server.ts"),
        proc(180, 173, "node server.ts"),
        proc(500, 1, "node cron-job.js", unit="cron.service"),
    ]
}


@pytest.mark.parametrize(
    ("pid", "manager"),
    [
        (2290, "pm2"),  # the daemon itself (it holds a cluster's listening socket)
        (2301, "pm2"),
        (2400, "pm2"),  # a grandchild
        (3000, "systemd"),
        (173, None),
        (180, None),
        (500, None),  # cron is not a process manager
        (1, None),
    ],
)
def test_managed_by(pid, manager):
    assert managed_by(TREE[pid], TREE) == manager


def test_managed_by_survives_a_parent_loop():
    loop = {10: proc(10, 11, "node a.js"), 11: proc(11, 10, "node b.js")}
    assert managed_by(loop[10], loop) is None


# --- scope ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "root", "under"),
    [
        ("/srv/workbot", "/srv/workbot", True),
        ("/srv/workbot/releases/a", "/srv/workbot", True),
        ("/srv/workbot/releases/a", "/srv/workbot/", True),
        ("/srv/workbot-old", "/srv/workbot", False),
        ("/srv", "/srv/workbot", False),
        ("/anything", "/", True),
    ],
)
def test_path_under(path, root, under):
    assert path_under(path, root) is under


PACKAGES = {"/home/dev/workbot": "workbot", "/home/alice/blog": "blog"}
LISTENERS = [
    Listener("tcp", "0.0.0.0", 5000, 41211, 0, [180]),
    Listener("tcp", "127.0.0.1", 3000, 52240, 1001, [3000]),
]


@pytest.mark.parametrize(
    ("cwd", "pid", "why"),
    [
        ("/srv/workbot/releases/3f9a", 11, "cwd"),
        ("/srv/workbot/releases/3f9a (deleted)", 11, "cwd"),  # a removed old release
        ("/workspace/projects", 11, "cwd"),
        ("/workspace/projects/src", 11, "cwd"),
        ("/home/dev/workbot", 11, "package"),
        ("/home/alice/blog", 11, None),  # another project's package
        ("/tmp", 180, "port"),  # listens on the app port
        ("/home/alice/blog", 3000, None),  # listens, but not on the app port
        (None, 11, None),  # cwd unreadable and no other tie
        ("/srv/workbot-old", 11, None),
    ],
)
def test_in_scope(cwd, pid, why):
    p = proc(pid, 1, "node /x/node_modules/next/dist/bin/next dev", cwd=cwd)
    got = in_scope(
        p, "/srv/workbot", ["/workspace/projects"], "workbot", 5000, LISTENERS, PACKAGES.get
    )
    assert got == why


def test_never_in_scope_by_command_line_alone():
    p = proc(77, 1, "node /srv/workbot/current/node_modules/next/dist/bin/next dev", cwd="/opt")
    assert in_scope(p, "/srv/workbot", [], "workbot", 5000, [], lambda cwd: None) is None


def test_read_package_name(tmp_path):
    (tmp_path / "package.json").write_text(json.dumps({"name": "workbot", "private": True}))
    assert read_package_name(str(tmp_path)) == "workbot"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "package.json").write_text("{not json")
    assert read_package_name(str(bad)) is None
    listy = tmp_path / "listy"
    listy.mkdir()
    (listy / "package.json").write_text("[1, 2]")
    assert read_package_name(str(listy)) is None
    assert read_package_name(str(tmp_path / "missing")) is None


def test_read_package_name_does_not_block_on_a_fifo(tmp_path):
    import os

    os.mkfifo(tmp_path / "package.json")
    assert read_package_name(str(tmp_path)) is None


def test_normalize_keeps_a_process_title_whole():
    title = "PM2 v7.0.4: God Daemon (/srv/workbot/.pm2)"
    assert normalize_cmdline([title]) == title
    assert normalize_cmdline(["/usr/bin/node", "server.js"]) == "node server.js"


# --- judging a process whose cwd cannot be read ---------------------------------------------

ROOTS = ["/srv/workbot", "/workspace/projects"]


@pytest.mark.parametrize(
    ("cmd", "under"),
    [
        ("node /srv/workbot/current/node_modules/.bin/../next/dist/bin/next start", True),
        ("next start /srv/workbot/releases/3f9a", True),
        ("pnpm --dir=/srv/workbot/current start", True),
        ("pnpm -C /srv/workbot/current start", True),
        (["sh", "-c", "cd /workspace/projects && tsx watch server.ts"], True),
        (
            "node --import file:///workspace/projects/node_modules/tsx/dist/loader.mjs a.ts",
            True,
        ),
        (["PM2 v5.4.2: God Daemon (/srv/workbot/.pm2)"], True),
        ("node /srv/workbot-old/server.js", False),  # a sibling, not inside
        ("node /srv/workbot/../other/server.js", False),
        ("node /home/alice/blog/server.js", False),
        ("pnpm start", False),
        ("node server.js", False),
    ],
)
def test_cmdline_under(cmd, under):
    argv = cmd if isinstance(cmd, list) else cmd.split()
    assert cmdline_under(argv, ROOTS) is under


def refused(pid, cmd, user="workbot", uid=1500, ppid=1, what=("cwd", "fd")):
    p = proc(pid, ppid, cmd, cwd=None, user=user)
    p.uid = uid
    p.unreadable = list(what)
    return p


@pytest.mark.parametrize(
    ("p", "scope"),
    [
        (refused(1, "node /srv/workbot/current/server.js"), "cmdline"),
        (refused(2, "node /srv/workbot/current/server.js", user="alice", uid=1001), "cmdline"),
        (refused(3, "pnpm start"), "user"),
        (refused(4, ["next-server (v15.1.6)"]), "user"),
        (refused(5, ["sh", "-c", "next dev"]), "user"),  # a dev tool's launcher
        (refused(6, "pnpm start", user="alice", uid=1001), None),  # another user's
        (refused(7, "sleep 100"), None),  # not a Node.js program
        (refused(8, "vim /srv/workbot/current/server.js"), None),
        (refused(9, "pnpm start", user="root", uid=0), None),
        (refused(10, "pnpm start", what=["fd"]), None),  # its cwd was read: in_scope decides
        (proc(11, 1, "pnpm start", cwd=None), None),  # no cwd, but not refused (exited)
    ],
)
def test_judge_scope(p, scope):
    assert judge_scope(p, ROOTS, "workbot") == scope


def test_judge_scope_by_user_needs_an_app_user():
    p = refused(3, "pnpm start", user="root", uid=0)
    assert judge_scope(p, ROOTS, "root") is None
    assert judge_scope(refused(3, "pnpm start"), ROOTS, None) is None


def test_tree_tops_and_socket_suspects():
    procs = {
        p.pid: p
        for p in [
            proc(1, 0, "/sbin/init", cwd="/"),
            refused(4000, "node /usr/local/bin/pnpm dev"),
            refused(4010, ["sh", "-c", "next dev"], ppid=4000),
            refused(4011, "node /x/next/dist/bin/next dev", ppid=4010),
            refused(4100, "node /usr/local/bin/pnpm start"),
            refused(4101, ["next-server (v15.1.6)"], ppid=4100),
            refused(3000, "node /home/alice/blog/server.js", user="alice", uid=1001),
            refused(4200, "node a.js", what=["cwd"]),  # its fds were read
        ]
    }
    assert tree_tops([4000, 4011], procs) == [4000]  # through the sh wrapper
    assert tree_tops([4000, 4011, 4101], procs) == [4000, 4101]
    fd_denied = [4000, 4010, 4011, 4100, 4101, 3000]
    suspects = socket_suspects(1500, procs, fd_denied)
    assert [p.pid for p in suspects] == [4000, 4011, 4100, 4101]  # Node.js, not sh
    assert socket_suspects(None, procs, fd_denied) == []
    assert socket_suspects(1500, procs, []) == []
