# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Which Debian packages are still to be installed, from dpkg-query's answer."""

from __future__ import annotations

from collections.abc import Iterable

# dpkg-query --show --showformat=<this> <names...>: "<package> <status> <version>" each.
SHOW_FORMAT = "${Package} ${db:Status-Status} ${Version}\\n"


def installed_versions(dpkg_lines: Iterable[str]) -> dict[str, str]:
    """Package name (without an architecture suffix such as ``:amd64``) to version, for
    the lines of ``dpkg-query --show --showformat=SHOW_FORMAT`` whose status is
    ``installed``. Lines without the version field (the format without ``${Version}``)
    give an empty version."""
    out = {}
    for line in dpkg_lines:
        fields = str(line).split()
        if len(fields) in (2, 3) and fields[1] == "installed":
            out[fields[0].split(":", 1)[0]] = fields[2] if len(fields) == 3 else ""
    return out


def packages_missing(wanted: Iterable[str], dpkg_lines: Iterable[str]) -> list[str]:
    """The names in ``wanted`` that dpkg does not list as ``installed`` (unknown, removed
    with its configuration left, half-installed...), in the order given. A name with a
    version or release (``pkg=1.2``, ``pkg/bookworm``) is always missing, so apt decides
    about it."""
    installed = installed_versions(dpkg_lines)
    return [str(name) for name in wanted if str(name) not in installed]
