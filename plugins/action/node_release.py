# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""``node_release`` in the controller's worker (module_utils/inworker.py): documented in
``plugins/modules/node_release.py``, whose code (``module_utils/nodefetch.py``) it runs."""

from __future__ import annotations

from ansible.utils.display import Display

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.inworker import InWorkerAction
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nodefetch import release
from ansible_collections.hardenkit.nodeapp.plugins.modules.node_release import ARGUMENT_SPEC


class ActionModule(InWorkerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    PATHS = ("app_dir", "workspace_dir", "cache_dir")

    def work(self, params):
        return release(params, Display().warning)
