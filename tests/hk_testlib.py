"""Helpers for the diagnosis tests, unit and integration: recorded fixtures (tests/unit/fixtures)
and a fake /proc built from them; runs of ansible-playbook and of a module."""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from ansible.template import trust_as_template

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / "collections"
FIXTURES = Path(__file__).parent / "unit" / "fixtures"


def fixture_text(*parts: str) -> str:
    return FIXTURES.joinpath(*parts).read_text(encoding="utf-8")


def free_port() -> int:
    """A TCP port nothing listens on right now (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- fake /proc ---------------------------------------------------------------------------


def _hex_addr(address: str) -> str:
    """Encode an address the way the kernel prints it in /proc/net/tcp(6) on this host."""
    fmt = "<I" if sys.byteorder == "little" else ">I"
    if ":" in address:
        raw = socket.inet_pton(socket.AF_INET6, address)
        return "".join(f"{struct.unpack(fmt, raw[i : i + 4])[0]:08X}" for i in range(0, 16, 4))
    return f"{struct.unpack(fmt, socket.inet_aton(address))[0]:08X}"


def tcp_table(rows: list[tuple[str, int, int, int]], v6: bool) -> str:
    """/proc/net/tcp(6) text for LISTEN rows ``(address, port, uid, inode)``."""
    head = (
        "  sl  local_address                         remote_address                        st "
        "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
        if v6
        else "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        "timeout inode"
    )
    zero = "0" * (32 if v6 else 8)
    lines = [head]
    for idx, (addr, port, uid, inode) in enumerate(rows):
        lines.append(
            f"   {idx}: {_hex_addr(addr)}:{port:04X} {zero}:0000 0A 00000000:00000000 "
            f"00:00000000 00000000 {uid:5d}        0 {inode} 1 0000000000000000 100 0 0 10 0"
        )
    return "\n".join(lines) + "\n"


def build_fake_proc(
    root: Path,
    scenario: str,
    ports: dict[str, int],
    app_root: str = "/srv/workbot",
    meminfo: str = "meminfo_incident",
    loadavg: str = "loadavg",
) -> Path:
    """Materialise a recorded process table (fixtures/scenarios/<scenario>.json) as a
    /proc tree: stat, cmdline, status, cgroup, cwd and fd symlinks, net/tcp(6)."""
    data = json.loads(fixture_text("scenarios", f"{scenario}.json"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "net").mkdir(exist_ok=True)
    (root / "stat").write_text(
        fixture_text("proc", "stat").replace("btime 1770594000", f"btime {data['btime']}")
    )
    (root / "meminfo").write_text(fixture_text("proc", meminfo))
    (root / "loadavg").write_text(fixture_text("proc", loadavg))

    def resolve(value: Any) -> Any:
        if isinstance(value, str):
            return ports.get(value) or value.replace("APP_ROOT", app_root)
        return value

    inodes: dict[tuple[str, int], int] = {}
    socket_rows: dict[tuple[str, int], int] = {}
    for proc in data["processes"]:
        pid = proc["pid"]
        pdir = root / str(pid)
        pdir.mkdir()
        if proc.get("vanished"):
            continue  # listed, then gone before its files could be read
        comm = proc["comm"]
        rss = proc.get("rss_pages", 1000)
        (pdir / "stat").write_text(
            f"{pid} ({comm}) S {proc['ppid']} {pid} {pid} 0 -1 4194560 1200 0 0 0 40 12 0 0 20 0 "
            f"1 0 {proc['starttime']} 123456789 {rss} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 "
            "17 0 0 0 0 0 0\n"
        )
        argv = [resolve(a) for a in proc["cmdline"]]
        (pdir / "cmdline").write_bytes(("\0".join(argv) + "\0").encode() if argv else b"")
        uid = proc["uid"]
        (pdir / "status").write_text(
            f"Name:\t{comm[:15]}\nState:\tS (sleeping)\nPid:\t{pid}\nPPid:\t{proc['ppid']}\n"
            f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
        )
        (pdir / "cgroup").write_text(proc["cgroup"])
        if proc.get("cwd"):
            (pdir / "cwd").symlink_to(resolve(proc["cwd"]))
        fd = pdir / "fd"
        fd.mkdir()
        for n in (0, 1, 2):
            (fd / str(n)).symlink_to("/dev/null")
        for n, (addr, port) in enumerate(proc.get("listen", []), start=20):
            key = (addr, int(resolve(port)))
            if key not in inodes:
                inodes[key] = 70000 + len(inodes)
                socket_rows[key] = uid
            (fd / str(n)).symlink_to(f"socket:[{inodes[key]}]")
    v4 = [(a, p, socket_rows[(a, p)], i) for (a, p), i in inodes.items() if ":" not in a]
    v6 = [(a, p, socket_rows[(a, p)], i) for (a, p), i in inodes.items() if ":" in a]
    (root / "net" / "tcp").write_text(tcp_table(v4, v6=False))
    (root / "net" / "tcp6").write_text(tcp_table(v6, v6=True))
    return root


def scenario_users(scenario: str) -> dict[int, str]:
    """The user names a recorded scenario gives its uids (``"users"``), by uid."""
    data = json.loads(fixture_text("scenarios", f"{scenario}.json"))
    return {int(uid): name for uid, name in data.get("users", {}).items()}


def ptrace_denied(scenario: str) -> list[int]:
    """The pids a recorded scenario marks ``"ptrace": "denied"``."""
    data = json.loads(fixture_text("scenarios", f"{scenario}.json"))
    return [p["pid"] for p in data["processes"] if p.get("ptrace") == "denied"]


def name_users(monkeypatch: Any, users: dict[int, str]) -> None:
    """Let procfs name these uids as the recorded host did (the test machine's passwd
    has other users, or none, under them)."""
    from ansible_collections.hardenkit.nodeapp.plugins.module_utils import procfs

    for uid, name in users.items():
        monkeypatch.setitem(procfs._USER_CACHE, uid, name)


def deny_ptrace(
    monkeypatch: Any, proc_root: Path, pids: list[int], *, list_fds: bool = True
) -> None:
    """Make the fake /proc refuse, for ``pids``, what the kernel refuses root without
    CAP_SYS_PTRACE (a container, some LXC hosts) for other users' processes: reading the
    ``cwd`` link and the ``fd/*`` links fails with EACCES, while ``stat``, ``cmdline``,
    ``status`` and ``cgroup`` stay readable. Root may still list ``fd/`` there; a user
    who is not root may not (``list_fds=False``).

    The tests run as root, which file modes do not stop, so ``os.readlink`` (and
    ``os.listdir``) are wrapped for those paths only.
    """
    base = {str(proc_root / str(pid)) for pid in pids}
    real_readlink, real_listdir = os.readlink, os.listdir

    def refuse(path: str) -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    def readlink(path: Any, *args: Any, **kwargs: Any) -> Any:
        text = os.fspath(path)
        if isinstance(text, str) and "dir_fd" not in kwargs:
            head, name = os.path.split(text)
            if (name == "cwd" and head in base) or (
                os.path.basename(head) == "fd" and os.path.dirname(head) in base
            ):
                raise refuse(text)
        return real_readlink(path, *args, **kwargs)

    def listdir(path: Any = ".") -> Any:
        if not list_fds and not isinstance(path, int):  # an fd is no /proc path
            text = os.fspath(path)
            if os.path.basename(text) == "fd" and os.path.dirname(text) in base:
                raise refuse(text)
        return real_listdir(path)

    monkeypatch.setattr(os, "readlink", readlink)
    monkeypatch.setattr(os, "listdir", listdir)


def build_hardened_host(base: Path, app_port: int, proxy_port: int) -> tuple[Path, Path]:
    """The hardened host on disk under ``base``: a complete release behind ``current``, logs
    with their logrotate config, and a fake /proc whose app and proxy listen on the given
    ports. Returns ``(app_root, proc)``."""
    app_root = base / "srv" / "workbot"
    release = app_root / "releases" / "3f9a2c1b7e4d"
    server = release / ".next" / "server"
    (server / "app" / "api" / "health").mkdir(parents=True)
    (server / "pages").mkdir()
    (release / ".next" / "BUILD_ID").write_text("k3Yq8vPq")
    (server / "app-paths-manifest.json").write_text(
        json.dumps({"/page": "app/page.js", "/api/health/route": "app/api/health/route.js"})
    )
    (server / "pages-manifest.json").write_text(json.dumps({"/_document": "pages/_document.js"}))
    for rel in ("app/page.js", "app/api/health/route.js", "pages/_document.js"):
        (server / rel).write_text("")
    (app_root / "current").symlink_to(release)
    logs = app_root / "shared" / "logs"
    logs.mkdir(parents=True)
    (logs / "workbot-out.log").write_text(fixture_text("logs", "workbot-out.log"))
    (app_root / ".pm2" / "logs").mkdir(parents=True)
    rotate = base / "logrotate.d"
    rotate.mkdir()
    (rotate / "workbot").write_text(
        fixture_text("logrotate", "workbot").replace("/srv/workbot", str(app_root))
    )
    proc = build_fake_proc(
        base / "proc", "hardened", {"APP": app_port, "PROXY": proxy_port}, str(app_root)
    )
    return app_root, proc


def trusted(value: Any) -> Any:
    """``value`` with every string marked as a template, as Ansible treats role and
    inventory variables (Templar renders only trusted strings)."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [trusted(v) for v in value]
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    return value


def write_local_run(
    work: Path, hosts: dict[str, dict[str, Any]], extra_vars: dict[str, Any]
) -> None:
    """What ``run_check_playbook`` reads: ``work/inventory.yml`` with ``hosts`` on the local
    connection, ``work/vars.json`` with ``extra_vars`` over the app's settings (a minimal
    app source in ``work/app``, reports in ``work/reports``)."""
    app = work / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name": "workbot", "version": "0.1.0"}\n')
    (app / "pnpm-lock.yaml").write_text("lockfileVersion: '9.0'\n")
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (work / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts, "vars": local}}))
    settings = {
        "app_name": "workbot",
        "app_src": str(app),
        "hardenkit_reports_dir": str(work / "reports"),
    }
    (work / "vars.json").write_text(json.dumps({**settings, **extra_vars}))


def ansible_env(work: Path) -> dict[str, str]:
    """The environment of a test's ansible-playbook: the checkout's collection and no
    ansible.cfg (as a user's run would find the roles by their full names); Ansible's own
    files stay inside ``work``."""
    return {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_CONFIG": str(work / "none.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
        "ANSIBLE_HOME": str(work / "ansible-home"),
    }


def run_playbook(
    work: Path, playbook: str, *options: str, extra_vars: str = "vars.json"
) -> subprocess.CompletedProcess:
    """Run ``work/<playbook>`` with ``work/inventory.yml``, ``work/<extra_vars>`` as extra
    variables and ``options`` (``--check``, ``-vvv`` …), under ansible_env."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(work / "inventory.yml"),
            "-e",
            f"@{work / extra_vars}",
            *options,
            str(work / playbook),
        ],
        cwd=work,
        env=ansible_env(work),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_check_playbook(work: Path, playbook: str) -> subprocess.CompletedProcess:
    """Run ``work/<playbook>`` in check mode (run_playbook)."""
    return run_playbook(work, playbook, "--check")


def run_module(name: str, args: dict, tmp_path: Path) -> tuple[int, dict]:
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            f"ansible_collections.hardenkit.nodeapp.plugins.modules.{name}",
            str(args_file),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout)


def run_role_validate(work: Path, role: str, hosts: dict[str, dict[str, Any]]) -> str:
    """One ansible-playbook run of ``hardenkit.nodeapp.<role>``'s validate entry point, one
    local host per case (``hosts``: name -> its settings); its whole output."""
    write_local_run(work, hosts, {})
    (work / "validate.yml").write_text(
        "- name: Validate\n"
        "  hosts: all\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        f"    - name: Validate the {role} role's input\n"
        "      ansible.builtin.include_role:\n"
        f"        name: hardenkit.nodeapp.{role}\n"
        "        tasks_from: validate\n"
    )
    proc = run_playbook(work, "validate.yml", "--forks", "8")
    return proc.stdout + proc.stderr


def host_result(out: str, host: str) -> tuple[dict[str, int], str]:
    """``host``'s ok and failed counts in a run's recap, and its fatal lines."""
    match = re.search(
        rf"^{re.escape(host)}\s*:\s*ok=(\d+)\s+changed=\d+\s+\S+\s+failed=(\d+)", out, re.M
    )
    assert match, f"{host} not in the recap:\n{out[-3000:]}"
    fatal = re.findall(rf"^fatal: \[{re.escape(host)}\]: FAILED! => (.*)$", out, re.M)
    return {"ok": int(match.group(1)), "failed": int(match.group(2))}, "\n".join(fatal)
