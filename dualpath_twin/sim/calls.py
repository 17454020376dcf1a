"""Timed callbacks without SimPy ``Timeout`` objects: a bare entry in SimPy's own event queue.

A ``Timeout`` with one callback costs an Event object, its value and a method call to schedule it.
The world schedules millions of plain "call this at t" callbacks (network completions, storage
I/O latency, decode step timers), so it pushes a two-slot entry straight onto the queue instead.
The entry has the key a ``Timeout`` would have (time, NORMAL priority, the next event id), so the
order of events, and therefore every result, is exactly the same as with ``env.timeout``.
``Environment.step`` only reads ``callbacks`` and ``_ok`` of what it pops (SimPy 4.1, pinned); the
world's run loop pops these entries itself and calls their one callback, as ``step`` would.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush

import simpy
from simpy.events import NORMAL


class TimedCall:
    """A queue entry that runs its callbacks like a succeeded event (no value, no Event machinery)."""

    __slots__ = ("callbacks", "_ok")

    def __init__(self, fn: Callable[[object], None]) -> None:
        self.callbacks: list[Callable[[object], None]] | None = [fn]
        self._ok = True


def call_later(env: simpy.Environment, delay_s: float, fn: Callable[[object], None]) -> object:
    """Run ``fn(entry)`` at ``env.now + delay_s``, ordered exactly as ``env.timeout(delay_s)`` would be; returns the entry."""
    entry = TimedCall(fn)
    heappush(env._queue, (env._now + delay_s, NORMAL, next(env._eid), entry))  # type: ignore[attr-defined]
    return entry
