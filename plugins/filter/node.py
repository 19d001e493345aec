"""Where an official Node.js build lives on a host."""

from __future__ import annotations

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nodeversion import host_arch


def node_build_dir(version: str, architecture: str) -> str:
    """``v22.23.5-linux-x64`` for 22.23.5 on x86_64: the directory name the module
    ``node_release`` returns as ``dir_name``, known without asking it."""
    return f"v{str(version).strip().removeprefix('v')}-{host_arch(architecture)}"


class FilterModule:
    def filters(self):
        return {"node_build_dir": node_build_dir}
