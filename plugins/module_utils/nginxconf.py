"""The error logs an Nginx configuration writes to.

The distribution's ``/var/log/nginx/error.log`` holds only what no server block sends
elsewhere: a site with an ``error_log`` of its own (the kit's writes
``/var/log/nginx/hardenkit-<app>.error.log``) logs its upstream errors there, so the
diagnosis reads ``error_log`` from ``nginx.conf`` and every file it includes.
``parse_directives`` is pure; ``error_logs`` reads the files.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator

MAX_FILES = 200
MAX_FILE_BYTES = 1 << 20
# error_log targets that are not files: Nginx's own names and the bit bucket.
_NOT_FILES = ("stderr", "syslog:", "memory:", "/dev/null")

Directive = tuple[str, list[str]]


def _tokens(text: str) -> Iterator[str]:
    """Words, quoted strings (unquoted) and the ``{ } ;`` that end a directive."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end == -1 else end + 1
        elif ch in "{};":
            yield ch
            i += 1
        elif ch in "\"'":
            word = []
            i += 1
            while i < n and text[i] != ch:
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                word.append(text[i])
                i += 1
            i += 1  # the closing quote
            yield "".join(word)
        else:
            # As in Nginx, "#" and quotes inside a word are part of it, and so is the brace
            # of a "${name}" variable.
            start, in_var = i, False
            while i < n and not text[i].isspace():
                if text[i] == "{" and text[i - 1] == "$" and i > start:
                    in_var = True
                elif text[i] == "}" and in_var:
                    in_var = False
                elif text[i] in "{};":
                    break
                i += 1
            yield text[start:i]


def parse_directives(text: str) -> list[Directive]:
    """Every simple directive ``name arg ...;`` of one config file, in any block.

    Block directives (``http {``, ``server {``) are not listed, their contents are; where a
    directive sits does not matter to what this module asks of it.
    """
    out: list[Directive] = []
    words: list[str] = []
    for tok in _tokens(text):
        if tok == ";":
            if words:
                out.append((words[0], words[1:]))
            words = []
        elif tok in "{}":
            words = []
        else:
            words.append(tok)
    return out


def error_log_target(args: list[str]) -> str | None:
    """The file an ``error_log`` directive writes to, or None (stderr, syslog, memory,
    /dev/null, or a path relative to Nginx's compiled-in prefix, which is not known here)."""
    if not args:
        return None
    target = args[0]
    if target.startswith(_NOT_FILES) or not target.startswith("/"):
        return None
    return os.path.normpath(target)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(MAX_FILE_BYTES)
    except OSError:
        return None


def error_logs(
    conf_dir: str, read: Callable[[str], str | None] = _read
) -> tuple[list[str], list[str], list[str]]:
    """``(error log paths, config files read, errors)`` of ``<conf_dir>/nginx.conf``.

    Includes are followed as Nginx does: where they stand, globs sorted, a relative path
    relative to the directory of ``nginx.conf``. A missing ``nginx.conf`` (no Nginx) is no
    error; an included file that cannot be read is.
    """
    main = os.path.join(conf_dir, "nginx.conf")
    logs: list[str] = []
    seen: list[str] = []
    errors: list[str] = []
    if not os.path.exists(main):
        return logs, seen, errors

    def visit(path: str) -> None:
        if path in seen:  # an include loop, or a file named twice
            return
        if len(seen) >= MAX_FILES:
            note = f"nginx config: more than {MAX_FILES} files, the rest not read"
            if note not in errors:
                errors.append(note)
            return
        seen.append(path)
        text = read(path)
        if text is None:
            errors.append(f"nginx config: cannot read {path}")
            return
        for name, args in parse_directives(text):
            if name == "error_log":
                target = error_log_target(args)
                if target and target not in logs:
                    logs.append(target)
            elif name == "include" and args:
                pattern = os.path.join(conf_dir, args[0])  # an absolute one stays as it is
                if glob.has_magic(pattern):
                    for match in sorted(glob.glob(pattern)):
                        if os.path.isfile(match):
                            visit(match)
                else:
                    visit(pattern)

    visit(main)
    return logs, seen, errors
