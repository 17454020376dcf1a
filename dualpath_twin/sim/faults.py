"""Faults and degradation: the scenario's ``[[faults]]`` applied to a running world, and their effect.

Each fault starts at ``start_s`` and, if ``end_s`` is set, is repaired then (timed callbacks, so a
run without faults schedules nothing and stays bit-identical). What each kind does:

- ``snic_down`` / ``snic_degraded``: the node's storage NIC (rx and tx) drops to ~0 (``DOWN_BPS``)
  or to ``rate_factor`` of its capacity through the network's capacity change; flows on it are
  re-shared at once, a downed link's flows stall until it comes back. Policies see the rate
  through ``ClusterView.snic_read_bps`` (DualPath and dualpath-split read on the other side).
- ``cnic_down`` / ``cnic_degraded``: the same for the node's compute NICs (one GPU's or all).
- ``slow_storage``: ``read_share`` of the node's storage reads wait ``extra_latency_us`` more
  before their data flows (a slow shard; which reads is a fixed function of the request id).
- ``straggler_gpu``: one engine's prefill and decode step times are multiplied by
  ``compute_factor`` (its EP group steps at its slowest GPU, so a prefill straggler slows the group).
- ``node_lost``: the node and every node of its EP group stop (``sim.nodeloss``): the rounds they
  held are re-queued from the start (the KV already written stays in storage), new work goes to the
  other groups; at ``end_s`` the group is back, empty. ``requeued`` counts the rounds per fault.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from dualpath_twin.scenario import FaultConfig, fault_node_index
from dualpath_twin.sim.calls import call_later

DOWN_BPS = 1e-6
"""Capacity of a downed link, bytes/s: the network needs a positive capacity; 1e-6 B/s is nothing."""

_GOLDEN = 0.6180339887498949


def is_slow_read(rid: int, share: float) -> bool:
    """True for the ``share`` of request ids a slow storage shard serves (deterministic, evenly spread)."""
    return (rid * _GOLDEN) % 1.0 < share


class FaultInjector:
    """Schedules the scenario's faults on a world and keeps each link's product of fault factors."""

    def __init__(self, world: Any, faults: list[FaultConfig]) -> None:
        self.w = world
        self.faults = faults
        self.nodes = [fault_node_index(f.node, world.P, world.D) for f in faults]
        self.requeued = [0] * len(faults)  # node_lost: rounds abandoned and re-queued at its start
        self.nominal: dict[Any, float] = {}  # link -> capacity without faults
        self.factors: dict[Any, list[float]] = {}  # link -> factors of the faults active on it

    # ---------------------------------------------------------------- scheduling
    def start(self) -> None:
        """Schedule every fault's start and repair."""
        env = self.w.env
        for i, f in enumerate(self.faults):
            call_later(env, f.start_s, lambda _e, i=i: self._apply(i, True))
            if f.end_s is not None:
                call_later(env, f.end_s, lambda _e, i=i: self._apply(i, False))

    def _links(self, i: int) -> list[Any]:
        f, nd = self.faults[i], self.w.nodes[self.nodes[i]]
        if f.kind.startswith("snic"):
            return [nd.snic_rx, nd.snic_tx]
        if f.gpu is None:
            return [*nd.cnic_rx, *nd.cnic_tx]
        k = self.w.cnic_index(self.nodes[i], f.gpu)  # a TP engine's merged link: its transfers wait for the slow share
        return [nd.cnic_rx[k], nd.cnic_tx[k]]

    def _apply(self, i: int, on: bool) -> None:
        f = self.faults[i]
        w = self.w
        node = self.nodes[i]
        if f.kind in ("snic_down", "snic_degraded", "cnic_down", "cnic_degraded"):
            factor = 0.0 if f.kind.endswith("down") else f.rate_factor
            for lk in self._links(i):
                if lk not in self.nominal:
                    self.nominal[lk] = w.cnic_kv_bps * w.cnic_width[lk.node] if lk.kind.startswith("cnic") else lk.capacity_bps
                fs = self.factors.setdefault(lk, [])
                if on:
                    fs.append(factor)
                else:
                    fs.remove(factor)
                self._set(lk, self.nominal[lk])
        elif f.kind == "node_lost":
            group = w.group_of(node)
            if on:
                self.requeued[i] += w._lose_nodes(group)
            else:
                w._restore_nodes(group)
        elif f.kind == "slow_storage":
            extra = f.extra_latency_us * 1e-6
            cur = w.slow_reads.get(node)
            if on:
                w.slow_reads[node] = (extra, f.read_share)
            elif cur == (extra, f.read_share):
                del w.slow_reads[node]
        elif f.kind == "straggler_gpu":
            factor = f.compute_factor if on else 1.0
            if node < w.P:
                pe = w.engine_of_gpu(node, int(f.gpu or 0))
                if on:
                    w.pe_slow[pe] = factor
                else:
                    w.pe_slow.pop(pe, None)
            else:
                w.decoders[w.engine_of_gpu(node, int(f.gpu or 0))].slow = factor

    def factor(self, lk: Any) -> float:
        """The product of the active faults' factors on a link (1.0 when none)."""
        return math.prod(self.factors.get(lk, ()))

    def _set(self, lk: Any, base_bps: float) -> None:
        self.w.net.set_capacities([lk], base_bps * self.factor(lk), floor_bps=DOWN_BPS)

    def reapply(self, links: list[Any], base_bps: float) -> None:
        """After the world set ``links`` to ``base_bps`` (a prefill step's CNIC lane), scale the faulted ones."""
        for lk in links:
            if self.factors.get(lk):
                self._set(lk, base_bps)


# ---------------------------------------------------------------- effect on a run


def _rate(t: Any, w: Any, a: float, b: float) -> float:
    """Sum of weights ``w`` of events at times ``t`` in [a, b), per second."""
    if b <= a:
        return float("nan")
    m = (t >= a) & (t < b)
    return float(w[m].sum()) / (b - a)


def fault_effects(faults: list[FaultConfig], rounds: pl.DataFrame, end_t: float, window_s: float = 10.0,
                  requeued: list[int] | None = None) -> list[dict]:
    """Per fault: prompt tokens/s prefilled before it and during it, the degradation, and the recovery time.

    ``before`` is the window of the fault's length (at most 60 s, at least ``window_s``) ending at
    ``start_s``; ``during`` is [start_s, end_s) (or to the end of the run); recovery is the time from
    ``end_s`` until a ``window_s`` window first prefills at least 90% of ``before`` (None if never
    within the run, or no repair). ``requeued``: per fault, the rounds a node loss re-queued.
    """
    done = rounds.filter(pl.col("prefill_end_s").is_not_null())
    t = done["prefill_end_s"].to_numpy()
    w = done["prompt_tokens"].to_numpy().astype(float)
    out = []
    for i, f in enumerate(faults):
        start = f.start_s
        stop = min(f.end_s, end_t) if f.end_s is not None else end_t
        length = min(max(stop - start, window_s), 60.0)
        before = _rate(t, w, max(0.0, start - length), start)
        during = _rate(t, w, start, stop)
        degr = None
        if before == before and during == during and before > 0:
            degr = 1.0 - during / before
        rec = None
        if f.end_s is not None and f.end_s < end_t and before == before and before > 0:
            step = window_s / 10
            x = f.end_s
            while x + window_s <= end_t + 1e-9:
                if _rate(t, w, x, x + window_s) >= 0.9 * before:
                    rec = x - f.end_s
                    break
                x += step
        out.append({
            "kind": f.kind, "node": f.node, "gpu": f.gpu, "start_s": start, "end_s": f.end_s,
            "prompt_tokens_per_s_before": before if before == before else None,
            "prompt_tokens_per_s_during": during if during == during else None,
            "degradation": degr, "recovery_s": rec,
            "rounds_requeued": requeued[i] if requeued is not None and f.kind == "node_lost" else None,
        })
    return out
