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
from dualpath_twin.planning.types import (
    CapacityPoint,
    CapacityResult,
    Outcome,
    SloCriterion,
    Task,
    error_outcome,
)
from dualpath_twin.scenario import Scenario

BatchEval = Callable[[list[float]], list[CapacityPoint]]


def bracket_and_bisect(
    evaluate: BatchEval,
    start_aps: float,
    tolerance: float = 0.05,
    batch: int = 1,
    min_aps: float | None = None,
    max_aps: float | None = None,
    max_evaluations: int = 60,
) -> tuple[float, float | None, list[CapacityPoint], bool, list[str]]:
    """Pure search over a (mostly) monotone pass/fail curve; returns (lo, hi, curve, converged, notes)."""
    if not start_aps > 0 or not math.isfinite(start_aps):
        raise PlanningError(f"start rate must be a positive number of agents/s, got {start_aps}")
    if not 0 < tolerance < 1:
        raise PlanningError(f"--tolerance must be in (0, 1), e.g. 0.05 for 5%; got {tolerance}")
    batch = max(1, int(batch))
    min_aps = min_aps if min_aps is not None else start_aps / 1024
    max_aps = max_aps if max_aps is not None else start_aps * 1024
    seen: dict[float, CapacityPoint] = {}
    notes: list[str] = []

    def run(rates: list[float]) -> bool:
        todo = [r for r in dict.fromkeys(round(r, 9) for r in rates) if r not in seen]
        if todo:
            for p in evaluate(todo):
                seen[round(p.aps, 9)] = p
        return bool(todo)

    def bracket() -> tuple[float, float | None]:
        passing = [a for a, p in seen.items() if p.meets]
        failing = [a for a, p in seen.items() if not p.meets]
        hi = min(failing) if failing else None
        lo_cands = [a for a in passing if hi is None or a < hi]
        return (max(lo_cands) if lo_cands else 0.0), hi

    run([start_aps * 2**k for k in range(batch)])
    # bracketing: double up while everything passes, halve down while everything fails
    while len(seen) < max_evaluations:
        lo, hi = bracket()
        if hi is None:
            top = max(seen)
            if top >= max_aps:
                notes.append(f"no SLO failure up to max rate {max_aps:g} agents/s: capacity is at least that")
                break
            if not run([min(top * 2 ** (k + 1), max_aps) for k in range(batch)]):
                break
        elif lo == 0.0:
            bottom = min(seen)
            if bottom <= min_aps:
                notes.append(f"the SLO fails even at {bottom:g} agents/s: capacity 0 within the search range")
                break
            if not run([max(bottom / 2 ** (k + 1), min_aps) for k in range(batch)]):
                break
        else:
            break
    lo, hi = bracket()
    converged = False
    while hi is not None and lo > 0 and len(seen) < max_evaluations:
        if (hi - lo) / hi <= tolerance:
            converged = True
            break
        if not run([lo + (hi - lo) * (k + 1) / (batch + 1) for k in range(batch)]):
            notes.append("bisection stalled (rates repeat at 1e-9 resolution)")
            break
        lo, hi = bracket()
    if hi is not None and lo > 0 and (hi - lo) / hi <= tolerance:
        converged = True
    if not converged and len(seen) >= max_evaluations:
        notes.append(f"stopped after {max_evaluations} evaluations before reaching tolerance {tolerance:g}")
    ordered = sorted(seen.values(), key=lambda p: p.aps)
    fail_seen = False
    for p in ordered:
        if not p.meets:
            fail_seen = True
        elif fail_seen:
            notes.append(
                f"non-monotone curve: {p.aps:g} agents/s meets the SLO above a failing rate; "
                "capacity reported below the lowest failure (longer runs or more agents reduce noise)"
            )
            break
    return lo, hi, ordered, converged, notes


def arrival_window_s(sc: Scenario) -> float:
    """Seconds over which the scenario's agents arrive at its own rate (agents / arrival_rate_aps)."""
    return sc.workload.agents / sc.workload.arrival_rate_aps


def online_scenario(sc: Scenario, aps: float, window_s: float | None = None) -> Scenario:
    """The scenario online at ``aps``; with ``window_s`` the agent count is aps x window_s so the load lasts that long."""
    from dualpath_twin.planning.common import override

    ov: dict[str, object] = {"workload.mode": "online", "workload.arrival_rate_aps": float(aps)}
    if window_s is not None:
        ov["workload.agents"] = max(2, math.ceil(aps * window_s))
    return override(sc, ov)


def ttft_trend(rounds: pl.DataFrame, window_s: float, min_rounds: int = 10) -> tuple[float, float] | None:
    """Mean TTFT in the two windows before the last agent's arrival (the load then drains), or None if too few rounds."""
    if rounds.height == 0 or not {"first_token_s", "ttft_s", "arrival_s"} <= set(rounds.columns):
        return None
    done = rounds.filter(pl.col("first_token_s").is_not_null() & pl.col("ttft_s").is_not_null())
    if done.height == 0:
        return None
    firsts = rounds.filter(pl.col("round_idx") == 0)["arrival_s"] if "round_idx" in rounds.columns else rounds["arrival_s"]
    end_t = min(float(firsts.max()), float(done["first_token_s"].max()))
    last = done.filter(pl.col("first_token_s") >= end_t - window_s)["ttft_s"]
    prev = done.filter((pl.col("first_token_s") >= end_t - 2 * window_s) & (pl.col("first_token_s") < end_t - window_s))["ttft_s"]
    if last.len() < min_rounds or prev.len() < min_rounds:
        return None
    return float(prev.mean()), float(last.mean())


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


def measure_rate(
    sc: Scenario, aps: float, policy: str | None, criterion: SloCriterion, window_s: float | None = None,
    early_stop: bool = False,
) -> CapacityPoint:
    """Simulate the scenario online at one rate (agents = aps x window_s when given) and judge it, in this process.

    ``early_stop`` stops the run as soon as its SLO failure is certain (``ttft_violation_certain``); the
    point then fails with ``stopped_early="slo violated"``. Without it the run is the plain ``run``.
    """
    from dualpath_twin import api

    sc_at = online_scenario(sc, aps, window_s)
    stop = (lambda w: ttft_violation_certain(w, criterion, sc_at)) if early_stop else None
    res = api.simulate(sc_at, policy, stop_when=stop)
    reason = res.summary.status_reason or ""
    if early_stop and reason.startswith("stopped early: "):
        s = res.summary
        return CapacityPoint(
            aps=aps, meets=False, reason=reason, slo_attainment=s.slo_attainment, ttft_p90_s=s.ttft_s.p90,
            ttft_p99_s=s.ttft_s.p99, tpot_p90_s=s.tpot_s.p90, steady_state=s.steady_state, status=s.status,
            prompt_tokens_per_s=s.prompt_tokens_per_s, rounds=s.rounds, stopped_early="slo violated",
        )
    measured = res.rounds is not None and res.rounds.height > 0
    trend = ttft_trend(res.rounds, sc_at.run.online_window_s) if measured else None
    return CapacityPoint.from_summary(aps, res.summary, criterion, sc_at, trend, trend_measured=measured)


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
    batch: int = 1,
    on_point: Callable[[CapacityPoint], None] | None = None,
    window_s: float | None = None,
    early_stop: bool = False,
    from_bound: bool = False,
) -> CapacityResult:
    """Find the highest online rate meeting the SLO; ``executor``+``batch`` measure several rates in parallel.

    Each rate runs ``aps x window_s`` agents so that the load is sustained for ``window_s``
    seconds whatever the rate (default window: the scenario's agents / arrival_rate_aps).
    ``early_stop`` stops each run once its SLO failure is certain; ``from_bound`` starts the search
    at half the analytic ceiling (``bound_aps``) instead of the scenario's rate, unless ``start_aps`` is given.
    """
    crit = criterion or SloCriterion()
    pol = policy or sc.policy.name
    window = window_s if window_s is not None else arrival_window_s(sc)
    notes0: list[str] = []
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
        tasks = [Task(kind="rate", scenario_toml=toml, policy=pol, aps=r, criterion=crit, window_s=window,
                      early_stop=early_stop) for r in rates]
        outs = run_tasks(executor, run_rate_task, tasks)
        pts = []
        for t, o in zip(tasks, outs, strict=True):
            p = o.point if o.point is not None else CapacityPoint(aps=t.aps or 0.0, meets=False, reason=o.error, status="error")
            pts.append(p)
            if on_point:
                on_point(p)
        return pts

    lo, hi, curve, converged, notes = bracket_and_bisect(
        evaluate, start, tolerance, batch, min_aps, max_aps, max_evaluations
    )
    notes = notes0 + notes
    stopped = sum(1 for p in curve if p.stopped_early)
    if stopped:
        notes.append(f"{stopped} failing run(s) stopped early once their SLO failure was certain")
    errors = [p for p in curve if p.status == "error"]
    if errors:
        notes.append(f"{len(errors)} run(s) failed with an error (counted as not meeting the SLO): {errors[0].reason}")
    ttft_lim_s, tpot_lim_s = crit.limits(sc)
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
) -> list[CapacityResult]:
    """Capacity per policy: policies in parallel when there are several, else rates in parallel (``workers`` wide)."""
    if len(policies) > 1 and executor is not None and workers > 1:
        tasks = [
            Task(kind="capacity", scenario_toml=sc.to_toml(), policy=p, criterion=criterion, tolerance=tolerance,
                 start_aps=start_aps, max_evaluations=max_evaluations, window_s=window_s,
                 early_stop=early_stop, from_bound=from_bound)
            for p in policies
        ]
        out = []
        for t, o in zip(tasks, run_tasks(executor, run_capacity_task, tasks), strict=True):
            if o.capacity is None:
                raise PlanningError(f"capacity search for {t.policy} failed: {o.error}")
            out.append(o.capacity)
        return out
    return [
        capacity_search(sc, p, criterion=criterion, tolerance=tolerance, start_aps=start_aps,
                        max_evaluations=max_evaluations, executor=executor, batch=workers, on_point=on_point,
                        window_s=window_s, early_stop=early_stop, from_bound=from_bound)
        for p in policies
    ]


def run_rate_task(task: Task) -> Outcome:
    """Judge one kind "rate" task in this process (what the search ships to executors); errors become ``Outcome.error``."""
    from dualpath_twin.planning.common import scenario_from_toml

    try:
        sc = scenario_from_toml(task.scenario_toml)
        assert task.aps is not None, "rate task needs aps"
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
            })
    schema = {"policy": pl.String, "aps": pl.Float64, "meets": pl.Boolean, "capacity": pl.Boolean,
              "ttft_p90_s": pl.Float64, "ttft_p99_s": pl.Float64, "tpot_p90_ms": pl.Float64, "slo_attainment": pl.Float64,
              "ttft_prev_window_s": pl.Float64, "ttft_last_window_s": pl.Float64, "summary_steady_state": pl.Boolean,
              "status": pl.String, "rounds": pl.Int64, "reason": pl.String, "stopped_early": pl.String}
    return pl.DataFrame(rows, schema=schema)
