"""Checks on module options that an argument_spec cannot express.

Each error names the offending input the way a user wrote it (``probes[1].status``,
``thresholds.memory_warn_pct``), so ``fail_json`` can say exactly what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.findings import DEFAULT_THRESHOLDS


class OptionError(ValueError):
    """An option value the module cannot use; the message names the option."""


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise OptionError(f"{name} must be an integer, got {value!r}")
    try:
        as_float = float(value)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"{name} must be an integer, got {value!r}") from exc
    if as_float != int(as_float):
        raise OptionError(f"{name} must be an integer, got {value!r}")
    return int(as_float)


def validate_port(value: Any, name: str) -> int:
    port = _int(value, name)
    if not 1 <= port <= 65535:
        raise OptionError(f"{name} must be a TCP port 1-65535, got {port}")
    return port


def validate_probes(probes: Any) -> list[dict[str, Any]]:
    """``[{path: "/", status: 200}, ...]``: path starts with ``/``, status 100-599."""
    if probes is None:
        return [{"path": "/", "status": 200}]
    if not isinstance(probes, list):
        raise OptionError(f"probes must be a list of {{path, status}}, got {type(probes).__name__}")
    out = []
    for idx, entry in enumerate(probes):
        name = f"probes[{idx}]"
        if not isinstance(entry, Mapping):
            raise OptionError(f"{name} must be a dict {{path, status}}, got {entry!r}")
        unknown = sorted(set(entry) - {"path", "status"})
        if unknown:
            raise OptionError(
                f"{name} has unknown key(s) {', '.join(unknown)}; expected path, status"
            )
        path = entry.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise OptionError(f"{name}.path must be a string starting with '/', got {path!r}")
        if any(ch.isspace() for ch in path):
            raise OptionError(f"{name}.path must not contain whitespace, got {path!r}")
        status = _int(entry.get("status", 200), f"{name}.status")
        if not 100 <= status <= 599:
            raise OptionError(f"{name}.status must be an HTTP status 100-599, got {status}")
        out.append({"path": path, "status": status})
    return out


def merge_thresholds(given: Mapping[str, Any] | None) -> dict[str, float]:
    """Defaults overlaid with ``given``; unknown keys and warn >= crit are errors."""
    merged: dict[str, float] = dict(DEFAULT_THRESHOLDS)
    for key, value in (given or {}).items():
        name = f"thresholds.{key}"
        if key not in DEFAULT_THRESHOLDS:
            raise OptionError(
                f"{name} is not a known threshold; known: {', '.join(DEFAULT_THRESHOLDS)}"
            )
        if isinstance(value, bool):
            raise OptionError(f"{name} must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"{name} must be a number, got {value!r}") from exc
        if number <= 0:
            raise OptionError(f"{name} must be > 0, got {value!r}")
        merged[key] = number
    for kind in ("memory", "disk"):
        for level in ("warn", "crit"):
            if merged[f"{kind}_{level}_pct"] > 100:
                raise OptionError(f"thresholds.{kind}_{level}_pct must be <= 100")
    for warn, crit in (
        ("memory_warn_pct", "memory_crit_pct"),
        ("disk_warn_pct", "disk_crit_pct"),
        ("load_warn_per_cpu", "load_crit_per_cpu"),
    ):
        if merged[warn] > merged[crit]:
            raise OptionError(
                f"thresholds.{warn} ({merged[warn]:g}) must not exceed "
                f"thresholds.{crit} ({merged[crit]:g})"
            )
    return merged


# An http(s) URL of RFC 3986's characters only: no space, control character, quote, `;`,
# `{` or `}` (a value that reaches a unit file or a settings file).
WEBHOOK_URL_RE = re.compile(
    r"\Ahttps?://[A-Za-z0-9._~%!$&()*+,=:@\[\]-]+([/?#][A-Za-z0-9._~%!$&()*+,=:@/?#\[\]-]*)?\Z"
)


def webhook_url_errors(
    url: Any, name: str, allow_http: bool, allow_name: str, sends: str
) -> list[str]:
    """What is wrong with a webhook URL setting ``name`` (empty: none wanted); the URL is
    never shown, as it may hold a credential. ``http://`` only with ``allow_name`` true
    (``allow_http``); ``sends`` says what would travel in clear."""
    if url is None or url == "":
        return []
    if not isinstance(url, str) or not WEBHOOK_URL_RE.match(url):
        return [
            f"{name} must be empty or an https URL without spaces, control characters,"
            " quotes, ; { or } (value not shown: it may hold a credential)"
        ]
    if url.startswith("http://") and not allow_http:
        return [
            f"{name} must be https: a plain http URL sends {sends} in clear; set"
            f" {allow_name}: true to allow it"
        ]
    return []


def is_list(value: Any) -> bool:
    """A YAML sequence (a string or a mapping is not one)."""
    return isinstance(value, (list, tuple))


# A part of a shared path: a name, not hidden (no ., .. or dotfile), of these characters.
SHARED_PART_RE = re.compile(r"\A[A-Za-z0-9_@+-][A-Za-z0-9._@+-]*\Z")
# What the build or the kit owns at the top of the app's directory: never a shared path.
SHARED_RESERVED = ("node_modules", "public", "next-cache", "package.json", "server.js")


def shared_path_errors(paths: Any, name: str, dist_dir: str) -> list[str]:
    """What is wrong with ``paths`` (app_release_shared_paths): a list of paths relative to
    the app's directory, each a name or names joined by ``/``, none the build's own
    (``node_modules``, ``public`` itself, the dist directory ``dist_dir``), none inside
    another. One message per problem, naming the entry."""
    if not is_list(paths):
        return [
            f"{name} must be a list of paths relative to the app's directory"
            " (e.g. [public/uploads, data])"
        ]
    out: list[str] = []
    seen: list[str] = []
    reserved = (*SHARED_RESERVED, dist_dir.strip("/"))
    for index, path in enumerate(paths):
        parts = path.split("/") if isinstance(path, str) else []
        if not parts or not all(SHARED_PART_RE.match(part) for part in parts):
            out.append(
                f"{name}[{index}] must be a relative path of names (letters, digits and"
                f" . _ - + @, none hidden, no . or ..; e.g. public/uploads), got {path!r}"
            )
            continue
        if parts[0] in reserved and (len(parts) == 1 or parts[0] != "public"):
            out.append(
                f"{name}[{index}] ({path}) is the build's or the kit's own; share a"
                " directory of the app's own, such as public/uploads or data"
            )
            continue
        for other in seen:
            if path == other or path.startswith(other + "/") or other.startswith(path + "/"):
                out.append(f"{name}[{index}] ({path}) overlaps {other}: list each place once")
                break
        else:
            seen.append(path)
    return out


# Next.js's Server Actions key: an AES key of 128, 192 or 256 bits, base64-encoded.
ACTIONS_KEY_RE = re.compile(r"\A(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")


def actions_key_error(key: Any, name: str) -> str:
    """What is wrong with ``key`` as NEXT_SERVER_ACTIONS_ENCRYPTION_KEY ('' when nothing):
    base64 of 16, 24 or 32 bytes. The message names ``name``, never the value."""
    if isinstance(key, str) and ACTIONS_KEY_RE.match(key):
        size = len(key) // 4 * 3 - key.count("=")
        if size in (16, 24, 32):
            return ""
    return (
        f"{name} must be an AES key of 16, 24 or 32 bytes in base64 (e.g. the output of"
        " `openssl rand -base64 32`), or be left out for the kit to keep one"
    )


HOOK_PHASES = ("before_switch", "after_switch")
HOOK_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}\Z")


def _as_hook(entry: Any) -> Mapping[str, Any]:
    """A hook as written: a command alone, or a mapping."""
    return entry if isinstance(entry, Mapping) else {"command": entry}


def hook_errors(hooks: Any, name: str) -> list[str]:
    """What is wrong with ``hooks`` (app_release_hooks): a mapping of before_switch and
    after_switch to lists of hooks, each a command or ``{command, name, once}``. One message
    per problem, naming the entry."""
    if hooks is None or hooks == {}:
        return []
    if not isinstance(hooks, Mapping):
        return [f"{name} must be a mapping of before_switch and after_switch to lists of commands"]
    out = [
        f"{name}.{key} is not a hook phase: use before_switch or after_switch"
        for key in hooks
        if key not in HOOK_PHASES
    ]
    for phase in HOOK_PHASES:
        entries = hooks.get(phase) or []
        if not is_list(entries):
            out.append(f"{name}.{phase} must be a list of commands")
            continue
        names: set[str] = set()
        for index, entry in enumerate(entries):
            where = f"{name}.{phase}[{index}]"
            hook = _as_hook(entry)
            extra = sorted(set(hook) - {"command", "name", "once"})
            command = hook.get("command")
            hook_name = hook.get("name", "")
            if extra:
                out.append(
                    f"{where} has unknown keys {', '.join(map(str, extra))}:"
                    " a hook has command, name and once"
                )
            elif not isinstance(command, str) or not command.strip():
                out.append(f"{where} must be a command, or {{command: ..., name: ..., once: ...}}")
            elif not isinstance(hook.get("once", False), bool):
                out.append(f"{where}.once must be true or false")
            elif hook_name and (
                not isinstance(hook_name, str) or not HOOK_NAME_RE.match(hook_name)
            ):
                out.append(f"{where}.name must be up to 63 letters, digits, spaces and . _ -")
            elif hook_name and hook_name in names:
                out.append(f"{where}.name {hook_name} is given twice")
            names.add(hook_name)
    return out


def release_hooks(hooks: Any, phase: str) -> list[dict[str, Any]]:
    """The hooks of ``phase`` as ``{name, command, once}``, in their order; a hook without
    a name is called by its place (``before_switch[0]``). Checked by hook_errors first."""
    entries = (hooks or {}).get(phase) or [] if isinstance(hooks, Mapping) else []
    out = []
    for index, entry in enumerate(entries):
        hook = _as_hook(entry)
        out.append(
            {
                "name": hook.get("name") or f"{phase}[{index}]",
                "command": str(hook.get("command", "")),
                "once": bool(hook.get("once", False)),
            }
        )
    return out
