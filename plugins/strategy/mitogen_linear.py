# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""The linear strategy, run through Mitogen for Ansible when it is installed.

Every task of a linear run starts a fresh Python on the target, and that Python compiles
``ansible.module_utils`` from a zip each time: about 0.2 s of CPU per task before the
module does anything, ~0.35 s per task in all on a 2-core machine. Mitogen keeps one Python
per host alive for the whole run and sends modules to it, which brings a task down to
~0.1 s. hardenkit's ``ansible.cfg`` selects this strategy; ``ANSIBLE_STRATEGY=linear``
runs without Mitogen.

Mitogen only speeds up connections it knows by their short names (``ssh``, ``local``,
``docker``, ...); any other connection runs as under ``linear``, and so does a whole play
that says ``connection: local``. When the ``mitogen`` Python package is missing, this
plugin is ``linear`` with a warning.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: mitogen_linear
short_description: The linear strategy through Mitogen for Ansible, when it is installed
description:
  - Runs like M(ansible.builtin.linear) (the default strategy), but through Mitogen for
    Ansible, which keeps one Python interpreter per host for the whole run instead of
    starting one per task.
  - Only the connections Mitogen knows by their short name are sped up, for example
    C(ssh), C(local) and C(docker).
  - A play with C(connection: local) runs as under the linear strategy: it works on the
    control node, where Mitogen saves little, and Mitogen's async runner does not finish
    some controller-side modules (those of community.docker).
  - Without the C(mitogen) Python package this is the linear strategy, with a warning.
author: hardenkit developers
"""

from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.loader import strategy_loader
from ansible.utils.display import Display

try:
    # ansible_mitogen.loaders refuses an Ansible older than Mitogen supports.
    import ansible_mitogen.loaders
    import ansible_mitogen.strategy
except (ImportError, AnsibleError) as exc:
    Display().warning(
        "hardenkit.nodeapp.mitogen_linear: Mitogen for Ansible is not available "
        f"({exc}); running the linear strategy. `pip install -r requirements.txt` installs it."
    )
    # Any: this name holds the loader's linear class here, _MitogenLinear below.
    StrategyModule: Any = strategy_loader.get("ansible.builtin.linear", class_only=True)
else:
    # The loader returns an untyped object; as Any, type checkers accept it as a base class.
    _Linear: Any = strategy_loader.get("ansible.builtin.linear", class_only=True)

    class _MitogenLinear(ansible_mitogen.strategy.StrategyMixin, _Linear):
        """ansible.builtin.linear with Mitogen's connection and action wrappers, except for
        a play that says ``connection: local``: such a play works on the control node
        itself, where Mitogen saves little, and its async runner never finishes some
        controller-side modules (community.docker's, which Molecule's create and destroy
        playbooks run with ``async``)."""

        def run(self, iterator, play_context, result=0):
            if iterator._play.connection in ("local", "ansible.builtin.local"):
                return _Linear.run(self, iterator, play_context)
            return super().run(iterator, play_context)

    # Ansible loads a strategy plugin's StrategyModule. Bound by assignment rather than
    # a class statement so that both branches define the same name for type checkers.
    StrategyModule = _MitogenLinear
