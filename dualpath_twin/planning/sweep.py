"""Sweeps: run a scenario over the cartesian product of grid axes and policies, resumably.

The sweep id is a hash of (scenario content, grid, policies, objective), so re-running the
same sweep finds the points already finished in the store and skips them. Workers get the
point's scenario as TOML text and return a small ``Outcome``; only this driver writes the store.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import polars as pl

from dualpath_twin.planning.capacity import CapacityResult, SloCriterion
from dualpath_twin.planning.common import override
from dualpath_twin.planning.executors import DEFAULT_RETRIES, submit_all
from dualpath_twin.planning.grid import PlanningError, expand_grid, point_key
from dualpath_twin.planning.tasks import Outcome, Task, run_task
from dualpath_twin.results import RunResult, RunSummary
from dualpath_twin.scenario import POLICY_NAMES, Scenario, ScenarioError

Objective = Literal["run", "capacity"]


class SweepStore(Protocol):
    """What the planning driver needs from the store (dualpath_twin.store.open_store(path) provides it)."""

    def create_sweep(self, sweep_id: str, name: str, scenario_toml: str, grid: dict[str, list[Any]], policies: list[str]) -> str:
        """Return the store's id for the sweep with this deterministic key, registering it on first use."""
        ...

    def find_finished_point(self, sweep_id: str, point: dict[str, Any]) -> RunSummary | None:
        """Summary of the finished run at this point (axes + ``policy``), or None."""
        ...

    def save_run(self, result: RunResult, *, sweep_id: str | None = None, point: dict[str, Any] | None = None) -> str:
        """Persist one run (summary + frames) under a sweep point; returns the run id."""
        ...


class MemoryStore:
    """In-process SweepStore (no database): enough for resumability within one process and for tests."""

    def __init__(self) -> None:
        self.sweeps: dict[str, dict[str, Any]] = {}
        self.runs: dict[tuple[str, str], RunResult] = {}

    def create_sweep(self, sweep_id: str, name: str, scenario_toml: str, grid: dict[str, list[Any]], policies: list[str]) -> str:
        """Register a sweep."""
        self.sweeps.setdefault(sweep_id, {"name": name, "grid": grid, "policies": policies})
        return sweep_id

    def find_finished_point(self, sweep_id: str, point: dict[str, Any]) -> RunSummary | None:
        """Finished summary at the point or None."""
        point = dict(point)
        pol = str(point.pop("policy", ""))
        r = self.runs.get((sweep_id, point_key(point, pol)))
        return r.summary if r is not None and r.summary.status != "cancelled" else None

    def save_run(self, result: RunResult, *, sweep_id: str | None = None, point: dict[str, Any] | None = None) -> str:
        """Keep the run in memory."""
        point = dict(point or {})
        pol = str(point.pop("policy", result.summary.policy))
        k = point_key(point, pol)
        self.runs[(sweep_id or "", k)] = result
        return k


@dataclass
class SweepProgress:
    """Progress of a sweep, passed to callbacks after each point."""

    done: int
    total: int
    cached: int
    failed: int
    last: SweepPointResult | None = None


@dataclass
class SweepPointResult:
    """One (point, policy) of a sweep."""

    point: dict[str, Any]
    policy: str
    key: str
    status: str  # done | cached | skipped (invalid scenario) | failed
    reason: str = ""
    summary: RunSummary | None = None
    capacity: CapacityResult | None = None
    run_id: str | None = None


@dataclass
class SweepResult:
    """Every point of a sweep, in grid order."""

    sweep_id: str
    name: str
    grid: dict[str, list[Any]]
    policies: list[str]
    objective: str
    points: list[SweepPointResult] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def new_runs(self) -> int:
        """Points simulated by this invocation (not found in the store)."""
        return sum(p.status == "done" for p in self.points)

    def to_frame(self) -> pl.DataFrame:
        """One row per point: axes, policy, status and headline metrics (capacity_aps for capacity sweeps)."""
        rows = []
        for p in self.points:
            s = p.summary
            row: dict[str, Any] = {k: p.point.get(k) for k in self.grid}
            row.update(policy=p.policy, status=p.status, reason=p.reason)
            row.update(
                jct_s=s.jct_s if s else None,
                prompt_tokens_per_s=s.prompt_tokens_per_s if s else None,
                generated_tokens_per_s=s.generated_tokens_per_s if s else None,
                ttft_p90_s=s.ttft_s.p90 if s else None,
                ttft_p99_s=s.ttft_s.p99 if s else None,
                tpot_p90_s=s.tpot_s.p90 if s else None,
                slo_attainment=s.slo_attainment if s else None,
                steady_state=s.steady_state if s else None,
                bottleneck=s.bottleneck if s else None,
                capacity_aps=p.capacity.capacity_aps if p.capacity else None,
            )
            rows.append(row)
        return pl.DataFrame(rows, infer_schema_length=None, strict=False)

    def to_json_obj(self) -> dict[str, Any]:
        """JSON-ready form for ``--json``."""
        return {
            "sweep_id": self.sweep_id,
            "name": self.name,
            "grid": self.grid,
            "policies": self.policies,
            "objective": self.objective,
            "new_runs": self.new_runs,
            "wall_s": self.wall_s,
            "points": [
                {
                    "point": p.point,
                    "policy": p.policy,
                    "status": p.status,
                    "reason": p.reason,
                    "run_id": p.run_id,
                    "summary": p.summary.model_dump(mode="json") if p.summary else None,
                    "capacity": p.capacity.model_dump(mode="json") if p.capacity else None,
                }
                for p in self.points
            ],
        }


def sweep_id_for(sc: Scenario, grid: dict[str, list[Any]], policies: list[str], objective: str = "run") -> str:
    """Deterministic sweep id: same scenario content + grid + policies + objective -> same id."""
    payload = json.dumps(
        {"scenario": sc.content_hash(), "grid": grid, "policies": policies, "objective": objective},
        sort_keys=True,
        default=str,
    )
    return "sw-" + hashlib.sha256(payload.encode()).hexdigest()[:16]


def check_policies(policies: list[str] | None, sc: Scenario) -> list[str]:
    """Validate policy names (default: the scenario's own policy)."""
    pols = list(dict.fromkeys(policies or [sc.policy.name]))
    bad = [p for p in pols if p not in POLICY_NAMES]
    if bad:
        raise PlanningError(f"--policies: unknown {', '.join(bad)}; choose from {', '.join(POLICY_NAMES)}")
    return pols


def run_sweep(
    sc: Scenario,
    grid: dict[str, list[Any]],
    policies: list[str] | None = None,
    *,
    executor: Executor | None = None,
    store: SweepStore | None = None,
    name: str | None = None,
    objective: Objective = "run",
    criterion: SloCriterion | None = None,
    tolerance: float = 0.05,
    progress: Callable[[SweepProgress], None] | None = None,
    retries: int = DEFAULT_RETRIES,
    early_stop: bool = True,
    from_bound: bool = True,
) -> SweepResult:
    """Run every grid point x policy (skipping ones finished in ``store``); ``objective='capacity'`` searches capacity per point.

    ``early_stop`` and ``from_bound`` are the capacity search's (``capacity_search``; on by default,
    as in ``dualpath-twin capacity``): a run stops once its SLO failure is certain, a search starts
    at half the analytic ceiling.

    ``retries``: how often a point lost with its worker (Dask ``KilledWorker``, a broken local
    pool, which is renewed) is resubmitted before it is marked failed; finished points are
    stored as they arrive and never run again.
    """
    t0 = time.perf_counter()
    pols = check_policies(policies, sc)
    sid = sweep_id_for(sc, grid, pols, objective)
    res = SweepResult(sweep_id=sid, name=name or sc.name, grid=grid, policies=pols, objective=objective)
    if store is not None:
        sid = res.sweep_id = store.create_sweep(sid, res.name, sc.to_toml(), grid, pols)
    tasks: list[tuple[SweepPointResult, Task]] = []
    for point in expand_grid(grid):
        for pol in pols:
            key = point_key(point, pol)
            pr = SweepPointResult(point=point, policy=pol, key=key, status="pending")
            res.points.append(pr)
            try:
                sc_pt = override(sc, {**point, "policy.name": pol})
            except ScenarioError as err:
                pr.status, pr.reason = "skipped", "; ".join(err.problems)
                continue
            if store is not None and objective == "run":
                found = store.find_finished_point(sid, {**point, "policy": pol})
                if found is not None:
                    pr.status, pr.summary = "cached", found
                    continue
            tasks.append(
                (
                    pr,
                    Task(
                        kind=objective,
                        scenario_toml=sc_pt.to_toml(),
                        policy=pol,
                        key=key,
                        criterion=criterion,
                        tolerance=tolerance,
                        early_stop=early_stop,
                        from_bound=from_bound,
                    ),
                )
            )
    total = len(res.points)
    counts = {"done": total - len(tasks), "cached": sum(p.status == "cached" for p in res.points), "failed": 0}
    if progress:
        progress(SweepProgress(counts["done"], total, counts["cached"], counts["failed"]))
    # each point is stored as soon as it finishes (a crash keeps them); submit_all runs an inline
    # executor lazily, yields every task exactly once and resubmits the work of a lost worker
    by_task = {id(t): pr for pr, t in tasks}
    for t, out, err in submit_all(executor, run_task, [t for _, t in tasks], retries=retries):
        pr = by_task[id(t)]
        if err is not None:
            pr.status, pr.reason = "failed", f"worker lost after {retries} retries: {type(err).__name__}: {err}"
        else:
            _absorb(pr, out)
        if pr.status == "failed":
            counts["failed"] += 1
        elif store is not None and pr.summary is not None:
            pr.run_id = store.save_run(_as_run_result(out), sweep_id=sid, point={**pr.point, "policy": pr.policy})
        counts["done"] += 1
        if progress:
            progress(SweepProgress(counts["done"], total, counts["cached"], counts["failed"], pr))
    res.wall_s = time.perf_counter() - t0
    return res


def _absorb(pr: SweepPointResult, out: Outcome) -> None:
    if out.error:
        pr.status, pr.reason = "failed", out.error
        return
    pr.status = "done"
    pr.summary = out.summary
    pr.capacity = out.capacity


# the rounds columns of the results.py contract: sweeps store no per-round rows (workers return summaries)
_ROUNDS_STR = {"read_side"}
_ROUNDS_INT = {"agent_id", "round_idx", "prompt_tokens", "hit_tokens", "gen_tokens", "pe", "de", "pe_node", "de_node"}
_ROUNDS_COLS = (
    "agent_id round_idx prompt_tokens hit_tokens gen_tokens arrival_s sched_s read_start_s read_end_s read_side"
    " prefill_start_s prefill_end_s first_token_s second_token_s decode_admit_s done_s pe de pe_node de_node"
    " bytes_read_pe_snic bytes_read_de_snic bytes_pe_h2d bytes_de_to_pe bytes_pe_to_de bytes_written ttft_s ttst_s tpot_s"
).split()


def empty_rounds() -> pl.DataFrame:
    """A zero-row rounds frame with the contract's columns (what a sweep point stores instead of every round)."""
    return pl.DataFrame(
        schema={c: pl.Utf8 if c in _ROUNDS_STR else pl.Int64 if c in _ROUNDS_INT else pl.Float64 for c in _ROUNDS_COLS}
    )


def _empty_timeseries() -> pl.DataFrame:
    return pl.DataFrame(schema={"t_s": pl.Float64, "metric": pl.Utf8, "entity": pl.Utf8, "role": pl.Utf8, "value": pl.Float64})


def _as_run_result(out: Outcome) -> RunResult:
    assert out.summary is not None
    return RunResult(
        summary=out.summary,
        rounds=empty_rounds(),
        timeseries=out.timeseries if out.timeseries is not None else _empty_timeseries(),
        scenario_toml=out.scenario_toml,
        invariants=out.invariants,
    )
