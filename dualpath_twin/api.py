"""The library's one face: simulate(), compare(), bounds(), derived(). UI, CLI and planning use only this."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dualpath_twin.results import Bound, Progress, RunResult
from dualpath_twin.scenario import Scenario, apply_overrides, from_toml


@dataclass
class CompareResult:
    """Several policies run on the same scenario and seed."""

    runs: list[RunResult]
    ratios: dict[str, float] = field(default_factory=dict)  # e.g. dualpath_vs_basic (throughput ratio)


def load_workload(scenario: Scenario, base_dir: Path | None = None):
    """Build the scenario's workload (synthetic or trace) as a columnar Workload."""
    from dualpath_twin.workload import build_workload

    return build_workload(scenario, base_dir)


def _events_so_far(env) -> int:
    """SimPy's event-id counter: the number of events scheduled so far."""
    try:
        return int(next(env._eid))
    except Exception:  # pragma: no cover - SimPy internals changed
        return 0


def simulate(
    scenario: Scenario,
    policy: str | None = None,
    *,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    progress_interval_s: float = 0.5,
    check_invariants: bool = False,
    workload=None,
) -> RunResult:
    """Run one simulation of ``scenario`` (policy overrides ``scenario.policy.name``)."""
    from dualpath_twin.analysis.bounds import compute_bound
    from dualpath_twin.policies import get_policy
    from dualpath_twin.sim.cost import build_cost_model
    from dualpath_twin.sim.invariants import check_run
    from dualpath_twin.sim.metrics import rounds_frame, summarize
    from dualpath_twin.sim.recorder import Sampler
    from dualpath_twin.sim.world import World, run_world

    t0 = time.perf_counter()
    sc = scenario if policy is None or policy == scenario.policy.name else apply_overrides(scenario, {"policy.name": policy})
    pol = get_policy(sc.policy.name)
    wl = workload if workload is not None else load_workload(sc)
    problems = wl.validate(sc.storage.block_tokens)
    if problems:
        raise ValueError("workload is inconsistent: " + "; ".join(problems))
    cost = build_cost_model(sc)
    world = World(sc, wl, pol, cost)
    per_cnic = (sc.cluster.prefill_nodes + sc.cluster.decode_nodes) <= 16
    sampler = Sampler(sc.run.sample_interval_s, progress, progress_interval_s, per_cnic=per_cnic)
    run_world(world, sc.run.max_sim_time_s, sampler, sc.run.wall_budget_s, cancel)
    events = _events_so_far(world.env)
    ts = sampler.frame()
    rounds = rounds_frame(world)
    bound = compute_bound(sc, wl, sc.policy.name, cost)
    wall = time.perf_counter() - t0
    summary = summarize(sc, world, rounds, ts, bound, wall, events)
    inv = check_run(world, rounds, ts) if check_invariants else []
    return RunResult(summary=summary, rounds=rounds, timeseries=ts, scenario_toml=sc.to_toml(), invariants=inv)


def _simulate_toml(args: tuple[str, str, bool]) -> RunResult:
    toml_text, policy, inv = args
    return simulate(from_toml(toml_text), policy, check_invariants=inv)


def _ratios(runs: list[RunResult]) -> dict[str, float]:
    by = {r.summary.policy: r.summary for r in runs}
    out: dict[str, float] = {}
    for a in by:
        for b in by:
            if a == b:
                continue
            sa, sb = by[a], by[b]
            if sb.prompt_tokens_per_s > 0:
                out[f"{a}_vs_{b}"] = sa.prompt_tokens_per_s / sb.prompt_tokens_per_s
            if sa.jct_s and sb.jct_s:
                out[f"{a}_vs_{b}_jct"] = sa.jct_s / sb.jct_s
    return out


def compare(
    scenario: Scenario,
    policies: list[str],
    *,
    workers: int | None = None,
    progress: Callable[[str, Progress], None] | None = None,
    cancel: threading.Event | None = None,
    check_invariants: bool = False,
) -> CompareResult:
    """Run several policies on the same scenario and seed; ratios are throughput ratios (a_vs_b)."""
    workers = workers if workers is not None else min(len(policies), os.cpu_count() or 1)
    if workers > 1 and len(policies) > 1 and progress is None and cancel is None:
        toml_text = scenario.to_toml()
        with ProcessPoolExecutor(max_workers=workers) as ex:
            runs = list(ex.map(_simulate_toml, [(toml_text, p, check_invariants) for p in policies]))
    else:
        wl = load_workload(scenario)
        runs = []
        for p in policies:
            cb = (lambda pr, p=p: progress(p, pr)) if progress else None
            runs.append(simulate(scenario, p, progress=cb, cancel=cancel, check_invariants=check_invariants, workload=wl))
            if cancel is not None and cancel.is_set():
                break
    return CompareResult(runs=runs, ratios=_ratios(runs))


def bounds(scenario: Scenario, policy: str | None = None) -> Bound:
    """Closed-form per-resource bounds of the scenario under one policy."""
    from dualpath_twin.analysis.bounds import compute_bound

    return compute_bound(scenario, load_workload(scenario), policy or scenario.policy.name)


def derived(scenario: Scenario) -> dict:
    """Derived values for display: KV bytes/token, bytes per round, the P/D range, bounds per policy."""
    from dualpath_twin.analysis.bounds import compute_bound, pd_range
    from dualpath_twin.policies import policy_names
    from dualpath_twin.sim.cost import build_cost_model

    cost = build_cost_model(scenario)
    wl = load_workload(scenario)
    import numpy as np

    hit = float(np.mean(wl.hit_tokens)) if wl.n_rounds else 0.0
    rng = pd_range(scenario)
    return {
        "kv_bytes_per_token": cost.kv_bytes_per_token,
        "mean_hit_tokens": hit,
        "bytes_to_load_per_round": hit * cost.kv_bytes_per_token,
        "rounds": wl.n_rounds,
        "pd_range": rng,
        "bounds": {p: compute_bound(scenario, wl, p, cost) for p in policy_names()},
    }
