# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""``packages_missing``: which Debian packages a role still has to install;
``package_manager_files``: what installing the app's package manager puts on the host.

``wanted | hardenkit.nodeapp.packages_missing(dpkg.stdout_lines)`` takes the lines of
``dpkg-query --show --showformat='${Package} ${db:Status-Status}\\n' <wanted...>`` and
returns the names in ``wanted`` that dpkg does not list as ``installed`` (unknown,
removed with its configuration left, half-installed...), in the order given.

The roles' own step is the ``hardenkit.nodeapp.system_packages`` action, which uses the
same rule (``module_utils/dpkg.py``); this filter is for playbooks of your own. A name
with a version or release (``pkg=1.2``, ``pkg/bookworm``) is always "missing", so apt
decides about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.module_utils import dpkg
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pkgmanager import host_files


def packages_missing(wanted: Iterable[str], dpkg_lines: Iterable[str]) -> list[str]:
    if isinstance(wanted, str):
        wanted = [wanted]
    if isinstance(dpkg_lines, str):
        raise AnsibleFilterError("packages_missing: dpkg_lines must be a list of lines")
    return dpkg.packages_missing(wanted, dpkg_lines)


def package_manager_files(pm: Mapping[str, object], pm_dir: str, node_bin: str) -> list[dict]:
    """``app_release_pm | hardenkit.nodeapp.package_manager_files(dir, node)``: see
    ``module_utils/pkgmanager.host_files``."""
    try:
        return host_files(pm, str(pm_dir), str(node_bin))
    except ValueError as exc:
        raise AnsibleFilterError(f"package_manager_files: {exc}") from exc


class FilterModule:
    def filters(self):
        return {
            "packages_missing": packages_missing,
            "package_manager_files": package_manager_files,
        }
