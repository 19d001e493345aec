# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""What differs between a path on the host and what a role wants there (module ``drift``)."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import stat
from collections.abc import Callable, Mapping
from typing import Any

_KIND: dict[str, Callable[[int], bool]] = {
    "file": stat.S_ISREG,
    "directory": stat.S_ISDIR,
    "link": stat.S_ISLNK,
}


def _id_of(name: str, lookup: Callable[[str], Any], attr: str) -> int | None:
    """A uid/gid given as a number or a name; None for a name the host does not know."""
    if name.isdigit():
        return int(name)
    try:
        return getattr(lookup(name), attr)
    except KeyError:
        return None


def octal_mode(mode: Any) -> int | None:
    """``"0644"``/``"644"`` as an int; an int as given (YAML's unquoted 0644 is 420);
    None for anything else (``u=rw``), which the caller counts as drift."""
    if isinstance(mode, int) and not isinstance(mode, bool):
        return mode
    text = str(mode)
    if text.isdigit() and all(c in "01234567" for c in text):
        return int(text, 8)
    return None


def sha1_of(path: str) -> str:
    digest = hashlib.sha1()  # what the control node's hash('sha1') computes
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def reasons_for(want: Mapping[str, Any]) -> list[str]:
    """What differs between ``want`` (the module's ``paths`` entry) and the host; empty
    when nothing does."""
    path = want["path"]
    state = want.get("state") or "file"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return [] if state == "absent" else ["missing"]
    except OSError:
        return ["unreadable"]
    if state == "absent":
        return ["present"]
    if not _KIND[state](st.st_mode):
        return ["type"]
    out = []
    owner, group = want.get("owner"), want.get("group")
    if owner is not None and _id_of(str(owner), pwd.getpwnam, "pw_uid") != st.st_uid:
        out.append("owner")
    if group is not None and _id_of(str(group), grp.getgrnam, "gr_gid") != st.st_gid:
        out.append("group")
    if (
        want.get("mode") is not None
        and state != "link"
        and octal_mode(want["mode"]) != stat.S_IMODE(st.st_mode)
    ):
        out.append("mode")
    if state == "link" and want.get("src") is not None and os.readlink(path) != want["src"]:
        out.append("target")
    if state == "file" and want.get("sha1"):
        try:
            if sha1_of(path) != str(want["sha1"]).lower():
                out.append("content")
        except OSError:
            out.append("unreadable")
    return out


def drift(wanted: list[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Path -> reasons, for the paths that differ, in the order given."""
    reasons: dict[str, list[str]] = {}
    for want in wanted:
        found = reasons_for(want)
        if found:
            reasons.setdefault(want["path"], []).extend(found)
    return reasons


def account_reasons(want: Mapping[str, Any]) -> list[str]:
    """What differs between a system account and ``want`` (``name``; ``group``,
    ``comment``, ``home``, ``shell`` compared when given): ``missing``, or the fields that
    differ. ``group`` is the primary group's name."""
    try:
        found = pwd.getpwnam(str(want["name"]))
    except KeyError:
        return ["missing"]
    out = []
    if want.get("group") is not None and found.pw_gid != _id_of(
        str(want["group"]), grp.getgrnam, "gr_gid"
    ):
        out.append("group")
    for key, attr in (("comment", "pw_gecos"), ("home", "pw_dir"), ("shell", "pw_shell")):
        if want.get(key) is not None and getattr(found, attr) != str(want[key]):
            out.append(key)
    return out


def groups_missing(names: list[str]) -> list[str]:
    """The group names the host does not know, in the order given."""
    out = []
    for name in names:
        try:
            grp.getgrnam(str(name))
        except KeyError:
            out.append(str(name))
    return out
