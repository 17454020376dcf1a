"""Scenario knobs applied to any Workload: arrivals, tool latency, scaling, context cap, block rounding."""

from __future__ import annotations

import numpy as np

from dualpath_twin.scenario import Distribution
from dualpath_twin.workload.rng import stream
from dualpath_twin.workload.types import Workload


def draw_distribution(dist: Distribution, rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw ``size`` non-negative values from a scenario Distribution (lognormal: mean and sigma)."""
    if dist.kind == "const":
        return np.full(size, float(dist.mean))
    if dist.kind == "exponential":
        return rng.exponential(dist.mean, size) if dist.mean > 0 else np.zeros(size)
    if dist.kind == "lognormal":
        if dist.mean <= 0:
            return np.zeros(size)
        return rng.lognormal(np.log(dist.mean) - dist.sigma**2 / 2, dist.sigma, size)
    return rng.uniform(dist.low, dist.high, size)


def is_default_distribution(dist: Distribution) -> bool:
    """True for the untouched default (const 0): the workload keeps its own idle times."""
    return dist.kind == "const" and dist.mean == 0


def poisson_arrivals(n: int, rate_aps: float, seed: int) -> np.ndarray:
    """Arrival times of ``n`` agents of a Poisson process at ``rate_aps`` agents/s (first gap included)."""
    rng = stream(seed, "workload.arrivals")
    return np.cumsum(rng.exponential(1.0 / rate_aps, n))


def apply_tool_latency(wl: Workload, dist: Distribution, seed: int) -> None:
    """Replace delay_s of every round after the first with draws from ``dist`` (in place)."""
    rng = stream(seed, "workload.tool_latency")
    d = draw_distribution(dist, rng, wl.n_rounds)
    d[wl.round_offsets[:-1][np.diff(wl.round_offsets) > 0]] = 0.0
    wl.delay_s = d


def scale_trace(wl: Workload, append_scale: float, gen_scale: float) -> None:
    """Scale a replayed trace in place: the missed (computed) part of each prompt and the generated tokens.

    Hits stay as recorded, so prefix reuse is preserved; prompt = hit + scaled miss.
    """
    if append_scale != 1.0:
        miss = wl.prompt_tokens - wl.hit_tokens
        wl.prompt_tokens = wl.hit_tokens + np.maximum(np.rint(miss * append_scale).astype(np.int64), 1)
    if gen_scale != 1.0:
        wl.gen_tokens = np.maximum(np.rint(wl.gen_tokens * gen_scale).astype(np.int64), 1)


def truncate_context(wl: Workload, max_context_tokens: int) -> int:
    """Cut each trajectory before its first round whose prompt + generated exceeds the cap; returns rounds dropped.

    Trajectories left without rounds are removed.
    """
    n = wl.n_trajectories
    counts = np.diff(wl.round_offsets)
    tid = np.repeat(np.arange(n), counts)
    over = (wl.prompt_tokens + wl.gen_tokens) > max_context_tokens
    if not over.any():
        return 0
    bad_cum = np.cumsum(over)
    before = np.concatenate([[0], bad_cum])[wl.round_offsets[:-1]]
    keep = (bad_cum - before[tid]) == 0
    kept_counts = np.bincount(tid[keep], minlength=n)
    live = kept_counts > 0
    dropped = int((~keep).sum())
    offsets = np.zeros(int(live.sum()) + 1, dtype=np.int64)
    np.cumsum(kept_counts[live], out=offsets[1:])
    for name in ("prompt_tokens", "hit_tokens", "gen_tokens", "delay_s"):
        setattr(wl, name, getattr(wl, name)[keep])
    if wl.offset_s is not None:
        wl.offset_s = wl.offset_s[keep]
    wl.arrival_s = wl.arrival_s[live]
    wl.round_offsets = offsets
    for key in ("trajectory_group", "trajectory_names"):
        per_traj = wl.meta.get(key)
        if isinstance(per_traj, list) and len(per_traj) == n:
            wl.meta[key] = [x for x, k in zip(per_traj, live, strict=True) if k]
    order = wl.meta.get("block_order")  # per round: its line in the trace (keys stay indexed by line)
    if order is not None and len(order) == len(keep):
        wl.meta["block_order"] = np.asarray(order)[keep]
    return dropped


def round_hits(wl: Workload, block_tokens: int) -> None:
    """Round hit tokens down to whole blocks (in place)."""
    wl.hit_tokens = wl.hit_tokens - wl.hit_tokens % block_tokens
