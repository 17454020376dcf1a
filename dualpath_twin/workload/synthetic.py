"""Vectorised synthetic generators: the paper's agentic datasets and Claude Code-shaped sessions.

Both return a Workload with arrival_s = 0 and delay_s = 0 unless the dataset has its own idle
times; scenario knobs (arrivals, tool latency) are applied by ``build_workload``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dualpath_twin.workload.datasets import AgenticSpec, ClaudeCodeSpec
from dualpath_twin.workload.rng import stream
from dualpath_twin.workload.types import Workload


def _layout(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Round offsets, trajectory id of every flat round, and the mask of first rounds."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    tid = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    first = np.zeros(int(offsets[-1]), dtype=bool)
    first[offsets[:-1][counts > 0]] = True
    return offsets, tid, first


def _tokens(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Round positive floats to whole tokens >= 1."""
    if scale != 1.0:
        x = x * scale
    return np.maximum(np.rint(x), 1).astype(np.int64)


def _grouped_cumsum(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at every index where ``start`` is True (start[0] must be True)."""
    cs = np.cumsum(values)
    idx = np.flatnonzero(start)
    before = np.zeros(len(idx), dtype=cs.dtype)
    before[1:] = cs[idx[1:] - 1]
    return cs - np.repeat(before, np.diff(np.append(idx, len(cs))))


AGENTS_PER_BLOCK = 1024  # agents drawn (and stratified) together; each block has its own random stream


def _in_blocks(
    n: int, seed: int, name: str, make: Callable[[np.random.Generator, int], list[np.ndarray]],
) -> list[np.ndarray]:
    """Draw ``n`` trajectories block by block: [round offsets, then ``make``'s per-round columns].

    ``make(rng, size)`` draws one block of ``size`` trajectories and returns [rounds per
    trajectory, per-round columns...]. Block k always draws ``AGENTS_PER_BLOCK`` trajectories
    from its own stream (``workload.synthetic.<name>``, then ``...<name>.block<k>``) and the last
    block is cut to the agents asked for, so the first n agents are the same for any request of
    n or more: a capacity search compares rates on common agents (common random numbers), and
    only the arrival times scale with the rate.
    """
    counts: list[np.ndarray] = []
    columns: list[list[np.ndarray]] = []
    for k in range(-(-n // AGENTS_PER_BLOCK)):
        rng = stream(seed, f"workload.synthetic.{name}" + (f".block{k}" if k else ""))
        per_traj, *cols = make(rng, AGENTS_PER_BLOCK)
        m = min(AGENTS_PER_BLOCK, n - k * AGENTS_PER_BLOCK)
        r = int(per_traj[:m].sum())  # the first m trajectories' rounds lead the block's columns
        counts.append(per_traj[:m])
        columns.append([c[:r] for c in cols])
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.concatenate(counts), out=offsets[1:])
    return [offsets, *(np.concatenate(parts) for parts in zip(*columns, strict=True))]


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
    Agents are drawn in blocks of ``AGENTS_PER_BLOCK`` (:func:`_in_blocks`): the first n agents do
    not depend on how many are asked for.
    """
    mal = int(mal_tokens or spec.mal_tokens)
    cols = _in_blocks(int(n_trajectories), seed, name,
                         lambda rng, n: _agentic_block(spec, rng, n, block_tokens, mal, append_scale, gen_scale))
    offsets, prompt, hit, gen = cols
    return Workload(
        name=name,
        arrival_s=np.zeros(len(offsets) - 1),
        round_offsets=offsets,
        prompt_tokens=prompt,
        hit_tokens=hit,
        gen_tokens=gen,
        delay_s=np.zeros(len(prompt)),
        source=f"synthetic:{name}",
        meta={"dataset": name, "mal_tokens": mal, "block_tokens": block_tokens, "seed": seed},
    )


def _agentic_block(spec: AgenticSpec, rng: np.random.Generator, n: int, block_tokens: int, mal: int,
                   append_scale: float, gen_scale: float) -> list[np.ndarray]:
    """One block of ``n`` agentic trajectories: [rounds per trajectory, prompt, hit, gen]."""
    p0 = _tokens(spec.initial_prompt.draw_stratified(rng, n))
    nat_f = spec.rounds.draw_stratified(rng, n)
    s_app64 = spec.append.traj_scale(rng, n)
    if spec.rounds_append_elasticity:
        nat_f = nat_f * s_app64 ** (-spec.rounds_append_elasticity)
    # never draw rounds that MAL would cut anyway: 8x the rounds the expected growth allows
    growth = s_app64 * spec.append.mean_value * append_scale + spec.gen.mean_value * gen_scale
    nat = np.minimum(_tokens(nat_f), np.minimum(np.ceil(8 * mal / growth) + 64, mal // 2).astype(np.int64))
    s_app = s_app64.astype(np.float32)
    s_gen = spec.gen.traj_scale(rng, n).astype(np.float32)
    offsets, tid, first = _layout(nat)
    tot = int(offsets[-1])
    g = spec.gen.draw(rng, tot)
    g *= np.repeat(s_gen, nat)
    g = _tokens(g, gen_scale)
    # round 0 must fit: its prompt plus generation stay within MAL
    g0 = np.minimum(g[first], mal // 4)
    g[first] = g0
    a = spec.append.draw(rng, tot)
    a *= np.repeat(s_app, nat)
    a = _tokens(a, append_scale)
    a[first] = np.minimum(p0, mal - g0)
    a += g
    after = _grouped_cumsum(a, first)  # context after each round; increasing within a trajectory
    keep = (after <= mal) | first  # so the kept rounds are a prefix of each trajectory
    gen = g[keep]
    prompt = after[keep]
    prompt -= gen
    counts = np.bincount(tid[keep], minlength=n)
    new_offsets, _, kfirst = _layout(counts)
    hit = np.empty_like(prompt)
    hit[0] = 0
    np.add(prompt[:-1], gen[:-1], out=hit[1:])
    hit -= hit % block_tokens
    hit[kfirst] = 0
    return [counts, prompt, hit, gen]


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
    plus a compaction summary; after a reset only the system prompt is a hit. Agents are drawn
    in blocks (:func:`_in_blocks`).
    """
    cap = int(cap_tokens or spec.context_cap_tokens)
    offsets, prompt, hit, g, idle, is_tool, reset, forced = _in_blocks(
        int(n_trajectories), seed, name, lambda rng, n: _claude_code_block(spec, rng, n, block_tokens, cap, append_scale, gen_scale))
    n = len(offsets) - 1
    return Workload(
        name=name,
        arrival_s=np.zeros(n),
        round_offsets=offsets,
        prompt_tokens=prompt,
        hit_tokens=hit,
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


def _claude_code_block(spec: ClaudeCodeSpec, rng: np.random.Generator, n: int, block_tokens: int, cap: int,
                       append_scale: float, gen_scale: float) -> list[np.ndarray]:
    """One block of ``n`` conversations: [calls per conversation, prompt, hit, gen, idle, tool/reset/forced masks]."""
    calls = np.minimum(_tokens(spec.calls.draw(rng, n)), spec.max_calls)
    sys_p = np.minimum(_tokens(spec.system_prompt.draw(rng, n)), cap // 4)
    first_p = _tokens(spec.first_prompt.draw(rng, n))
    offsets, tid, first = _layout(calls)
    tot = int(offsets[-1])
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
    return [calls, prompt.astype(np.int64), hit.astype(np.int64), g, idle, is_tool, reset, forced]
