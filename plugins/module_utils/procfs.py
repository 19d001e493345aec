"""Parse Linux ``/proc``: memory, load, processes, their cgroup unit, TCP listeners.

Each ``parse_*`` function takes the text of one ``/proc`` file and returns data, so tests
feed recorded files. The ``collect_*`` / ``read_*`` functions do the reading and tolerate
what a live ``/proc`` does: processes that exit between listing and reading, and files
another user's process keeps unreadable.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import socket
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

TCP_LISTEN = "0A"

# cgroup leaves that are not a service a process manager runs: containers, the init
# scope, login sessions, and services that merely spawn interactive shells or jobs
# (a `nohup node server.js &` started over SSH or from cron is not "under systemd").
_NOT_A_MANAGER_PREFIXES = (
    "user@",
    "ssh",
    "getty@",
    "serial-getty@",
    "container-getty@",
    "console-getty",
    "cron",
    "anacron",
    "atd",
    "docker",
    "containerd",
    "systemd-",
)


class ProcfsError(ValueError):
    """A /proc text did not have the expected shape."""


@dataclass
class Process:
    pid: int
    ppid: int
    uid: int | None
    user: str | None
    cmdline: list[str]
    cwd: str | None
    start_time: float | None
    rss_kb: int | None
    unit: str | None
    comm: str = ""
    state: str = ""
    # What the kernel refused to show of this process (``"cwd"``, ``"fd"``): another
    # user's process when the reader lacks CAP_SYS_PTRACE (a container, some LXC hosts)
    # or is not root. Files that were merely absent (an exited process, a zombie) are not.
    unreadable: list[str] = field(default_factory=list)

    @property
    def joined(self) -> str:
        return " ".join(self.cmdline)


@dataclass
class Listener:
    proto: str  # "tcp" or "tcp6"
    address: str
    port: int
    inode: int
    uid: int | None = None
    pids: list[int] = field(default_factory=list)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.address)


# --- small files -------------------------------------------------------------------------


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` -> ``{"MemTotal": kB, ...}`` (values in kB, as the file gives them)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    if "MemTotal" not in out:
        raise ProcfsError("meminfo has no MemTotal line")
    return out


def memory_summary(meminfo: dict[str, int]) -> dict[str, dict[str, float | int]]:
    """Used memory as the kernel's MemAvailable sees it (page cache is not "used")."""
    total = meminfo["MemTotal"]
    available = meminfo.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = meminfo.get("MemFree", 0) + meminfo.get("Buffers", 0) + meminfo.get("Cached", 0)
    used = max(total - available, 0)
    swap_total = meminfo.get("SwapTotal", 0)
    swap_free = meminfo.get("SwapFree", 0)
    swap_used = max(swap_total - swap_free, 0)
    return {
        "memory": {
            "total_kb": total,
            "available_kb": available,
            "used_kb": used,
            "used_pct": round(100.0 * used / total, 1) if total else 0.0,
        },
        "swap": {
            "total_kb": swap_total,
            "used_kb": swap_used,
            "used_pct": round(100.0 * swap_used / swap_total, 1) if swap_total else 0.0,
        },
    }


def parse_loadavg(text: str) -> dict[str, float | int]:
    """``/proc/loadavg`` -> ``{"load1", "load5", "load15", "running", "threads"}``."""
    parts = text.split()
    if len(parts) < 4 or "/" not in parts[3]:
        raise ProcfsError(f"unexpected loadavg: {text.strip()[:80]!r}")
    running, _, threads = parts[3].partition("/")
    return {
        "load1": float(parts[0]),
        "load5": float(parts[1]),
        "load15": float(parts[2]),
        "running": int(running),
        "threads": int(threads),
    }


def parse_btime(text: str) -> int:
    """Boot time (epoch seconds) from ``/proc/stat``."""
    for line in text.splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    raise ProcfsError("/proc/stat has no btime line")


# --- per-process files -------------------------------------------------------------------


def parse_stat(text: str) -> dict[str, int | str]:
    """``/proc/<pid>/stat`` -> ``{pid, comm, state, ppid, starttime_ticks, rss_pages}``.

    The command name sits in parentheses and may itself hold spaces and parentheses, so
    the fields are split after the *last* ``)``.
    """
    open_paren = text.find("(")
    close_paren = text.rfind(")")
    if open_paren < 0 or close_paren < open_paren:
        raise ProcfsError(f"unexpected stat: {text[:80]!r}")
    rest = text[close_paren + 2 :].split()
    if len(rest) < 22:
        raise ProcfsError(f"stat has {len(rest) + 2} fields, expected at least 24")
    # rest[0] is field 3 (state); starttime is field 22, rss field 24 (proc(5)).
    return {
        "pid": int(text[:open_paren].strip()),
        "comm": text[open_paren + 1 : close_paren],
        "state": rest[0],
        "ppid": int(rest[1]),
        "starttime_ticks": int(rest[19]),
        "rss_pages": int(rest[21]),
    }


def parse_cmdline(data: bytes | str) -> list[str]:
    """NUL-separated ``/proc/<pid>/cmdline`` -> argv. Empty for kernel threads and zombies.

    A process that rewrites its title (PM2's ``PM2 v5.3.0: God Daemon (/root/.pm2)``)
    leaves one argument, sometimes padded with NULs or spaces.
    """
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    args = data.split("\0")
    while args and args[-1] == "":
        args.pop()
    if len(args) == 1:
        args[0] = args[0].rstrip()
    return args


def parse_status_uid(text: str) -> int | None:
    """Effective uid from ``/proc/<pid>/status`` (the user ``ps`` shows)."""
    for line in text.splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            if len(fields) >= 3:
                return int(fields[2])
    return None


def parse_cgroup_unit(text: str) -> str | None:
    """The systemd unit (``pm2-workbot.service``) a process runs in, if any.

    Uses the unified (``0::``) line, or the ``name=systemd`` line on cgroup v1. The path
    can carry a container prefix (``/system.slice/docker-<id>.scope/...`` when a systemd
    container shares the host's cgroup namespace), so only the deepest unit counts: a
    ``.service`` there is the unit, a ``.scope`` (login session, ``init.scope``, a
    container seen from outside) means no service.
    """
    path = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, cpath = parts
        if controllers == "name=systemd":
            path = cpath
            break
        if hid == "0" and controllers == "":
            path = cpath
    if not path:
        return None
    for component in reversed([c for c in path.split("/") if c]):
        if component.endswith(".scope"):
            return None
        if component.endswith(".service"):
            return component
    return None


def is_manager_unit(unit: str | None) -> bool:
    """True when ``unit`` is a service that supervises its processes (not ssh, cron …)."""
    if not unit or not unit.endswith(".service"):
        return False
    return not unit.startswith(_NOT_A_MANAGER_PREFIXES)


def start_epoch(starttime_ticks: int, btime: int, clk_tck: int) -> float:
    """Process start as epoch seconds from its ``starttime`` in clock ticks after boot."""
    return round(btime + starttime_ticks / clk_tck, 2)


# --- TCP listeners -----------------------------------------------------------------------


def _decode_ipv4(hexaddr: str, byteorder: str) -> str:
    fmt = "<I" if byteorder == "little" else ">I"
    return socket.inet_ntop(socket.AF_INET, struct.pack(fmt, int(hexaddr, 16)))


def _decode_ipv6(hexaddr: str, byteorder: str) -> str:
    # The kernel prints the address as four 32-bit words, each in host byte order.
    fmt = "<I" if byteorder == "little" else ">I"
    raw = b"".join(struct.pack(fmt, int(hexaddr[i : i + 8], 16)) for i in range(0, 32, 8))
    return socket.inet_ntop(socket.AF_INET6, raw)


def decode_address(hexaddr: str, byteorder: str = sys.byteorder) -> str:
    """``0100007F`` -> ``127.0.0.1``; 32 hex digits -> an IPv6 address (``::ffff:…`` kept)."""
    if len(hexaddr) == 8:
        return _decode_ipv4(hexaddr, byteorder)
    if len(hexaddr) == 32:
        return _decode_ipv6(hexaddr, byteorder)
    raise ProcfsError(f"unexpected address {hexaddr!r}")


def is_loopback(address: str) -> bool:
    """Loopback, including IPv4-mapped ``::ffff:127.x``. Wildcards are not loopback."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def parse_net_tcp(text: str, proto: str = "tcp", byteorder: str = sys.byteorder) -> list[Listener]:
    """LISTEN sockets from ``/proc/net/tcp`` or ``/proc/net/tcp6``."""
    out: list[Listener] = []
    for lineno, line in enumerate(text.splitlines()):
        fields = line.split()
        if lineno == 0 and fields[:1] == ["sl"]:
            continue
        if len(fields) < 10:
            continue
        if fields[3] != TCP_LISTEN:
            continue
        addr_hex, _, port_hex = fields[1].partition(":")
        try:
            out.append(
                Listener(
                    proto=proto,
                    address=decode_address(addr_hex, byteorder),
                    port=int(port_hex, 16),
                    inode=int(fields[9]),
                    uid=int(fields[7]),
                )
            )
        except (ValueError, OSError) as exc:
            raise ProcfsError(f"{proto} line {lineno}: {exc}") from exc
    return out


def parse_socket_link(target: str) -> int | None:
    """``socket:[12345]`` (an fd symlink) -> 12345; anything else -> None."""
    if target.startswith("socket:[") and target.endswith("]"):
        try:
            return int(target[8:-1])
        except ValueError:
            return None
    return None


# --- reading a live /proc ----------------------------------------------------------------


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def list_pids(proc_root: str = "/proc") -> list[int]:
    return sorted(int(name) for name in os.listdir(proc_root) if name.isdigit())


_USER_CACHE: dict[int, str | None] = {}


def user_name(uid: int | None) -> str | None:
    if uid is None:
        return None
    if uid not in _USER_CACHE:
        try:
            _USER_CACHE[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            _USER_CACHE[uid] = str(uid)
    return _USER_CACHE[uid]


def read_process(
    pid: int,
    proc_root: str = "/proc",
    btime: int | None = None,
    clk_tck: int = 100,
    page_kb: int = 4,
) -> Process | None:
    """One process, or None if it exited while being read. Unreadable parts stay None."""
    base = f"{proc_root}/{pid}"
    try:
        stat = parse_stat(_read_text(f"{base}/stat"))
        cmdline = parse_cmdline(_read_bytes(f"{base}/cmdline"))
        uid = parse_status_uid(_read_text(f"{base}/status"))
    except (OSError, ProcfsError):  # exited between listing and reading
        return None
    unreadable: list[str] = []
    try:
        cwd: str | None = os.readlink(f"{base}/cwd")
    except PermissionError:  # another user's process, without root or CAP_SYS_PTRACE
        cwd = None
        unreadable.append("cwd")
    except OSError:  # it just exited, or is a zombie
        cwd = None
    try:
        unit = parse_cgroup_unit(_read_text(f"{base}/cgroup"))
    except OSError:
        unit = None
    start = None
    if btime is not None:
        start = start_epoch(int(stat["starttime_ticks"]), btime, clk_tck)
    return Process(
        pid=pid,
        ppid=int(stat["ppid"]),
        uid=uid,
        user=user_name(uid),
        cmdline=cmdline,
        cwd=cwd,
        start_time=start,
        rss_kb=int(stat["rss_pages"]) * page_kb,
        unit=unit,
        comm=str(stat["comm"]),
        state=str(stat["state"]),
        unreadable=unreadable,
    )


def collect_processes(proc_root: str = "/proc") -> dict[int, Process]:
    """Every process that could be read, by pid. Kernel threads (no cmdline) are skipped."""
    try:
        btime: int | None = parse_btime(_read_text(f"{proc_root}/stat"))
    except (OSError, ProcfsError):
        btime = None
    clk_tck = os.sysconf("SC_CLK_TCK")
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    procs: dict[int, Process] = {}
    for pid in list_pids(proc_root):
        proc = read_process(pid, proc_root, btime, clk_tck, page_kb)
        if proc is not None and proc.cmdline:
            procs[pid] = proc
    return procs


def read_listeners(proc_root: str = "/proc") -> list[Listener]:
    """TCP listeners (IPv4 and IPv6) of this network namespace."""
    out: list[Listener] = []
    for name in ("tcp", "tcp6"):
        try:
            text = _read_text(f"{proc_root}/net/{name}")
        except OSError:  # no IPv6 in this kernel/namespace
            continue
        out.extend(parse_net_tcp(text, name))
    return out


def socket_owners(
    inodes: Iterable[int],
    pids: Iterable[int],
    proc_root: str = "/proc",
    denied: set[int] | None = None,
) -> dict[int, list[int]]:
    """Map socket inode -> pids holding it, by reading ``/proc/<pid>/fd/*`` symlinks.

    Without root, other users' fd directories are unreadable; root without CAP_SYS_PTRACE
    can list them but not read their links. Those sockets keep no owner, and the pids
    refused either way are added to ``denied`` when given.
    """
    wanted = set(inodes)
    owners: dict[int, list[int]] = {}
    if not wanted:
        return owners
    for pid in pids:
        fd_dir = f"{proc_root}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            if denied is not None:
                denied.add(pid)
            continue
        except OSError:
            continue
        for fd in fds:
            try:
                inode = parse_socket_link(os.readlink(f"{fd_dir}/{fd}"))
            except PermissionError:  # every link of this process is refused alike
                if denied is not None:
                    denied.add(pid)
                break
            except OSError:
                continue
            if inode in wanted and pid not in owners.setdefault(inode, []):
                owners[inode].append(pid)
    return owners


def attach_owners(listeners: list[Listener], owners: dict[int, list[int]]) -> None:
    for lst in listeners:
        lst.pids = sorted(owners.get(lst.inode, []))


def primary_owner(pids: list[int], procs: dict[int, Process]) -> int | None:
    """Of the processes sharing a listening socket (nginx master and workers, a Node
    cluster primary), the one whose parent does not hold it too."""
    held = set(pids)
    for pid in sorted(pids):
        proc = procs.get(pid)
        if proc is None or proc.ppid not in held:
            return pid
    return min(pids) if pids else None
