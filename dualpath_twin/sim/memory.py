"""Byte pools: HBM and DRAM buffer capacity with FIFO waiters and back-pressure."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import simpy


class BytePool:
    """A fixed capacity of bytes; reservations succeed in FIFO order when space frees up."""

    __slots__ = ("env", "name", "capacity", "used", "peak", "_waiters", "listeners", "violations")

    def __init__(self, env: simpy.Environment, name: str, capacity_bytes: float) -> None:
        self.env = env
        self.name = name
        self.capacity = float(capacity_bytes)
        self.used = 0.0
        self.peak = 0.0
        self._waiters: deque[tuple[float, simpy.Event]] = deque()
        self.listeners: list[Callable[[], None]] = []
        self.violations = 0

    @property
    def free(self) -> float:
        """Bytes not yet reserved."""
        return self.capacity - self.used

    def try_reserve(self, nbytes: float) -> bool:
        """Reserve now if it fits and nobody is waiting ahead; True on success."""
        if self._waiters or self.used + nbytes > self.capacity + 1e-6:
            return False
        self._take(nbytes)
        return True

    def reserve(self, nbytes: float) -> simpy.Event:
        """Event that succeeds once ``nbytes`` are reserved (FIFO among waiters)."""
        ev = self.env.event()
        if not self._waiters and self.used + nbytes <= self.capacity + 1e-6:
            self._take(nbytes)
            ev.succeed()
        else:
            self._waiters.append((nbytes, ev))
        return ev

    def cancel(self, ev: simpy.Event) -> bool:
        """Withdraw a waiting reservation (not yet granted); True if it was waiting."""
        for i, (_n, e) in enumerate(self._waiters):
            if e is ev:
                del self._waiters[i]
                self._grant()  # the head may have changed
                return True
        return False

    def fits_ever(self, nbytes: float) -> bool:
        """Whether a reservation of this size can ever succeed."""
        return nbytes <= self.capacity + 1e-6

    def release(self, nbytes: float) -> None:
        """Return bytes and wake waiters that now fit."""
        if nbytes <= 0:
            return
        self.used -= nbytes
        if self.used < -1e-3:
            self.violations += 1
            self.used = 0.0
        self._grant()
        for cb in self.listeners:
            cb()

    def _grant(self) -> None:
        """Reserve for the waiters at the head of the queue that now fit, in order."""
        while self._waiters and self.used + self._waiters[0][0] <= self.capacity + 1e-6:
            n, ev = self._waiters.popleft()
            self._take(n)
            ev.succeed()

    def _take(self, nbytes: float) -> None:
        self.used += nbytes
        if self.used > self.peak:
            self.peak = self.used
        if self.used > self.capacity * (1 + 1e-9) + 1e-3:
            self.violations += 1
