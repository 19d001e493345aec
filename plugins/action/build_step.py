# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""``build_step``: one install or build step on the host, with progress while it runs.

Documented in ``plugins/modules/build_step.py`` (``ansible-doc``). The step's command
(a ``systemd-run --wait --pipe`` unit, roles/app_release) is started in the background on
the host, in a session of its own, with its standard input (the environment, secrets
included) handed over on the connection's standard input: never on a command line, never
in a file. Its output goes to the build log, which only root reads. The plugin then asks
the host every few seconds for the step's exit status and the log's last line, and prints
the elapsed time and that line at least every ``interval`` seconds, so a step of minutes
is not silent.
"""

from __future__ import annotations

import re
import shlex
import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.redact import redact_text

display = Display()

ARGUMENT_SPEC = {
    "argv": {"type": "list", "elements": "str", "required": True},
    "stdin": {"type": "str", "default": ""},
    "log": {"type": "path", "required": True},
    "label": {"type": "str", "required": True},
    "timeout": {"type": "int", "required": True},
    "interval": {"type": "int", "default": 30},
    "secrets": {"type": "list", "elements": "str", "default": [], "no_log": True},
    "tail_lines": {"type": "int", "default": 60},
}
_MARK = "--hardenkit-build-step--"
# Terminal control sequences a build's progress output carries (colours, line erasing).
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str, secrets: list[str]) -> str:
    """A log excerpt fit to print: control sequences out, the last state of a line that
    redraws itself (``\\r``), secrets masked."""
    lines = []
    for line in text.splitlines():
        line = _CONTROL.sub("", line.rsplit("\r", 1)[-1]).rstrip()
        for secret in secrets:
            if len(secret) >= 4:
                line = line.replace(secret, "***")
        lines.append(redact_text(line))
    return "\n".join(lines)


def elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def _sh(self, cmd: str, in_data: bytes | None = None) -> dict:
        return self._low_level_execute_command(cmd, in_data=in_data)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if self._task.check_mode:
            return {**result, "skipped": True, "msg": "not run in check mode"}
        log, label, secrets = args["log"], args["label"], args["secrets"]
        rc_file = f"{log}.rc"
        host = self._task_vars_host(task_vars)
        command = shlex.join(args["argv"])
        q = shlex.quote
        # fd 3 keeps the connection's standard input for the background job (a background
        # list's own standard input is /dev/null in a shell without job control).
        job = (
            f"{command} >>{q(log)} 2>&1; echo $? >{q(rc_file + '.tmp')};"
            f" mv {q(rc_file + '.tmp')} {q(rc_file)}"
        )
        launcher = (
            f"exec 3<&0; rm -f {q(rc_file)} {q(rc_file + '.tmp')} || exit 1; "
            f"touch {q(log)} && chmod 0600 {q(log)} || exit 1; "
            f"printf '\\n== %s %s\\n' {q(label)} \"$(date -u +%FT%TZ)\" >>{q(log)} || exit 1; "
            f"wc -c <{q(log)} || exit 1; "
            f"setsid sh -c {q(job)} <&3 >/dev/null 2>&1 &"
        )
        started = self._sh(f"sh -c {q(launcher)}", in_data=str(args["stdin"]).encode())
        if started.get("rc") != 0:
            return {
                **result,
                "failed": True,
                "changed": False,
                "msg": f"{label} could not start: {clean(started.get('stderr', ''), secrets)}",
            }
        try:
            offset = int(started.get("stdout", "").split()[0]) + 1
        except (IndexError, ValueError):
            offset = 1
        # This step's output only (an earlier step's, and this one's heading, are above it).
        mine = f"tail -c +{offset} {q(log)}"
        display.display(f"[{host}] {label}: started, log {log}")
        begin = last_shown = time.monotonic()
        poll = f"cat {q(rc_file)} 2>/dev/null; echo {_MARK}; {mine} 2>/dev/null | tail -c 4096"
        shown_line = None
        while True:
            time.sleep(1 if time.monotonic() - begin < 10 else 2)
            out = self._sh(poll).get("stdout", "")
            rc_text, _, tail = out.partition(_MARK)
            now = time.monotonic()
            if rc_text.strip():
                break
            if now - begin > args["timeout"] + 60:
                return {
                    **result,
                    "failed": True,
                    "changed": True,
                    "log": log,
                    "msg": f"{label} did not end within {args['timeout']} s; see {log}",
                }
            if now - last_shown >= args["interval"]:
                lines = [line for line in clean(tail, secrets).splitlines() if line.strip()]
                line = lines[-1] if lines else "(no output yet)"
                repeat = " (no new output)" if line == shown_line else ""
                display.display(f"[{host}] {label}: {elapsed(now - begin)}: {line[:200]}{repeat}")
                shown_line, last_shown = line, now
        try:
            rc = int(rc_text.strip())
        except ValueError:
            rc = 1
        lines = clean(tail, secrets).splitlines()
        whole = self._sh(f"{mine} | tail -n {int(args['tail_lines'])}").get("stdout", "")
        stdout = clean(whole, secrets) if whole else "\n".join(lines)
        took = time.monotonic() - begin
        display.display(
            f"[{host}] {label}: {'done' if rc == 0 else f'failed (exit {rc})'}"
            f" after {elapsed(took)}, log {log}"
        )
        return {
            **result,
            "changed": True,
            "failed": rc != 0,
            "rc": rc,
            "stdout": stdout,
            "stderr": "",
            "log": log,
            "elapsed": round(took, 1),
            **(
                {"msg": f"{label} failed with exit status {rc}; the whole log is {log}"}
                if rc
                else {}
            ),
        }

    @staticmethod
    def _task_vars_host(task_vars) -> str:
        return str((task_vars or {}).get("inventory_hostname", "?"))
