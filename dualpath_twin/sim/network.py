"""Links and flows: every byte moved in the cluster is a flow over the links it crosses.

Concurrent flows share each link max-min fairly (progressive filling); rates are recomputed
for the connected set of flows a change touches whenever a flow starts or ends, or a link's
capacity changes (model communication taking its priority lane). Each link accumulates the
bytes it carried so utilisation can be sampled exactly.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence

import numpy as np
import simpy

_EPS_BYTES = 1e-3


class Link:
    """One direction of one physical resource (a NIC direction, a DRAM bus, the storage backend)."""

    __slots__ = ("name", "capacity_bps", "flows", "bytes_total", "_rate", "_t", "peak_util", "kind", "node", "role",
                 "idx", "owner")

    def __init__(self, name: str, capacity_bps: float, kind: str = "", node: str = "", role: str = "") -> None:
        if not capacity_bps > 0:
            raise ValueError(f"link {name}: capacity must be positive, got {capacity_bps}")
        self.name = name
        self.capacity_bps = float(capacity_bps)  # bytes per second available to flows
        self.flows: dict[Flow, None] = {}  # insertion-ordered: deterministic iteration
        self.bytes_total = 0.0
        self._rate = 0.0  # current sum of flow rates, bytes/s
        self._t = 0.0
        self.peak_util = 0.0
        self.kind = kind
        self.node = node
        self.role = role
        self.idx = -1  # row in a compiled network's arrays (netjit), once registered
        self.owner = None  # the network that registered it

    def advance(self, now: float) -> None:
        """Account bytes carried since the last update at the current aggregate rate."""
        if now > self._t:
            self.bytes_total += self._rate * (now - self._t)
            self._t = now


class Path:
    """A route resolved once by a network (``net.path(links)``): its links and the engine's handle for them."""

    __slots__ = ("links", "ids")

    def __init__(self, links: tuple[Link, ...], ids: np.ndarray | None = None) -> None:
        self.links = links
        self.ids = ids  # the compiled engine's link rows (None for this reference engine)


class Flow:
    """A transfer of ``size_bytes`` over ``links``; ``done`` fires when the last byte arrives."""

    __slots__ = ("links", "remaining", "rate", "t", "done", "version", "size_bytes", "tag")

    def __init__(self, links: list[Link], size_bytes: float, done: simpy.Event, tag: str = "") -> None:
        self.links = links
        self.remaining = float(size_bytes)
        self.size_bytes = float(size_bytes)
        self.rate = 0.0
        self.t = 0.0
        self.done = done
        self.version = 0
        self.tag = tag


class FlowNetwork:
    """Max-min fair sharing of links among active flows, driven by a SimPy environment."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.active = 0
        self.recomputes = 0
        self.skipped_recomputes = 0
        self.flows_started = 0
        self.on_complete: Callable[[Flow], None] | None = None
        self.links: list[Link] = []

    def register(self, lk: Link) -> int:
        """Remember a link (for ``sync_links``) and return its index."""
        if lk.owner is not self:
            lk.owner = self
            lk.idx = len(self.links)
            self.links.append(lk)
        return lk.idx

    def path(self, links: Sequence[Link]) -> Path:
        """Resolve a route once, to pass to ``transfer`` many times."""
        return Path(tuple(links))

    def bytes_of(self, links: list[Link], now: float) -> np.ndarray:
        """Bytes each of ``links`` has carried up to ``now``."""
        out = np.empty(len(links))
        for i, lk in enumerate(links):
            lk.advance(now)
            out[i] = lk.bytes_total
        return out

    def sync_links(self, now: float) -> None:
        """Account every link's bytes up to ``now`` (the compiled engine also copies counters here)."""
        for lk in self.links:
            lk.advance(now)

    # ---------------------------------------------------------------- public
    def transfer(self, size_bytes: float, links: Sequence[Link] | Path, tag: str = "", notify: bool = True,
                 on_done: Callable[[], None] | None = None) -> simpy.Event:
        """Start a flow now; returns an event that succeeds (value = the Flow) when it completes.

        ``notify`` is accepted for the compiled engine's interface (which then creates no event);
        here the event always exists, and ``on_done`` is called from its callbacks.
        """
        ev = self.env.event()
        if on_done is not None:
            ev.callbacks.append(lambda _e: on_done())
        if type(links) is Path:
            links = links.links
        if size_bytes <= _EPS_BYTES or not links:
            ev.succeed(None)
            return ev
        # a flow crossing the same link twice is counted once (it shares that link with itself)
        uniq: list[Link] = []
        for lk in links:
            if lk not in uniq:
                uniq.append(lk)
                if lk.owner is not self:
                    self.register(lk)
        f = Flow(uniq, size_bytes, ev, tag)
        f.t = self.env.now
        self.flows_started += 1
        self.active += 1
        for lk in uniq:
            lk.flows[f] = None
        if not self._start_without_resharing(f):
            self._recompute(uniq)
        return ev

    def _start_without_resharing(self, f: Flow) -> bool:
        """Give a new flow the spare capacity of its tightest link when that is already max-min.

        If every link of ``f`` has spare capacity, ``f`` can take ``r`` = the smallest spare; that
        link then saturates with ``f`` at the largest rate on it (checked), so ``f`` is max-min
        limited there and no other flow's limit changes: exactly the global recompute's answer.
        """
        r = math.inf
        bott = None
        for lk in f.links:
            spare = lk.capacity_bps - lk._rate
            if spare < r:
                r, bott = spare, lk
        if bott is None or r <= bott.capacity_bps * 1e-9:
            return False
        for g in bott.flows:
            if g is not f and g.rate > r:
                return False
        now = self.env.now
        self.skipped_recomputes += 1
        for lk in f.links:
            lk.advance(now)
            lk._rate += r
            u = lk._rate / lk.capacity_bps
            if u > lk.peak_util:
                lk.peak_util = u
        f.rate = r
        f.version += 1
        ver = f.version
        tmo = self.env.timeout(f.remaining / r)
        tmo.callbacks.append(lambda _e, f=f, ver=ver: self._finish(f, ver))
        return True

    def set_capacity(self, link: Link, capacity_bps: float) -> None:
        """Change a link's capacity now (e.g. model communication claims its lane) and re-share."""
        capacity_bps = max(float(capacity_bps), 1.0)
        if abs(capacity_bps - link.capacity_bps) <= 1e-9 * link.capacity_bps:
            return
        link.advance(self.env.now)
        link.capacity_bps = capacity_bps
        if link.flows:
            self._recompute([link])

    def set_capacities(self, links: list[Link], capacity_bps: float, floor_bps: float = 1.0) -> None:
        """Change several links' capacity at once and re-share their flows in one pass.

        Capacities below ``floor_bps`` are raised to it (a link needs a positive capacity; a downed
        link is given a tiny floor, so its flows stall).
        """
        capacity_bps = max(float(capacity_bps), floor_bps)
        changed = []
        now = self.env.now
        for lk in links:
            if abs(capacity_bps - lk.capacity_bps) > 1e-9 * lk.capacity_bps:
                lk.advance(now)
                lk.capacity_bps = capacity_bps
                if lk.flows:
                    changed.append(lk)
        if changed:
            self._recompute(changed)

    # ---------------------------------------------------------------- internals
    @staticmethod
    def _saturated(lk: Link) -> bool:
        return lk._rate >= lk.capacity_bps * (1 - 1e-9)

    def _component(self, seeds: list[Link], expand: set[Link]) -> tuple[dict[Flow, None], dict[Link, None]]:
        """Flows reachable from the seeds through seed, saturated or ``expand`` links.

        Unsaturated links do not couple the rates of the flows crossing them (none of those flows
        is limited there), so the search stops at them; they become boundary links whose
        capacity left to the component is what the flows outside it do not use.
        """
        flows: dict[Flow, None] = {}
        inner: dict[Link, None] = {}
        stack = list(seeds)
        while stack:
            lk = stack.pop()
            if lk in inner:
                continue
            inner[lk] = None
            for f in lk.flows:
                if f not in flows:
                    flows[f] = None
                    for l2 in f.links:
                        if l2 not in inner and (l2 in expand or self._saturated(l2)):
                            stack.append(l2)
        return flows, inner

    def _recompute(self, seeds: list[Link]) -> None:
        """Re-share max-min fairly among the flows a change can affect, expanding until exact."""
        now = self.env.now
        self.recomputes += 1
        expand: set[Link] = set(seeds)
        while True:
            flows, inner = self._component(seeds, expand)
            # every link the component's flows cross, with the capacity left to the component
            links: dict[Link, None] = dict(inner)
            for f in flows:
                for lk in f.links:
                    links[lk] = None
            cap: dict[Link, float] = {}
            members: dict[Link, list[Flow]] = {lk: [] for lk in links}
            for f in flows:
                for lk in f.links:
                    members[lk].append(f)
            for lk in links:
                if lk in inner:
                    cap[lk] = lk.capacity_bps
                else:  # boundary: what flows outside the component currently use stays theirs
                    inside = sum(f.rate for f in members[lk])
                    cap[lk] = max(lk.capacity_bps - max(lk._rate - inside, 0.0), 0.0)
            new_rate = self._progressive_fill(links, cap, members)
            # a boundary link that the new rates saturate may now limit flows outside: widen and redo
            grow = []
            for lk in links:
                if lk in inner or len(members[lk]) == len(lk.flows):
                    continue
                used = sum(new_rate[f] for f in members[lk])
                if used >= cap[lk] * (1 - 1e-9):
                    grow.append(lk)
            if not grow:
                break
            expand.update(grow)
        for lk in links:
            lk.advance(now)
        for f in flows:
            if f.rate > 0.0:
                f.remaining -= f.rate * (now - f.t)
                if f.remaining < 0.0:
                    f.remaining = 0.0
            f.t = now
        for lk in links:
            mem = members[lk]
            new_inside = sum(new_rate[f] for f in mem)
            if len(mem) == len(lk.flows):
                lk._rate = new_inside
            else:
                lk._rate = max(lk._rate - sum(f.rate for f in mem), 0.0) + new_inside
        for f in flows:
            r = new_rate[f]
            if r != f.rate or f.rate == 0.0:
                f.rate = r
                f.version += 1
                if r > 0.0:
                    dt = f.remaining / r
                    ver = f.version
                    tmo = self.env.timeout(dt)
                    tmo.callbacks.append(lambda _e, f=f, ver=ver: self._finish(f, ver))
        for lk in links:
            u = lk._rate / lk.capacity_bps
            if u > lk.peak_util:
                lk.peak_util = u

    @staticmethod
    def _progressive_fill(
        links: dict[Link, None], cap: dict[Link, float], members: dict[Link, list[Flow]]
    ) -> dict[Flow, float]:
        """Max-min rates of the member flows given each link's capacity (lazy heap of fair shares)."""
        cap = dict(cap)
        cnt = {lk: len(members[lk]) for lk in links}
        heap = []
        seq = 0
        for lk in links:
            n = cnt[lk]
            if n > 0:
                heap.append((cap[lk] / n, seq, lk))
                seq += 1
        heapq.heapify(heap)
        new_rate: dict[Flow, float] = {}
        while heap:
            share, _, best = heapq.heappop(heap)
            n = cnt[best]
            if n <= 0:
                continue
            cur = cap[best] / n
            if cur > share * (1 + 1e-12) + 1e-9:
                heapq.heappush(heap, (cur, seq, best))
                seq += 1
                continue
            share = max(cur, 0.0)
            for f in members[best]:
                if f not in new_rate:
                    new_rate[f] = share
                    for lk in f.links:
                        cap[lk] -= share
                        cnt[lk] -= 1
        return new_rate

    def _finish(self, f: Flow, ver: int) -> None:
        if ver != f.version or f.done.triggered:
            return
        now = self.env.now
        f.remaining -= f.rate * (now - f.t)
        f.t = now
        # finish when the tail is negligible, or when its transfer time is below the float clock's
        # resolution at ``now`` (rescheduling it would loop forever at the same instant)
        tail_s = f.remaining / f.rate if f.rate > 0 else math.inf
        if f.remaining > max(_EPS_BYTES, 1e-9 * f.size_bytes) and now + tail_s > now:
            # numerical drift: reschedule the tail
            f.version += 1
            ver2 = f.version
            tmo = self.env.timeout(tail_s)
            tmo.callbacks.append(lambda _e, f=f, ver=ver2: self._finish(f, ver))
            return
        f.remaining = 0.0
        self.active -= 1
        # Max-min: every other flow is limited by a saturated link on which it has the largest
        # rate. If none of this flow's links is saturated, no other flow's limit involves them,
        # so removing it changes no other rate and the recompute can be skipped (exactly).
        saturated = False
        for lk in f.links:
            lk.advance(now)
            lk.flows.pop(f, None)
            if lk._rate >= lk.capacity_bps * (1 - 1e-9):
                saturated = True
        rate = f.rate
        f.rate = 0.0
        f.version += 1
        if self.on_complete is not None:
            self.on_complete(f)
        f.done.succeed(f)
        if saturated:
            self._recompute(f.links)
        else:
            self.skipped_recomputes += 1
            for lk in f.links:
                lk._rate = max(lk._rate - rate, 0.0) if lk.flows else 0.0
