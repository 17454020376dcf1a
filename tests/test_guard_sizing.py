"""The run-size guards of sizing and sensitivity count the runs those jobs really make: sizing a run per candidate
at the target rate plus the capacity searches ``size`` makes (from the target, to its tolerance); online sensitivity
a capacity search per baseline and per move, built as ``sensitivity`` builds them. Guards only: nothing is simulated
(the jobs' task runners are replaced by recorders)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dualpath_twin import guard as g
from dualpath_twin.planning import sensitivity as sens_mod
from dualpath_twin.planning import sizing as sizing_mod
from dualpath_twin.planning.capacity import SloCriterion, default_window_s
from dualpath_twin.planning.common import override
from dualpath_twin.planning.sensitivity import sensitivity, sensitivity_moves
from dualpath_twin.planning.sizing import labelled_online, size, sizing_points
from dualpath_twin.planning.types import CapacityPoint, Outcome
from dualpath_twin.scenario import load

QUICK = override(load(Path(__file__).resolve().parents[1] / "scenarios" / "examples" / "quick.toml"),
                 {"workload.mode": "online", "workload.arrival_rate_aps": 1.0})
GRID = {"cluster.decode_nodes": [2, 3, 4]}
LIMITS = g.Limits(max_memory_bytes=1e18, max_wall_s=1e18, source="test")


def _cands(target: float) -> dict[str, Any]:
    return labelled_online(sizing_points(QUICK, target, GRID, "basic"))


def test_a_sizing_plan_is_a_run_per_candidate_plus_the_searches_it_measures() -> None:
    cands = _cands(1.0)
    assert len(cands) == 3
    every = g.guard_sizing(cands, 1.0, measure="all", limits=LIMITS)
    none = g.guard_sizing(cands, 1.0, measure="none", limits=LIMITS)
    assert every is not None and none is not None
    # each search planned as size() runs it: from the target rate, to size()'s tolerance
    plans = {k: g.plan_capacity_search(s, "basic", start_aps=1.0, tolerance=sizing_mod.DEFAULT_TOLERANCE)
             for k, s in cands.items()}
    assert every.runs == 3 + sum(p.runs for p in plans.values()) and every.runs > 3 + 3 * 4
    assert {k: p.rates for k, p in every.plans.items()} == {k: p.rates for k, p in plans.items()}
    assert none.runs == 3 and none.plans == {} and none.wall_s < every.wall_s
    for p in every.plans.values():
        assert p.start_aps == 1.0 and p.tolerance == 0.1 and p.confirm_runs == 2


def test_meets_measures_only_the_candidates_that_can_meet_the_target() -> None:
    ceilings = sorted(pl.boundary_aps for pl in g.guard_sizing(_cands(1.0), 1.0, measure="all", limits=LIMITS).plans.values())
    assert ceilings[0] < ceilings[-1]
    target = (ceilings[0] + ceilings[-1]) / 2  # above the smallest configuration's analytic ceiling
    cands = _cands(target)
    meets = g.guard_sizing(cands, target, measure="meets", limits=LIMITS)
    every = g.guard_sizing(cands, target, measure="all", limits=LIMITS)
    assert meets is not None and every is not None
    assert 0 < len(meets.plans) < len(every.plans) == 3
    assert all(pl.boundary_aps > target for pl in meets.plans.values())
    assert meets.runs == 3 + sum(pl.runs for pl in meets.plans.values()) < every.runs


def test_the_guard_plans_the_searches_size_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """size()'s capacity tasks: the guard's candidates, from the target rate, the window capacity_search will use."""
    sent: list[list[Any]] = []

    def record(_ex: object, _fn: object, tasks: list[Any], **_kw: object) -> list[Outcome]:
        sent.append(list(tasks))
        return [Outcome(key="", point=CapacityPoint(aps=t.aps or 0.0, meets=True)) for t in tasks]

    monkeypatch.setattr(sizing_mod, "run_tasks", record)
    crit = SloCriterion()
    size(QUICK, 1.0, GRID, policy="basic", criterion=crit, measure_capacity="all", prune=False)
    rate_tasks = [t for batch in sent for t in batch if t.kind == "rate"]  # in waves of the executor's width
    cap_tasks = [t for batch in sent for t in batch if t.kind == "capacity"]
    cands = _cands(1.0)
    assert [t.scenario_toml for t in rate_tasks] == [s.to_toml() for s in cands.values()]
    assert [t.scenario_toml for t in cap_tasks] == [s.to_toml() for s in cands.values()]
    est = g.guard_sizing(cands, 1.0, measure="all", population=crit.population, limits=LIMITS)
    assert est is not None
    for t, (k, s) in zip(cap_tasks, cands.items(), strict=True):
        plan = est.plans[k]
        assert (t.start_aps, t.tolerance, t.max_evaluations, t.confirm, t.window_s) == (
            plan.start_aps, plan.tolerance, plan.max_evaluations, True, None)
        assert plan.window_s == pytest.approx(default_window_s(s, crit))  # capacity_search's window (window_s None)


def test_an_oversized_sizing_job_is_refused_naming_the_fix() -> None:
    tiny = g.Limits(max_memory_bytes=1e18, max_wall_s=1.0, source="test")
    with pytest.raises(g.RunTooLarge) as err:
        g.guard_sizing(_cands(1.0), 1.0, limits=tiny, force_hint="pass --yes")
    msg = str(err.value)
    assert g.SIZING_FIX in msg and "run(s) at the target rate" in msg and "pass --yes" in msg
    assert g.guard_sizing({}, 1.0, limits=tiny) is None  # no valid point: nothing to run


def test_sensitivity_runs_the_moves_the_guard_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []

    def record(_ex: object, _fn: object, tasks: list[Any], **_kw: object) -> list[Outcome]:
        sent.extend(tasks)
        return [Outcome(key="", error="not run") for _ in tasks]

    monkeypatch.setattr(sens_mod, "run_tasks", record)
    params = ["network.snic_gbps", "cluster.decode_nodes"]
    sensitivity(QUICK, "basic", parameters=params)
    moves = sensitivity_moves(QUICK, "basic", parameters=params).scenarios()
    assert list(moves) == ["baseline", "network.snic_gbps low", "network.snic_gbps high", "cluster.decode_nodes low",
                           "cluster.decode_nodes high"]
    assert [t.scenario_toml for t in sent] == [s.to_toml() for s in moves.values()]
    assert {(t.kind, t.tolerance, t.from_bound, t.start_aps) for t in sent} == {
        ("capacity", sens_mod.DEFAULT_TOLERANCE, True, None)}
    est = g.guard_capacity_many(moves, tolerance=sens_mod.DEFAULT_TOLERANCE, from_bound=True, limits=LIMITS)
    assert est.runs == sum(g.plan_capacity_search(s, "basic", tolerance=0.1, from_bound=True).runs
                           for s in moves.values())
    assert len({pl.boundary_aps for pl in est.plans.values()}) > 1  # each move's own ceiling, not the baseline's x 5


def test_an_oversized_sensitivity_job_is_refused_naming_the_fix() -> None:
    tiny = g.Limits(max_memory_bytes=1e18, max_wall_s=1.0, source="test")
    moves = sensitivity_moves(QUICK, "basic", parameters=["network.snic_gbps"]).scenarios()
    with pytest.raises(g.RunTooLarge) as err:
        g.guard_capacity_many(moves, tolerance=0.1, limits=tiny, fix=g.SENSITIVITY_FIX)
    assert "(3 search(s))" in str(err.value) and g.SENSITIVITY_FIX in str(err.value)


def test_a_window_beyond_the_agent_limit_is_estimated_not_crashed() -> None:
    """A search doubling past workload.agents' 10,000,000 bound: its runs are still counted (and refused)."""
    long = override(QUICK, {"workload.agents": 5_000_000, "workload.arrival_rate_aps": 1.0})
    plan = g.plan_capacity_search(long, "basic", start_aps=1.0)
    assert max(plan.rates) * plan.window_s > 10_000_000 and max(plan.rounds) > 10_000_000
