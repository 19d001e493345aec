# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""``node_release`` in the controller's worker: the module's work (decide the Node.js
release, fetch and check its build; documented in ``plugins/modules/node_release.py``)
without shipping a module, so validation and a steady run pay milliseconds for it, not a
module run on localhost. The module itself runs the same code
(``module_utils/nodefetch.py``)."""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nodefetch import release
from ansible_collections.hardenkit.nodeapp.plugins.modules.node_release import ARGUMENT_SPEC


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        params = dict(args)
        for key in ("app_dir", "cache_dir"):
            params[key] = os.path.expanduser(params[key]) if params[key] else params[key]
        try:
            found = release(params, Display().warning)
        except ValueError as exc:
            return {**result, "failed": True, "msg": str(exc)}
        return {**result, **found}
