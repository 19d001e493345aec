"""procfs: parsers over recorded /proc text, a fake /proc tree, and the real /proc."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils import procfs
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import (
    ProcfsError,
    decode_address,
    is_loopback,
    is_manager_unit,
    memory_summary,
    parse_cgroup_unit,
    parse_cmdline,
    parse_loadavg,
    parse_meminfo,
    parse_net_tcp,
    parse_socket_link,
    parse_stat,
    parse_status_uid,
)
from tests.hk_testlib import build_fake_proc, deny_ptrace, fixture_text

LITTLE = sys.byteorder == "little"
recorded_on_x86 = pytest.mark.skipif(not LITTLE, reason="fixtures recorded on little-endian")


# --- memory and load ----------------------------------------------------------------------


def test_meminfo_incident_is_81_percent_used():
    mem = parse_meminfo(fixture_text("proc", "meminfo_incident"))
    assert mem["MemTotal"] == 8148484
    summary = memory_summary(mem)
    assert summary["memory"]["used_pct"] == 81.0  # the report's "79-82 %"
    assert summary["swap"] == {"total_kb": 0, "used_kb": 0, "used_pct": 0.0}


def test_meminfo_pressure_counts_swap():
    summary = memory_summary(parse_meminfo(fixture_text("proc", "meminfo_pressure")))
    assert summary["memory"]["used_pct"] == 97.5
    assert summary["swap"]["used_pct"] == 75.0


def test_meminfo_without_memavailable_uses_free_buffers_cached():
    summary = memory_summary(parse_meminfo(fixture_text("proc", "meminfo_old_kernel")))
    assert summary["memory"]["available_kb"] == 512000 + 128000 + 384000
    assert summary["memory"]["used_pct"] == 50.0


def test_meminfo_without_total_is_an_error():
    with pytest.raises(ProcfsError, match="MemTotal"):
        parse_meminfo("MemFree: 12 kB\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.23 0.53 0.40 2/345 12345\n", (0.23, 0.53, 0.40, 2, 345)),
        ("9.80 8.70 6.10 14/602 30112\n", (9.8, 8.7, 6.1, 14, 602)),
    ],
)
def test_loadavg(text, expected):
    load = parse_loadavg(text)
    assert (
        load["load1"],
        load["load5"],
        load["load15"],
        load["running"],
        load["threads"],
    ) == expected


def test_loadavg_garbage():
    with pytest.raises(ProcfsError):
        parse_loadavg("nonsense")


# --- per-process files ----------------------------------------------------------------------


def test_stat_tsx_watch():
    stat = parse_stat(fixture_text("proc", "stat_tsx_watch"))
    assert stat == {
        "pid": 173,
        "comm": "node",
        "state": "S",
        "ppid": 1,
        "starttime_ticks": 8410,
        "rss_pages": 24310,
    }


def test_stat_comm_with_spaces_and_parens():
    stat = parse_stat(fixture_text("proc", "stat_weird_comm"))
    assert stat["comm"] == "my (odd) prog"
    assert stat["ppid"] == 4200
    assert stat["starttime_ticks"] == 99123


@pytest.mark.parametrize("text", ["", "12 node S 1", "12 (node) S 1 2 3"])
def test_stat_malformed(text):
    with pytest.raises(ProcfsError):
        parse_stat(text)


@pytest.mark.parametrize(
    ("raw", "argv"),
    [
        (
            b"node\0/x/node_modules/.bin/../tsx/dist/cli.mjs\0watch\0server.ts\0",
            ["node", "/x/node_modules/.bin/../tsx/dist/cli.mjs", "watch", "server.ts"],
        ),
        (b"sh\0-c\0tsx watch server.ts\0", ["sh", "-c", "tsx watch server.ts"]),
        (
            b"PM2 v5.4.2: God Daemon (/srv/workbot/.pm2)\0\0\0\0",
            ["PM2 v5.4.2: God Daemon (/srv/workbot/.pm2)"],
        ),
        (b"next-server (v15.1.6)        ", ["next-server (v15.1.6)"]),
        (b"", []),
        (b"node\0\xff\xfe.js\0", ["node", "\ufffd\ufffd.js"]),
    ],
)
def test_cmdline(raw, argv):
    assert parse_cmdline(raw) == argv


def test_status_uid_is_effective_uid():
    assert parse_status_uid(fixture_text("proc", "status_workbot")) == 998
    assert parse_status_uid("Uid:\t1000\t0\t0\t0\n") == 0
    assert parse_status_uid("Name:\tkworker\n") is None


@pytest.mark.parametrize(
    ("fixture", "unit", "manager"),
    [
        ("cgroup_pm2_service", "pm2-workbot.service", True),
        ("cgroup_session", None, False),
        ("cgroup_docker_host_ns", "pm2-workbot.service", True),
        ("cgroup_docker_exec", None, False),
        ("cgroup_init", None, False),
        ("cgroup_container_root", None, False),
        ("cgroup_ssh", "ssh.service", False),
        ("cgroup_user_service", "app-workbot.service", True),
        ("cgroup_user_manager", None, False),
        ("cgroup_v1_nginx", "nginx.service", True),
    ],
)
def test_cgroup_unit(fixture, unit, manager):
    got = parse_cgroup_unit(fixture_text("proc", fixture))
    assert got == unit
    assert is_manager_unit(got) is manager


@pytest.mark.parametrize(
    "unit",
    [
        "cron.service",
        "user@1000.service",
        "getty@tty1.service",
        "containerd.service",
        None,
        "x.scope",
    ],
)
def test_units_that_are_not_process_managers(unit):
    assert not is_manager_unit(unit)


# --- TCP listeners --------------------------------------------------------------------------


@recorded_on_x86
def test_net_tcp_listeners_only():
    got = [
        (lst.address, lst.port, lst.inode, lst.uid, lst.loopback)
        for lst in parse_net_tcp(fixture_text("proc", "net_tcp"))
    ]
    assert got == [
        ("0.0.0.0", 5000, 41211, 0, False),  # the incident: the app on every interface
        ("127.0.0.1", 5432, 18873, 105, True),
        ("0.0.0.0", 22, 15562, 0, False),
        ("127.0.0.1", 3000, 52240, 1001, True),
    ]


@recorded_on_x86
def test_net_tcp6_decodes_wildcard_loopback_and_mapped():
    got = [
        (lst.address, lst.port, lst.loopback)
        for lst in parse_net_tcp(fixture_text("proc", "net_tcp6"), "tcp6")
    ]
    assert got == [
        ("::", 80, False),
        ("::1", 5432, True),
        ("::ffff:127.0.0.1", 3001, True),
        ("2001:db8::5", 5001, False),
    ]


@pytest.mark.parametrize(
    ("hexaddr", "order", "address"),
    [
        ("0100007F", "little", "127.0.0.1"),
        ("7F000001", "big", "127.0.0.1"),
        ("0500000A", "little", "10.0.0.5"),
        ("00000000000000000000000001000000", "little", "::1"),
        ("0000000000000000FFFF00000100007F", "little", "::ffff:127.0.0.1"),
        ("00000000000000000000FFFF7F000001", "big", "::ffff:127.0.0.1"),
    ],
)
def test_decode_address(hexaddr, order, address):
    assert decode_address(hexaddr, order) == address


def test_decode_address_bad_length():
    with pytest.raises(ProcfsError):
        decode_address("0100", "little")


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("::ffff:0.0.0.0", False),
        ("10.0.0.5", False),
        ("not-an-ip", False),
    ],
)
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


@pytest.mark.parametrize(
    ("target", "inode"),
    [("socket:[41211]", 41211), ("pipe:[1234]", None), ("/dev/null", None), ("socket:[x]", None)],
)
def test_socket_link(target, inode):
    assert parse_socket_link(target) == inode


# --- a fake /proc tree ----------------------------------------------------------------------


def test_collect_incident_processes(tmp_path):
    root = build_fake_proc(tmp_path / "proc", "incident", {"APP": 5000, "PROXY": 80})
    procs = procfs.collect_processes(str(root))
    # the kernel thread (no cmdline) and the process that vanished mid-read are skipped
    assert 2 not in procs
    assert 3100 not in procs
    assert sorted(procs) == [1, 95, 120, 173, 180, 300, 503, 944, 2206, 2207, 3000]
    tsx = procs[173]
    assert tsx.cwd == "/workspace/projects"
    assert tsx.user == "root"
    assert tsx.unit is None  # a login session scope
    # btime 2026-02-08T23:40:00Z + 2040 s: started 00:14 as the report says
    assert tsx.start_time == 1770594000 + 2040
    assert tsx.rss_kb == 24310 * (os.sysconf("SC_PAGE_SIZE") // 1024)
    assert procs[300].unit == "postgresql@15-main.service"


def test_collect_tolerates_unreadable_cwd(tmp_path):
    root = build_fake_proc(tmp_path / "proc", "incident", {"APP": 5000, "PROXY": 80})
    (root / "944" / "cwd").unlink()
    procs = procfs.collect_processes(str(root))
    assert procs[944].cwd is None


@pytest.mark.parametrize("list_fds", [True, False], ids=["root without ptrace", "not root"])
def test_refused_links_are_recorded(tmp_path, monkeypatch, list_fds):
    """Root without CAP_SYS_PTRACE may list another user's fd/ but not read its links; a
    user who is not root may not even list it. Both are refusals; a missing link is not."""
    root = build_fake_proc(
        tmp_path / "proc", "hardened", {"APP": 5000, "PROXY": 80}, "/srv/workbot"
    )
    (root / "3000" / "cwd").unlink()  # exited, or a zombie: absent, not refused
    deny_ptrace(monkeypatch, root, [2290, 2301], list_fds=list_fds)
    procs = procfs.collect_processes(str(root))
    assert procs[2290].cwd is None and procs[2290].unreadable == ["cwd"]
    assert procs[2315].cwd and procs[2315].unreadable == []
    assert procs[3000].cwd is None and procs[3000].unreadable == []
    # cmdline, status and stat still read
    assert procs[2301].cmdline == ["next-server (v15.1.6)"] and procs[2301].uid == 998
    listeners = procfs.read_listeners(str(root))
    denied: set[int] = set()
    owners = procfs.socket_owners([lst.inode for lst in listeners], list(procs), str(root), denied)
    procfs.attach_owners(listeners, owners)
    assert denied == {2290, 2301}
    app = next(lst for lst in listeners if lst.port == 5000)
    assert app.pids == [] and app.uid == 998  # its holder unknown, its user known
    assert next(lst.pids for lst in listeners if lst.port == 80) == [400, 401, 402]


def test_listener_owners_in_fake_proc(tmp_path):
    root = build_fake_proc(
        tmp_path / "proc", "hardened", {"APP": 5000, "PROXY": 80}, "/srv/workbot"
    )
    procs = procfs.collect_processes(str(root))
    listeners = procfs.read_listeners(str(root))
    owners = procfs.socket_owners([lst.inode for lst in listeners], list(procs), str(root))
    procfs.attach_owners(listeners, owners)
    by_port = {}
    for lst in listeners:
        by_port.setdefault(lst.port, []).append(lst)
    # nginx master and workers share both port-80 sockets; the master is the owner
    assert [lst.pids for lst in by_port[80]] == [[400, 401, 402], [400, 401, 402]]
    assert procfs.primary_owner(by_port[80][0].pids, procs) == 400
    # Node cluster: the primary (PM2's daemon) holds the app socket, not the workers
    assert by_port[5000][0].pids == [2290]
    assert by_port[5000][0].address == "127.0.0.1"


# --- the real /proc of this machine ---------------------------------------------------------


def test_real_proc_smoke():
    procs = procfs.collect_processes()
    assert os.getpid() in procs
    me = procs[os.getpid()]
    assert me.cmdline and me.cwd == os.getcwd()
    assert me.start_time and me.start_time > 1_500_000_000
    listeners = procfs.read_listeners()
    owners = procfs.socket_owners([lst.inode for lst in listeners], list(procs))
    procfs.attach_owners(listeners, owners)
    for lst in listeners:
        assert 0 < lst.port < 65536
        assert isinstance(lst.loopback, bool)
    assert procfs.parse_loadavg(Path("/proc/loadavg").read_text())["threads"] > 0
    meminfo = parse_meminfo(Path("/proc/meminfo").read_text())
    assert memory_summary(meminfo)["memory"]["total_kb"] > 0
