"""The unit of work shipped to executors: small, picklable in and out (the driver alone writes the store).

``Task`` and ``Outcome`` live in ``planning.types`` (re-exported here); kinds "rate" and
"capacity" are run by ``planning.capacity``'s task runners, kind "run" here.
"""

from __future__ import annotations

import polars as pl

from dualpath_twin.planning.capacity import run_capacity_task, run_rate_task
from dualpath_twin.planning.types import Outcome, Task, error_outcome


def run_task(task: Task) -> Outcome:
    """Execute one task in this process; exceptions become ``Outcome.error`` (never raised)."""
    from dualpath_twin import api
    from dualpath_twin.planning.common import scenario_from_toml

    if task.kind == "rate":
        return run_rate_task(task)
    if task.kind == "capacity":
        return run_capacity_task(task)
    try:
        sc = scenario_from_toml(task.scenario_toml)
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
    except Exception as err:  # noqa: BLE001 - reported to the driver, which decides
        return error_outcome(task.key, err)
