"""Host facts that are not in /proc: disk use, the live build, logrotate coverage.

Pure parts (``build_integrity`` over file callables, ``logrotate_patterns``,
``logrotate_coverage``) are separate from the reading, so tests feed them recorded trees
and config text.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nextbuild import check_next_build

MAX_MISSING_LISTED = 20
# logrotate skips these file names in its include directory (its tabooext list).
_TABOO_SUFFIXES = (
    ".dpkg-old",
    ".dpkg-dist",
    ".dpkg-new",
    ".dpkg-bak",
    ".dpkg-del",
    ".disabled",
    ".rpmorig",
    ".rpmsave",
    ".rpmnew",
    ".swp",
    ".cfsaved",
    "~",
    ".bak",
    ".orig",
    ".ucf-old",
    ".ucf-dist",
    ".ucf-new",
)
_SCRIPT_START = ("postrotate", "prerotate", "firstaction", "lastaction", "preremove")


# --- disk -------------------------------------------------------------------------------


def existing_parent(path: str) -> str:
    """``path`` or its nearest existing ancestor (app_root may not exist yet)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and path != "/":
        path = os.path.dirname(path)
    return path


def disk_usage(paths: Iterable[str]) -> list[dict[str, Any]]:
    """``df``-style use for each filesystem holding one of ``paths`` (one entry per device)."""
    by_dev: dict[int, dict[str, Any]] = {}
    for given in paths:
        path = existing_parent(given)
        try:
            st = os.stat(path)
            vfs = os.statvfs(path)
        except OSError:
            continue
        if st.st_dev in by_dev:
            if given not in by_dev[st.st_dev]["paths"]:
                by_dev[st.st_dev]["paths"].append(given)
            continue
        total = vfs.f_blocks * vfs.f_frsize
        free_root = vfs.f_bfree * vfs.f_frsize
        avail = vfs.f_bavail * vfs.f_frsize
        used = total - free_root
        # Like df: the share of what unprivileged users can use.
        denom = used + avail
        by_dev[st.st_dev] = {
            "path": path,
            "paths": [given],
            "total_kb": total // 1024,
            "used_kb": used // 1024,
            "avail_kb": avail // 1024,
            "used_pct": round(100.0 * used / denom, 1) if denom else 0.0,
        }
    return list(by_dev.values())


# --- build ------------------------------------------------------------------------------


def build_integrity(
    current: str,
    exists: Callable[[str], bool],
    read_text: Callable[[str], str | None],
    required_files: Iterable[str] = (),
    dist_dir: str = ".next",
) -> dict[str, Any]:
    """Check the live build at ``current`` (``<app_root>/current``), whose Next.js output is
    ``dist_dir`` (``apps/web/.next`` for an app in a monorepo).

    The same completeness rule the release gate applies before a switch
    (``nextbuild.check_next_build``): ``.next/BUILD_ID`` and every file the route
    manifests name (the incident's ENOENT on ``app/page.js``, ``pages/_document.js``,
    ``app/api/health/route.js`` is a manifest entry without its file), plus
    ``required_files`` (a compiled custom server such as ``dist/server.js``). Returns
    ``{current, exists, build_id, routes, missing, missing_count, errors, ok}``.
    """
    out: dict[str, Any] = {
        "current": current,
        "exists": exists(current),
        "build_id": None,
        "routes": 0,
        "missing": [],
        "missing_count": 0,
        "errors": [],
        "ok": False,
    }
    if not out["exists"]:
        out["missing"] = [current]
        out["missing_count"] = 1
        return out

    def read(path: str) -> str:
        text = read_text(path)
        if text is None:
            raise OSError(f"cannot read {path}")
        return text

    result = check_next_build(
        current, dist_dir, required=list(required_files), read=read, exists=exists
    )
    build_id = result.get("build_id")
    out["build_id"] = str(build_id)[:64] if build_id else None
    out["routes"] = len(result.get("routes") or [])
    missing = list(result.get("missing") or [])
    out["missing_count"] = len(missing)
    out["missing"] = missing[:MAX_MISSING_LISTED]
    out["errors"] = [str(e)[:200] for e in (result.get("errors") or [])][:MAX_MISSING_LISTED]
    out["ok"] = bool(result.get("complete"))
    return out


def read_small_text(path: str, limit: int = 4 << 20) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(limit)
    except OSError:
        return None


# --- logs and logrotate -----------------------------------------------------------------


def expand_log_paths(patterns: Iterable[str], limit: int = 50) -> list[str]:
    """Glob each pattern; keep existing regular files, at most ``limit``."""
    out: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        for path in matches:
            if path not in out and os.path.isfile(path):
                out.append(path)
            if len(out) >= limit:
                return out
    return out


def logrotate_patterns(text: str) -> list[str]:
    """Log path patterns a logrotate config rotates (the words before each ``{``)."""
    patterns: list[str] = []
    depth = 0
    in_script = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if in_script:
            if line == "endscript":
                in_script = False
            continue
        if depth > 0:
            if line.split()[0] in _SCRIPT_START:
                in_script = True
                continue
            if line.startswith("}"):
                depth -= 1
            continue
        head, brace, rest = line.partition("{")
        words = [w.strip("\"'") for w in head.split()]
        # A line of log paths starts with one; "include /etc/logrotate.d" is a directive.
        if words and words[0].startswith("/"):
            patterns.extend(w for w in words if w.startswith("/"))
        if brace and "}" not in rest:  # a one-line stanza "{ ... }" closes itself
            depth += 1
    return patterns


def _covers(pattern: str, path: str, is_dir: bool) -> bool:
    pattern = os.path.normpath(pattern)
    path = os.path.normpath(path)
    if is_dir:
        # A directory is covered when a pattern rotates files directly inside it.
        return os.path.dirname(pattern) == path
    return pattern == path or fnmatch.fnmatchcase(path, pattern)


def logrotate_coverage(required: Mapping[str, bool], configs: Mapping[str, str]) -> dict[str, Any]:
    """Which ``required`` log paths (path -> is_dir) a logrotate config rotates.

    ``configs`` maps config file name -> text. Returns ``{covered: {path: file},
    uncovered: [path]}``.
    """
    patterns = [
        (name, pat) for name, text in sorted(configs.items()) for pat in logrotate_patterns(text)
    ]
    covered: dict[str, str] = {}
    uncovered: list[str] = []
    for path, is_dir in required.items():
        hit = next((name for name, pat in patterns if _covers(pat, path, is_dir)), None)
        if hit:
            covered[path] = hit
        else:
            uncovered.append(path)
    return {"covered": covered, "uncovered": uncovered}


def read_logrotate_dir(directory: str) -> tuple[dict[str, str], str | None]:
    """Config texts of ``directory`` by file name, as logrotate would include them."""
    configs: dict[str, str] = {}
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return configs, f"{directory} does not exist"
    except OSError as exc:
        return configs, f"cannot list {directory}: {exc.strerror}"
    for name in names:
        if name.startswith(".") or name.endswith(_TABOO_SUFFIXES):
            continue
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        text = read_small_text(path, 1 << 20)
        if text is not None:
            configs[name] = text
    return configs, None
