"""Process settings of the ledger's own processes: the CLI, the service's workers and
the bench (the Python API leaves its host's settings alone; call :func:`tune_gc`).

CPython's cyclic collector runs a full collection, which walks every tracked object,
after every ten collections of the middle generation at the default thresholds
``(700, 10, 10)``. A ledger process keeps hundreds of thousands of long-lived objects
(the imported rules and metadata, the aggregate cache, the readers' caches), and its
commands make almost no cyclic garbage (23 objects found after 10,000 bench commands
with the collector off), so those walks are work for nothing that grows with the
cache. Tuned: what was imported at start is frozen out of every collection and the
thresholds are raised, so a full collection runs about once per 100 million
allocations instead of about once per 70,000.
"""

from __future__ import annotations

import gc

#: The collector's thresholds in a ledger process (CPython's default: 700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> tuple[int, int, int]:
    """Freeze the objects alive now (modules, metadata) out of every collection and
    raise the thresholds; returns the thresholds in force before."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return before


__all__ = ["GC_THRESHOLDS", "tune_gc"]
