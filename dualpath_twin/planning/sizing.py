"""Sizing: the cheapest configurations that hold the SLO at a target rate, and the cost/capacity Pareto front."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, Field, ValidationError

from dualpath_twin.planning.capacity import (
    CapacityPoint,
    CapacityResult,
    SloCriterion,
    default_window_s,
    online_scenario,
)
from dualpath_twin.planning.common import override
from dualpath_twin.planning.executors import run_tasks
from dualpath_twin.planning.grid import PlanningError, expand_grid
from dualpath_twin.planning.tasks import Task, run_task
from dualpath_twin.scenario import Scenario, ScenarioError

DEFAULT_COST_FILE = Path(__file__).resolve().parents[2] / "data" / "costs.toml"


class CostTable(BaseModel):
    """Hourly prices: GPU-hours by GPU type, NIC per Gbit/s-port-hour, node base."""

    model_config = {"extra": "forbid"}
    currency: str = "USD"
    gpu_hour_usd: dict[str, float] = Field(default_factory=dict)
    nic_usd_per_gbps_port_hour: float = Field(0.00043, ge=0)
    node_base_usd_per_hour: float = Field(1.5, ge=0)
    source: str = ""

    def node_cost_per_hour(self, sc: Scenario) -> float:
        """Hourly cost of one node of the scenario's kind."""
        gpu = sc.cluster.gpu
        if gpu not in self.gpu_hour_usd:
            raise PlanningError(
                f"cost table {self.source or '(defaults)'}: no price for GPU {gpu!r} in [gpu_hour_usd]; "
                f"add a line `{gpu} = <usd per GPU-hour>` (known: {', '.join(sorted(self.gpu_hour_usd))})"
            )
        n = sc.network
        nic_gbps = n.snic_gbps * n.snics_per_node + n.cnic_gbps * n.cnics_per_node
        return (
            sc.cluster.gpus_per_node * self.gpu_hour_usd[gpu]
            + self.node_base_usd_per_hour
            + nic_gbps * self.nic_usd_per_gbps_port_hour
        )

    def cluster_cost_per_hour(self, sc: Scenario) -> float:
        """Hourly cost of the whole xPyD cluster."""
        return (sc.cluster.prefill_nodes + sc.cluster.decode_nodes) * self.node_cost_per_hour(sc)


def load_costs(path: str | Path | None = None) -> CostTable:
    """Load a cost table TOML (default data/costs.toml); errors name the file and the bad key."""
    p = Path(path) if path else DEFAULT_COST_FILE
    if not p.is_file():
        raise PlanningError(f"cost file not found: {p}; pass --cost-file with a TOML like data/costs.toml")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise PlanningError(f"cost file {p}: TOML syntax error: {err}") from None
    try:
        return CostTable.model_validate({**data, "source": str(p)})
    except ValidationError as err:
        probs = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors())
        raise PlanningError(f"cost file {p}: {probs}; see data/costs.toml for the expected keys") from None


class SizingCandidate(BaseModel):
    """One configuration of the sizing grid."""

    point: dict[str, Any]
    status: Literal["meets", "fails", "skipped", "pruned", "error"]
    reason: str = ""
    cost_per_hour: float | None = None
    at_target: CapacityPoint | None = None
    capacity: CapacityResult | None = None

    @property
    def capacity_aps(self) -> float | None:
        """Measured capacity (agents/s) if a capacity search ran."""
        return self.capacity.capacity_aps if self.capacity else None


class SizingResult(BaseModel):
    """Sizing answer: candidates sorted by cost, the cheapest meeting the target, the Pareto front."""

    target_aps: float
    policy: str
    axes: list[str]
    candidates: list[SizingCandidate]
    cheapest: list[SizingCandidate] = Field(default_factory=list)
    pareto: list[SizingCandidate] = Field(default_factory=list)
    currency: str = "USD"

    def to_frame(self) -> pl.DataFrame:
        """One row per candidate with axes, cost, status, capacity and Pareto flag."""
        pareto_keys = {repr(sorted(c.point.items())) for c in self.pareto}
        rows = []
        for c in self.candidates:
            row: dict[str, Any] = {k: c.point.get(k) for k in self.axes}
            row.update(
                cost_per_hour=c.cost_per_hour,
                status=c.status,
                reason=c.reason,
                ttft_p90_s=c.at_target.ttft_p90_s if c.at_target else None,
                tpot_p90_s=c.at_target.tpot_p90_s if c.at_target else None,
                capacity_aps=c.capacity_aps,
                pareto=repr(sorted(c.point.items())) in pareto_keys,
            )
            rows.append(row)
        return pl.DataFrame(rows, infer_schema_length=None, strict=False)


def pareto_front(items: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of (cost, capacity) pairs not dominated (lower-or-equal cost and higher-or-equal capacity, one strictly)."""
    order = sorted(range(len(items)), key=lambda i: (items[i][0], -items[i][1]))
    out: list[int] = []
    best = float("-inf")
    for i in order:
        if items[i][1] > best:
            out.append(i)
            best = items[i][1]
    return out


def dominates_success(point: dict[str, Any], successes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A meeting point that is <= ``point`` on every numeric axis (so ``point`` has at least its resources and meets too)."""
    for f in successes:
        if all(
            isinstance(point[k], int | float) and isinstance(f[k], int | float) and point[k] >= f[k] for k in point
        ):
            return f
    return None


def dominated_by_failure(point: dict[str, Any], failures: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A failing point that is >= ``point`` on every numeric axis (so ``point`` has no more resources and fails too)."""
    for f in failures:
        if all(
            isinstance(point[k], int | float) and isinstance(f[k], int | float) and point[k] <= f[k] for k in point
        ):
            return f
    return None


@dataclass
class SizingProgress:
    """Progress of a sizing run."""

    done: int
    total: int
    last: SizingCandidate | None = None
    phase: str = "target"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SizingPoint:
    """One grid point of a sizing job: its scenario, that scenario online at the target rate, or why it is invalid."""

    point: dict[str, Any]
    scenario: Scenario | None = None  # the point applied to the scenario (policy set)
    online: Scenario | None = None  # ``scenario`` online at the target rate over the sizing window (what is run)
    problem: str = ""  # why the point is skipped (scenario validation), when ``online`` is None


def sizing_points(
    sc: Scenario, target_aps: float, vary: dict[str, list[Any]], policy: str, criterion: SloCriterion | None = None,
) -> list[SizingPoint]:
    """Every grid point as ``size`` runs it: online at ``target_aps``, the arrival window long enough to settle.

    The window is the base scenario's ``default_window_s`` under ``criterion`` (one for every point),
    so each point runs target x window agents. ``size`` and its run-size guard (``guard.guard_sizing``,
    fed with the ``online`` scenarios) both build the points here.
    """
    if not target_aps > 0:
        raise PlanningError(f"--target-aps must be > 0 agents/s, got {target_aps}")
    window = default_window_s(sc, criterion or SloCriterion())  # long enough for the agent population to settle
    out: list[SizingPoint] = []
    for point in expand_grid(vary):
        try:
            sc_pt = override(sc, {**point, "policy.name": policy})
            sc_on = online_scenario(sc_pt, target_aps, window)
        except ScenarioError as err:
            out.append(SizingPoint(point=point, problem="; ".join(err.problems)))
            continue
        out.append(SizingPoint(point=point, scenario=sc_pt, online=sc_on))
    return out


def labelled_online(points: list[SizingPoint], label: Callable[[dict[str, Any]], str] | None = None) -> dict[str, Scenario]:
    """The valid points' online scenarios by a unique label (``label(point)``, default 'path=value, ...')."""
    out: dict[str, Scenario] = {}
    for i, p in enumerate(points):
        if p.online is None:
            continue
        lab = label(p.point) if label else ", ".join(f"{k}={v}" for k, v in p.point.items())
        out[lab if lab not in out else f"{lab} #{i + 1}"] = p.online
    return out


DEFAULT_TOLERANCE = 0.1  # size()'s capacity search tolerance (relative)


def size(
    sc: Scenario,
    target_aps: float,
    vary: dict[str, list[Any]],
    *,
    policy: str | None = None,
    costs: CostTable | None = None,
    criterion: SloCriterion | None = None,
    measure_capacity: Literal["none", "meets", "all"] = "meets",
    tolerance: float = DEFAULT_TOLERANCE,
    top: int = 5,
    prune: bool = True,
    executor: Executor | None = None,
    progress: Callable[[SizingProgress], None] | None = None,
    early_stop: bool = True,
) -> SizingResult:
    """Evaluate every configuration at ``target_aps``, cheapest first.

    ``early_stop`` (on by default, as in ``dualpath-twin capacity``): a capacity search's run stops
    once its SLO failure is certain.

    With ``prune`` (default) a configuration whose every axis is <= a failing one's is not
    simulated (status ``pruned``), and one whose every axis is >= a meeting one's is marked
    ``meets`` without simulating at the target (reason ``implied``; its capacity is still
    measured). This assumes each varied axis is a resource where more is better (nodes, NIC
    speed, DRAM buffer); pass ``prune=False`` when varying anything else.

    ``measure_capacity`` chooses the candidates whose capacity is then searched (from ``target_aps``,
    to ``tolerance``): "meets" those meeting the SLO at the target (implied ones included), "all"
    every candidate simulated or implied (not the pruned, skipped or failed-with-an-error ones),
    "none" none. ``top`` only limits the ``cheapest`` list.
    """
    if not target_aps > 0:
        raise PlanningError(f"--target-aps must be > 0 agents/s, got {target_aps}")
    costs = costs or load_costs()
    crit = criterion or SloCriterion()
    pol = policy or sc.policy.name
    cands: list[SizingCandidate] = []
    valid: list[tuple[SizingCandidate, Scenario]] = []
    for pt in sizing_points(sc, target_aps, vary, pol, crit):
        if pt.online is None:
            cands.append(SizingCandidate(point=pt.point, status="skipped", reason=pt.problem))
            continue
        assert pt.scenario is not None
        c = SizingCandidate(point=pt.point, status="fails", cost_per_hour=costs.cluster_cost_per_hour(pt.scenario))
        cands.append(c)
        valid.append((c, pt.online))
    valid.sort(key=lambda cs: cs[0].cost_per_hour or 0.0)
    failures: list[dict[str, Any]] = []
    successes: list[dict[str, Any]] = []
    total = len(valid)
    done = 0
    # evaluate in waves of the executor's width so failures found early prune the rest
    wave = max(1, getattr(executor, "_max_workers", 0) or (4 if executor is not None else 1))
    pending = list(valid)
    while pending:
        batch: list[tuple[SizingCandidate, Scenario]] = []
        rest: list[tuple[SizingCandidate, Scenario]] = []
        for c, s in pending:
            dom = dominated_by_failure(c.point, failures) if prune else None
            sup = dominates_success(c.point, successes) if prune else None
            if dom is not None:
                c.status, c.reason = "pruned", f"no more resources than failing {dom}"
            elif sup is not None:
                c.status, c.reason = "meets", f"implied: at least the resources of meeting {sup}"
            if dom is not None or sup is not None:
                done += 1
                if progress:
                    progress(SizingProgress(done, total, c))
            elif len(batch) < wave:
                batch.append((c, s))
            else:
                rest.append((c, s))
        pending = rest
        tasks = [Task(kind="rate", scenario_toml=s.to_toml(), policy=pol, aps=target_aps, criterion=crit) for _, s in batch]
        outs = run_tasks(executor, run_task, tasks)
        for (c, _), o in zip(batch, outs, strict=True):
            if o.error or o.point is None:
                c.status, c.reason = "error", o.error
            else:
                c.at_target = o.point
                c.status = "meets" if o.point.meets else "fails"
                c.reason = o.point.reason
                (successes if o.point.meets else failures).append(c.point)
            done += 1
            if progress:
                progress(SizingProgress(done, total, c))
    want = [c for c, _ in valid if measure_capacity == "all" or (measure_capacity == "meets" and c.status == "meets")]
    want = [c for c in want if c.status in ("meets", "fails")]
    if want:
        sc_of = {id(c): s for c, s in valid}
        tasks = [
            Task(kind="capacity", scenario_toml=sc_of[id(c)].to_toml(), policy=pol, criterion=crit, tolerance=tolerance,
                 start_aps=target_aps, early_stop=early_stop)
            for c in want
        ]
        outs = run_tasks(executor, run_task, tasks)
        for i, (c, o) in enumerate(zip(want, outs, strict=True)):
            c.capacity = o.capacity
            if o.error:
                c.reason = f"{c.reason}; capacity search failed: {o.error}"
            if progress:
                progress(SizingProgress(i + 1, len(want), c, phase="capacity"))
    meets = sorted((c for c in cands if c.status == "meets"), key=lambda c: c.cost_per_hour or 0.0)
    with_cap = [c for c in cands if c.capacity is not None]
    front_idx = pareto_front([(c.cost_per_hour or 0.0, c.capacity_aps or 0.0) for c in with_cap])
    cands_sorted = sorted(cands, key=lambda c: (c.cost_per_hour is None, c.cost_per_hour or 0.0))
    return SizingResult(
        target_aps=target_aps,
        policy=pol,
        axes=list(vary),
        candidates=cands_sorted,
        cheapest=meets[:top],
        pareto=sorted((with_cap[i] for i in front_idx), key=lambda c: c.cost_per_hour or 0.0),
        currency=costs.currency,
    )
