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
"""

EXAMPLES = r"""
- name: Hash the app source
  ansible.builtin.debug:
    msg: "{{ lookup('hardenkit.nodeapp.source_hash', app_src, exclude=['node_modules', '.next']) }}"
"""

RETURN = r"""
_raw:
  description: One sha256 hex digest per directory.
  type: list
  elements: str
"""

import fnmatch
import hashlib
from collections.abc import Iterable

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.srctree import tree_entries

GLOB_CHARS = frozenset("*?[")


def glob_excluded(relpath: str, patterns: Iterable[str]) -> bool:
    """True if a shell pattern matches a run of whole components of ``relpath`` (tar's
    unanchored, wildcards-match-slash exclusion: a matching directory drops its files)."""
    parts = relpath.strip("/").split("/")
    for pattern in patterns:
        pattern = pattern.strip("/")
        if pattern.startswith("./"):
            pattern = pattern[2:]
        for i in range(len(parts)):
            for j in range(i + 1, len(parts) + 1):
                if fnmatch.fnmatchcase("/".join(parts[i:j]), pattern):
                    return True
    return False


def source_hash(root: str, excludes: Iterable[str]) -> str:
    """srctree.tree_hash, with shell patterns among the excludes: the same digest for the
    same excludes without patterns, and the same files as tar packs."""
    excludes = [str(e) for e in excludes]
    globs = [e for e in excludes if GLOB_CHARS & set(e)]
    plain = [e for e in excludes if e not in globs]
    h = hashlib.sha256()
    for rel, digest in tree_entries(root, plain):
        if globs and glob_excluded(rel, globs):
            continue
        h.update(f"{rel}\0{digest}\n".encode())
    return h.hexdigest()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        exclude = self.get_option("exclude")
        out = []
        for term in terms:
            try:
                out.append(source_hash(str(term), exclude))
            except OSError as exc:
                raise AnsibleLookupError(f"cannot hash app source {term!r}: {exc}") from exc
        return out
