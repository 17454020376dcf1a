"""The library's one face: simulate(), compare(), bounds(), derived(). UI, CLI and planning use only this."""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_mod
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

    return build_workload(scenario, base_dir, skip_bad_lines=scenario.workload.skip_bad_lines)


def check_fits(scenario: Scenario, wl, cost, zero_io: bool = False, dram_prompt: bool = True) -> None:
    """Raise ScenarioError before a run when a request's KV can never fit in decode HBM or a node's DRAM buffer.

    A decode engine reserves (prompt + generated) x KV bytes per token of HBM for a request;
    a storage read reserves the hit KV (PE side) or the whole prompt's KV (DE side, layer-wise
    PD landing) in one node's DRAM buffer. A request larger than either pool would wait forever.
    """
    import numpy as np

    if wl.n_rounds == 0:
        return
    kv = float(cost.kv_bytes_per_token)
    ctx = wl.prompt_tokens + wl.gen_tokens
    i = int(np.argmax(ctx))
    need_hbm = float(ctx[i]) * kv
    problems: list[str] = []
    src = f"workload.max_context_tokens={scenario.workload.max_context_tokens}" if scenario.workload.max_context_tokens else "the workload"
    if need_hbm > cost.hbm_kv_decode_bytes + 1e-6:
        tp = scenario.cluster.decode_tp_gpus
        where = "one decode GPU's HBM" if tp == 1 else f"one decode engine's HBM ({tp} GPUs, cluster.decode_tp_gpus={tp})"
        g = scenario.cluster.gpus_per_node
        more_tp = next((t for t in range(tp + 1, g + 1) if g % t == 0), None) if not cost.model.is_moe else None
        tp_fix = f", split a decode engine over more GPUs (cluster.decode_tp_gpus={more_tp})" if more_tp else ""
        problems.append(
            f"cluster.hbm_reserved_gb / model / workload.max_context_tokens: the largest request ({int(ctx[i]):,} tokens of"
            f" context from {src}) needs {need_hbm / 1e9:.2f} GB of KV in {where}, but only"
            f" {cost.hbm_kv_decode_bytes / 1e9:.2f} GB is left after weights and cluster.hbm_reserved_gb="
            f"{scenario.cluster.hbm_reserved_gb:g}; it could never be admitted. Lower workload.max_context_tokens,"
            f" hbm_reserved_gb{tp_fix}, use a GPU with more HBM or more decode nodes per EP group (cluster.decode_ep_nodes)"
        )
    if not zero_io:
        sizes = wl.prompt_tokens if dram_prompt else wl.hit_tokens
        j = int(np.argmax(sizes))
        need_dram = float(sizes[j]) * kv
        cap = scenario.cluster.dram_buffer_gb * 1e9
        if need_dram > cap + 1e-6:
            problems.append(
                f"cluster.dram_buffer_gb / workload.max_context_tokens: the largest request ({int(sizes[j]):,} tokens of KV"
                f" from {src}) needs {need_dram / 1e9:.2f} GB of a node's DRAM KV buffer, but cluster.dram_buffer_gb="
                f"{scenario.cluster.dram_buffer_gb:g}; it could never be loaded. Raise cluster.dram_buffer_gb or lower"
                " workload.max_context_tokens"
            )
    if problems:
        from dualpath_twin.scenario import ScenarioError

        raise ScenarioError(problems, f"{scenario.name!r} (checked before the run)")


def _events_so_far(env) -> int:
    """SimPy's event-id counter: the number of events scheduled so far."""
    try:
        return int(next(env._eid))
    except Exception:  # pragma: no cover - SimPy internals changed
        return 0


class _StopCheck:
    """Stands in for the cancel event: set when the user cancels or ``stop_when(world)`` gives a reason."""

    def __init__(self, world, cancel: threading.Event | None, stop_when: Callable[[object], str | None]) -> None:
        self.world, self.cancel, self.stop_when = world, cancel, stop_when
        self.reason: str | None = None

    def is_set(self) -> bool:
        """True once cancelled or once the verdict is certain (the reason is kept)."""
        if self.cancel is not None and self.cancel.is_set():
            return True
        if self.reason is None:
            self.reason = self.stop_when(self.world)
        return self.reason is not None


def simulate(
    scenario: Scenario,
    policy: str | None = None,
    *,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    progress_interval_s: float = 0.5,
    check_invariants: bool = False,
    workload=None,
    stop_when: Callable[[object], str | None] | None = None,
) -> RunResult:
    """Run one simulation of ``scenario`` (policy overrides ``scenario.policy.name``).

    ``stop_when(world)`` (opt-in, used by the capacity search's early stop) is polled with the
    cancel checks; when it returns a reason the run stops there with status "truncated" and
    ``status_reason`` "stopped early: <reason>". Without it the run is unchanged.
    """
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
    check_fits(sc, wl, cost, zero_io=pol.zero_io, dram_prompt=pol.layerwise or pol.de_side_reads)
    world = World(sc, wl, pol, cost)
    per_cnic = (sc.cluster.prefill_nodes + sc.cluster.decode_nodes) <= 16
    sampler = Sampler(sc.run.sample_interval_s, progress, progress_interval_s, per_cnic=per_cnic)
    stopper = _StopCheck(world, cancel, stop_when) if stop_when is not None else None
    run_world(world, sc.run.max_sim_time_s, sampler, sc.run.wall_budget_s, stopper or cancel)
    if stopper is not None and stopper.reason:
        world.status, world.stop_reason = "truncated", f"stopped early: {stopper.reason}"
    events = _events_so_far(world.env)
    if getattr(world.net, "driven", False):
        events += world.net.wakeups  # network completions run by the loop itself, not as SimPy events
    ts = sampler.frame()
    rounds = rounds_frame(world)
    bound = compute_bound(sc, wl, sc.policy.name, cost)
    wall = time.perf_counter() - t0
    summary = summarize(sc, world, rounds, ts, bound, wall, events)
    inv = check_run(world, rounds, ts) if check_invariants else []
    return RunResult(summary=summary, rounds=rounds, timeseries=ts, scenario_toml=sc.to_toml(), invariants=inv)


def _simulate_toml(args: tuple) -> RunResult:
    """Worker-process entry: rebuild the scenario from TOML, relay progress and honour cancel."""
    toml_text, policy, inv, queue, cancel = args
    cb = None
    if queue is not None:

        def cb(pr: Progress) -> None:
            queue.put((policy, pr.sim_time_s, pr.rounds_done, pr.rounds_total, pr.wall_s))

    return simulate(from_toml(toml_text), policy, check_invariants=inv, progress=cb, cancel=cancel)


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
    if workers > 1 and len(policies) > 1:
        runs = _compare_in_processes(scenario, policies, workers, progress, cancel, check_invariants)
    else:
        wl = load_workload(scenario)
        runs = []
        for p in policies:
            cb = (lambda pr, p=p: progress(p, pr)) if progress else None
            runs.append(simulate(scenario, p, progress=cb, cancel=cancel, check_invariants=check_invariants, workload=wl))
            if cancel is not None and cancel.is_set():
                break
    return CompareResult(runs=runs, ratios=_ratios(runs))


def _compare_in_processes(
    scenario: Scenario,
    policies: list[str],
    workers: int,
    progress: Callable[[str, Progress], None] | None,
    cancel: threading.Event | None,
    check_invariants: bool,
) -> list[RunResult]:
    """One process per policy (up to ``workers``); progress (without time series) and cancel cross processes."""
    toml_text = scenario.to_toml()
    # forkserver, not fork: forking a parent that runs threads (progress, Ctrl-C handling,
    # the manager's feeder) can copy a held lock into the child and hang it
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Manager() as mgr, ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
        queue = mgr.Queue() if progress is not None else None
        remote_cancel = mgr.Event() if cancel is not None else None
        futs = [ex.submit(_simulate_toml, (toml_text, p, check_invariants, queue, remote_cancel)) for p in policies]
        while not all(f.done() for f in futs):
            if cancel is not None and cancel.is_set() and not remote_cancel.is_set():
                remote_cancel.set()
            if queue is None:
                time.sleep(0.1)
                continue
            try:
                pol, t, done, total, wall = queue.get(timeout=0.2)
            except queue_mod.Empty:
                continue
            progress(pol, Progress(t, done, total, wall, None))
        return [f.result() for f in futs]


BOUNDS_MAX_ROUNDS = 200_000
"""Above this many expected rounds, bounds() works on a sample of the agents (see bounds())."""


def bounds(scenario: Scenario, policy: str | None = None, *, max_rounds: int | None = BOUNDS_MAX_ROUNDS) -> Bound:
    """Closed-form per-resource bounds of the scenario under one policy, in bounded time and memory.

    When the scenario is synthetic and expects more than ``max_rounds`` rounds
    (``workload.expected.expected_rounds``: agents x the dataset's mean rounds, no workload built), the
    bound is computed on a sample of agents holding ~``max_rounds`` rounds: the per-resource
    rates depend on the rounds' means only, and ``min_jct_s`` scales its work term
    (rounds / max rate) to the full expected rounds. ``max_rounds=None`` always builds the
    whole workload. This is what keeps the dashboard's builder from generating 10,000,000
    agents' trajectories while the user types. A bounded ``[cache]`` is scaled with the sample
    (its share of hits depends on how many agents compete for it).
    """
    from dualpath_twin.analysis.bounds import compute_bound
    from dualpath_twin.workload.expected import expected_rounds
    from dualpath_twin.workload.synthetic import AGENTS_PER_BLOCK

    pol = policy or scenario.policy.name
    w = scenario.workload
    if max_rounds is None or w.kind != "synthetic":
        return compute_bound(scenario, load_workload(scenario), pol)
    total, _ = expected_rounds(scenario)
    if total <= max_rounds:
        return compute_bound(scenario, load_workload(scenario), pol)
    # at least one whole block of agents: a block is stratified as a whole, a part of one is not
    sample_agents = min(w.agents, max(AGENTS_PER_BLOCK, int(w.agents * max_rounds / total)))
    if sample_agents >= w.agents:
        return compute_bound(scenario, load_workload(scenario), pol)
    sets: dict[str, object] = {"workload.agents": sample_agents}
    cache = scenario.cache
    if cache is not None and cache.capacity_gb is not None:
        # fewer agents put proportionally fewer blocks between two rounds of one agent (lockstep):
        # a cache scaled the same way keeps about the same share of hits
        sets["cache.capacity_gb"] = cache.capacity_gb * sample_agents / w.agents
    sample = apply_overrides(scenario, sets)
    b = compute_bound(sample, load_workload(sample), pol)
    if b.min_jct_s is not None and b.max_rounds_per_s > 0:
        b.min_jct_s = max(b.min_jct_s, total / b.max_rounds_per_s)
    scaled = "; cache capacity scaled with it, so its share of hits is an estimate" if "cache.capacity_gb" in sets else ""
    b.explanation += f" (from a sample of {sample_agents:,} of {w.agents:,} agents{scaled}; min JCT scaled to ~{total:,} rounds)"
    return b


def fit_problems(scenario: Scenario, policy: str | None = None, *, max_rounds: int | None = BOUNDS_MAX_ROUNDS) -> list[str]:
    """The refusals ``simulate`` would raise before running (a request's KV larger than a decode engine's HBM or the DRAM buffer), without running.

    Above ``max_rounds`` expected rounds (synthetic workloads) the check looks at a sample of the
    agents, as ``bounds`` does, so it may miss a rarer, larger request of the full workload.
    """
    from dualpath_twin.policies import get_policy
    from dualpath_twin.scenario import ScenarioError
    from dualpath_twin.sim.cost import build_cost_model
    from dualpath_twin.workload.expected import expected_rounds

    sc = scenario if policy is None or policy == scenario.policy.name else apply_overrides(scenario, {"policy.name": policy})
    pol = get_policy(sc.policy.name)
    sample = sc
    if max_rounds is not None and sc.workload.kind == "synthetic":
        total, _ = expected_rounds(sc)
        if total > max_rounds:
            sample = apply_overrides(sc, {"workload.agents": max(1, int(sc.workload.agents * max_rounds / total))})
    try:
        check_fits(sc, load_workload(sample), build_cost_model(sc), zero_io=pol.zero_io, dram_prompt=pol.layerwise or pol.de_side_reads)
    except ScenarioError as err:
        return list(err.problems)
    return []


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
