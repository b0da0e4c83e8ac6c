"""Pausing the cyclic garbage collector around CPU-bound loops over large batches."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

GC_PAUSE_MIN = 1000

_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = False


@contextmanager
def gc_paused(size: int) -> Iterator[None]:
    """Pause the cyclic garbage collector around a CPU-bound loop over a large batch.

    A batch of 100k records keeps 100k small tracked objects alive (delivery callbacks,
    results); each of them counts towards the collector's thresholds and triggers full
    collections over the whole heap, which cost more than the batch's own work. None of
    these objects form cycles, so collecting during the loop finds nothing. The pause nests
    across threads and leaves the collector as it found it (off stays off). Small batches
    are left alone.
    """
    global _gc_pausers, _gc_was_enabled
    if size < GC_PAUSE_MIN:
        yield
        return
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


def _after_fork_in_child() -> None:
    """A fork during a pause must not leave the child's collector off for good."""
    global _gc_lock, _gc_pausers
    _gc_lock = threading.Lock()
    if _gc_pausers and _gc_was_enabled:
        gc.enable()
    _gc_pausers = 0


os.register_at_fork(after_in_child=_after_fork_in_child)
