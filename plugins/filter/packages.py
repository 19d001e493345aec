# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""``packages_missing``: which Debian packages a role still has to install.

``wanted | hardenkit.nodeapp.packages_missing(dpkg.stdout_lines)`` takes the lines of
``dpkg-query --show --showformat='${Package} ${db:Status-Status}\\n' <wanted...>`` and
returns the names in ``wanted`` that dpkg does not list as ``installed`` (unknown,
removed with its configuration left, half-installed...), in the order given.

The roles ask dpkg first and run ``apt`` only when this is not empty: ``apt`` opens the
package cache even when everything is there, about 1 s per role on an idempotent run,
against ~0.1 s for dpkg-query. A name with a version or release (``pkg=1.2``,
``pkg/bookworm``) is always "missing", so apt decides about it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ansible.errors import AnsibleFilterError


def packages_missing(wanted: Iterable[str], dpkg_lines: Iterable[str]) -> list[str]:
    if isinstance(wanted, str):
        wanted = [wanted]
    if isinstance(dpkg_lines, str):
        raise AnsibleFilterError("packages_missing: dpkg_lines must be a list of lines")
    installed = set()
    for line in dpkg_lines:
        fields = str(line).split()
        if len(fields) == 2 and fields[1] == "installed":
            installed.add(fields[0].split(":", 1)[0])
    return [str(name) for name in wanted if str(name) not in installed]


class FilterModule:
    def filters(self):
        return {"packages_missing": packages_missing}
