"""One decode engine's continuous batching, advanced by callbacks at batch changes only.

Contexts are kept lazily (ctx = ctx at join + steps since join), so a batch change costs
O(changes): the step's KV reads and FLOPs come from the sums of the contexts and of their
capped values (``ModelSpec.decode_linear_forms``; requests below a cap as a count, a sum and a
heap of the step at which they reach it), completions from a heap of end steps. Filled blocks are
counted by residue: running requests advance in lockstep, so a request crosses a block boundary
at every step congruent to (join step - context at join) modulo the block size, and the crossings
in a stretch of steps are sums over a count of running requests per residue. Equal to stepping
every request (``run.fidelity = "reference"`` does step every request: one batch change per step).

Timing, as a real engine behaves: a step, once started, runs to its end with the batch it started
with. A request admitted mid-step joins at the next step boundary; the batch then runs steps of
the new size until the next admission or completion.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from dualpath_twin.sim.calls import call_later

if TYPE_CHECKING:
    import simpy

    from dualpath_twin.sim.cost import CostModel


class Req(Protocol):
    """What a decode engine reads and writes on a request (``sim.world.Req`` is one)."""

    rid: int
    ctx: int  # context tokens (at join while running; the decoder brings it up to date at completion)
    tokens_left: int
    j0: int  # engine steps done when it joined the batch


class DecodeHost(Protocol):
    """What a decode engine needs from the world that owns it (``sim.world.World`` is one).

    The decoder does not import the world: it reads these attributes and calls back
    ``_complete`` (a request generated its last token) and ``_write_back`` (filled KV blocks).
    """

    env: simpy.Environment
    cost: CostModel
    block: int  # tokens per KV block
    kv: float  # KV bytes per token
    reference: bool  # run.fidelity = "reference": one timer per step
    de_pending: list[deque[Any]]  # per decode engine: requests whose KV has landed in its HBM
    gpu_busy_s: list[float]  # per node, GPU-seconds
    tp_d: int  # GPUs per decode engine (tensor parallelism)
    gen_tokens_done: float
    col: dict[str, Any]  # per-round columns by name

    def de_loc(self, de: int) -> tuple[int, int]: ...  # (node, GPU) of a decode engine

    def _complete(self, req: Any, now: float) -> None: ...

    def _write_back(self, de: int, nbytes: float, rid: int | None) -> None: ...


class _Cap:
    """Running requests against one cap T of a ``a*min(L, T) + b*L`` form: how many are at T, and
    the ones below it kept as a count, a lazy context sum and a heap of the steps at which they reach T."""

    __slots__ = ("t", "n_at", "n_below", "base_below", "reach")

    def __init__(self, t: int) -> None:
        self.t = t
        self.n_at = 0
        self.n_below = 0
        self.base_below = 0  # sum over below-T requests of (ctx at join - steps at join)
        self.reach: list[tuple[int, int, Req]] = []  # (step at which its context reaches T, rid, req)

    def join(self, r: Req, steps: int) -> None:
        """A request joins the batch at ``steps``."""
        if r.ctx >= self.t:
            self.n_at += 1
        else:
            self.n_below += 1
            self.base_below += r.ctx - steps
            heapq.heappush(self.reach, (steps + self.t - r.ctx, r.rid, r))

    def advance(self, steps: int) -> None:
        """Move the requests whose context has reached T by ``steps`` (completed ones are skipped)."""
        reach = self.reach
        while reach and reach[0][0] <= steps:
            _, _, r = heapq.heappop(reach)
            if r.tokens_left > 0:
                self.n_below -= 1
                self.base_below -= r.ctx - r.j0
                self.n_at += 1

    def leave(self, r: Req, steps: int) -> None:
        """A request completes at ``steps`` (after ``advance(steps)``)."""
        if r.ctx + steps - r.j0 >= self.t:
            self.n_at -= 1
        else:
            self.n_below -= 1
            self.base_below -= r.ctx - r.j0

    def capped_sum(self, steps: int) -> int:
        """Sum over the running requests of min(context, T)."""
        return self.n_at * self.t + self.base_below + self.n_below * steps


class DecodeEngine:
    """Continuous batching on one decode engine (DE), driven by admissions and step timers."""

    __slots__ = (
        "w", "de", "env", "pending", "cost", "ka", "kb", "kt", "fa", "fb", "ft", "blk", "blk_bytes", "dnode",
        "reference", "steps", "b", "base", "ends", "resid", "fresh", "caps", "start", "step", "n", "timer", "k_end", "kicked",
        "finishing", "slow", "stop_entry", "tp",
    )

    def __init__(self, world: DecodeHost, de: int) -> None:
        self.w = world
        self.de = de
        self.env = world.env
        self.pending: deque[Req] = world.de_pending[de]
        cost = self.cost = world.cost
        (self.ka, self.kb, self.kt), (self.fa, self.fb, self.ft) = cost.decode_linear_forms()
        self.blk = world.block
        self.blk_bytes = world.block * world.kv
        self.dnode = world.de_loc(de)[0]
        self.tp = world.tp_d  # GPUs of this engine (tensor parallelism; 1 = one GPU)
        self.reference = world.reference
        self.steps = 0  # decode steps this engine has run
        self.b = 0  # running requests
        self.base = 0  # sum over running of (ctx at join - steps at join): sum of contexts = base + b * steps
        self.ends: list[tuple[int, int, Req]] = []  # (step at which it has generated its last token, rid, req)
        # running requests per residue (join step - context at join) mod block: the steps at which they fill a block
        self.resid = [0] * self.blk
        self.fresh: list[Req] = []  # joined; their first decode step (second token) is pending
        # sum of min(ctx, T) for the KV-read and FLOP forms (one cap when both use the same T)
        self.caps: dict[int, _Cap] = {t: _Cap(t) for t in dict.fromkeys((self.kt, self.ft)) if t > 0}
        self.start = 0.0  # when the current run of steps started
        self.step = 0.0  # seconds per step of the current batch
        self.n = 0  # steps planned until the next completion
        self.timer: object = None  # the live step timer's queue entry (a superseded one is ignored)
        self.k_end = 0  # steps done when the run stops at the end of the step in progress
        self.kicked = False  # a wake-up is queued for now
        self.finishing = False  # waiting for the step in progress to end
        self.slow = 1.0  # straggler GPU (faults): step time factor, applied from the next batch change
        self.stop_entry: object = None  # the live end-of-step callback's queue entry (a dropped one is ignored)

    # ---------------------------------------------------------------- triggers
    def admit(self, req: Req) -> None:
        """A request's KV is in this engine's HBM: it joins the batch at the next step boundary."""
        self.pending.append(req)
        if self.kicked or self.finishing:
            return  # already waking up
        if self.b == 0:
            # idle: start at once, after whatever else happens at this instant (one batch for all)
            self.kicked = True
            call_later(self.env, 0.0, self._on_kick)
        else:
            self._stop_at_step_end()

    def _on_kick(self, _e: object) -> None:
        self.kicked = False
        if not self.pending:
            return  # a step timer at the same instant already took them in
        if self.b == 0:
            self._begin()
        else:
            self._stop_at_step_end()

    def _stop_at_step_end(self) -> None:
        """End the current run of steps at the end of the step in progress (now, if between steps)."""
        now = self.env._now  # type: ignore[attr-defined]
        elapsed = now - self.start
        step, n = self.step, self.n
        k = n if elapsed >= n * step - 1e-12 else min(n, max(1, math.ceil(elapsed / step - 1e-9)))
        t_end = self.start + k * step
        self.timer = None
        self.finishing = True
        self.k_end = k
        self.stop_entry = call_later(self.env, max(t_end - now, 0.0), self._on_step_end)

    def _on_step_end(self, entry: object) -> None:
        if entry is self.stop_entry:
            self._finish(self.k_end)

    def lose(self) -> None:
        """Its node is lost (faults): drop the batch and the waiting requests (the world re-queues them); idle and empty."""
        self.pending.clear()
        self.b = 0
        self.base = 0
        self.ends = []
        self.resid = [0] * self.blk
        self.fresh = []
        self.caps = {t: _Cap(t) for t in self.caps}
        self.timer = None
        self.stop_entry = None
        self.finishing = False

    def _on_timer(self, entry: object) -> None:
        if entry is self.timer:
            self._finish(self.n)

    # ---------------------------------------------------------------- batch changes
    def _begin(self) -> None:
        """Take in the admitted requests and start a run of steps until the next completion."""
        steps = self.steps
        pending = self.pending
        caps = self.caps
        while pending:
            r = pending.popleft()
            r.j0 = steps
            self.b += 1
            self.base += r.ctx - steps
            heapq.heappush(self.ends, (steps + r.tokens_left, r.rid, r))
            self.resid[(steps - r.ctx) % self.blk] += 1
            for cap in caps.values():
                cap.join(r, steps)
            self.fresh.append(r)
        b = self.b
        if b == 0:
            return
        sum_ctx = self.base + b * steps
        kt, ft = self.kt, self.ft
        kv_read = self.kb * sum_ctx + (self.ka * caps[kt].capped_sum(steps) if kt > 0 else 0.0)
        attn_flops = self.fb * sum_ctx + (self.fa * caps[ft].capped_sum(steps) if ft > 0 else 0.0)
        self.step, _duty = self.cost.decode_step_s(b, kv_read, attn_flops)
        if self.slow != 1.0:
            self.step *= self.slow
        # fast: run to the next completion in one timer; reference: one timer per step
        self.n = 1 if self.reference else self.ends[0][0] - steps
        self.start = self.env._now  # type: ignore[attr-defined]
        self.timer = call_later(self.env, self.n * self.step, self._on_timer)

    def _finish(self, k: int) -> None:
        """``k`` steps of the current batch are done: record tokens, completions and filled blocks."""
        self.finishing = False
        w = self.w
        now = self.env._now  # type: ignore[attr-defined]
        step = self.step
        steps = self.steps = self.steps + k
        b = self.b
        w.gpu_busy_s[self.dnode] += k * step * self.tp  # GPU-seconds
        w.gen_tokens_done += k * b
        if self.fresh:
            col = w.col["second_token_s"]
            t2 = self.start + step
            for r in self.fresh:
                col[r.rid] = t2
            self.fresh.clear()
        caps = self.caps.values()
        for cap in caps:
            cap.advance(steps)
        # blocks filled in steps (steps - k, steps]: every running request fills one per block of
        # steps, and one more in the partial stretch if its residue is among the stretch's residues
        blk = self.blk
        full, part = divmod(k, blk)
        n_filled = full * b
        if part:
            resid = self.resid
            a = (steps - k + 1) % blk
            e = a + part
            n_filled += sum(resid[a:e]) if e <= blk else sum(resid[a:]) + sum(resid[:e - blk])
        wb_bytes = float(n_filled * self.blk_bytes)
        ends = self.ends
        while ends and ends[0][0] <= steps:
            _, rid, r = heapq.heappop(ends)
            self.b -= 1
            self.base -= r.ctx - r.j0
            self.resid[(r.j0 - r.ctx) % blk] -= 1
            for cap in caps:
                cap.leave(r, steps)
            r.ctx += steps - r.j0
            r.tokens_left = 0
            w._complete(r, now)
        if wb_bytes:
            w._write_back(self.de, wb_bytes, None)
        self._begin()
