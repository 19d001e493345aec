# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""``numbered_files``: entries for the ``drift`` read and a role's write task, one per file
of the control node, each at a numbered path on the host."""

from __future__ import annotations

from collections.abc import Iterable

from ansible.errors import AnsibleFilterError


def numbered_files(sources: Iterable[str], path_format: str, **attrs: object) -> list[dict]:
    """``['a.pem', 'b.pem'] | numbered_files('/x/hk-{}.crt', mode='0644')`` ->
    ``[{'path': '/x/hk-0.crt', 'file': 'a.pem', 'mode': '0644'}, {'path': '/x/hk-1.crt', ...}]``."""
    if isinstance(sources, str):
        raise AnsibleFilterError("numbered_files: the sources must be a list of paths")
    if "{}" not in str(path_format):
        raise AnsibleFilterError("numbered_files: path_format must hold {} for the number")
    return [
        {"path": str(path_format).replace("{}", str(i)), "file": str(src), **attrs}
        for i, src in enumerate(sources)
    ]


class FilterModule:
    def filters(self):
        return {"numbered_files": numbered_files}
