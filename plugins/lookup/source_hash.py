"""Lookup plugin: the content hash of an app source tree on the control node."""

from __future__ import annotations

DOCUMENTATION = r"""
name: source_hash
author: hardenkit developers
short_description: Content hash of a source directory on the control node
description:
  - Walks a directory on the control node and returns the sha256 of its files (relative
    path, executable bit and content), skipping excluded paths. Used to name releases, so
    the same source is never built twice.
  - A directory at the top of a git work tree (it has C(.git), a directory or a file) holds
    the files C(git ls-files --cached) lists (committed or staged; those of checked-out
    submodules included) that exist in the work tree, as they are on disk, still minus
    O(exclude). Ignored and untracked files are no part of it. Without C(git), or when git
    finds no work tree there, every file counts.
options:
  _terms:
    description: Directories to hash.
    required: true
  exclude:
    description:
      - Entries excluded like C(tar --exclude); each matches any run of whole path components.
      - An entry with C(*), C(?) or C([...]) is a shell pattern, as GNU tar reads it (C(*)
        also matches C(/)), so C(.env*.local) drops C(.env.local) and
        C(apps/web/.env.production.local).
    type: list
    elements: str
    default: []
  output:
    description:
      - C(hash), the sha256 of the directory's files.
      - C(manifest), what packing the directory needs, for each directory a dictionary
        (see RETURN).
    type: str
    choices: [hash, manifest]
    default: hash
"""

EXAMPLES = r"""
- name: Hash the app source
  ansible.builtin.debug:
    msg: "{{ lookup('hardenkit.nodeapp.source_hash', app_src, exclude=['node_modules', '.next']) }}"

- name: What to pack, and what is not committed
  ansible.builtin.set_fact:
    src: >-
      {{ lookup('hardenkit.nodeapp.source_hash', app_src, exclude=['node_modules'],
                output='manifest') }}
"""

RETURN = r"""
_raw:
  description:
    - With O(output=hash), one sha256 hex digest per directory.
    - With O(output=manifest), one dictionary per directory, with C(git), C(files),
      C(tar_list) and C(changes).
    - C(git) is true at the top of a git work tree.
    - C(files) lists, there, the paths the hash covers, and C(tar_list) holds them each
      followed by a NUL byte, as C(tar --null -T -) reads them. Elsewhere both are empty, and
      every file but the excluded ones counts.
    - C(changes) lists the paths of uncommitted changes to tracked files, modified, staged or
      deleted (C(git status --untracked-files=no)), minus O(exclude).
  type: list
  elements: raw
"""

import hashlib
from collections.abc import Iterable
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.srctree import (
    git_changes,
    git_files,
    glob_excluded,
    tree_entries,
)

__all__ = ["LookupModule", "glob_excluded", "source_hash", "source_manifest"]


def source_hash(root: str, excludes: Iterable[str]) -> str:
    """srctree.tree_hash: shell patterns among the excludes drop what tar drops, and the
    digest for excludes without patterns is the one release ids always had."""
    h = hashlib.sha256()
    for rel, digest in tree_entries(root, [str(e) for e in excludes]):
        h.update(f"{rel}\0{digest}\n".encode())
    return h.hexdigest()


def source_manifest(root: str, excludes: Iterable[str]) -> dict[str, Any]:
    """For pack_local.yml: whether ``root`` is a git work tree, the files to pack there (the
    ones ``source_hash`` covers: a list, and NUL-terminated for tar) and its uncommitted
    changes."""
    excludes = [str(e) for e in excludes]
    files = git_files(root, excludes)
    if files is None:
        return {"git": False, "files": [], "tar_list": "", "changes": []}
    return {
        "git": True,
        "files": files,
        "tar_list": "".join(f"{rel}\0" for rel in files),
        "changes": git_changes(root, excludes),
    }


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        exclude = self.get_option("exclude")
        output = self.get_option("output")
        out = []
        for term in terms:
            try:
                if output == "manifest":
                    out.append(source_manifest(str(term), exclude))
                else:
                    out.append(source_hash(str(term), exclude))
            except OSError as exc:
                what = "list" if output == "manifest" else "hash"
                raise AnsibleLookupError(f"cannot {what} app source {term!r}: {exc}") from exc
        return out
