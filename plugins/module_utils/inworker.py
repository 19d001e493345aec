# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""A module's work run in the controller's worker, by an action plugin of the same name.

For the control-node modules (``node_release``, ``package_manager``): the module and its
action plugin share their code in module_utils; the action runs it in-process, so a
steady run pays milliseconds instead of a module run on localhost. Controller-only: no
module imports this file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

from ansible.plugins.action import ActionBase


class InWorkerAction(ActionBase):
    """Subclasses set ARGUMENT_SPEC, PATHS (options to expand ~ in) and work(params)."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    ARGUMENT_SPEC: ClassVar[dict[str, Any]] = {}
    PATHS: tuple[str, ...] = ()
    work: Callable[[dict[str, Any]], dict[str, Any]]

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        params = {
            k: (os.path.expanduser(v) if k in self.PATHS and v else v)
            for k, v in dict(args).items()
        }
        try:
            return {**result, **self.work(params)}
        except ValueError as exc:
            return {**result, "failed": True, "msg": str(exc)}
