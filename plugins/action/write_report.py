# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""``write_report``: a report's files on the control node, in one task.

Documented in ``plugins/modules/write_report.py`` (``ansible-doc``). It runs entirely in
the controller's worker: no module is shipped anywhere, so it costs a few milliseconds
where the ``file``/``copy``/``template``/``copy`` tasks it replaces, delegated to
localhost, ran five modules (about 2 s per host on the default strategy).
"""

from __future__ import annotations

import json
import os
import re
import tempfile

from ansible.plugins.action import ActionBase

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.fleet import report_summary

_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

ARGUMENT_SPEC = {
    "dir": {"type": "path", "required": True},
    "stem": {"type": "str", "required": True},
    "files": {"type": "dict", "required": True},
    "latest": {"type": "bool", "default": True},
    "mode": {"type": "raw", "default": "0640"},
    "dir_mode": {"type": "raw", "default": "0750"},
    "summarize": {"type": "bool", "default": False},
}


def _mode(value: object, name: str) -> int:
    text = str(value)
    if not re.fullmatch(r"0?[0-7]{3,4}", text):
        raise ValueError(f"{name} must be an octal mode such as '0640' (got {value!r})")
    return int(text, 8)


def _write(path: str, content: str, mode: int) -> None:
    """Atomically: a reader sees the old file or the new one, never half of it."""
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            mode = _mode(args["mode"], "mode")
            dir_mode = _mode(args["dir_mode"], "dir_mode")
        except ValueError as exc:
            return {**result, "failed": True, "msg": str(exc)}
        stem, files = args["stem"], args["files"]
        if not _STEM.match(stem) or stem == "latest":
            return {
                **result,
                "failed": True,
                "msg": f"stem must be a plain file name other than 'latest' (got {stem!r})",
            }
        bad = [ext for ext in files if not re.fullmatch(r"[a-z0-9]+", str(ext))]
        if bad or not files:
            msg = f"files must map extensions (json, md...) to contents (got {sorted(files)!r})"
            return {**result, "failed": True, "msg": msg}

        summary = None
        if args["summarize"]:
            try:
                summary = report_summary(
                    json.loads(str(files.get("json", ""))),
                    os.path.join(args["dir"], f"{stem}.md") if "md" in files else None,
                )
            except ValueError as exc:  # json.JSONDecodeError is one
                return {
                    **result,
                    "failed": True,
                    "msg": f"summarize needs files.json to be a report: {exc}",
                }

        directory = args["dir"]
        paths = {}
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, mode=dir_mode, exist_ok=True)
            for ext, content in files.items():
                text = content if isinstance(content, str) else str(content)
                if text and not text.endswith("\n"):
                    text += "\n"
                paths[ext] = os.path.join(directory, f"{stem}.{ext}")
                _write(paths[ext], text, mode)
                if args["latest"]:
                    _write(os.path.join(directory, f"latest.{ext}"), text, mode)
        except OSError as exc:
            return {
                **result,
                "failed": True,
                "msg": f"could not write the report in {directory}: {exc}",
            }
        # A report describes the hosts; writing it changes none of them (changed=0 on an
        # idempotent run, and it is written in check mode too).
        done = {**result, "changed": False, "dir": directory, "paths": paths}
        return done if summary is None else {**done, "summary": summary}
