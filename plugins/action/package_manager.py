# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""``package_manager`` in the controller's worker: the module's work (the app's package
manager from its lockfile, its tarball fetched and checked; documented in
``plugins/modules/package_manager.py``) without shipping a module to localhost, so a steady
run pays milliseconds for it. The module itself runs the same code
(``module_utils/pkgfetch.py``)."""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pkgfetch import fetch
from ansible_collections.hardenkit.nodeapp.plugins.modules.package_manager import ARGUMENT_SPEC


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        params = {k: (os.path.expanduser(v) if k in ("src", "cache_dir") and v else v)
                  for k, v in dict(args).items()}
        try:
            return {**result, **fetch(params)}
        except ValueError as exc:
            return {**result, "failed": True, "msg": str(exc)}
