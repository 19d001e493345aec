# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""``release``: documented in ``plugins/modules/release.py``. With ``action: stage`` and
``src`` (a source archive on the control node), the archive is copied to a temporary file
on the host, which the module unpacks into the build directory as the app user, and
removed afterwards: one task for what took a stage, a stat and an unarchive. Any other
call runs the module as it is."""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

MODULE = "hardenkit.nodeapp.release"


class ActionModule(ActionBase):
    # No temporary directory on the host but for a source to copy (pipelining runs the
    # module without one).
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        src = args.pop("src", None)
        try:
            if src and not self._task.check_mode:
                src = os.path.expanduser(str(src))
                if not os.path.isfile(src):
                    raise AnsibleActionFail(f"src {src} is not a file on the control node")
                shell = self._connection._shell
                remote = shell.join_path(self._make_tmp_path(), "source.tar.gz")
                self._transfer_file(src, remote)
                self._fixup_perms2((shell.tmpdir, remote))
                args["archive"] = remote
            result.update(
                self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
            )
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
