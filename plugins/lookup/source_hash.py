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

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.srctree import tree_hash


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        exclude = self.get_option("exclude")
        out = []
        for term in terms:
            try:
                out.append(tree_hash(str(term), exclude))
            except OSError as exc:
                raise AnsibleLookupError(f"cannot hash app source {term!r}: {exc}") from exc
        return out
