# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""``system_packages``: documented in ``plugins/modules/system_packages.py``. Asks dpkg
which of ``names`` are installed (one command on the host, no module shipped) and runs
``ansible.builtin.apt`` for the missing ones only: apt opens its package cache even when
nothing is missing (about 1 s), dpkg-query takes about 0.1 s. The one home of the step
every role that needs a Debian package used to spell out as two tasks."""

from __future__ import annotations

import shlex

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.dpkg import (
    SHOW_FORMAT,
    installed_versions,
    packages_missing,
)
from ansible_collections.hardenkit.nodeapp.plugins.modules.system_packages import ARGUMENT_SPEC


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def _dpkg_lines(self, names: list[str]) -> list[str]:
        query = " ".join(
            ["dpkg-query", "--show", "--showformat=" + shlex.quote(SHOW_FORMAT)]
            + [shlex.quote(n) for n in names]
        )
        out = self._low_level_execute_command(query)
        # 1: a package dpkg has never heard of, which apt then installs.
        if out["rc"] not in (0, 1):
            raise AnsibleActionFail(
                f"dpkg-query failed (rc {out['rc']}): {out.get('stderr', '').strip()}"
            )
        return str(out.get("stdout", "")).splitlines()

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        names = [str(n) for n in args["names"]]
        lines = self._dpkg_lines(names) if names else []
        missing = packages_missing(names, lines)
        result.update(changed=False, missing=missing, versions=installed_versions(lines))
        if not missing:
            return result
        if self._task.check_mode:
            result.update(changed=True, msg=f"would install {', '.join(missing)}")
            return result
        apt = self._execute_module(
            module_name="ansible.builtin.apt",
            module_args={
                "name": missing,
                "state": "present",
                "update_cache": True,
                "cache_valid_time": args["cache_valid_time"],
                # Apps of one machine (hardenkit_machine) install at once: the second waits
                # for the first's dpkg lock, longer than apt's 60 s default.
                "lock_timeout": 600,
            }
            | (
                {}
                if args["install_recommends"] is None
                else {"install_recommends": args["install_recommends"]}
            ),
            task_vars=task_vars,
        )
        result.update(apt)
        if not apt.get("failed"):
            result["versions"] = installed_versions(self._dpkg_lines(names))
        return result
