# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""``package_manager`` in the controller's worker (module_utils/inworker.py): documented in
``plugins/modules/package_manager.py``, whose code (``module_utils/pkgfetch.py``) it runs."""

from __future__ import annotations

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.inworker import InWorkerAction
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pkgfetch import fetch
from ansible_collections.hardenkit.nodeapp.plugins.modules.package_manager import ARGUMENT_SPEC


class ActionModule(InWorkerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    PATHS = ("src", "cache_dir")

    def work(self, params):
        return fetch(params)
