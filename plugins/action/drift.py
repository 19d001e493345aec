# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""``drift``: documented in ``plugins/modules/drift.py``. An entry of ``paths`` may say
what writes it: ``template`` (a role template, rendered here on the control node exactly
as ``lookup('ansible.builtin.template', ...)`` renders it), ``file`` (a role file, as
``lookup('ansible.builtin.file', ..., rstrip=false)`` reads it) or ``content`` (the text
itself); only its SHA-1 goes to the host. So a role states each file once (``path``, one
of those, ``owner``, ``group``, ``mode``) and both its write task and this check read
that entry; ``template_vars`` are the template's own variables, as the template lookup
and module take them. Keys the module does not compare (``validate``) stay on the control
node."""

from __future__ import annotations

import hashlib

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import lookup_loader

from ansible_collections.hardenkit.nodeapp.plugins.modules.drift import ARGUMENT_SPEC

MODULE = "hardenkit.nodeapp.drift"
# What the module compares (its options for an entry); the rest of an entry is for the
# role's write task.
_COMPARED = tuple(ARGUMENT_SPEC["paths"]["options"])
# What writes a file, from which its SHA-1 is computed here.
_SOURCES = ("template", "file", "content")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def _text_of(self, kind: str, entry: dict, task_vars: dict) -> str:
        name = str(entry[kind])
        if kind == "content":
            return name
        if kind == "template":
            lookup = lookup_loader.get(
                "ansible.builtin.template", loader=self._loader, templar=self._templar
            )
            extra = entry.get("template_vars") or {}
            return str(lookup.run([name], variables=task_vars, template_vars=extra)[0])
        lookup = lookup_loader.get(
            "ansible.builtin.file", loader=self._loader, templar=self._templar
        )
        return str(lookup.run([name], variables=task_vars, rstrip=False)[0])

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        paths = args.get("paths") or []
        if not isinstance(paths, list):
            raise AnsibleActionFail("paths must be a list of entries")
        wanted = []
        for i, entry in enumerate(paths):
            if not isinstance(entry, dict):
                raise AnsibleActionFail(f"paths[{i}] must be a dict (got {entry!r})")
            want = {k: entry[k] for k in _COMPARED if k in entry}
            sources = [k for k in _SOURCES if entry.get(k) is not None] + (
                ["sha1"] if "sha1" in entry else []
            )
            if len(sources) > 1:
                raise AnsibleActionFail(f"paths[{i}] gives {' and '.join(sources)}: one at most")
            if sources and sources[0] != "sha1":
                text = self._text_of(sources[0], entry, task_vars)
                want["sha1"] = hashlib.sha1(text.encode("utf-8")).hexdigest()
            wanted.append(want)
        args["paths"] = wanted
        result.update(
            self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        )
        return result
