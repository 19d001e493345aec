"""Memory sizing (module_utils/memory.py): the pure helper behind the pm2 role."""

from __future__ import annotations

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.memory import memory_plan


@pytest.mark.parametrize(
    ("mem", "instances", "restart", "heap"),
    [
        (2048, 2, 716, 572),
        (24000, 2, 8400, 6720),
        (1024, 4, 179, 143),
        (512, 8, 128, 128),
    ],
)
def test_memory_plan(mem, instances, restart, heap):
    plan = memory_plan(mem, instances)
    assert plan == {"max_memory_restart_mb": restart, "max_old_space_size_mb": heap}
    assert plan["max_old_space_size_mb"] <= plan["max_memory_restart_mb"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 2), "host memory"),
        ((2048, 0), "instances"),
        ((2048, 2, 1.5), "fraction"),
        ((2048, 2, 0.7, 1.0), "heap_ratio"),
    ],
)
def test_memory_plan_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        memory_plan(*args)
