"""Count known error patterns in the tail of log files.

Logs that grew without bound are part of the problem this kit fixes, so a file is read
from its end in blocks and never whole.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.redact import redact_text, shorten

SAMPLES_PER_PATTERN = 3
SAMPLE_CHARS = 300
_BLOCK = 64 * 1024
# A file of one giant line must not be read whole either.
MAX_TAIL_BYTES = 8 * 1024 * 1024

PATTERNS: dict[str, re.Pattern[str]] = {
    "ENOENT": re.compile(r"\bENOENT\b"),
    "EADDRINUSE": re.compile(r"\bEADDRINUSE\b"),
    "heap out of memory": re.compile(r"heap out of memory", re.IGNORECASE),
    "unhandled rejection": re.compile(
        r"UnhandledPromiseRejection|Unhandled Rejection|unhandledRejection"
    ),
    # The database refusing connections (PostgreSQL's SQLSTATE 53300, MySQL's "Too many
    # connections") or a pool giving up waiting for one (node-postgres, Prisma, Knex).
    "database connections": re.compile(
        r"too many (?:clients|connections)|\b53300\b|remaining connection slots are reserved"
        r"|timeout exceeded when trying to connect|connection terminated due to connection timeout"
        r"|timed out fetching a new connection from the connection pool"
        r"|timeout acquiring a connection",
        re.IGNORECASE,
    ),
    # Nginx failing to reach or hear from the app. "connect() to <peer> failed" is the
    # immediate failure (a unix socket, or a refusal on connect itself), "connect() failed"
    # the one found later; a reset reads as a recv() failure.
    "upstream": re.compile(
        r"connect\(\) (?:to \S+ )?failed|upstream prematurely closed|no live upstreams"
        r"|upstream timed out|recv\(\) failed \([^)]*\) while reading response header from upstream"
    ),
}


def tail_lines(path: str, count: int, max_bytes: int = MAX_TAIL_BYTES) -> list[str]:
    """The last ``count`` lines of ``path``, reading backwards from the end."""
    if count <= 0:
        return []
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        pos = end
        chunks: list[bytes] = []
        newlines = 0
        read = 0
        while pos > 0 and newlines <= count and read < max_bytes:
            size = min(_BLOCK, pos, max_bytes - read)
            pos -= size
            fh.seek(pos)
            chunk = fh.read(size)
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
            read += size
    data = b"".join(reversed(chunks))
    lines = data.decode("utf-8", errors="replace").splitlines()
    if pos > 0 and lines:
        lines = lines[1:]  # the first line was cut by where reading started
    return lines[-count:]


def scan_lines(lines: Iterable[str]) -> dict[str, Any]:
    """``{"counts": {pattern: n}, "samples": {pattern: [line, ...]}}`` over ``lines``.

    A line counts once per pattern it matches; samples are the most recent matching lines,
    shortened and with secrets masked.
    """
    counts = dict.fromkeys(PATTERNS, 0)
    samples: dict[str, list[str]] = {name: [] for name in PATTERNS}
    for line in lines:
        for name, rx in PATTERNS.items():
            if rx.search(line):
                counts[name] += 1
                samples[name].append(line)
                if len(samples[name]) > SAMPLES_PER_PATTERN:
                    samples[name].pop(0)
    return {
        "counts": counts,
        "samples": {
            name: [shorten(redact_text(s.strip()), SAMPLE_CHARS) for s in found]
            for name, found in samples.items()
            if found
        },
    }


def scan_file(path: str, tail: int) -> dict[str, Any]:
    """Scan one file; a missing or unreadable file is reported, not raised."""
    result: dict[str, Any] = {"path": path, "lines": 0, "counts": {}, "samples": {}, "error": None}
    try:
        lines = tail_lines(path, tail)
    except FileNotFoundError:
        result["error"] = "missing"
        return result
    except OSError as exc:
        result["error"] = exc.strerror or type(exc).__name__
        return result
    result["lines"] = len(lines)
    result.update(scan_lines(lines))
    return result


def merge_counts(scans: Iterable[dict[str, Any]]) -> dict[str, int]:
    total = dict.fromkeys(PATTERNS, 0)
    for scan in scans:
        for name, n in scan.get("counts", {}).items():
            total[name] = total.get(name, 0) + n
    return total
