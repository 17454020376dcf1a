"""Sensitivity: how capacity (online) or JCT (offline) moves when each hardware parameter moves +/-50%."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, Field

from dualpath_twin.planning.capacity import SloCriterion
from dualpath_twin.planning.common import override
from dualpath_twin.planning.executors import run_tasks
from dualpath_twin.planning.grid import PlanningError
from dualpath_twin.planning.tasks import Outcome, Task, run_task
from dualpath_twin.scenario import Scenario, ScenarioError

# (path, label); storage.read_gbps_total joins only when the scenario sets it.
DEFAULT_PARAMETERS: list[tuple[str, str]] = [
    ("network.snic_gbps", "storage NIC speed"),
    ("network.cnic_gbps", "compute NIC speed"),
    ("network.dram_gbps", "host DRAM bandwidth"),
    ("network.pcie_gbps", "PCIe bandwidth"),
    ("storage.read_gbps_total", "storage read total"),
    ("compute.gemm_mfu", "GPU FLOPs (GEMM efficiency)"),
    ("compute.hbm_efficiency", "HBM bandwidth (achieved share)"),
    ("cluster.hbm_reserved_gb", "HBM reserved (less KV room)"),
    ("cluster.dram_buffer_gb", "DRAM KV buffer"),
    ("cluster.prefill_nodes", "prefill nodes"),
    ("cluster.decode_nodes", "decode nodes"),
]
DEFAULT_TOLERANCE = 0.1  # sensitivity()'s capacity search tolerance (online; relative)


class SensitivityRow(BaseModel):
    """One parameter's low/high values and the metric at each."""

    path: str
    label: str
    base_value: float
    low_value: float
    high_value: float
    metric_low: float | None = None
    metric_high: float | None = None
    swing: float = 0.0  # |metric_high - metric_low|
    notes: list[str] = Field(default_factory=list)


class SensitivityResult(BaseModel):
    """Tornado data: rows sorted by swing, largest first."""

    policy: str
    metric: Literal["capacity_aps", "jct_s"]
    baseline: float | None
    change: float
    rows: list[SensitivityRow]
    skipped: list[str] = Field(default_factory=list)

    def to_frame(self) -> pl.DataFrame:
        """One row per parameter."""
        return pl.DataFrame([r.model_dump(exclude={"notes"}) for r in self.rows], infer_schema_length=None)


def _get(sc: Scenario, path: str) -> Any:
    node: Any = sc
    for part in path.split("."):
        node = getattr(node, part)
    return node


def _moved(value: float | int, factor: float) -> float | int:
    if isinstance(value, bool):
        raise PlanningError("cannot scale a boolean parameter")
    if isinstance(value, int):
        return max(1, int(round(value * factor)))
    return value * factor


def _metric(out: Outcome, metric: str) -> float | None:
    if out.error:
        return None
    if metric == "capacity_aps":
        return out.capacity.capacity_aps if out.capacity else None
    return out.summary.jct_s if out.summary else None


@dataclass
class SensitivityMoves:
    """The scenarios a sensitivity job runs: the baseline, each parameter moved down and up, and what was skipped."""

    policy: str
    baseline: Scenario
    rows: list[SensitivityRow]  # one per parameter moved (values set, metrics not yet)
    moves: list[tuple[Scenario, Scenario]]  # (low, high) scenario of each row, in the same order
    skipped: list[str] = dc_field(default_factory=list)

    def scenarios(self) -> dict[str, Scenario]:
        """Every scenario to run, labelled: 'baseline', then '<path> low' / '<path> high' per row."""
        out = {"baseline": self.baseline}
        for row, (lo, hi) in zip(self.rows, self.moves, strict=True):
            out[f"{row.path} low"], out[f"{row.path} high"] = lo, hi
        return out


def sensitivity_moves(
    sc: Scenario, policy: str | None = None, *, parameters: list[str] | None = None, change: float = 0.5,
) -> SensitivityMoves:
    """The baseline and each parameter at x (1 - change) and x (1 + change), as ``sensitivity`` runs them.

    ``sensitivity`` and its run-size guard (``guard.guard_capacity_many`` on :meth:`SensitivityMoves.scenarios`)
    both build the moves here. Raises :class:`PlanningError` for a bad ``change`` or parameter path.
    """
    if not 0 < change < 1:
        raise PlanningError(f"--change must be in (0, 1), e.g. 0.5 for +/-50%; got {change}")
    pol = policy or sc.policy.name
    labels = dict(DEFAULT_PARAMETERS)
    paths = parameters or [p for p, _ in DEFAULT_PARAMETERS]
    rows: list[SensitivityRow] = []
    moves: list[tuple[Scenario, Scenario]] = []
    skipped: list[str] = []
    for path in paths:
        try:
            base = _get(sc, path)
        except AttributeError:
            raise PlanningError(f"--param {path!r}: not a scenario path; see `dualpath-twin validate --paths`") from None
        if base is None:
            skipped.append(f"{path}: not set in the scenario (unlimited); set it to include it")
            continue
        if not isinstance(base, int | float) or isinstance(base, bool):
            raise PlanningError(f"--param {path!r}: value {base!r} is not numeric; sensitivity needs a number")
        lo, hi = _moved(base, 1 - change), _moved(base, 1 + change)
        row = SensitivityRow(path=path, label=labels.get(path, path), base_value=base, low_value=lo, high_value=hi)
        try:
            lo_sc = override(sc, {path: lo, "policy.name": pol})
            hi_sc = override(sc, {path: hi, "policy.name": pol})
        except ScenarioError as err:
            skipped.append(f"{path}: {'; '.join(err.problems)}")
            continue
        rows.append(row)
        moves.append((lo_sc, hi_sc))
    return SensitivityMoves(policy=pol, baseline=sc.with_policy(pol), rows=rows, moves=moves, skipped=skipped)


def sensitivity(
    sc: Scenario,
    policy: str | None = None,
    *,
    parameters: list[str] | None = None,
    change: float = 0.5,
    criterion: SloCriterion | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    executor: Executor | None = None,
    progress: Callable[[int, int], None] | None = None,
    early_stop: bool = True,
    from_bound: bool = True,
) -> SensitivityResult:
    """Capacity (online scenarios) or JCT (offline) at each parameter x (1 - change) and x (1 + change).

    ``early_stop``, ``from_bound``: the capacity searches' (on by default, as in ``dualpath-twin capacity``).
    """
    pol = policy or sc.policy.name
    metric: Literal["capacity_aps", "jct_s"] = "capacity_aps" if sc.workload.mode == "online" else "jct_s"
    crit = criterion or SloCriterion()

    def task(s: Scenario) -> Task:
        if metric == "capacity_aps":
            return Task(kind="capacity", scenario_toml=s.to_toml(), policy=pol, criterion=crit, tolerance=tolerance,
                        early_stop=early_stop, from_bound=from_bound)
        return Task(kind="run", scenario_toml=s.to_toml(), policy=pol, keep_timeseries=False)

    plan = sensitivity_moves(sc, pol, parameters=parameters, change=change)
    rows, skipped = plan.rows, plan.skipped
    tasks: list[Task] = [task(plan.baseline)] + [task(s) for pair in plan.moves for s in pair]
    outs: list[Outcome] = run_tasks(executor, run_task, tasks, progress=progress)
    baseline = _metric(outs[0], metric)
    base_notes = [outs[0].error] if outs[0].error else []
    for i, row in enumerate(rows):
        lo_o, hi_o = outs[1 + 2 * i], outs[2 + 2 * i]
        row.metric_low, row.metric_high = _metric(lo_o, metric), _metric(hi_o, metric)
        row.notes = [o.error for o in (lo_o, hi_o) if o.error]
        if row.metric_low is not None and row.metric_high is not None:
            row.swing = abs(row.metric_high - row.metric_low)
    rows.sort(key=lambda r: r.swing, reverse=True)
    return SensitivityResult(
        policy=pol, metric=metric, baseline=baseline, change=change, rows=rows, skipped=skipped + base_notes
    )
