"""Vectorised synthetic generators: the paper's agentic datasets and Claude Code-shaped sessions.

Both return a Workload with arrival_s = 0 and delay_s = 0 unless the dataset has its own idle
times; scenario knobs (arrivals, tool latency) are applied by ``build_workload``.
"""

from __future__ import annotations

import numpy as np

from dualpath_twin.workload.datasets import AgenticSpec, ClaudeCodeSpec
from dualpath_twin.workload.rng import stream
from dualpath_twin.workload.types import Workload


def _segment_starts(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trajectory id and round index of every flat round, from round offsets."""
    counts = np.diff(offsets)
    tid = np.repeat(np.arange(len(counts)), counts)
    ridx = np.arange(int(offsets[-1]), dtype=np.int64) - offsets[:-1][tid]
    return tid, ridx


def _tokens(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Round positive floats to whole tokens >= 1."""
    return np.maximum(1, np.rint(x * scale)).astype(np.int64)


def _grouped_cumsum(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at every index where ``start`` is True (start[0] must be True)."""
    cs = np.cumsum(values)
    idx = np.flatnonzero(start)
    base = np.zeros_like(cs)
    base[idx[1:]] = cs[idx[1:] - 1]
    base = np.maximum.accumulate(base) if len(base) else base
    # maximum.accumulate is valid because cs is non-decreasing for non-negative values
    return cs - base


def _compact(offsets_keep: np.ndarray, keep: np.ndarray, tid: np.ndarray, n: int) -> np.ndarray:
    counts = np.bincount(tid[keep], minlength=n)
    out = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def generate_agentic(
    spec: AgenticSpec,
    n_trajectories: int,
    seed: int,
    *,
    block_tokens: int = 64,
    mal_tokens: int | None = None,
    append_scale: float = 1.0,
    gen_scale: float = 1.0,
    name: str = "agentic",
) -> Workload:
    """Coding-agent rollouts: a unique large first prompt, then rounds of append + generation, cut at MAL.

    Round i's prompt = context after round i-1 (prompt + generated) + append_i; hit = that
    previous context rounded down to whole blocks (round 0: 0). A trajectory ends at its natural
    length or before the first round whose context (prompt + generated) would exceed MAL.
    """
    n = int(n_trajectories)
    mal = int(mal_tokens or spec.mal_tokens)
    rng = stream(seed, f"workload.synthetic.{name}")
    p0 = _tokens(spec.initial_prompt.draw(rng, n))
    nat = np.minimum(_tokens(spec.rounds.draw(rng, n)), mal // 2)
    s_app = spec.append.traj_scale(rng, n)
    s_gen = spec.gen.traj_scale(rng, n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nat, out=offsets[1:])
    tid, ridx = _segment_starts(offsets)
    tot = int(offsets[-1])
    g = _tokens(spec.gen.draw(rng, tot) * s_gen[tid], gen_scale)
    first = ridx == 0
    # round 0 must fit: its prompt plus generation stay within MAL
    g0 = g[first]
    np.minimum(g0, mal // 4, out=g0)
    g[first] = g0
    p0 = np.minimum(p0, mal - g0)
    a = _tokens(spec.append.draw(rng, tot) * s_app[tid], append_scale)
    a[first] = p0
    after = _grouped_cumsum(a + g, first)  # context after each round
    bad = (after > mal) & ~first
    cbad = _grouped_cumsum(bad.astype(np.int64), first)
    keep = cbad == 0
    prompt = (after - g)[keep]
    gen = g[keep]
    new_offsets = _compact(offsets, keep, tid, n)
    ktid, kridx = _segment_starts(new_offsets)
    prev_ctx = np.zeros_like(prompt)
    prev_ctx[1:] = prompt[:-1] + gen[:-1]
    hit = np.where(kridx == 0, 0, prev_ctx - prev_ctx % block_tokens)
    return Workload(
        name=name,
        arrival_s=np.zeros(n),
        round_offsets=new_offsets,
        prompt_tokens=prompt,
        hit_tokens=hit,
        gen_tokens=gen,
        delay_s=np.zeros(len(prompt)),
        source=f"synthetic:{name}",
        meta={"dataset": name, "mal_tokens": mal, "block_tokens": block_tokens, "seed": seed},
    )


def generate_claude_code(
    spec: ClaudeCodeSpec,
    n_trajectories: int,
    seed: int,
    *,
    block_tokens: int = 64,
    cap_tokens: int | None = None,
    append_scale: float = 1.0,
    gen_scale: float = 1.0,
    name: str = "claude-code",
) -> Workload:
    """Claude Code-shaped conversations: tool steps and user turns with their own appends and idle times.

    A conversation opens with the tool+system prompt plus a first user message; each later call
    is a tool step (share ``tool_step_share``) or a user turn. A context reset (share
    ``reset_share``, or reaching the context cap) replaces the context with the system prompt
    plus a compaction summary; after a reset only the system prompt is a hit.
    """
    n = int(n_trajectories)
    cap = int(cap_tokens or spec.context_cap_tokens)
    rng = stream(seed, f"workload.synthetic.{name}")
    calls = np.minimum(_tokens(spec.calls.draw(rng, n)), spec.max_calls)
    sys_p = np.minimum(_tokens(spec.system_prompt.draw(rng, n)), cap // 4)
    first_p = _tokens(spec.first_prompt.draw(rng, n))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(calls, out=offsets[1:])
    tid, ridx = _segment_starts(offsets)
    tot = int(offsets[-1])
    first = ridx == 0
    is_tool = (rng.random(tot) < spec.tool_step_share) & ~first
    a = np.where(is_tool, spec.tool_append.draw(rng, tot), spec.user_append.draw(rng, tot))
    a = _tokens(a, append_scale)
    g = np.minimum(_tokens(spec.output.draw(rng, tot), gen_scale), cap // 8)
    idle = np.where(is_tool, spec.tool_idle_s.draw(rng, tot), spec.user_idle_s.draw(rng, tot))
    idle[first] = 0.0
    summary = _tokens(spec.compaction_summary.draw(rng, tot))
    reset = (rng.random(tot) < spec.reset_share) & ~first
    sys_r = sys_p[tid]
    # segment base: first call = system + first user message; a reset = system + summary
    base = np.where(first, sys_r + first_p[tid], sys_r + summary)
    base = np.minimum(base, cap // 2)
    a = np.minimum(a, cap // 4)
    forced = np.zeros(tot, dtype=bool)
    for _ in range(64):  # each pass adds at most one cap-forced reset per segment
        start = first | reset | forced
        inc = np.where(start, base, a) + g
        after = _grouped_cumsum(inc, start)
        over = (after > cap) & ~start
        if not over.any():
            break
        seg = np.cumsum(start) - 1
        cand = np.flatnonzero(over)
        _, firsts = np.unique(seg[cand], return_index=True)
        forced[cand[firsts]] = True
    start = first | reset | forced
    after = _grouped_cumsum(np.where(start, base, a) + g, start)
    prompt = after - g
    prev_ctx = np.zeros(tot, dtype=np.int64)
    prev_ctx[1:] = after[:-1]
    hit = np.where(first, 0, np.where(start, np.minimum(sys_r, prompt), prev_ctx))
    hit = hit - hit % block_tokens
    return Workload(
        name=name,
        arrival_s=np.zeros(n),
        round_offsets=offsets,
        prompt_tokens=prompt.astype(np.int64),
        hit_tokens=hit.astype(np.int64),
        gen_tokens=g,
        delay_s=idle,
        source=f"synthetic:{name}",
        meta={
            "dataset": name,
            "context_cap_tokens": cap,
            "block_tokens": block_tokens,
            "seed": seed,
            "resets": int(reset.sum()),
            "compactions": int(forced.sum()),
            "tool_steps": int(is_tool.sum()),
        },
    )
