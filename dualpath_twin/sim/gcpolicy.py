"""Python's cyclic garbage collector during a run: young collections rarely, not every 700 objects.

A run keeps one ``Req`` (and its heap entries and callbacks) alive per round in flight, so with
tens of thousands of agents a million objects live for seconds of simulated time. With the
default threshold (a young collection every 700 net new container objects) those objects are
scanned again and again as they age into the old generation, and the collector took 10-15% of a
48P96D run (measured: 6.9 s of 72.8 s for the first 250 simulated seconds). Raising the young
threshold during the run makes collections ~150x rarer; cyclic garbage is still collected (the
run makes little: SimPy condition events), and the process's own setting is restored afterwards.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

RUN_YOUNG_THRESHOLD = 100_000  # net new container objects between young collections during a run

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, ...] = ()


@contextmanager
def rare_young_collections(threshold: int = RUN_YOUNG_THRESHOLD) -> Iterator[None]:
    """Raise the collector's young threshold for the duration of a run (nested or threaded runs share it)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            if _saved[0] and _saved[0] < threshold:  # 0 means the collector is off: leave it off
                gc.set_threshold(threshold, *_saved[1:])
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_saved)
