# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Filters for roles/dev_cleanup: which old checkouts may scope the app, and masking.

``split_checkouts``: ``cwds | hardenkit.nodeapp.split_checkouts(ansible_facts.getent_passwd,
[app_root] + dev_cleanup_paths)`` returns ``{checkouts, refused}``: the candidate old
checkouts that may scope boot hooks and port holders, and those that may not (``/``, a
home directory, a system directory...) each with its reason (see
``module_utils/classify.py``, ``checkout_refusal``). ``homes`` is the getent passwd
mapping (``{user: [x, uid, gid, gecos, home, shell]}``) or a list of home directories.

``redact_text``: ``line | hardenkit.nodeapp.redact_text`` masks credentials, ``NAME=value``
assignments and secret options (``module_utils/redact.py``); a list is masked item by item.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.module_utils import classify
from ansible_collections.hardenkit.nodeapp.plugins.module_utils import redact as _redact


def _homes(homes: Any) -> list[str]:
    if homes is None:
        return []
    if isinstance(homes, Mapping):
        # getent passwd: {user: [password, uid, gid, gecos, home, shell]}
        return [str(row[4]) for row in homes.values() if isinstance(row, list) and len(row) > 4]
    if isinstance(homes, (str, bytes)):
        raise AnsibleFilterError("split_checkouts: homes must be a list or the getent mapping")
    return [str(h) for h in homes]


def _paths(value: Any) -> list[str]:
    """A list of paths; a string is one."""
    return [value] if isinstance(value, str) else [str(r) for r in value or []]


def split_checkouts(
    paths: Any, homes: Any = None, app_roots: Any = None, other_roots: Any = None
) -> dict[str, Any]:
    if isinstance(paths, (str, bytes, Mapping)) or paths is None:
        raise AnsibleFilterError(f"split_checkouts: expected a list of paths, got {paths!r}")
    return classify.split_checkouts(
        [str(p) for p in paths], _homes(homes), _paths(app_roots), _paths(other_roots)
    )


def redact_text(text: Any) -> Any:
    if isinstance(text, list):
        return [redact_text(item) for item in text]
    if text is None:
        return text
    return _redact.redact_text(str(text))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"split_checkouts": split_checkouts, "redact_text": redact_text}
