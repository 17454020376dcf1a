"""Closed-form per-resource bounds: the most rounds per second each resource can sustain.

For the workload's mean round (prompt, hit, generated tokens) each resource's capacity is
divided by what one round demands of it under a policy. The smallest quotient is the binding
resource; the run can be no faster. These are bounds (perfect overlap, perfect balance), so a
simulation lands at or below them, and near them when one resource binds by a wide margin.

With a DRAM cache tier (``[cache]``) only the uncached share of the hit KV crosses storage and
the storage NICs; the cached share is read from its holder node's DRAM and, when the holder is
not the reading node, crosses the holder's CNIC tx and the reader's CNIC rx. ``cache_share``
gets that share (and where the cached blocks live) from the workload without the network; the
CNIC and DRAM terms then take the busiest node of each role, since holders are fixed by the
block keys and not balanced by the scheduler.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np

from dualpath_twin.results import Bound
from dualpath_twin.scenario import Scenario
from dualpath_twin.sim.cache import KEY_STRIDE
from dualpath_twin.sim.cost import CostModel, build_cost_model
from dualpath_twin.workload.types import Workload

RESOURCE_LABELS = {
    "snic_read": "storage NIC reads",
    "storage_read": "storage backend read bandwidth",
    "snic_write": "decode storage NIC writes",
    "prefill_compute": "prefill GPU compute",
    "decode": "decode GPUs (HBM bandwidth and capacity)",
    "pe_cnic": "prefill compute NICs",
    "de_cnic": "decode compute NICs",
    "pe_dram": "prefill host DRAM bandwidth",
    "de_dram": "decode host DRAM bandwidth",
}


@dataclass
class PdRange:
    """Where a scenario's P/D ratio sits against DualPath's bottleneck-free range (DualPath paper)."""

    s: float
    lower: float
    upper: float
    ratio: float
    inside: bool
    limiting_term: str
    text: str


def pd_range(sc: Scenario) -> PdRange:
    """Bottleneck-free P/D range s/(g-s) <= P/D <= min{(g-2s)/s, (g-s)/(2s), (M/(sB)-3)/2}."""
    n = sc.network
    g = sc.cluster.gpus_per_node
    b_gpu = n.cnic_gbps * n.cnics_per_node / g  # per-GPU CNIC bandwidth, Gbps
    snic = n.snic_gbps * n.snics_per_node
    s = snic / b_gpu
    m = n.dram_gbps
    lower = s / (g - s) if g > s else math.inf
    terms = {
        "(g-2s)/s: prefill CNIC": (g - 2 * s) / s,
        "(g-s)/(2s): decode CNIC": (g - s) / (2 * s),
        "(M/(sB)-3)/2: DRAM": (m / snic - 3) / 2,
    }
    lim = min(terms, key=terms.get)
    upper = terms[lim]
    ratio = sc.cluster.prefill_nodes / sc.cluster.decode_nodes
    inside = lower <= ratio <= upper
    if inside:
        text = f"P/D = {ratio:.3g} is inside the bottleneck-free range [{lower:.3g}, {upper:.3g}]"
    elif ratio < lower:
        text = f"P/D = {ratio:.3g} is below the range [{lower:.3g}, {upper:.3g}]: too few prefill nodes, decode-side reads would saturate prefill CNICs"
    else:
        text = f"P/D = {ratio:.3g} is above the range [{lower:.3g}, {upper:.3g}]: limited by {lim}"
    return PdRange(s, lower, upper, ratio, inside, lim, text)


EXACT_CACHE_LOOKUPS = 3_000_000
"""Block lookups up to which ``cache_share`` replays the LRU block by block (~1 s); beyond, closed forms or an upper bound."""


@dataclass
class CacheShare:
    """What a ``[cache]`` serves of the workload's hit KV, for the bounds."""

    share: float  # cached tokens / hit tokens over the workload
    holder_share: np.ndarray  # float [nodes]: share of the cached tokens each node holds
    method: str  # how the share was obtained (for the explanation)
    optimistic: bool  # True: the share is an upper bound (a bigger share than the run can get)


_SHARE_MEMO: dict[int, tuple[weakref.ref, dict]] = {}


def _synthetic_layout(wl: Workload, block_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per round: its trajectory, its index in the trajectory, its key blocks, and the lockstep visiting order."""
    counts = np.diff(wl.round_offsets)
    traj = np.repeat(np.arange(wl.n_trajectories), counts)
    ridx = np.arange(wl.n_rounds) - np.repeat(wl.round_offsets[:-1], counts)
    full = (wl.prompt_tokens + wl.gen_tokens) // block_tokens
    return traj, ridx, full, np.lexsort((traj, ridx))


def _is_trace(wl: Workload) -> bool:
    order = wl.meta.get("block_order")
    return (wl.meta.get("block_keys") is not None and wl.meta.get("block_key_offsets") is not None
            and order is not None and len(order) == wl.n_rounds)


def _first_keys(wl: Workload, block_tokens: int) -> np.ndarray:
    """Per round the first key of its blocks (the sim's cache puts a round's cached blocks on node key mod nodes)."""
    if _is_trace(wl):
        flat, koff = np.asarray(wl.meta["block_keys"]), np.asarray(wl.meta["block_key_offsets"])
        line = np.asarray(wl.meta["block_order"])
        start = koff[line]
        has = koff[line + 1] > start
        return np.where(has, flat[np.minimum(start, max(len(flat) - 1, 0))] if len(flat) else 0, 0).astype(np.int64)
    traj = np.repeat(np.arange(wl.n_trajectories), np.diff(wl.round_offsets))
    return traj.astype(np.int64) * KEY_STRIDE


def _lockstep_cached(wl: Workload, cap_blocks: int, block_tokens: int, n_lru: int = 1) -> np.ndarray | None:
    """Cached tokens per round of ``n_lru`` LRUs over synthetic trajectories, in closed form (None: not applicable).

    Trajectories are visited in lockstep and each round touches its trajectory's key blocks
    0..full-1 in order (key ``t * KEY_STRIDE + i``, kept in LRU ``key mod n_lru``). At a round's lookup
    the least recently used of the trajectory's blocks in each LRU is the lowest-numbered one
    there, block e; its LRU stack distance is the trajectory's later blocks in that LRU plus the
    blocks every round visited in between put there. If block e is cached, so are the later
    blocks of its LRU, so the lookup's cached prefix ends at the first such e that is not (or at
    the previous round's last block: past it nothing was ever inserted). Exact (the same cached
    tokens as ``sim.cache.plan_cache``) unless a lookup reaches past the previous round's blocks
    into those of an older, longer round (a context reset); then None.
    """
    traj, ridx, full, order = _synthetic_layout(wl, block_tokens)
    later = ridx > 0
    r = np.flatnonzero(later)
    prev = r - 1
    fprev = full[prev]
    hit = wl.hit_tokens[r]
    nh = np.minimum(-(-hit // block_tokens), full[r])
    # a lookup past full_prev meets blocks an older, longer round of the trajectory left (a context
    # reset shrank it): their recency is not that of the previous round, so leave those to the replay
    t64 = traj.astype(np.int64)
    big = int(full.max(initial=0)) + 1
    runmax = np.maximum.accumulate(t64 * big + full) - t64 * big
    older = np.where(ridx[r] >= 2, runmax[np.maximum(prev - 1, 0)], 0)
    if np.any((nh > fprev) & (older > fprev)):
        return None
    pos = np.empty(wl.n_rounds, dtype=np.int64)
    pos[order] = np.arange(wl.n_rounds)
    lo, hi = pos[prev] + 1, pos[r]  # the rounds visited in between: order[lo:hi]
    reach = np.minimum(nh, fprev)  # blocks the lookup can find
    lead = reach.copy()
    if n_lru == 1:
        cum = np.concatenate([[0], np.cumsum(full[order])])
        present = cum[hi] - cum[lo] + fprev - 1 < cap_blocks
        lead[~present] = 0
    else:
        res = (t64 * KEY_STRIDE) % n_lru  # LRU of a trajectory's block 0
        res_ord, full_ord = res[order], full[order]
        res_r = res[r]
        for m in range(n_lru):
            # blocks each round puts in LRU m: i < full with (res + i) mod n_lru == m
            d = (m - res_ord) % n_lru
            cum = np.concatenate([[0], np.cumsum(np.maximum(full_ord - d + n_lru - 1, 0) // n_lru)])
            e = (m - res_r) % n_lru  # the round's lowest block in LRU m
            own = np.maximum(fprev - 1 - e, 0) // n_lru
            absent = (e < reach) & (cum[hi] - cum[lo] + own >= cap_blocks)
            lead = np.where(absent, np.minimum(lead, e), lead)
    cached = np.zeros(wl.n_rounds, dtype=np.int64)
    tok = np.minimum(lead * block_tokens, hit)
    cached[r] = tok - tok % block_tokens
    return cached


def _subsample(wl: Workload, n_traj: int) -> tuple[Workload, np.ndarray]:
    """The first ``n_traj`` trajectories of a synthetic workload (and their rounds' indices)."""
    from dataclasses import replace

    stop = int(wl.round_offsets[n_traj])
    sub = replace(
        wl, arrival_s=wl.arrival_s[:n_traj], round_offsets=wl.round_offsets[:n_traj + 1],
        prompt_tokens=wl.prompt_tokens[:stop], hit_tokens=wl.hit_tokens[:stop], gen_tokens=wl.gen_tokens[:stop],
        delay_s=wl.delay_s[:stop], offset_s=None if wl.offset_s is None else wl.offset_s[:stop], meta={},
    )
    return sub, np.arange(stop)


def _cached_tokens(wl: Workload, capacity_gb: float | None, scope: str, n_nodes: int, kv: float,
                   block_tokens: int) -> tuple[np.ndarray, np.ndarray, str, bool]:
    """(cached tokens per round, the rounds they are of, method, optimistic) for a ``[cache]``."""
    from dualpath_twin.sim.cache import plan_cache

    rounds = np.arange(wl.n_rounds)
    if capacity_gb is None:  # every hit is cached (sim.cache: the hit ratio of `workload stats`)
        return wl.hit_tokens.astype(np.int64), rounds, "unbounded cache: every hit block", False
    trace = _is_trace(wl)
    if trace:
        ktok = int(wl.meta.get("native_block_tokens") or block_tokens)
        lookups = len(wl.meta["block_keys"])
    else:
        ktok = block_tokens
        lookups = int(((wl.prompt_tokens + wl.gen_tokens) // block_tokens).sum())
    cap_blocks = int(capacity_gb * 1e9 // (ktok * kv))
    n_lru = n_nodes if scope == "per_node" else 1
    if not trace and (n_lru == 1 or n_lru * wl.n_rounds <= 100_000_000):
        got = _lockstep_cached(wl, cap_blocks, block_tokens, n_lru)
        if got is not None:
            return got, rounds, "LRU replay of the workload's blocks", False
    if lookups <= EXACT_CACHE_LOOKUPS:
        plan = plan_cache(wl, capacity_gb, scope, n_nodes, kv, block_tokens)
        return plan.cached_tokens, rounds, "LRU replay of the workload's blocks", False
    if not trace and wl.n_trajectories > 1:
        # whole trajectories keep their own blocks: on a subsequence of them every lookup that hits
        # in the full run still hits (LRU stack distances only shrink), so the share is an upper bound
        n = max(1, int(wl.n_trajectories * EXACT_CACHE_LOOKUPS / lookups))
        sub, idx = _subsample(wl, n)
        plan = plan_cache(sub, capacity_gb, scope, n_nodes, kv, block_tokens)
        return plan.cached_tokens, idx, f"upper bound: LRU replay of {n} of {wl.n_trajectories} trajectories", True
    return wl.hit_tokens.astype(np.int64), rounds, "upper bound: as if unbounded", True


def cache_share(sc: Scenario, wl: Workload, kv_bytes_per_token: float) -> CacheShare | None:
    """Share of the hit KV the scenario's ``[cache]`` serves from DRAM and which nodes hold it (None: no cache)."""
    cc = sc.cache
    if cc is None or wl.n_rounds == 0:
        return None
    n_nodes = sc.cluster.prefill_nodes + sc.cluster.decode_nodes
    block = sc.storage.block_tokens
    key = (wl.n_rounds, cc.capacity_gb, cc.scope, n_nodes if cc.scope == "per_node" else 0, float(kv_bytes_per_token), block)
    ref, memo = _SHARE_MEMO.get(id(wl), (None, None))
    if ref is None or ref() is not wl:
        if len(_SHARE_MEMO) > 8:
            _SHARE_MEMO.clear()
        memo = {}
        _SHARE_MEMO[id(wl)] = (weakref.ref(wl), memo)
    got = memo.get(key)
    if got is None:
        got = memo[key] = _cached_tokens(wl, cc.capacity_gb, cc.scope, n_nodes, kv_bytes_per_token, block)
    cached, rounds, method, optimistic = got
    hit = float(wl.hit_tokens[rounds].sum())
    total = float(cached.sum())
    holders = (_first_keys(wl, block)[rounds] % n_nodes).astype(np.int64)
    by_node = np.bincount(holders, weights=cached.astype(np.float64), minlength=n_nodes)
    return CacheShare(
        share=min(total / hit, 1.0) if hit > 0 else 0.0,
        holder_share=by_node / total if total > 0 else np.zeros(n_nodes),
        method=method,
        optimistic=optimistic,
    )


def _means(wl: Workload) -> tuple[float, float, float, float]:
    if wl.n_rounds == 0:
        return 1.0, 0.0, 1.0, 1.0
    p = float(np.mean(wl.prompt_tokens))
    h = float(np.mean(wl.hit_tokens))
    gen = float(np.mean(wl.gen_tokens))
    return p, h, max(p - h, 1.0), gen


def prefill_gpu_s_per_round(sc: Scenario, cost: CostModel, miss: float, hit: float) -> float:
    """Engine-seconds of prefill per mean round at the batch the compute quota allows (GPU-seconds without TP)."""
    attn = cost.attention_time_s(miss, hit)
    quota = sc.policy.compute_quota_ms / 1000.0
    b = max(1, min(sc.policy.max_prefill_batch, int(quota / attn) if attn > 0 else sc.policy.max_prefill_batch))
    step, _ = cost.prefill_uniform_step_s(b, max(int(round(miss)), 1), int(round(hit)))
    return step / b


def decode_rounds_per_s(sc: Scenario, cost: CostModel, prompt: float, gen: float) -> tuple[float, float]:
    """(rounds/s the decode engines sustain, batch per engine) with HBM-capped batches at mean context."""
    kv = cost.kv_bytes_per_token
    per_req = (prompt + gen) * kv
    bsz = max(1, int(cost.hbm_kv_decode_bytes // per_req)) if per_req > 0 else 1
    ctx = prompt + gen / 2
    model = cost.model
    step, _ = cost.decode_step_s(bsz, bsz * model.decode_kv_read_bytes(ctx), bsz * cost.attention_flops_per_token(ctx))
    tok_per_s_gpu = bsz / step
    n = sc.cluster.decode_nodes * sc.cluster.engines_per_node("decode")
    steps_per_round = max(gen - 1, 1.0)
    return n * tok_per_s_gpu / steps_per_round, bsz


def compute_bound(sc: Scenario, wl: Workload, policy: str | None = None, cost: CostModel | None = None) -> Bound:
    """Per-resource maximum rounds/s for ``policy`` (default: the scenario's) and the binding one."""
    pol = policy or sc.policy.name
    cost = cost or build_cost_model(sc)
    prompt, hit, miss, gen = _means(wl)
    kv = cost.kv_bytes_per_token
    hb, pb = hit * kv, prompt * kv
    n, c = sc.network, sc.cluster
    P, D = c.prefill_nodes, c.decode_nodes
    snic = n.snic_gbps / 8 * 1e9 * n.snics_per_node * n.snic_efficiency
    cnic_node = n.cnic_gbps / 8 * 1e9 * n.cnic_efficiency * n.cnics_per_node
    dram = n.dram_gbps / 8 * 1e9
    write_b = (miss + gen) * kv
    io = pol != "oracle"
    de_reads = pol in ("dualpath", "dualpath-split")
    r: dict[str, float] = {}
    inf = math.inf
    cs = cache_share(sc, wl, kv) if io and hb > 0 else None
    if io and hb > 0:
        sb = hb if cs is None else (1.0 - cs.share) * hb  # hit bytes read from storage
        if sb > 0:
            r["snic_read"] = (P + D if de_reads else P) * snic / sb
            if sc.storage.read_gbps_total:
                r["storage_read"] = sc.storage.read_gbps_total / 8 * 1e9 / sb
        # share of reads on the decode side at perfect SNIC balance
        f = D / (P + D) if de_reads else 0.0
        pe_rx = hb  # every hit byte enters the PE GPU through its CNIC (loopback or from the DE)
        pe_tx = pb - f * hb  # PD transfer: whole prompt for PE-side reads, only missed KV otherwise
        de_rx = pe_tx + (pb if pol != "basic" else 0.0)  # PD in + DRAM->HBM at decode start
        de_tx = f * hb + write_b
        pe_dram = 2 * (1 - f) * hb
        de_dram = 2 * f * hb + (2 * (pb - f * hb) if pol != "basic" else 0.0) + 2 * write_b
        if cs is None or cs.share <= 0:
            r["pe_cnic"] = P * cnic_node / max(pe_rx, pe_tx)
            r["de_cnic"] = D * cnic_node / max(de_rx, de_tx, 1.0)
            r["pe_dram"] = P * dram / pe_dram
            r["de_dram"] = D * dram / max(de_dram, 1.0)
        else:
            # cached bytes go holder DRAM -> holder CNIC tx -> reader CNIC rx -> reader DRAM (just
            # the reader's DRAM, as a storage read, when the holder reads). Readers are spread
            # evenly over each role's nodes; holders are where the cache put the blocks.
            cb = cs.share * hb
            reader = np.array([(1 - f) / P] * P + [f / D] * D)
            q = cs.holder_share
            tx = cb * q * (1 - reader)  # also read out of the holder's DRAM
            rx = cb * reader * (1 - q)
            pe, de = slice(0, P), slice(P, P + D)
            r["pe_cnic"] = cnic_node / float(np.max(np.maximum(pe_rx / P + rx[pe], pe_tx / P + tx[pe])))
            r["de_cnic"] = cnic_node / max(float(np.max(np.maximum(de_rx / D + rx[de], de_tx / D + tx[de]))), 1.0 / D)
            r["pe_dram"] = dram / float(np.max(pe_dram / P + tx[pe]))
            r["de_dram"] = dram / max(float(np.max(de_dram / D + tx[de])), 1.0 / D)
        r["snic_write"] = D * snic / max(write_b, 1.0)
        if sc.storage.write_gbps_total:
            r["storage_write"] = sc.storage.write_gbps_total / 8 * 1e9 / max(write_b, 1.0)
    gpu_s = prefill_gpu_s_per_round(sc, cost, miss, hit)
    r["prefill_compute"] = P * c.engines_per_node("prefill") / gpu_s if gpu_s > 0 else inf
    r["decode"], _ = decode_rounds_per_s(sc, cost, prompt, gen)
    items = sorted(r.items(), key=lambda kv_: kv_[1])
    first = items[0]
    second = items[1] if len(items) > 1 else (first[0], inf)
    max_rps = first[1]
    jct = None
    if sc.workload.mode == "offline" and wl.n_rounds:
        work = wl.n_rounds / max_rps
        # critical path of the slowest agent: its rounds run back to back, each needing at least
        # (gen - 1) decode steps at batch 1 plus its delays (prefill and I/O ignored: still a bound)
        step1, _ = cost.decode_step_s(1, cost.model.decode_kv_read_bytes(prompt), cost.attention_flops_per_token(prompt))
        per_round = (np.maximum(wl.gen_tokens - 1, 0) * step1).astype(float)
        if not wl.open_loop:
            per_round = per_round + wl.delay_s * (np.arange(wl.n_rounds) != np.repeat(wl.round_offsets[:-1], np.diff(wl.round_offsets)))
        starts = wl.round_offsets[:-1][np.diff(wl.round_offsets) > 0]
        chain = float(np.add.reduceat(per_round, starts).max()) if len(starts) else 0.0
        jct = max(work, chain + float(wl.arrival_s.max()) if wl.n_trajectories else chain)
    label = RESOURCE_LABELS.get(first[0], first[0])
    margin = (second[1] / first[1]) if first[1] > 0 else 1.0
    expl = (
        f"{pol}: at most {max_rps:.1f} rounds/s, bound by {label}"
        + (f" ({margin:.2f}x below the next, {RESOURCE_LABELS.get(second[0], second[0])})" if math.isfinite(second[1]) else "")
    )
    if cs is not None:
        expl += f"; the DRAM cache serves {cs.share:.0%} of the hit KV ({cs.method})"
        if cs.optimistic:
            expl += ", so this bound is optimistic"
        elif pol == "dualpath-split" and cs.share > 0:
            expl += "; reads split over both sides skip the cache, so this bound is optimistic"
    return Bound(
        policy=pol,
        rounds_per_s_by_resource={k: float(v) for k, v in r.items()},
        max_rounds_per_s=float(max_rps),
        max_prompt_tokens_per_s=float(max_rps * prompt),
        max_generated_tokens_per_s=float(max_rps * gen),
        min_jct_s=jct,
        binding_resource=first[0],
        second_resource=second[0] if math.isfinite(second[1]) else "",
        binding_margin=float(margin) if math.isfinite(margin) else 1e9,
        explanation=expl,
    )
