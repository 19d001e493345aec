# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""The options of every module that waits for a port and probes HTTP paths on it."""

from __future__ import annotations


class ModuleDocFragment:
    # The options of module_utils/probes.py's probe_spec(), with its defaults (those of
    # hardenkit.nodeapp.probe). A module that calls probe_spec() with other defaults, or
    # says more of an option, states those keys in its own DOCUMENTATION: they replace the
    # fragment's keys of that option (the others are kept).
    DOCUMENTATION = r"""
options:
  port:
    description: The port.
    type: int
    required: true
  probes:
    description: The paths and the status each must answer; empty only waits for the port.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The path, from C(/).
        type: str
        required: true
      status:
        description: The status it must answer.
        type: int
        default: 200
  listen_timeout:
    description: Seconds to wait for the port to accept connections; 0 does not wait.
    type: float
    default: 0
  retries:
    description: How many more times a failing probe is tried.
    type: int
    default: 0
  delay:
    description: Seconds between tries.
    type: float
    default: 1
  timeout:
    description: Seconds each request waits for an answer.
    type: float
    default: 15
"""
