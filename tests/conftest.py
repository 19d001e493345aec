"""Make the collection importable as ``ansible_collections.hardenkit.nodeapp``.

The repository root is the collection; ``collections/`` holds the committed symlink
``ansible_collections/hardenkit/nodeapp -> ../../..`` that Ansible uses too.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
