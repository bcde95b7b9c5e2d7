"""Bulk work with Python's cyclic garbage collector paused.

The engine and its bookkeeping make no reference cycles (reference counting frees
every object they drop: a bucket of the 20 k-customer population folded with the
collector off leaves 0 unreachable objects), yet the collector keeps walking the
objects a unit of work holds alive - a replay bucket's records, states and rows, a live
batch's - every few hundred allocations: about 10% of a replay worker and of live
processing, measured with perf. So it is paused for one unit of work at a time and
runs again after it, which still collects any cycle made meanwhile (an exception's
traceback, a library's).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic collector off inside (reference counting still frees), as it was after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
