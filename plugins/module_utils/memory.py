"""Node.js memory sizing for a PM2 cluster, derived from host RAM and worker count."""

from __future__ import annotations


def memory_plan(
    mem_total_mb: int,
    instances: int,
    fraction: float = 0.7,
    heap_ratio: float = 0.8,
    min_mb: int = 128,
) -> dict[str, int]:
    """Per-worker limits.

    ``fraction`` of host RAM is the app's budget, split evenly between ``instances``
    workers: that share is PM2's ``max_memory_restart``. V8's old space gets
    ``heap_ratio`` of it, so a leaking worker is restarted by PM2 before V8 dies with
    "heap out of memory" (RSS runs above the heap: code, buffers, new space).
    """
    if mem_total_mb <= 0:
        raise ValueError(f"host memory must be positive, got {mem_total_mb} MB")
    if instances <= 0:
        raise ValueError(f"instances must be positive, got {instances}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not 0 < heap_ratio < 1:
        raise ValueError(f"heap_ratio must be in (0, 1), got {heap_ratio}")
    per_worker = max(int(mem_total_mb * fraction / instances), min_mb)
    heap = max(int(per_worker * heap_ratio), min_mb)
    return {"max_memory_restart_mb": per_worker, "max_old_space_size_mb": heap}
