"""The unit of work shipped to executors: small, picklable in and out (the driver alone writes the store)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from dualpath_twin.planning.capacity import CapacityPoint, CapacityResult, SloCriterion
from dualpath_twin.results import RunSummary

TaskKind = Literal["run", "rate", "capacity"]


@dataclass
class Task:
    """One job: a full run, a judged run at one online rate, or a whole capacity search."""

    kind: TaskKind
    scenario_toml: str
    policy: str
    key: str = ""
    aps: float | None = None  # kind "rate"
    window_s: float | None = None  # kinds "rate" and "capacity": arrival window (agents = aps x window_s)
    criterion: SloCriterion | None = None  # kinds "rate" and "capacity"
    tolerance: float = 0.05  # kind "capacity"
    start_aps: float | None = None  # kind "capacity"
    max_evaluations: int = 40  # kind "capacity"
    keep_timeseries: bool = True  # kind "run": return the cluster-level time series (small)


@dataclass
class Outcome:
    """What a worker returns: a summary (run), a judged point (rate) or a capacity result, or an error."""

    key: str
    summary: RunSummary | None = None
    point: CapacityPoint | None = None
    capacity: CapacityResult | None = None
    scenario_toml: str = ""
    timeseries: pl.DataFrame | None = None
    error: str = ""
    invariants: list[str] = field(default_factory=list)


def run_task(task: Task) -> Outcome:
    """Execute one task in this process; exceptions become ``Outcome.error`` (never raised)."""
    from dualpath_twin import api
    from dualpath_twin.planning.capacity import capacity_search, measure_rate
    from dualpath_twin.planning.common import scenario_from_toml

    try:
        sc = scenario_from_toml(task.scenario_toml)
        if task.kind == "run":
            res = api.simulate(sc, task.policy)
            ts = None
            if task.keep_timeseries and res.timeseries is not None and "entity" in res.timeseries.columns:
                ts = res.timeseries.filter(pl.col("entity") == "cluster")
            return Outcome(
                key=task.key,
                summary=res.summary,
                scenario_toml=res.scenario_toml or task.scenario_toml,
                timeseries=ts,
                invariants=list(res.invariants),
            )
        if task.kind == "rate":
            assert task.aps is not None, "rate task needs aps"
            pt = measure_rate(sc, task.aps, task.policy, task.criterion or SloCriterion(), task.window_s)
            return Outcome(key=task.key, point=pt)
        cap = capacity_search(
            sc,
            task.policy,
            criterion=task.criterion,
            tolerance=task.tolerance,
            start_aps=task.start_aps,
            max_evaluations=task.max_evaluations,
            window_s=task.window_s,
        )
        return Outcome(key=task.key, capacity=cap, scenario_toml=task.scenario_toml)
    except Exception as err:  # noqa: BLE001 - reported to the driver, which decides
        tb = traceback.format_exception_only(type(err), err)
        return Outcome(key=task.key, error="".join(tb).strip())
