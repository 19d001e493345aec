"""restore: what a run records before stopping a process, and starting it again as it ran."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import (
    Listener,
    Process,
    attach_owners,
    collect_processes,
    read_listeners,
    socket_owners,
)
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.restore import (
    append_record,
    read_record,
    snapshot,
    start,
    to_restart,
)

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def entry(pid, ppid, ports=(), argv=("pnpm", "dev"), start_time=1.0, **kw):
    return {
        "pid": pid,
        "ppid": ppid,
        "uid": 0,
        "gid": 0,
        "groups": [],
        "user": "root",
        "argv": list(argv),
        "cwd": "/workspace/projects",
        "environ": {},
        "stdout": None,
        "stderr": None,
        "unit": None,
        "start_time": start_time,
        "ports": list(ports),
        **kw,
    }


def test_only_the_trees_that_served_start_again_from_their_top():
    # The incident: four `pnpm dev` copies (sh -c tsx watch -> node server); the first served.
    record = []
    for n, top in enumerate((100, 200, 300, 400)):
        record += [
            entry(top, 1, start_time=n),
            entry(top + 1, top, argv=("sh", "-c", "tsx watch")),
            entry(
                top + 2, top + 1, ports=(5000,) if top == 100 else (), argv=("node", "server.ts")
            ),
        ]
    start_, skip = to_restart(record)
    assert [(e["pid"], e["served"]) for e in start_] == [(100, [5000])]
    assert [s["pid"] for s in skip] == [200, 300, 400]
    assert all(s["why"] == "it served no port when it was stopped" for s in skip)


def test_a_stopped_process_counts_the_ports_of_the_server_it_runs():
    """tsx watch is stopped; its child, the server, listens without a dev command line."""
    procs = {
        10: Process(
            pid=10,
            ppid=1,
            uid=0,
            user="root",
            cmdline=["tsx", "watch", "server.ts"],
            cwd="/w",
            start_time=1.0,
            rss_kb=None,
            unit=None,
        ),
        11: Process(
            pid=11,
            ppid=10,
            uid=0,
            user="root",
            cmdline=["node", "server.ts"],
            cwd="/w",
            start_time=2.0,
            rss_kb=None,
            unit=None,
        ),
    }
    listener = Listener(proto="tcp", address="0.0.0.0", port=5000, inode=7, pids=[11])
    [snap] = snapshot([10], procs, [listener], proc_root="/nonexistent")
    assert snap["ports"] == [5000] and snap["argv"] == ["tsx", "watch", "server.ts"]
    assert snap["environ"] is None


def test_a_tree_whose_command_is_unknown_is_not_started():
    start_, skip = to_restart([entry(7, 1, ports=(5000,), cwd=None)])
    assert start_ == [] and "could not be read" in skip[0]["why"]


def test_the_record_is_roots_alone_and_keeps_each_process_once(tmp_path):
    path = str(tmp_path / "run" / "stopped.json")
    append_record(path, [entry(1, 0, environ={"SECRET": "x"})])
    append_record(path, [entry(1, 0), entry(2, 1)])
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
    assert [e["pid"] for e in read_record(path)] == [1, 2]
    assert read_record(str(tmp_path / "none.json")) == []


def test_a_real_server_stopped_and_started_again_as_it_ran(tmp_path_factory):
    """A real listener: its snapshot, then a start with the same directory, environment,
    output file and port, as another user (nobody) when the tests run as root."""
    # Where another user can reach (pytest's own temporary root is root's alone).
    tmp_path = Path(tempfile.mkdtemp(prefix="hk-restore-"))
    os.chmod(tmp_path, 0o755)
    log = tmp_path / "dev.log"
    port = free_port()
    code = (
        "import os,socket,sys,time;s=socket.socket();"
        "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
        f"s.bind(('127.0.0.1',{port}));s.listen();print('up',os.getcwd(),os.environ.get('HK_MARK'),os.getuid(),flush=True);"
        "time.sleep(60)"
    )
    workdir = tmp_path / "app"
    workdir.mkdir()
    log.touch()
    os.chmod(log, 0o666)
    with open(log, "a") as out:
        # The system's Python: nobody may run it (the virtualenv's may sit in root's home).
        proc = subprocess.Popen(
            [PYTHON, "-c", code],
            cwd=workdir,
            stdout=out,
            stderr=out,
            env={"HK_MARK": "m-1", "PATH": os.environ["PATH"]},
            start_new_session=True,
        )
    try:
        wait_for(lambda: port in listening_ports())
        procs = collect_processes()
        every = read_listeners()
        attach_owners(every, socket_owners([lst.inode for lst in every], list(procs)))
        [snap] = snapshot([proc.pid], procs, every)
    finally:
        proc.kill()
        proc.wait()
    assert snap["ports"] == [port] and snap["cwd"] == str(workdir)
    assert snap["environ"]["HK_MARK"] == "m-1" and snap["stdout"] == str(log)
    if os.getuid() == 0:
        snap = {**snap, "uid": 65534, "gid": 65534, "groups": []}
    [again], skip = to_restart([snap])
    assert skip == []
    new_pid = start(again)
    try:
        wait_for(lambda: log.read_text().count("up ") == 2)
        assert log.read_text().splitlines()[-1] == f"up {workdir} m-1 {snap['uid']}"
        assert port in listening_ports()
        assert os.getsid(new_pid) != os.getsid(0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(new_pid, 9)
        shutil.rmtree(tmp_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_ports() -> set[int]:
    return {lst.port for lst in read_listeners()}


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    pytest.fail("timed out")
