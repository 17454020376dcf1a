"""Capacity search: the highest online arrival rate (agents/s) that holds the SLO in steady state.

The rate is bracketed by doubling (or halving) from a start rate, then narrowed by bisection
until ``(hi - lo) / hi <= tolerance``. With ``batch > 1`` each step measures several rates at
once (parallel k-section), which is how the search uses a process pool or a Dask cluster.
``SloCriterion``, ``CapacityPoint`` and ``CapacityResult`` live in ``planning.types`` (importable
from here too); ``run_rate_task``/``run_capacity_task`` are the picklable entry points executors run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Executor

import polars as pl

from dualpath_twin.planning.executors import run_tasks
from dualpath_twin.planning.grid import PlanningError
from dualpath_twin.planning.reasons import STEADINESS_UNKNOWN
from dualpath_twin.planning.types import (
    STOPPED_CEILING,
    STOPPED_SLO,
    CapacityPoint,
    CapacityResult,
    Outcome,
    SloCriterion,
    Task,
    error_outcome,
)
from dualpath_twin.scenario import Scenario
from dualpath_twin.sim.metrics import last_agent_arrival_s  # noqa: F401  (also part of this module's API)

BatchEval = Callable[[list[float]], list[CapacityPoint]]


def bracket_and_bisect(
    evaluate: BatchEval,
    start_aps: float,
    tolerance: float = 0.05,
    batch: int | Callable[[], int] = 1,
    min_aps: float | None = None,
    max_aps: float | None = None,
    max_evaluations: int = 60,
    guess: Callable[[list[CapacityPoint], float, float], float | None] | None = None,
    replicate: Callable[[list[tuple[float, int]]], list[CapacityPoint]] | None = None,
    final_check: BatchEval | None = None,
) -> tuple[float, float | None, list[CapacityPoint], bool, list[str]]:
    """Pure search over a (mostly) monotone pass/fail curve; returns (lo, hi, curve, converged, notes).

    ``batch`` rates are measured per step; a callable is asked before every step (the workers free
    for this search when several searches share an executor). ``guess(curve, lo, hi)`` may estimate
    the boundary inside the bracket (``secant_guess``): the step then measures just above (and, with
    two workers, just below) the estimate, so a right estimate closes the bracket to the tolerance
    at once; a step after a guess that did not halve the bracket bisects, so the search never
    converges slower than bisection every other step.

    ``replicate([(rate, replica), ...])`` turns on the confirmation step: once the bracket is
    within the tolerance, its two ends and every passing rate above its failing end are measured
    again with independent replicas (another seed) until each holds a strict majority of at least
    two verdicts (2-0, or 2-1 after a tie); a rate's verdict is that majority. If the majorities
    move the bracket, bisection resumes and the new ends are confirmed in turn, so a noisy verdict
    near the boundary cannot decide the capacity alone (see docs/planning.md, "Confirmation").

    ``final_check([rate])`` (the horizon check) runs once the bracket is within the tolerance and
    confirmed: it re-measures the low end (a longer run), and a failure vetoes that rate (it then
    fails whatever its votes, and needs no replicas) and bisection resumes below it. After a veto
    every new low end is checked before the search goes on. The search converges only on a low end
    that passed its check; a rate is checked at most once.
    """
    if not start_aps > 0 or not math.isfinite(start_aps):
        raise PlanningError(f"start rate must be a positive number of agents/s, got {start_aps}")
    if not 0 < tolerance < 1:
        raise PlanningError(f"--tolerance must be in (0, 1), e.g. 0.05 for 5%; got {tolerance}")
    width = batch if callable(batch) else (lambda: batch)
    min_aps = min_aps if min_aps is not None else start_aps / 1024
    max_aps = max_aps if max_aps is not None else start_aps * 1024
    seen: dict[float, CapacityPoint] = {}
    votes: dict[float, list[bool]] = {}  # rate -> every replica's verdict (replica 0 first)
    extra: list[CapacityPoint] = []  # the confirmation replicas' points
    checked: dict[float, CapacityPoint] = {}  # rate -> its final check (final_check)
    notes: list[str] = []

    def majority(a: float) -> bool:
        v = votes[a]
        return 2 * sum(v) > len(v)  # strict majority; a tie fails (more replicas break it)

    def meets(a: float) -> bool:
        return majority(a) and (a not in checked or checked[a].meets)

    def run(rates: list[float]) -> bool:
        todo = [r for r in dict.fromkeys(round(r, 9) for r in rates) if r not in seen]
        if todo:
            for p in evaluate(todo):
                seen[round(p.aps, 9)] = p
                votes[round(p.aps, 9)] = [p.meets]
        return bool(todo)

    def bracket() -> tuple[float, float | None]:
        passing = [a for a in seen if meets(a)]
        failing = [a for a in seen if not meets(a)]
        hi = min(failing) if failing else None
        lo_cands = [a for a in passing if hi is None or a < hi]
        return (max(lo_cands) if lo_cands else 0.0), hi

    def k() -> int:
        return max(1, int(width()))

    def used() -> int:  # simulations so far, replicas and final checks included
        return len(seen) + len(extra) + len(checked)

    def unsettled() -> list[tuple[float, int]]:
        """(rate, next replica) for the bracket ends and the passes above the failing end without a settled majority."""
        lo, hi = bracket()
        if hi is None or lo <= 0:
            return []
        rates = [a for a in [lo, hi] + sorted(a for a in seen if a > hi and meets(a)) if a not in checked]
        return [(a, len(votes[a])) for a in rates if len(votes[a]) < 2 or 2 * sum(votes[a]) == len(votes[a])]

    def confirm() -> bool:
        """Measure one more replica of every unsettled rate; False if there was none (or no budget)."""
        todo = unsettled()[: max(0, max_evaluations - used())]
        if not todo or replicate is None:
            return False
        for p in replicate(todo):
            a = round(p.aps, 9)
            votes[a].append(p.meets)
            extra.append(p)
        return True

    def widen() -> None:
        """Bracketing: double up while everything passes, halve down while everything fails."""
        while used() < max_evaluations:
            lo, hi = bracket()
            if hi is None:
                top = max(seen)
                if top >= max_aps:
                    notes.append(f"no SLO failure up to max rate {max_aps:g} agents/s: capacity is at least that")
                    break
                b = k()
                if not run([min(top * 2 ** (i + 1), max_aps) for i in range(b)]):
                    break
            elif lo == 0.0:
                bottom = min(seen)
                if STEADINESS_UNKNOWN in seen[bottom].reason:
                    notes.append(f"stopped halving at {bottom:.4g} agents/s: its measured windows held too few rounds to "
                                 "judge steadiness, and a lower rate puts fewer rounds in them; lengthen the arrival "
                                 "window (or shorten run.online_window_s)")
                    break
                if bottom <= min_aps:
                    notes.append(f"the SLO fails even at {bottom:g} agents/s: capacity 0 within the search range")
                    break
                b = k()
                if not run([max(bottom / 2 ** (i + 1), min_aps) for i in range(b)]):
                    break
            else:
                break

    b = k()
    run([start_aps * 2**i for i in range(b)])
    widen()
    lo, hi = bracket()
    converged = False
    may_guess, side_up = True, True  # with one rate a step, guesses alternate: just above, then just below
    while hi is not None and lo > 0 and used() < max_evaluations:
        close = (hi - lo) / hi <= tolerance
        if close and replicate is not None and confirm():
            lo, hi = bracket()
            if hi is None or lo <= 0:  # the majority removed a bracket end: bracket again from there
                widen()
                lo, hi = bracket()
            continue
        # the final check of a converged low end; once one vetoed, every new low end at once (the short
        # runs are not trusted near there, so a chain of vetoes walks down the passes, not by tolerance steps)
        if final_check is not None and lo not in checked and (close or not all(p.meets for p in checked.values())):
            checked[lo] = final_check([lo])[0]
            lo, hi = bracket()
            if hi is None or lo <= 0:  # the veto removed the only passing rate: halve from there
                widen()
                lo, hi = bracket()
            continue
        if close:
            converged = True
            break
        b = k()
        rates = [lo + (hi - lo) * (i + 1) / (b + 1) for i in range(b)]
        g = guess(sorted(seen.values(), key=lambda p: p.aps), lo, hi) if guess is not None and may_guess else None
        predicted: dict[float, bool] = {}  # rate -> the verdict the guess predicts (meets below it, fails above)
        if g is not None and lo < g < hi:
            above = min(g * (1 + tolerance / 2), lo + 0.95 * (hi - lo))
            below = max(g * (1 - tolerance / 2), lo + 0.05 * (hi - lo))
            sides = [(above, False), (below, True)] if b >= 2 or side_up else [(below, True)]
            predicted = {round(r, 9): ok for r, ok in sides[:b]}
            rates = [r for r, _ in sides[:b]] + rates[: max(0, b - len(sides))]
            side_up = not side_up
        if not run(rates):
            notes.append("bisection stalled (rates repeat at 1e-9 resolution)")
            break
        lo, hi = bracket()
        # a guess whose prediction failed hands the next step to bisection
        may_guess = all(seen[r].meets == ok for r, ok in predicted.items() if r in seen)
    if hi is not None and lo > 0 and (hi - lo) / hi <= tolerance and (replicate is None or not unsettled()) \
            and (final_check is None or lo in checked):
        converged = True
    if extra:
        flips = sorted(a for a in seen if majority(a) != seen[a].meets)
        notes.append(f"confirmation: {len(extra)} replica run(s) (independent seeds) at the bracket ends"
                     + (f"; the majority reversed the first verdict at {', '.join(f'{a:g}' for a in flips)} agents/s"
                        if flips else "; every first verdict held"))
    if not converged and used() >= max_evaluations:
        notes.append(f"stopped after {max_evaluations} evaluations before reaching tolerance {tolerance:g}")
    fail_seen = False
    for a in sorted(seen):
        if not meets(a):
            fail_seen = True
        elif fail_seen:
            notes.append(
                f"non-monotone curve: {a:g} agents/s meets the SLO above a failing rate; "
                "capacity reported below the lowest failure (longer runs or more agents reduce noise)"
            )
            break
    ordered = sorted([*seen.values(), *extra, *checked.values()], key=lambda p: (p.aps, p.horizon_window_s or 0.0, p.replica))
    return lo, hi, ordered, converged, notes


def secant_guess(ttft_limit_s: float, tpot_limit_s: float) -> Callable[[list[CapacityPoint], float, float], float | None]:
    """A boundary estimate for ``bracket_and_bisect``: the lowest rate where TTFT p90 or TPOT p90 reaches its limit.

    Each latency is a secant through fully measured runs (not stopped early or cut short), in
    ``limit / latency``: a queue's latency grows like 1 / (1 - load), so its inverse falls about
    linearly with the rate to the saturation point and the secant is nearly exact where a secant in
    the latency itself falls short. The secant joins the highest passing and the lowest failing run
    above its limit, else the two highest passing runs. None when neither latency gives an estimate.
    """

    def estimate(curve: list[CapacityPoint], lo: float, hi: float, attr: str, limit: float) -> float | None:
        known = [(p.aps, limit / v, p.meets) for p in curve
                 if p.status == "done" and not p.stopped_early and (v := getattr(p, attr)) is not None and v > 0]
        below = [(a, y) for a, y, ok in known if ok and a <= lo and y > 1]
        above = [(a, y) for a, y, ok in known if not ok and a >= hi and y < 1]
        if below and above:
            (a1, y1), (a2, y2) = max(below), min(above)
        elif len(below) >= 2:
            (a1, y1), (a2, y2) = sorted(below)[-2:]
        else:
            return None
        if a2 <= a1 or y2 >= y1:
            return None
        return a1 + (y1 - 1.0) * (a2 - a1) / (y1 - y2)

    def guess(curve: list[CapacityPoint], lo: float, hi: float) -> float | None:
        found = [g for g in (estimate(curve, lo, hi, "ttft_p90_s", ttft_limit_s),
                             estimate(curve, lo, hi, "tpot_p90_s", tpot_limit_s)) if g is not None]
        return min(found) if found else None

    return guess


def arrival_window_s(sc: Scenario) -> float:
    """Seconds over which the scenario's agents arrive at its own rate (agents / arrival_rate_aps)."""
    return sc.workload.agents / sc.workload.arrival_rate_aps


def lifetime_terms(wl):
    """Per agent (tool delays waited, rounds, decode tokens after each round's first): lifetime = d + n x TTFT + g x TPOT.

    A trajectory starts at its arrival, so its round 0's delay is not waited; ``d``, ``n`` and ``g``
    are float arrays over the workload's trajectories.
    """
    import numpy as np

    counts = np.diff(wl.round_offsets)
    delay = wl.delay_s.astype(float).copy()
    firsts = wl.round_offsets[:-1][counts > 0]
    delay[firsts] = 0.0
    owner = np.repeat(np.arange(wl.n_trajectories), counts)
    d = np.bincount(owner, weights=delay, minlength=wl.n_trajectories)
    g = np.bincount(owner, weights=np.maximum(wl.gen_tokens - 1, 0).astype(float), minlength=wl.n_trajectories)
    return d, counts.astype(float), g


def _slo_lifetimes_s(sc: Scenario, criterion: SloCriterion | None = None, sample_agents: int = 1024):
    """Each agent's lifetime if every round took the SLO's TTFT and TPOT limits, tool delays included (s).

    Synthetic workloads are sampled at ``sample_agents`` agents at most (the same generator); an
    agent without rounds lives 0 s.
    """
    from dualpath_twin import api
    from dualpath_twin.planning.common import override

    ttft_s, tpot_s = (criterion or SloCriterion()).limits(sc)
    if sc.workload.kind == "synthetic" and sc.workload.agents > sample_agents:
        sc = override(sc, {"workload.agents": sample_agents})
    d, n, g = lifetime_terms(api.load_workload(sc))
    return d + n * ttft_s + g * tpot_s


def slo_lifetime_s(sc: Scenario, criterion: SloCriterion | None = None, sample_agents: int = 1024) -> float:
    """Mean agent lifetime if every round took the SLO's TTFT and TPOT limits, tool delays included (seconds).

    Synthetic workloads are sampled at ``sample_agents`` agents at most (the same generator).
    """
    life = _slo_lifetimes_s(sc, criterion, sample_agents)
    return float(life.mean()) if life.size else 0.0


def population_warmup_s(life, share: float) -> float:
    """Seconds after a cold start until agents with these lifetimes number ``share`` of their steady population.

    Agents arriving at a constant rate from time 0 number ``rate x E[min(L, t)]`` at time t; in steady
    state ``rate x E[L]``. The result is the t where ``E[min(L, t)] = share x E[L]``: the
    longest-lived agents set it, not the mean.
    """
    import numpy as np

    life = np.sort(np.asarray(life, dtype=float))
    if not life.size or not life[-1] > 0:
        return 0.0
    if share >= 1.0:
        return float(life[-1])
    target = share * life.mean()
    # E[min(L, t)] is piecewise linear in t with kinks at the sorted lifetimes: find the piece, then solve in it
    n = life.size
    below = np.concatenate([[0.0], np.cumsum(life)])  # sum of the k shortest lifetimes
    at_kink = (below[:-1] + life * (n - np.arange(n))) / n  # E[min(L, life[k])]
    k = min(int(np.searchsorted(at_kink, target)), n - 1)
    return float((target * n - below[k]) / (n - k))


def slo_warmup_s(sc: Scenario, criterion: SloCriterion | None = None, sample_agents: int = 1024) -> float:
    """Seconds after a cold start until the agent population reaches ``criterion.warmup_share`` of its steady size.

    Lifetimes at the SLO limits (``_slo_lifetimes_s``): no rate that meets the SLO keeps its agents
    longer, so this bounds every passing rate's warm-up (``population_warmup_s``).
    """
    crit = criterion or SloCriterion()
    return population_warmup_s(_slo_lifetimes_s(sc, crit, sample_agents), crit.warmup_share)


def default_window_s(sc: Scenario, criterion: SloCriterion | None = None) -> float:
    """Arrival window of a capacity run when none is given: long enough for the agent population to settle.

    The larger of the scenario's own window (agents / arrival_rate_aps) and the warm-up at the SLO
    limits (``slo_warmup_s``: no rate that meets the SLO keeps agents longer, so by then its
    population has reached at least ``criterion.warmup_share`` of its steady size) plus the two
    ``run.online_window_s`` windows that are measured.
    """
    return max(arrival_window_s(sc), slo_warmup_s(sc, criterion) + 2 * sc.run.online_window_s)


def online_scenario(sc: Scenario, aps: float, window_s: float | None = None) -> Scenario:
    """The scenario online at ``aps``; with ``window_s`` the agent count is aps x window_s so the load lasts that long."""
    from dualpath_twin.planning.common import override

    ov: dict[str, object] = {"workload.mode": "online", "workload.arrival_rate_aps": float(aps)}
    if window_s is not None:
        ov["workload.agents"] = max(2, math.ceil(aps * window_s))
    return override(sc, ov)


def ttft_trend(
    rounds: pl.DataFrame, window_s: float, min_rounds: int = 10, end_s: float | None = None
) -> tuple[float, float] | None:
    """Mean TTFT of the rounds arriving in each of the two windows before ``end_s`` (default: the last agent's arrival), or None if too few.

    Windows are bounded on both sides by arrival time, so the drain after the last arrival (a
    lighter load) never enters the last window; a round of a window that has no first token
    yet makes the trend unknown (None).
    """
    if rounds.height == 0 or not {"first_token_s", "ttft_s", "arrival_s"} <= set(rounds.columns):
        return None
    end_t = last_agent_arrival_s(rounds) if end_s is None else end_s
    if end_t is None:
        return None
    arr = pl.col("arrival_s")
    last = rounds.filter((arr >= end_t - window_s) & (arr <= end_t))["ttft_s"]
    prev = rounds.filter((arr >= end_t - 2 * window_s) & (arr < end_t - window_s))["ttft_s"]
    if last.null_count() or prev.null_count() or last.len() < min_rounds or prev.len() < min_rounds:
        return None
    return float(prev.mean()), float(last.mean())


def ttft_rise_noise(rounds: pl.DataFrame, window_s: float, batches: int = 10, end_s: float | None = None) -> float | None:
    """The rise of the two windows' mean TTFT before ``end_s`` (as ``ttft_trend``) that chance alone could show (s), by batch means.

    Successive rounds' TTFTs are correlated (they share a queue), so each window is cut into
    ``batches`` sub-windows by arrival time and the spread of the sub-window means gives the
    standard error of the window's mean; the result is the standard error of the difference of the
    two windows' means. None if a sub-window has no round or a TTFT is missing.
    """
    import numpy as np

    if rounds.height == 0 or not {"ttft_s", "arrival_s"} <= set(rounds.columns) or batches < 2:
        return None
    end_t = last_agent_arrival_s(rounds) if end_s is None else end_s
    if end_t is None:
        return None
    var = 0.0
    for w0 in (end_t - 2 * window_s, end_t - window_s):
        w = rounds.filter((pl.col("arrival_s") >= w0) & (pl.col("arrival_s") <= w0 + window_s))
        if w["ttft_s"].null_count():
            return None
        k = ((w["arrival_s"] - w0) / window_s * batches).floor().clip(0, batches - 1).cast(pl.Int64)
        means = w.with_columns(k.alias("k")).group_by("k").agg(pl.col("ttft_s").mean())["ttft_s"].to_numpy()
        if len(means) < batches:
            return None
        var += float(np.var(means, ddof=1)) / batches
    return math.sqrt(var)


_QUANTILE = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def ttft_violation_certain(world, crit: SloCriterion, sc: Scenario) -> str | None:
    """Why the run's TTFT percentile will exceed the limit whatever happens next, or None if not yet certain.

    A round's TTFT is final once its first token is out, and a round still waiting has TTFT at
    least ``now - arrival``. With ``k`` such rounds over the limit among the run's ``N`` rounds,
    the linear-interpolated quantile q over all N rounds is over the limit once
    ``k >= N - floor(q (N - 1))`` (both interpolation neighbours are then over it).
    """
    import numpy as np

    lim_s, _ = crit.limits(sc)
    n = int(world.rounds_total)
    if n == 0:
        return None
    arr = world.col["arrival_s"]
    ft = world.col["first_token_s"]
    with np.errstate(invalid="ignore"):
        late = int(np.count_nonzero(ft - arr > lim_s))
        late += int(np.count_nonzero(np.isnan(ft) & (world.env.now - arr > lim_s)))
    need = n - math.floor(_QUANTILE[crit.percentile] * (n - 1))
    if late >= need:
        return (f"slo violated: {late} of {n} rounds already have TTFT > {lim_s:g} s, "
                f"so TTFT {crit.percentile} exceeds the limit (t={world.env.now:.0f} s)")
    return None


def measurement_span_s(sc_at: Scenario, last_arrival_s: float) -> tuple[float, float]:
    """The measurement window of ``SloCriterion.population = "window"``: the last two online windows before the last arrival."""
    return max(0.0, last_arrival_s - 2 * sc_at.run.online_window_s), last_arrival_s


class WindowStop:
    """``stop_when`` of a window-population run: stop once every round of the measurement window is done.

    Rounds that arrive after the window's end never count, so the rest of the run is not
    simulated. With ``early_fail`` the run also stops once the window's TTFT percentile is
    certainly over the limit (rounds still waiting count with ``now - arrival``).

    The window ends at ``t_last_s`` (the last agent's arrival) or, given ``lifetimes`` (the run's
    ``lifetime_terms``), as soon as the population has reached ``share`` of its steady size at the
    latencies the run measures (checked every ``check_every_s`` by ``population_warmup_s``): then ``t_from_s``/``t_last_s`` move to the
    two windows just before that instant and ``ended_early_s`` records it.
    """

    def __init__(self, crit: SloCriterion, sc_at: Scenario, t_from_s: float, t_last_s: float, early_fail: bool,
                 lifetimes=None, share: float = 0.999, check_every_s: float | None = None) -> None:
        self.crit, self.sc_at, self.early_fail = crit, sc_at, early_fail
        self.t_from_s, self.t_last_s = t_from_s, t_last_s
        self.idx = None
        self.lifetimes, self.share = lifetimes, share
        w = sc_at.run.online_window_s
        self.check_every_s = check_every_s if check_every_s is not None else w / 5
        self.next_check_s = 2 * w
        self.ended_early_s: float | None = None
        self.warmup_s: float | None = None  # the measured warm-up at the window's end (ended early)
        self._sample = None

    def _measured_latencies(self, world) -> tuple[float, float] | None:
        """Mean TTFT and decode time per token (s) of a sample of the rounds done in the last window, or None."""
        import numpy as np

        if self._sample is None:
            self._sample = np.arange(0, world.wl.n_rounds, 7)
        idx = self._sample
        now, w = world.env.now, self.sc_at.run.online_window_s
        done = world.col["done_s"][idx]
        with np.errstate(invalid="ignore"):
            sel = idx[done >= now - w]
        if sel.size < 10:
            return None
        ft = world.col["first_token_s"][sel]
        ttft = float(np.mean(ft - world.col["arrival_s"][sel]))
        tokens = float(np.sum(np.maximum(world.wl.gen_tokens[sel] - 1, 0)))
        per_token = float(np.sum(world.col["done_s"][sel] - ft)) / tokens if tokens > 0 else 0.0
        return ttft, per_token

    def _maybe_end_window(self, world) -> None:
        now = world.env.now
        if self.lifetimes is None or self.ended_early_s is not None or now < self.next_check_s:
            return
        self.next_check_s = now + self.check_every_s
        lat = self._measured_latencies(world)
        if lat is None:
            return
        d, n, g = self.lifetimes
        need = population_warmup_s(d + n * lat[0] + g * lat[1], self.share)
        w = self.sc_at.run.online_window_s
        if now - 2 * w >= need:
            self.t_from_s, self.t_last_s = now - 2 * w, now
            self.ended_early_s, self.warmup_s = now, need

    def __call__(self, world) -> str | None:
        """A reason to stop now, or None."""
        import numpy as np

        now = world.env.now
        if now < self.t_last_s:
            self._maybe_end_window(world)
            if now < self.t_last_s:
                return None
        arr = world.col["arrival_s"]
        if self.idx is None:  # every window round has arrived by the window's end: the set is final
            with np.errstate(invalid="ignore"):
                self.idx = np.flatnonzero((arr >= self.t_from_s) & (arr <= self.t_last_s))
        idx = self.idx
        if idx.size == 0:
            return "measurement window complete (no round in it)"
        if not np.isnan(world.col["done_s"][idx]).any():
            return "measurement window complete"
        if self.early_fail:
            lim_s, _ = self.crit.limits(self.sc_at)
            a = arr[idx]
            ft = world.col["first_token_s"][idx]
            with np.errstate(invalid="ignore"):
                late = int(np.count_nonzero(ft - a > lim_s)) + int(np.count_nonzero(np.isnan(ft) & (now - a > lim_s)))
            n = int(idx.size)
            if late >= n - math.floor(_QUANTILE[self.crit.percentile] * (n - 1)):
                return (f"slo violated: {late} of the measurement window's {n} rounds already have TTFT > "
                        f"{lim_s:g} s, so TTFT {self.crit.percentile} exceeds the limit (t={now:.0f} s)")
        return None


def _agent_spans(rounds: pl.DataFrame):
    """Sorted first arrivals and finish times (agents with every round done) of a rounds frame, or None."""
    import numpy as np

    if rounds.height == 0 or not {"agent_id", "arrival_s", "done_s"} <= set(rounds.columns):
        return None
    ag = rounds.group_by("agent_id").agg(
        pl.col("arrival_s").min().alias("a"),
        pl.when(pl.col("done_s").is_null().any()).then(None).otherwise(pl.col("done_s").max()).alias("f"),
    )
    return np.sort(ag["a"].drop_nulls().to_numpy()), np.sort(ag["f"].drop_nulls().to_numpy())


def population_growth(rounds: pl.DataFrame, t_last_s: float, window_s: float) -> float | None:
    """Relative growth of the mean number of active agents from one ``window_s`` window to the next, ending at ``t_last_s``.

    Active = arrived and not finished (a round still to do). Means over each window, not the counts
    at its ends: the end counts move by the Poisson noise of a window's arrivals and departures
    (2-3% of the population at 0.6 agents/s), the means by much less. None if unknown.
    """
    import numpy as np

    spans = _agent_spans(rounds)
    if spans is None:
        return None
    a, f = spans

    def mean_active(t0: float, t1: float) -> float:
        t = np.linspace(t0, t1, 301)
        return float((np.searchsorted(a, t, side="right") - np.searchsorted(f, t, side="right")).mean())

    before = mean_active(t_last_s - 2 * window_s, t_last_s - window_s)
    if before <= 0:
        return None
    return mean_active(t_last_s - window_s, t_last_s) / before - 1.0


def population_noise(rounds: pl.DataFrame, t_last_s: float, window_s: float) -> float | None:
    """The growth ``population_growth`` can show by chance: sqrt(arrivals + departures in the two windows) / mean active.

    In a steady state arrivals and departures balance on average; their counts are about Poisson,
    so the population walks by about the square root of their sum (an upper bound for the windows'
    means). None if unknown.
    """
    import numpy as np

    spans = _agent_spans(rounds)
    if spans is None:
        return None
    a, f = spans
    t0 = t_last_s - 2 * window_s
    def count(x, t: float) -> int:  # events up to t (x is sorted)
        return int(np.searchsorted(x, t, side="right"))

    moves = (count(a, t_last_s) - count(a, t0)) + (count(f, t_last_s) - count(f, t0))
    active = count(a, t0) - count(f, t0)
    return math.sqrt(moves) / active if active > 0 else None


def window_summary(
    summary, rounds: pl.DataFrame, crit: SloCriterion, sc_at: Scenario, t_from_s: float, t_last_s: float
) -> tuple[object, int | None]:
    """The run summary with percentiles, attainment and throughput over the measurement window's rounds only."""
    from dualpath_twin.sim.metrics import _pct

    if not {"arrival_s", "done_s", "ttft_s", "tpot_s", "ttst_s", "prompt_tokens"} <= set(rounds.columns):
        return summary, None
    w = rounds.filter((pl.col("arrival_s") >= t_from_s) & (pl.col("arrival_s") <= t_last_s))
    done = w.filter(pl.col("done_s").is_not_null())
    ttft_lim_s, tpot_lim_s = crit.limits(sc_at)
    att = None
    if done.height:
        att = float(done.select(((pl.col("ttft_s") <= ttft_lim_s)
                                 & (pl.col("tpot_s").is_null() | (pl.col("tpot_s") <= tpot_lim_s))).mean()).item())
    span = max(t_last_s - t_from_s, 1e-9)
    upd = {
        "ttft_s": _pct(w["ttft_s"]), "tpot_s": _pct(done["tpot_s"]), "ttst_s": _pct(done["ttst_s"]),
        "slo_attainment": att, "prompt_tokens_per_s": float(done["prompt_tokens"].sum()) / span,
    }
    if summary.status == "truncated" and (summary.status_reason or "").startswith("stopped early: measurement window"):
        upd |= {"status": "done", "status_reason": "measurement window complete (the drain after it is not simulated)"}
    return summary.model_copy(update=upd), w.height


def above_ceiling(sc_at: Scenario, wl, aps: float, policy: str | None) -> str | None:
    """Why ``aps`` cannot be a steady state of ``sc_at`` (its offered rounds/s exceed the analytic ceiling), or None.

    In steady state agents leave as fast as they arrive, so the cluster completes aps x (mean rounds
    per agent) rounds/s of the run's own agents: above the closed-form ceiling of its binding
    resource (``analysis.bounds``) the population and the queues grow without end, however long a
    window looks steady. Skipped with a bounded ``[cache]``, whose hit share the ceiling only estimates.
    """
    from dualpath_twin.analysis.bounds import RESOURCE_LABELS, compute_bound

    if not wl.n_trajectories or (sc_at.cache is not None and sc_at.cache.capacity_gb is not None):
        return None
    bound = compute_bound(sc_at, wl, policy)
    offered = aps * wl.n_rounds / wl.n_trajectories
    if not offered > bound.max_rounds_per_s:
        return None
    label = RESOURCE_LABELS.get(bound.binding_resource, bound.binding_resource)
    return (f"above the analytic ceiling: {aps:g} agents/s offer {offered:.3g} rounds/s, more than {label} can serve "
            f"({bound.max_rounds_per_s:.3g} rounds/s), so no steady state exists (not simulated)")


def measure_rate(
    sc: Scenario, aps: float, policy: str | None, criterion: SloCriterion, window_s: float | None = None,
    early_stop: bool = False,
) -> CapacityPoint:
    """Simulate the scenario online at one rate (agents = aps x window_s when given) and judge it, in this process.

    With ``criterion.population = "window"`` (the default) the SLO counts the rounds of the
    measurement window (``measurement_span_s``) and the run stops once they are done.
    ``early_stop`` also stops it as soon as its SLO failure is certain; the point then fails with
    ``stopped_early=STOPPED_SLO``; a rate above the analytic ceiling (``above_ceiling``) fails unsimulated.
    """
    from dualpath_twin import api

    sc_at = online_scenario(sc, aps, window_s)
    wl = api.load_workload(sc_at)
    over = above_ceiling(sc_at, wl, aps, policy) if criterion.require_steady else None
    if over is not None:
        return CapacityPoint(aps=aps, meets=False, reason=over, status="done", stopped_early=STOPPED_CEILING,
                             population="window" if criterion.population == "window" else "all")
    span = None
    if criterion.population == "window" and wl.n_trajectories:
        span = measurement_span_s(sc_at, float(wl.arrival_s.max()))
        terms = lifetime_terms(wl) if criterion.warmup_from == "measured" else None
        stop = WindowStop(criterion, sc_at, span[0], span[1], early_stop, lifetimes=terms,
                          share=criterion.measured_warmup_share)
    else:
        stop = (lambda w: ttft_violation_certain(w, criterion, sc_at)) if early_stop else None
    res = api.simulate(sc_at, policy, stop_when=stop, workload=wl)
    reason = res.summary.status_reason or ""
    ended_early = None
    if span is not None:  # a WindowStop ran: take the span it measured (moved if it ended early)
        span, ended_early = (stop.t_from_s, stop.t_last_s), stop.ended_early_s
    def failed(s, why: str, stopped_early: str | None = None) -> CapacityPoint:
        return CapacityPoint(
            aps=aps, meets=False, reason=why, slo_attainment=s.slo_attainment, ttft_p90_s=s.ttft_s.p90,
            ttft_p99_s=s.ttft_s.p99, tpot_p90_s=s.tpot_s.p90, steady_state=s.steady_state, status=s.status,
            prompt_tokens_per_s=s.prompt_tokens_per_s, rounds=s.rounds, stopped_early=stopped_early,
            population="window" if span is not None else "all", window_end_s=ended_early,
        )

    if early_stop and reason.startswith("stopped early: slo violated"):
        s = res.summary
        if span is not None and res.rounds is not None:
            s, _ = window_summary(s, res.rounds, criterion, sc_at, *span)
        return failed(s, reason, STOPPED_SLO)
    if span is not None and res.summary.status == "truncated" and not reason.startswith("stopped early: "):
        # the run ended (overloaded, or a time limit) before its measurement window was complete: not a pass
        return failed(res.summary, f"the run ended before its measurement window did: {reason}")
    measured = res.rounds is not None and res.rounds.height > 0
    end_s = span[1] if span is not None else None
    trend = ttft_trend(res.rounds, sc_at.run.online_window_s, end_s=end_s) if measured else None
    rise_noise = ttft_rise_noise(res.rounds, sc_at.run.online_window_s, end_s=end_s) if trend is not None else None
    summary, n_window, growth = res.summary, None, None
    if span is not None and measured:
        summary, n_window = window_summary(res.summary, res.rounds, criterion, sc_at, *span)
    noise = None
    if measured and wl.n_trajectories:
        t_last = end_s if end_s is not None else float(wl.arrival_s.max())
        growth = population_growth(res.rounds, t_last, sc_at.run.online_window_s)
        noise = population_noise(res.rounds, t_last, sc_at.run.online_window_s)
    pt = CapacityPoint.from_summary(aps, summary, criterion, sc_at, trend, trend_measured=measured,
                                    population_growth=growth, population_noise=noise, rise_noise_s=rise_noise)
    return pt.model_copy(update={"population": "window" if span is not None else "all", "window_rounds": n_window,
                                 "window_end_s": ended_early})


def bound_aps(sc: Scenario, policy: str | None = None, window_s: float | None = None) -> float:
    """The analytic ceiling in agents/s: the bound's max rounds/s over the workload's mean rounds per agent."""
    from dualpath_twin import api

    sc_at = online_scenario(sc, sc.workload.arrival_rate_aps, window_s)
    wl = api.load_workload(sc_at)
    b = api.bounds(sc_at, policy)
    rounds_per_agent = wl.n_rounds / max(1, sc_at.workload.agents)
    return b.max_rounds_per_s / rounds_per_agent


def capacity_search(
    sc: Scenario,
    policy: str | None = None,
    *,
    criterion: SloCriterion | None = None,
    tolerance: float = 0.05,
    start_aps: float | None = None,
    min_aps: float | None = None,
    max_aps: float | None = None,
    max_evaluations: int = 40,
    executor: Executor | None = None,
    batch: int | Callable[[], int] = 1,
    on_point: Callable[[CapacityPoint], None] | None = None,
    window_s: float | None = None,
    early_stop: bool = False,
    from_bound: bool = False,
    inline_single: bool = True,
    guess_boundary: bool = True,
    confirm: bool = True,
) -> CapacityResult:
    """Find the highest online rate meeting the SLO; ``executor``+``batch`` measure several rates in parallel.

    Each rate runs ``aps x window_s`` agents so that the load is sustained for ``window_s``
    seconds whatever the rate (default window: the scenario's agents / arrival_rate_aps).
    ``early_stop`` stops each run once its SLO failure is certain; ``from_bound`` starts the search
    at half the analytic ceiling (``bound_aps``) instead of the scenario's rate, unless ``start_aps`` is given.
    ``guess_boundary`` aims bisection steps at the secant estimate of the boundary (``secant_guess``).
    ``confirm`` re-measures the bracket ends with independent seeds (run.seed + k) and takes each
    rate's majority verdict (``bracket_and_bisect``'s confirmation step). ``criterion.horizon_factor``
    > 1 re-measures the capacity with that many times the window, and run.max_sim_time_s and
    run.wall_budget_s (``bracket_and_bisect``'s final check; a failure vetoes the rate).
    """
    from dualpath_twin.planning.common import override

    crit = criterion or SloCriterion()
    pol = policy or sc.policy.name
    window = window_s if window_s is not None else default_window_s(sc, crit)
    notes0: list[str] = []
    if window_s is None and window > arrival_window_s(sc) + 1e-9:
        notes0.append(f"arrival window {window:.0f} s per rate: the agent population's warm-up at the SLO limits "
                      f"(to {crit.warmup_share:.0%} of its steady size) plus the two measured {sc.run.online_window_s:g} s windows (the scenario's own window is "
                      f"{arrival_window_s(sc):.0f} s; set one with --window-s)")
    if start_aps:
        start = start_aps
    elif from_bound:
        ceiling = bound_aps(sc, pol, window)
        start = 0.5 * ceiling
        notes0.append(f"started at half the analytic ceiling {ceiling:.3g} agents/s")
    else:
        start = sc.workload.arrival_rate_aps
    toml = sc.to_toml()

    def evaluate(rates: list[float]) -> list[CapacityPoint]:
        return measure([(r, 0) for r in rates])

    def measure(specs: list[tuple[float, int]], horizon: bool = False) -> list[CapacityPoint]:
        # a horizon check runs the longer window to its last arrival (a measured warm-up would end it as early)
        c = crit.model_copy(update={"warmup_from": "slo_limits"}) if horizon else crit
        w = horizon_window if horizon else window
        tasks = [Task(kind="rate", scenario_toml=horizon_toml if horizon else toml, policy=pol, aps=r, criterion=c, window_s=w,
                      early_stop=early_stop, replica=k) for r, k in specs]
        outs = run_tasks(executor, run_rate_task, tasks, inline_single=inline_single)
        pts = []
        for t, o in zip(tasks, outs, strict=True):
            p = o.point if o.point is not None else CapacityPoint(aps=t.aps or 0.0, meets=False, reason=o.error, status="error")
            p.policy, p.replica = pol, t.replica  # progress lines of several designs' searches say whose rate it was
            if horizon:
                p.horizon_window_s = w
                p.reason = f"horizon check ({w:.0f} s arrival window): {p.reason}"
            pts.append(p)
            if on_point:
                on_point(p)
        return pts

    horizon_window = window * crit.horizon_factor
    # the longer run gets the same simulated-time and wall budgets per second of window as the others
    horizon_toml = override(sc, {"run.max_sim_time_s": sc.run.max_sim_time_s * crit.horizon_factor,
                                 "run.wall_budget_s": sc.run.wall_budget_s * crit.horizon_factor}).to_toml()
    ttft_lim_s, tpot_lim_s = crit.limits(sc)
    lo, hi, curve, converged, notes = bracket_and_bisect(
        evaluate, start, tolerance, batch, min_aps, max_aps, max_evaluations,
        guess=secant_guess(ttft_lim_s, tpot_lim_s) if guess_boundary else None,
        replicate=measure if confirm else None,
        final_check=(lambda rates: measure([(r, 0) for r in rates], horizon=True)) if crit.horizon_factor > 1 else None,
    )
    notes = notes0 + notes
    checks = [p for p in curve if p.horizon_window_s is not None]
    if checks:
        vetoed = [p.aps for p in checks if not p.meets]
        notes.append(f"horizon check: {', '.join(f'{p.aps:.4g}' for p in checks)} agents/s re-measured with a "
                     f"{crit.horizon_factor:g}x longer arrival window ({horizon_window:.0f} s); "
                     + (f"{', '.join(f'{a:.4g}' for a in vetoed)} agents/s failed it (a queue that grows too slowly "
                        "for the shorter window to show), so the search went on below" if vetoed else "the capacity held")
                     + " (a horizon factor of 1 skips it: --horizon-factor, or 'horizon check' in the dashboard)")
    stopped = sum(1 for p in curve if p.stopped_early == STOPPED_SLO)
    if stopped:
        notes.append(f"{stopped} failing run(s) stopped early once their SLO failure was certain")
    ends = [p.window_end_s for p in curve if p.window_end_s is not None]
    if ends:
        notes.append(f"{len(ends)} run(s) measured their two windows once the population had reached "
                     f"{crit.measured_warmup_share:.1%} of its steady size at the measured latencies, ending them at "
                     f"{min(ends):.0f}-{max(ends):.0f} s instead of the last arrival (~{window:.0f} s): the rest of the "
                     "arrival window was not simulated (--warmup-from slo_limits measures at the last arrival)")
    ceiling = [p.aps for p in curve if p.stopped_early == STOPPED_CEILING]
    if ceiling:
        notes.append(f"{len(ceiling)} rate(s) not simulated: at {', '.join(f'{a:.4g}' for a in sorted(ceiling))} "
                     "agents/s the offered rounds/s exceed the analytic ceiling, so no steady state exists")
    at_cap = [p for p in curve if p.meets and p.aps == lo]
    growth_rule = crit.require_steady and crit.max_population_growth is not None
    if not growth_rule and at_cap and at_cap[0].population_growth is not None and at_cap[0].population_growth > 0.05:
        notes.append(
            f"at the capacity the mean number of active agents still grew {at_cap[0].population_growth:.0%} from one "
            f"{sc.run.online_window_s:g} s window to the next before the last arrival: agents outlive the {window:g} s arrival window, so "
            f"the run did not reach this rate's steady state and the capacity is optimistic; lengthen the window "
            f"(--window-s) to beyond an agent's lifetime"
        )
    errors = [p for p in curve if p.status == "error"]
    if errors:
        notes.append(f"{len(errors)} run(s) failed with an error (counted as not meeting the SLO): {errors[0].reason}")
    return CapacityResult(
        policy=pol,
        capacity_aps=lo,
        lo_aps=lo,
        hi_aps=hi,
        tolerance=tolerance,
        converged=converged,
        evaluations=len(curve),
        curve=curve,
        criterion=crit,
        window_s=window,
        ttft_limit_s=ttft_lim_s,
        tpot_limit_ms=tpot_lim_s * 1000,
        notes=notes,
    )


def capacity_search_many(
    sc: Scenario,
    policies: list[str],
    *,
    criterion: SloCriterion | None = None,
    tolerance: float = 0.05,
    start_aps: float | None = None,
    max_evaluations: int = 40,
    executor: Executor | None = None,
    workers: int = 1,
    on_point: Callable[[CapacityPoint], None] | None = None,
    window_s: float | None = None,
    early_stop: bool = False,
    from_bound: bool = False,
    confirm: bool = True,
) -> list[CapacityResult]:
    """Capacity per policy; with an executor and several workers the searches share it side by side.

    Each policy's search runs in a thread of this process and sends its rates to the executor; at
    every step it measures as many rates as there are workers per search still running, so when
    one design's search ends the others bisect with its workers too (parallel k-section).
    """
    def one(p: str, batch: int | Callable[[], int], inline_single: bool = True,
            point_cb: Callable[[CapacityPoint], None] | None = on_point) -> CapacityResult:
        return capacity_search(sc, p, criterion=criterion, tolerance=tolerance, start_aps=start_aps,
                               max_evaluations=max_evaluations, executor=executor, batch=batch, on_point=point_cb,
                               window_s=window_s, early_stop=early_stop, from_bound=from_bound,
                               inline_single=inline_single, confirm=confirm)

    if len(policies) > 1 and executor is not None and workers > 1:
        import queue
        import threading
        from concurrent.futures import ThreadPoolExecutor
        from concurrent.futures import wait as wait_futures

        lock = threading.Lock()
        running = [len(policies)]
        points: queue.Queue[CapacityPoint] = queue.Queue()

        def share() -> int:
            with lock:
                return max(1, workers // max(1, running[0]))

        def search(p: str) -> CapacityResult:
            try:
                return one(p, share, inline_single=False, point_cb=points.put)
            finally:
                with lock:
                    running[0] -= 1

        def relay() -> None:  # on_point runs in the caller's thread (a UI may only update from there)
            while True:
                try:
                    pt = points.get_nowait()
                except queue.Empty:
                    return
                if on_point:
                    on_point(pt)

        with ThreadPoolExecutor(max_workers=len(policies), thread_name_prefix="capacity") as threads:
            futs = [threads.submit(search, p) for p in policies]
            while wait_futures(futs, timeout=0.2).not_done:
                relay()
            relay()
            return [f.result() for f in futs]
    return [one(p, workers) for p in policies]


def run_rate_task(task: Task) -> Outcome:
    """Judge one kind "rate" task in this process (what the search ships to executors); errors become ``Outcome.error``."""
    from dualpath_twin.planning.common import scenario_from_toml

    try:
        sc = scenario_from_toml(task.scenario_toml)
        assert task.aps is not None, "rate task needs aps"
        if task.replica:
            from dualpath_twin.planning.common import override

            sc = override(sc, {"run.seed": sc.run.seed + task.replica})
        pt = measure_rate(sc, task.aps, task.policy, task.criterion or SloCriterion(), task.window_s, task.early_stop)
        return Outcome(key=task.key, point=pt)
    except Exception as err:  # noqa: BLE001 - reported to the driver, which decides
        return error_outcome(task.key, err)


def run_capacity_task(task: Task) -> Outcome:
    """Run one kind "capacity" task (a whole search) in this process; errors become ``Outcome.error``."""
    from dualpath_twin.planning.common import scenario_from_toml

    try:
        sc = scenario_from_toml(task.scenario_toml)
        cap = capacity_search(
            sc,
            task.policy,
            criterion=task.criterion,
            tolerance=task.tolerance,
            start_aps=task.start_aps,
            max_evaluations=task.max_evaluations,
            window_s=task.window_s,
            early_stop=task.early_stop,
            from_bound=task.from_bound,
            confirm=task.confirm,
        )
        return Outcome(key=task.key, capacity=cap, scenario_toml=task.scenario_toml)
    except Exception as err:  # noqa: BLE001 - reported to the driver, which decides
        return error_outcome(task.key, err)


def capacity_frame(results: list[CapacityResult]) -> pl.DataFrame:
    """One row per policy: capacity, the failing rate above it, convergence and the settings that produced it."""
    return pl.DataFrame(
        [
            {
                "policy": r.policy,
                "capacity_aps": r.capacity_aps,
                "fails_at_aps": r.hi_aps,
                "converged": r.converged,
                "tolerance": r.tolerance,
                "evaluations": r.evaluations,
                "window_s": r.window_s,
                "ttft_limit_s": r.ttft_limit_s,
                "tpot_limit_ms": r.tpot_limit_ms,
            }
            for r in results
        ],
        schema_overrides={"fails_at_aps": pl.Float64, "window_s": pl.Float64, "ttft_limit_s": pl.Float64,
                          "tpot_limit_ms": pl.Float64, "capacity_aps": pl.Float64},
    )


def curve_frame(results: list[CapacityResult]) -> pl.DataFrame:
    """Every measured rate of every policy (the SLO curve): latencies, attainment, steadiness, verdict and why."""
    rows = []
    for r in results:
        for p in r.curve:
            prev, last = p.ttft_window_means_s if p.ttft_window_means_s is not None else (None, None)
            rows.append({
                "policy": r.policy,
                "aps": p.aps,
                "replica": p.replica,
                "horizon_window_s": p.horizon_window_s,
                "meets": p.meets,
                "capacity": p.meets and p.aps == r.capacity_aps,
                "ttft_p90_s": p.ttft_p90_s,
                "ttft_p99_s": p.ttft_p99_s,
                "tpot_p90_ms": None if p.tpot_p90_s is None else p.tpot_p90_s * 1000,
                "slo_attainment": p.slo_attainment,
                "ttft_prev_window_s": prev,
                "ttft_last_window_s": last,
                "summary_steady_state": p.steady_state,
                "status": p.status,
                "rounds": p.rounds,
                "reason": p.reason,
                "stopped_early": p.stopped_early,
                "population": p.population,
                "window_rounds": p.window_rounds,
                "population_growth": p.population_growth,
                "population_noise": p.population_noise,
                "ttft_rise_noise_s": p.ttft_rise_noise_s,
                "window_end_s": p.window_end_s,
            })
    schema = {"policy": pl.String, "aps": pl.Float64, "replica": pl.Int64, "horizon_window_s": pl.Float64, "meets": pl.Boolean, "capacity": pl.Boolean,
              "ttft_p90_s": pl.Float64, "ttft_p99_s": pl.Float64, "tpot_p90_ms": pl.Float64, "slo_attainment": pl.Float64,
              "ttft_prev_window_s": pl.Float64, "ttft_last_window_s": pl.Float64, "summary_steady_state": pl.Boolean,
              "status": pl.String, "rounds": pl.Int64, "reason": pl.String, "stopped_early": pl.String,
              "population": pl.String, "window_rounds": pl.Int64, "population_growth": pl.Float64,
              "population_noise": pl.Float64, "ttft_rise_noise_s": pl.Float64, "window_end_s": pl.Float64}
    return pl.DataFrame(rows, schema=schema)
