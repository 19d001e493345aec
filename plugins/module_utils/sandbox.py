# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Which of a service's sandbox settings this host can apply.

Some hosts cannot apply every systemd protection: where root lacks CAP_SYS_PTRACE (some
container and LXC hosts), ``PrivateUsers=yes`` together with ``ProtectProc=invisible`` fails
with exit status 217/USER ("Failed to set up user namespacing"), and the service never
starts. :func:`fit` finds the settings a host accepts by starting throw-away units, so the
app runs with every protection the host can give instead of not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

# systemd's exit statuses for a service that failed while being set up (systemd.exec(5),
# "Process Exit Codes").
EXIT_NAMES = {
    200: "CHDIR",
    203: "EXEC",
    204: "MEMORY",
    205: "LIMITS",
    210: "CHROOT",
    214: "SETSCHEDULER",
    216: "GROUP",
    217: "USER",
    218: "CAPABILITIES",
    219: "CGROUP",
    225: "NETWORK",
    226: "NAMESPACE",
    227: "NO_NEW_PRIVILEGES",
    228: "SECCOMP",
    230: "PERSONALITY",
    231: "APPARMOR_PROFILE",
    232: "ADDRESS_FAMILIES",
    245: "BPF",
}

# A probe: the settings to try, and the result (0 when a unit with them ran /bin/true).
Probe = Callable[[Sequence[str]], int]


def status_text(rc: int) -> str:
    name = EXIT_NAMES.get(rc)
    return f"{rc}/{name}" if name else str(rc)


def fit(settings: Sequence[str], probe: Probe) -> tuple[list[str], list[dict[str, Any]], int]:
    """The settings a host accepts, the ones it does not, and how many units it took.

    One probe with all of them on a host that accepts them. Otherwise they are added one at
    a time, in their order, and a setting that makes the unit fail with those kept before it
    is left out: where two settings cannot be applied together, the later one goes.
    ``probe`` must accept an empty list (the bare unit); a host where even that fails raises
    ``RuntimeError``, since no setting is to blame.
    """
    rc = probe(settings)
    probes = 1
    if rc == 0:
        return list(settings), [], probes
    rc = probe([])
    probes += 1
    if rc != 0:
        raise RuntimeError(
            f"a unit without any sandbox setting failed too (status {status_text(rc)})"
        )
    kept: list[str] = []
    dropped: list[dict[str, Any]] = []
    for setting in settings:
        rc = probe([*kept, setting])
        probes += 1
        if rc == 0:
            kept.append(setting)
        else:
            dropped.append({"setting": setting, "status": status_text(rc), "with": list(kept)})
    return kept, dropped, probes
