"""Workload statistics (``dualpath-twin workload stats``): lengths, hit ratios, KV bytes to load."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, Field

from dualpath_twin.scenario import Scenario
from dualpath_twin.workload.types import Workload


class KvModel(Protocol):
    """Anything with a KV size per token (a catalog model spec)."""

    kv_bytes_per_token: float


class Summary(BaseModel):
    """Percentiles, max and mean of one quantity."""

    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    count: int

    @classmethod
    def of(cls, x: np.ndarray) -> Summary | None:
        """Summary of an array (None when empty)."""
        if len(x) == 0:
            return None
        p50, p90, p99 = np.percentile(x, [50, 90, 99])
        return cls(
            p50=float(p50),
            p90=float(p90),
            p99=float(p99),
            max=float(np.max(x)),
            mean=float(np.mean(x)),
            count=len(x),
        )


class WorkloadStats(BaseModel):
    """Statistics of a workload; ``to_dict()`` is JSON-ready. Token counts in tokens, times in seconds."""

    name: str
    source: str
    block_tokens: int
    open_loop: bool
    trajectories: int
    rounds: int
    rounds_per_trajectory: Summary | None
    prompt_tokens: Summary | None = Field(None, description="input per round (whole context + append)")
    append_tokens: Summary | None = Field(
        None, description="prompt growth over the previous context, rounds >= 1, clipped at 0"
    )
    miss_tokens: Summary | None = Field(None, description="prompt - hit: tokens to compute per round")
    gen_tokens: Summary | None = Field(None, description="output tokens per round")
    final_context_tokens: Summary | None = Field(None, description="last prompt + generated per trajectory")
    delay_s: Summary | None = Field(None, description="idle time before rounds >= 1")
    arrival_span_s: float = 0.0
    rounds_per_s: float | None = Field(None, description="open loop: rounds / arrival span")
    hit_ratio_tokens: float = Field(0.0, description="sum hit / sum prompt (unbounded cache)")
    hit_ratio_blocks: float = Field(
        0.0, description="hit blocks / prompt blocks (partial blocks count) at block_tokens"
    )
    native_block_hit_ratio: float | None = Field(
        None, description="in the trace's own hash blocks (512 Mooncake, 64 Claude Code)"
    )
    kv_bytes_per_token: float | None = None
    kv_load_bytes_per_round: Summary | None = Field(None, description="hit_tokens x kv_bytes_per_token")
    kv_load_bytes_total: float | None = None
    skipped_lines: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict."""
        return self.model_dump(mode="json")


def _load(source: Scenario | Path | str | Workload, block_tokens: int, skip_bad_lines: bool = False) -> tuple[Workload, int]:
    from dualpath_twin.workload.build import build_workload
    from dualpath_twin.workload.readers import read_trace

    if isinstance(source, Workload):
        return source, block_tokens
    if isinstance(source, Scenario):
        return build_workload(source, skip_bad_lines=source.workload.skip_bad_lines), source.storage.block_tokens
    p = Path(source)
    if p.suffix.lower() == ".toml":
        from dualpath_twin import scenario as scenario_mod

        sc = scenario_mod.load(p, check_catalog=False)
        return build_workload(sc, p.parent, skip_bad_lines=sc.workload.skip_bad_lines), sc.storage.block_tokens
    return read_trace(p, block_tokens=block_tokens, skip_bad_lines=skip_bad_lines), block_tokens


def workload_stats(
    source: Scenario | Path | str | Workload,
    model_spec: KvModel | None = None,
    block_tokens: int = 64,
    skip_bad_lines: bool = False,
) -> WorkloadStats:
    """Statistics of a scenario's workload, a scenario TOML, a trace file or a Workload (``skip_bad_lines``: trace files)."""
    wl, bt = _load(source, block_tokens, skip_bad_lines)
    off = wl.round_offsets
    counts = np.diff(off)
    starts = off[:-1][counts > 0]
    ends = off[1:][counts > 0] - 1
    later = np.ones(wl.n_rounds, dtype=bool)
    later[starts] = False
    prev_ctx = np.zeros(wl.n_rounds, dtype=np.int64)
    prev_ctx[1:] = wl.prompt_tokens[:-1] + wl.gen_tokens[:-1]
    append = np.maximum(wl.prompt_tokens - prev_ctx, 0)[later]
    prompt = wl.prompt_tokens
    hit = wl.hit_tokens
    psum = float(prompt.sum())
    prompt_blocks = float(np.sum(-(-prompt // bt)))
    span = float(np.max(wl.arrival_s) - np.min(wl.arrival_s)) if wl.n_trajectories else 0.0
    if wl.open_loop and wl.offset_s is not None and wl.n_rounds:
        arr = np.repeat(wl.arrival_s, counts) + wl.offset_s
        span = float(arr.max() - arr.min())
    kv = float(model_spec.kv_bytes_per_token) if model_spec is not None else None
    kv_load = hit * kv if kv is not None else None
    native = wl.meta.get("native_block_hit_ratio")
    return WorkloadStats(
        name=wl.name,
        source=wl.source,
        block_tokens=bt,
        open_loop=wl.open_loop,
        trajectories=wl.n_trajectories,
        rounds=wl.n_rounds,
        rounds_per_trajectory=Summary.of(counts),
        prompt_tokens=Summary.of(prompt),
        append_tokens=Summary.of(append),
        miss_tokens=Summary.of(prompt - hit),
        gen_tokens=Summary.of(wl.gen_tokens),
        final_context_tokens=Summary.of(wl.prompt_tokens[ends] + wl.gen_tokens[ends]),
        delay_s=Summary.of(wl.delay_s[later]),
        arrival_span_s=span,
        rounds_per_s=(wl.n_rounds / span) if (wl.open_loop and span > 0) else None,
        hit_ratio_tokens=float(hit.sum()) / psum if psum else 0.0,
        hit_ratio_blocks=float((hit // bt).sum()) / prompt_blocks if prompt_blocks else 0.0,
        native_block_hit_ratio=float(native) if isinstance(native, float) else None,
        kv_bytes_per_token=kv,
        kv_load_bytes_per_round=Summary.of(kv_load) if kv_load is not None else None,
        kv_load_bytes_total=float(kv_load.sum()) if kv_load is not None else None,
        skipped_lines=int(wl.meta.get("skipped_lines", 0)),
    )


def _fmt(v: float) -> str:
    if abs(v) >= 1e15:
        return f"{v / 1e15:,.2f}P"
    if abs(v) >= 1e12:
        return f"{v / 1e12:,.2f}T"
    if abs(v) >= 1e9:
        return f"{v / 1e9:,.2f}G"
    if abs(v) >= 1e6:
        return f"{v / 1e6:,.2f}M"
    if abs(v) >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.2f}"


def format_stats_table(stats: WorkloadStats) -> str:
    """A plain-text table of the statistics for terminals."""
    lines = [
        f"workload {stats.name}  ({stats.source})",
        f"  trajectories {stats.trajectories:,}   rounds {stats.rounds:,}   block {stats.block_tokens} tokens"
        + ("   open loop" if stats.open_loop else ""),
    ]
    if stats.arrival_span_s:
        rate = f", {stats.rounds_per_s:.2f} rounds/s" if stats.rounds_per_s else ""
        lines.append(f"  arrivals over {stats.arrival_span_s:,.1f} s{rate}")
    lines.append(f"  {'':<24}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}{'mean':>10}")
    rows = [
        ("rounds/trajectory", stats.rounds_per_trajectory),
        ("prompt tokens", stats.prompt_tokens),
        ("append tokens", stats.append_tokens),
        ("miss tokens", stats.miss_tokens),
        ("generated tokens", stats.gen_tokens),
        ("final context tokens", stats.final_context_tokens),
        ("idle before round, s", stats.delay_s),
        ("KV load bytes/round", stats.kv_load_bytes_per_round),
    ]
    for label, s in rows:
        if s is None:
            continue
        vals = "".join(f"{_fmt(v):>10}" for v in (s.p50, s.p90, s.p99, s.max, s.mean))
        lines.append(f"  {label:<24}{vals}")
    hit = f"  hit ratio (unbounded cache): {stats.hit_ratio_tokens:.1%} of tokens, {stats.hit_ratio_blocks:.1%} of blocks"
    if stats.native_block_hit_ratio is not None:
        hit += f" ({stats.native_block_hit_ratio:.1%} of the trace's own blocks)"
    lines.append(hit)
    if stats.kv_load_bytes_total is not None:
        lines.append(
            f"  KV to load in total: {_fmt(stats.kv_load_bytes_total)}B at {stats.kv_bytes_per_token:,.0f} B/token"
        )
    if stats.skipped_lines:
        lines.append(f"  skipped bad lines: {stats.skipped_lines}")
    return "\n".join(lines)
