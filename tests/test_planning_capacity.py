"""Capacity search: bracketing + bisection on synthetic curves, the SLO criterion, and the API-level search."""

from __future__ import annotations

import pytest
from test_planning_fakes import fake_capacity_aps, fake_sim, no_ceiling  # noqa: F401

from dualpath_twin.planning.capacity import (
    CapacityPoint,
    SloCriterion,
    bracket_and_bisect,
    capacity_search,
    capacity_search_many,
)
from dualpath_twin.planning.grid import PlanningError
from dualpath_twin.results import Percentiles, RunSummary
from dualpath_twin.scenario import Scenario


def step(threshold: float, calls: list[list[float]] | None = None):
    def evaluate(rates: list[float]) -> list[CapacityPoint]:
        if calls is not None:
            calls.append(list(rates))
        return [CapacityPoint(aps=r, meets=r <= threshold) for r in rates]

    return evaluate


@pytest.mark.parametrize("start", [0.1, 1.0, 3.7, 50.0])
def test_brackets_and_converges(start: float) -> None:
    lo, hi, curve, converged, notes = bracket_and_bisect(step(3.7), start, tolerance=0.02)
    assert converged and notes == []
    assert lo <= 3.7 < hi
    assert (hi - lo) / hi <= 0.02
    assert [p.aps for p in curve] == sorted(p.aps for p in curve)
    assert all(p.meets == (p.aps <= 3.7) for p in curve)


def test_parallel_batches_take_fewer_rounds() -> None:
    seq: list[list[float]] = []
    par: list[list[float]] = []
    lo1, *_ = bracket_and_bisect(step(3.7, seq), 1.0, tolerance=0.01, batch=1)
    lo3, *_ = bracket_and_bisect(step(3.7, par), 1.0, tolerance=0.01, batch=3)
    assert abs(lo1 - 3.7) / 3.7 <= 0.01 and abs(lo3 - 3.7) / 3.7 <= 0.01
    assert len(par) < len(seq)
    assert max(len(b) for b in par) == 3


def test_no_failure_and_no_success() -> None:
    lo, hi, _, converged, notes = bracket_and_bisect(step(1e9), 1.0, max_aps=64.0)
    assert lo == 64.0 and hi is None and not converged and "no SLO failure" in notes[0]
    lo, hi, _, converged, notes = bracket_and_bisect(step(-1), 1.0, min_aps=0.01)
    assert lo == 0.0 and hi == 0.01 and not converged and "fails even at" in notes[0]


def test_non_monotone_is_reported_and_capacity_stays_below_first_failure() -> None:
    def bumpy(rates: list[float]) -> list[CapacityPoint]:
        return [CapacityPoint(aps=r, meets=(r <= 1.5 or 3.5 <= r <= 4.5)) for r in rates]

    lo, hi, _, _, notes = bracket_and_bisect(bumpy, 1.0, tolerance=0.05, batch=3)  # measures 1, 2, 4 first
    assert hi is not None and lo < hi <= 2.0 and lo <= 1.5
    assert any("non-monotone" in n for n in notes)


def test_bad_tolerance() -> None:
    with pytest.raises(PlanningError, match="tolerance"):
        bracket_and_bisect(step(1), 1.0, tolerance=1.5)


def _summary(ttft: float | None, tpot: float = 0.03, steady: bool | None = True, att: float | None = 1.0) -> RunSummary:
    return RunSummary(policy="basic", seed=0, ttft_s=Percentiles(p90=ttft, p99=ttft), tpot_s=Percentiles(p90=tpot),
                      steady_state=steady, slo_attainment=att)


def test_criterion() -> None:
    sc = Scenario()
    c = SloCriterion()
    assert c.check(_summary(3.9), sc)[0]
    ok, why = c.check(_summary(4.1), sc)
    assert not ok and "TTFT p90" in why
    ok, why = c.check(_summary(1.0, tpot=0.06), sc)
    assert not ok and "TPOT" in why
    assert not c.check(_summary(1.0, steady=False), sc)[0]
    assert c.check(_summary(1.0, steady=None), sc)[0]  # unknown steadiness is not a failure
    assert SloCriterion(require_steady=False).check(_summary(1.0, steady=False), sc)[0]
    assert not SloCriterion(min_attainment=0.95).check(_summary(1.0, att=0.9), sc)[0]
    assert not c.check(_summary(None), sc)[0]
    assert SloCriterion(ttft_s=10).check(_summary(8.0), sc)[0]


@pytest.mark.usefixtures("fake_sim")
def test_capacity_search_on_fake_cluster() -> None:
    sc = Scenario(workload={"agents": 8, "arrival_rate_aps": 0.2})  # offline in the file: forced online
    res = capacity_search(sc, "basic", tolerance=0.02)
    true_cap = fake_capacity_aps(sc.with_policy("basic")) * 0.875  # TTFT p90 = 0.5/(1-rho) <= 4
    assert res.converged and res.hi_aps is not None
    assert res.capacity_aps <= true_cap < res.hi_aps
    assert abs(res.capacity_aps - true_cap) / true_cap <= 0.02
    assert res.evaluations == len(res.curve) >= 3
    assert res.ttft_limit_s == 4.0 and res.tpot_limit_ms == 50.0
    both = capacity_search_many(sc, ["basic", "dualpath"], tolerance=0.02)
    assert both[1].capacity_aps > both[0].capacity_aps * 1.4


def _rounds(ttft_of_t, n: int = 200, span_s: float = 40.0):
    """A rounds frame: one round per agent, arrivals spread over span_s, TTFT given as a function of arrival time."""
    import polars as pl

    arr = [span_s * i / (n - 1) for i in range(n)]
    ttft = [ttft_of_t(t) for t in arr]
    return pl.DataFrame({"agent_id": list(range(n)), "round_idx": [0] * n, "arrival_s": arr, "ttft_s": ttft,
                         "first_token_s": [a + b for a, b in zip(arr, ttft, strict=True)]})


@pytest.mark.parametrize(
    ("ttft_of_t", "n", "meets", "reason"),
    [
        (lambda t: 2.0 - t / 40, 200, True, "meets SLO"),  # falling TTFT: steady, whatever the summary says
        (lambda t: 0.2 + t / 10, 200, False, "TTFT still rising"),
        (lambda t: 0.5, 12, False, "steadiness unknown"),  # too few rounds per window to tell
    ],
)
def test_steadiness_comes_from_the_rounds_not_the_summary(monkeypatch: pytest.MonkeyPatch, ttft_of_t, n, meets, reason) -> None:
    """The simulator's summary.steady_state (drain windows, 'not steady' at every rate) is not reused when rounds exist."""
    from dualpath_twin import api
    from dualpath_twin.planning.capacity import measure_rate
    from dualpath_twin.results import RunResult

    def fake(sc: Scenario, policy: str | None = None, **_: object) -> RunResult:
        rounds = _rounds(ttft_of_t, n)
        return RunResult(summary=_summary(1.0, steady=False), rounds=rounds, timeseries=rounds.head(0),
                         scenario_toml=sc.to_toml())

    monkeypatch.setattr(api, "simulate", fake)
    no_ceiling(monkeypatch)  # the fake's rounds are not the default cluster's
    sc = Scenario(run={"online_window_s": 10.0})
    p = measure_rate(sc, 5.0, "basic", SloCriterion(), window_s=40.0)
    assert p.steady_state is False  # the summary's verdict is still reported
    assert p.meets is meets and reason in p.reason
    assert (p.ttft_window_means_s is None) == (n == 12)
    # a summary without rounds still falls back to the summary's verdict
    assert not SloCriterion().check(_summary(1.0, steady=False), sc)[0]


@pytest.mark.usefixtures("fake_sim")
def test_searches_share_the_workers_and_report_points_in_the_callers_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two designs on two workers: each search finds its own capacity, the one still running when the other ends
    measures two rates per step, and on_point runs in the calling thread (a UI updates only from there)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from dualpath_twin.planning import capacity as cap_mod

    widths: list[int] = []
    real_run_tasks = cap_mod.run_tasks

    def recording(executor, fn, tasks, **kw):
        assert kw.get("inline_single") is False  # single rates go to the workers too, not this process
        if tasks[0].policy == "dualpath":
            widths.append(len(tasks))

        def slow_dualpath(t):  # DualPath's runs take longer, so its search outlives Basic's, as on a real cluster
            if t.policy == "dualpath":
                time.sleep(0.05)
            return fn(t)

        return real_run_tasks(executor, slow_dualpath, tasks, **kw)

    monkeypatch.setattr(cap_mod, "run_tasks", recording)
    caller = threading.get_ident()
    seen_threads: set[int] = set()
    designs: set[str] = set()
    sc = Scenario(workload={"agents": 8, "arrival_rate_aps": 0.2})
    with ThreadPoolExecutor(max_workers=2) as ex:
        res = capacity_search_many(sc, ["basic", "dualpath"], tolerance=0.02, executor=ex, workers=2,
                                   on_point=lambda p: (seen_threads.add(threading.get_ident()), designs.add(p.policy)),
                                   window_s=40.0)
    for r in res:
        true_cap = fake_capacity_aps(sc.with_policy(r.policy)) * 0.875
        assert r.converged and r.capacity_aps <= true_cap < r.hi_aps
    assert [r.policy for r in res] == ["basic", "dualpath"]
    assert seen_threads == {caller}
    assert designs == {"basic", "dualpath"}  # each progress point names its design
    assert all(p.policy == r.policy for r in res for p in r.curve)
    # one rate a step, two once Basic is done (the last step is the horizon check of the one capacity rate)
    assert widths[0] == 1 and widths[-2] == 2 and widths[-1] == 1 and set(widths) == {1, 2}


def _queue(threshold: float, calls: list[list[float]]):
    """Points of an M/M/1-like curve: TTFT p90 = 0.5 / (1 - rate / (threshold / 0.875)), limit 4 s at ``threshold``."""

    def evaluate(rates: list[float]) -> list[CapacityPoint]:
        calls.append(list(rates))
        sat = threshold / 0.875
        out = []
        for r in rates:
            ttft = 0.5 / (1 - r / sat) if r < sat else None
            out.append(CapacityPoint(aps=r, meets=ttft is not None and ttft <= 4.0, ttft_p90_s=ttft, tpot_p90_s=0.02,
                                     status="done" if ttft is not None else "truncated"))
        return out

    return evaluate


@pytest.mark.parametrize("start", [0.3, 1.0, 2.9])
def test_secant_guess_reaches_the_same_capacity_in_fewer_runs(start: float) -> None:
    """Aiming at the estimated boundary finds the bisection's answer (within tolerance) with fewer measured rates."""
    from dualpath_twin.planning.capacity import secant_guess

    plain: list[list[float]] = []
    aimed: list[list[float]] = []
    lo1, hi1, *_ = bracket_and_bisect(_queue(3.7, plain), start, tolerance=0.02)
    lo2, hi2, _, converged, _ = bracket_and_bisect(_queue(3.7, aimed), start, tolerance=0.02,
                                                   guess=secant_guess(4.0, 0.05))
    assert converged and lo2 <= 3.7 < hi2 and (hi2 - lo2) / hi2 <= 0.02
    assert lo1 <= 3.7 < hi1
    assert sum(map(len, aimed)) < sum(map(len, plain))


def test_a_useless_guess_still_converges() -> None:
    """A guess stuck just above the low end cannot stall the search: every other step bisects."""
    calls: list[list[float]] = []
    lo, hi, _, converged, _ = bracket_and_bisect(step(3.7, calls), 1.0, tolerance=0.01,
                                                 guess=lambda curve, lo, hi: lo + 1e-6)
    assert converged and lo <= 3.7 < hi and len(calls) < 30


def _noisy(threshold: float, false_fail: tuple[float, float] = (0.0, 0.0), false_pass: tuple[float, float] = (0.0, 0.0)):
    """A noisy verdict: the true boundary is ``threshold``, but replica 0 (the search's own run) fails inside
    ``false_fail`` and passes inside ``false_pass`` (a steadiness test fooled by a wandering queue); other
    replicas (independent seeds) see the truth. Returns (evaluate, replicate, calls)."""
    calls: list[tuple[float, int]] = []

    def verdict(r: float, k: int) -> CapacityPoint:
        calls.append((r, k))
        ok = r <= threshold
        if k == 0 and false_fail[0] <= r <= false_fail[1]:
            ok = False
        if k == 0 and false_pass[0] <= r <= false_pass[1]:
            ok = True
        return CapacityPoint(aps=r, meets=ok, replica=k)

    return (lambda rates: [verdict(r, 0) for r in rates]), (lambda specs: [verdict(r, k) for r, k in specs]), calls


@pytest.mark.parametrize("start", [1.0, 3.5])
def test_confirmation_overrules_a_false_failure_below_the_boundary(start: float) -> None:
    """Without confirmation a false failure at 3.2-3.5 decides the capacity (and the start rate decides which);
    with it both starts find the true boundary 3.7 within the tolerance."""
    evaluate, replicate, calls = _noisy(3.7, false_fail=(3.2, 3.5))
    lo, hi, curve, converged, notes = bracket_and_bisect(evaluate, start, tolerance=0.05, replicate=replicate)
    assert converged and hi is not None and lo <= 3.7 < hi and (hi - lo) / hi <= 0.05
    assert any(k > 0 for _, k in calls) and any("confirmation" in n and "reversed" in n for n in notes)
    assert len(curve) == len(calls)  # every replica is on the curve, with its replica index
    plain_lo, *_ = bracket_and_bisect(_noisy(3.7, false_fail=(3.2, 3.5))[0], 1.0, tolerance=0.05)
    assert plain_lo < 3.2  # what the step corrects: the unconfirmed search stops below the false failure


def test_confirmation_overrules_a_false_pass_above_the_boundary() -> None:
    """A pass above the boundary (replica 0 fooled at 4-4.6) is re-measured and loses its majority."""
    evaluate, replicate, _ = _noisy(3.7, false_pass=(4.0, 4.6))
    plain_lo, plain_hi, *_ = bracket_and_bisect(evaluate, 1.0, tolerance=0.05)
    assert plain_lo >= 4.0  # unconfirmed: the false pass is the capacity
    lo, hi, _, converged, _ = bracket_and_bisect(evaluate, 1.0, tolerance=0.05, replicate=replicate)
    assert converged and hi is not None and lo <= 3.7 < hi and (hi - lo) / hi <= 0.05


def test_confirmation_of_a_clean_curve_costs_two_replicas_per_end() -> None:
    """On a deterministic curve every first verdict holds: one replica per bracket end, the same bracket."""
    evaluate, replicate, calls = _noisy(3.7)
    lo0, hi0, *_ = bracket_and_bisect(evaluate, 1.0, tolerance=0.05)
    n0 = len(calls)
    lo, hi, _, converged, notes = bracket_and_bisect(evaluate, 1.0, tolerance=0.05, replicate=replicate)
    assert (lo, hi) == (lo0, hi0) and converged
    assert sorted(k for _, k in calls[n0:] if k) == [1, 1]
    assert any("every first verdict held" in n for n in notes)


def test_replicas_run_with_independent_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rate task of replica k runs the scenario with run.seed + k; replica 0 keeps the scenario's seed."""
    from dualpath_twin.planning import capacity as cap_mod
    from dualpath_twin.planning.types import Task

    seeds: list[int] = []

    def fake_measure(sc: Scenario, aps: float, *a: object, **kw: object) -> CapacityPoint:
        seeds.append(sc.run.seed)
        return CapacityPoint(aps=aps, meets=True)

    monkeypatch.setattr(cap_mod, "measure_rate", fake_measure)
    toml = Scenario(run={"seed": 7}).to_toml()
    for k in (0, 1, 2):
        assert cap_mod.run_rate_task(Task(kind="rate", scenario_toml=toml, policy="basic", aps=1.0, replica=k)).point
    assert seeds == [7, 8, 9]


def test_halving_stops_when_the_windows_hold_too_few_rounds() -> None:
    """A rate failing for want of rounds in its windows is not halved further: lower rates put fewer rounds there."""
    calls: list[list[float]] = []

    def evaluate(rates: list[float]) -> list[CapacityPoint]:
        calls.append(list(rates))
        return [CapacityPoint(aps=r, meets=False, reason="steadiness unknown: under 10 rounds reached their first "
                              "token in one of the last two 150 s windows before the last arrival") for r in rates]

    lo, hi, curve, converged, notes = bracket_and_bisect(evaluate, 4.0, tolerance=0.05)
    assert calls == [[4.0]] and lo == 0.0 and not converged
    assert any("stopped halving at 4 agents/s" in n and "lengthen the arrival window" in n for n in notes)


def test_halving_goes_on_past_a_rate_that_fails_on_latency() -> None:
    """A latency failure is the rate's own: halving carries on until a rate passes."""
    def evaluate(rates: list[float]) -> list[CapacityPoint]:
        return [CapacityPoint(aps=r, meets=r <= 0.6, reason="meets SLO" if r <= 0.6 else "TTFT p90 9 s > 4 s")
                for r in rates]

    lo, hi, _, converged, _ = bracket_and_bisect(evaluate, 4.0, tolerance=0.05)
    assert converged and lo <= 0.6 < hi


def _slow_collapse(threshold: float, horizon_threshold: float):
    """Short runs pass up to ``threshold``; a longer (final-check) run only up to ``horizon_threshold``."""
    checks: list[float] = []

    def final_check(rates: list[float]) -> list[CapacityPoint]:
        checks.extend(rates)
        return [CapacityPoint(aps=r, meets=r <= horizon_threshold, horizon_window_s=2.0) for r in rates]

    return step(threshold), final_check, checks


def test_final_check_vetoes_a_slow_collapse_and_the_search_goes_on_below() -> None:
    """A rate that passes the short run but fails the longer one is vetoed; the capacity ends below the longer
    run's boundary, checked, within the tolerance."""
    evaluate, final_check, checks = _slow_collapse(3.7, 3.3)
    plain_lo, *_ = bracket_and_bisect(evaluate, 1.0, tolerance=0.05)
    assert plain_lo > 3.3  # what the check corrects
    lo, hi, curve, converged, _ = bracket_and_bisect(evaluate, 1.0, tolerance=0.05, final_check=final_check)
    assert converged and hi is not None and lo <= 3.3 < hi and (hi - lo) / hi <= 0.05
    assert lo in checks and len(checks) >= 2 and len(set(checks)) == len(checks)  # each rate checked once
    assert checks[0] == plain_lo  # the first check is the unchecked search's answer
    assert sum(p.horizon_window_s is not None for p in curve) == len(checks)


def test_final_check_that_holds_costs_one_run() -> None:
    """On a curve the longer run agrees with, the check re-measures the capacity once and changes nothing."""
    evaluate, final_check, checks = _slow_collapse(3.7, 3.7)
    lo0, hi0, curve0, *_ = bracket_and_bisect(evaluate, 1.0, tolerance=0.05)
    lo, hi, curve, converged, _ = bracket_and_bisect(evaluate, 1.0, tolerance=0.05, final_check=final_check)
    assert (lo, hi) == (lo0, hi0) and converged and checks == [lo] and len(curve) == len(curve0) + 1


def test_final_check_that_vetoes_every_pass_halves_down() -> None:
    """A veto of the only passing rate sends the search halving until a rate holds the longer run too."""
    evaluate, final_check, checks = _slow_collapse(3.7, 0.5)
    lo, hi, _, converged, _ = bracket_and_bisect(evaluate, 1.0, tolerance=0.05, final_check=final_check)
    assert converged and hi is not None and lo <= 0.5 < hi and lo in checks


def test_capacity_search_horizon_check_runs_a_longer_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """capacity_search re-measures its capacity with horizon_factor x the window; a failure there moves the capacity."""
    from dualpath_twin.planning import capacity as cap_mod

    windows: list[float] = []
    budgets: set[tuple[float | None, float, float]] = set()

    def fake_measure(sc: Scenario, aps: float, policy: str | None, crit: SloCriterion, window_s: float | None = None,
                     early_stop: bool = False) -> CapacityPoint:
        windows.append(window_s or 0.0)
        budgets.add((window_s, sc.run.max_sim_time_s, sc.run.wall_budget_s))
        limit = 0.8 if window_s and window_s > 1000 else 1.0  # the longer run sees a collapse above 0.8
        return CapacityPoint(aps=aps, meets=aps <= limit, reason="meets SLO" if aps <= limit else "TTFT p90 9 s > 4 s")

    monkeypatch.setattr(cap_mod, "measure_rate", fake_measure)
    sc = Scenario(workload={"agents": 8, "arrival_rate_aps": 0.2})
    res = capacity_search(sc, "basic", tolerance=0.05, window_s=600.0, confirm=False)
    assert res.converged and res.capacity_aps <= 0.8 < res.hi_aps
    assert 1200.0 in windows and set(windows) == {600.0, 1200.0}
    # the longer run gets twice the simulated-time and wall budgets too (a fixed cap would cut it short)
    assert budgets == {(600.0, sc.run.max_sim_time_s, sc.run.wall_budget_s),
                       (1200.0, 2 * sc.run.max_sim_time_s, 2 * sc.run.wall_budget_s)}
    checks = [p for p in res.curve if p.horizon_window_s is not None]
    assert [p.horizon_window_s for p in checks] == [1200.0] * len(checks) and len(checks) >= 2
    assert any(not p.meets and p.reason.startswith("horizon check (1200 s arrival window)") for p in checks)
    assert any(n.startswith("horizon check: ") and "failed it" in n for n in res.notes)
    off = capacity_search(sc, "basic", tolerance=0.05, window_s=600.0, confirm=False,
                          criterion=SloCriterion(horizon_factor=1))
    assert off.capacity_aps > 0.8 and all(p.horizon_window_s is None for p in off.curve)
