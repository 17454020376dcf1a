"""A DRAM cache tier in front of storage (Mooncake-style): which hit blocks are served from DRAM.

The cache holds KV blocks in the host DRAM of the cluster's nodes. Every round's prompt blocks
(and, for synthetic trajectories, the blocks its generated tokens fill) are put in the cache
once computed; a later round whose hit blocks are still cached reads them from the holding
node's DRAM over the compute network instead of from storage through a storage NIC.

Which blocks are cached is decided in one pass over the workload before the run, in the order
the rounds were produced (a trace's file order; synthetic trajectories in lockstep: every
agent's round 0, then every round 1, ...), with LRU eviction at block granularity:

- ``pooled``: one LRU of ``capacity_gb`` across the cluster; a block lives on node
  ``key mod nodes``;
- ``per_node``: each node has its own LRU of ``capacity_gb``; blocks are spread over nodes the
  same way.

A round's cached tokens are its leading hit blocks found in the cache (a prefix: the first miss
ends it), capped at its hit tokens and rounded down to ``storage.block_tokens``. The pass does
not depend on simulated timing, so with an unbounded cache every hit is cached (the hit ratio of
``workload stats``) and a smaller cache never caches more (LRU's inclusion property).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from dualpath_twin.workload.types import Workload

KEY_STRIDE = 4_294_967_311
"""Synthetic block keys: block i of trajectory t is ``t * KEY_STRIDE + i``. A prime above 2^32, so keys of
different trajectories never collide (i < 2^32) and ``key mod nodes`` spreads trajectories over any node
count (with ``t << 32`` every trajectory's first block sat on node 0 whenever the count was a power of two)."""


@dataclass
class CachePlan:
    """Per round: hit tokens served from DRAM and the node holding them (-1: none)."""

    cached_tokens: np.ndarray  # int64 [n_rounds]
    holder: np.ndarray  # int64 [n_rounds], index into the world's nodes
    key_block_tokens: int


def _round_keys(wl: Workload, block_tokens: int) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Per round its block keys, the order to visit rounds in, and tokens per key block."""
    flat = wl.meta.get("block_keys")
    koff = wl.meta.get("block_key_offsets")
    order = wl.meta.get("block_order")
    if flat is not None and koff is not None and order is not None and len(order) == wl.n_rounds:
        ktok = int(wl.meta.get("native_block_tokens") or block_tokens)
        line = np.asarray(order)
        keys = [flat[koff[i]:koff[i + 1]] for i in line.tolist()]
        return keys, np.argsort(line, kind="stable"), ktok
    # synthetic: block i of trajectory t is t * KEY_STRIDE + i; a round fills its prompt's and generated tokens' blocks
    counts = np.diff(wl.round_offsets)
    traj = np.repeat(np.arange(wl.n_trajectories), counts)
    ridx = np.arange(wl.n_rounds) - np.repeat(wl.round_offsets[:-1], counts)
    base = traj.astype(np.int64) * KEY_STRIDE
    full = (wl.prompt_tokens + wl.gen_tokens) // block_tokens
    keys = [base[r] + np.arange(int(full[r]), dtype=np.int64) for r in range(wl.n_rounds)]
    order = np.lexsort((traj, ridx))  # lockstep: round index first, then trajectory
    return keys, order, block_tokens


def plan_cache(wl: Workload, capacity_gb: float | None, scope: str, n_nodes: int, kv_bytes_per_token: float,
               block_tokens: int) -> CachePlan:
    """Decide, round by round, which hit tokens an LRU DRAM cache serves (see the module docstring)."""
    keys, order, ktok = _round_keys(wl, block_tokens)
    block_bytes = ktok * kv_bytes_per_token
    n_lru = n_nodes if scope == "per_node" else 1
    cap_blocks = None if capacity_gb is None else int(capacity_gb * 1e9 // block_bytes)
    lrus: list[OrderedDict[int, None]] = [OrderedDict() for _ in range(n_lru)]
    cached = np.zeros(wl.n_rounds, dtype=np.int64)
    holder = np.full(wl.n_rounds, -1, dtype=np.int64)
    hit_blocks = -(-wl.hit_tokens // ktok)  # key blocks overlapping the hit
    hit_tok = wl.hit_tokens.tolist()
    for r in order.tolist():
        ks = keys[r].tolist()  # Python ints: numpy scalars are slow dict keys
        nh = min(int(hit_blocks[r]), len(ks))
        lead = 0
        for k in ks[:nh]:
            if k not in lrus[k % n_lru]:
                break
            lead += 1
        if lead:
            tok = min(lead * ktok, hit_tok[r])
            tok -= tok % block_tokens
            if tok:
                cached[r] = tok
                holder[r] = ks[0] % n_nodes
        if cap_blocks == 0:
            continue
        # the round's blocks become the most recently used, in order (hits touched, new ones inserted)
        for k in ks:
            lru = lrus[k % n_lru]
            if k in lru:
                lru.move_to_end(k)
            else:
                lru[k] = None
                if cap_blocks is not None and len(lru) > cap_blocks:
                    lru.popitem(last=False)
    return CachePlan(cached, holder, ktok)
