"""Pause Python's cyclic garbage collector for a burst of allocations that cannot form reference cycles.

Reading a long log allocates hundreds of thousands of small objects (records, then the folded conversation),
all in trees. Each allocation counts towards the collector's thresholds, so it runs many times over a heap
that only grows, which can cost as much as the work itself. Reference counting still frees everything as
usual while the collector is paused; it resumes as soon as the block ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused", "settled"]


@contextmanager
def paused() -> Iterator[None]:
    """Disable the collector for the block if it is enabled, and enable it again afterwards.

    A block nested in another (or run while the application has disabled the collector) changes nothing.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextmanager
def settled() -> Iterator[None]:
    """:func:`paused`, then what the block allocated is moved to the collector's oldest generation at once.

    For a block that builds a large structure meant to live on (a decoded execution state): without this,
    the young collections right after it would each walk all of it once more, tens of milliseconds for a
    long execution. The move is ``gc.freeze()`` then ``gc.unfreeze()`` (which puts the frozen objects in the
    oldest generation); it also moves the rest of the young objects, whose collection is then only put off
    to the next full collection. It is skipped when the application froze objects itself (a pre-fork server):
    unfreezing would undo that.
    """
    enabled = gc.isenabled()
    with paused():
        try:
            yield
        finally:
            if enabled and not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
