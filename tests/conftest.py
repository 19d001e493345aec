"""Make the collection importable as ``ansible_collections.hardenkit.nodeapp``, through
Ansible's own collection loader, as a play finds it: the tests import its plugins by
that name, and templates rendered in the tests call its filters
(``hardenkit.nodeapp.peer_addresses``) as the roles do.

The repository root is the collection; ``collections/`` holds the committed symlink
``ansible_collections/hardenkit/nodeapp -> ../../..`` that Ansible uses too.
"""

import sys
from pathlib import Path

from ansible.plugins.loader import init_plugin_loader

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
init_plugin_loader([str(COLLECTIONS)])
