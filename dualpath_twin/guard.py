"""Guard rails before a run: a run's memory and wall time estimated from the scenario alone, and the limits.

Nothing here generates or reads the workload: the number of rounds comes from the dataset's
expected rounds per trajectory (``workload/datasets.toml`` targets, the DualPath paper's
published averages) times ``workload.agents``, or from a trace file's size. That keeps
:func:`estimate_run` in the microsecond-to-millisecond range, so the dashboard can call it on
every widget change, and keeps a 10,000,000-agent value from ever being materialised.

The coefficients (:data:`COEFFICIENTS`) were measured on the development machine (2 cores,
24 GB, Python 3.11; see docs/robustness.md "Run size guard"): the peak resident memory of a
simulating process grows ~600 bytes per round plus ~60 bytes per time-series row, and its wall
time ~0.2 ms per round.

Limits (:class:`Limits`) are settings: ``DUALPATH_TWIN_MAX_MEMORY_GB`` / ``DUALPATH_TWIN_MAX_WALL_S``
environment variables, a ``[limits]`` table (``max_memory_gb``, ``max_wall_s``) in the TOML file
named by ``DUALPATH_TWIN_SETTINGS``, or the CLI's ``--max-memory-gb`` / ``--max-wall-s``. The
default memory limit is 70% of the memory available when the limits are read (psutil).
"""

from __future__ import annotations

import math
import os
import threading
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from dualpath_twin.scenario import Scenario
from dualpath_twin.workload.expected import _dataset_rounds_per_trajectory, expected_rounds
from dualpath_twin.workload.synthetic import AGENTS_PER_BLOCK

GB = 1e9
ENV_MAX_MEMORY_GB = "DUALPATH_TWIN_MAX_MEMORY_GB"
ENV_MAX_WALL_S = "DUALPATH_TWIN_MAX_WALL_S"
ENV_SETTINGS = "DUALPATH_TWIN_SETTINGS"
DEFAULT_MEMORY_FRACTION = 0.7  # of psutil's available memory
DEFAULT_MAX_WALL_S = 1800.0
DASHBOARD_FORCE_HINT = "tick 'Run anyway' on the dashboard's Scenario page"  # how the dashboard overrides a refusal


@dataclass(frozen=True)
class Coefficients:
    """Measured cost of a run on the development machine (docs/robustness.md, "Run size guard")."""

    base_bytes: float = 250e6  # one simulating process after imports (Python, NumPy, Polars, SimPy, Numba kernels)
    bytes_per_round: float = 600.0  # workload arrays + per-request state + the per-round result frame
    result_bytes_per_round: float = 230.0  # the per-round result frame alone (kept by the parent per policy)
    bytes_per_sample_row: float = 60.0  # one long-form time-series row (41 B in Polars + build buffers)
    bytes_per_agent: float = 200.0  # per-trajectory arrays and the agent's SimPy process
    wall_s_base: float = 1.0  # start-up, cost model, bounds, summary
    wall_s_per_round: float = 2.2e-4  # simulated round (network flows, prefill and decode steps)
    rounds_per_s_sim: float = 100.0  # fallback simulated rounds per simulated second (time-series length)
    # a capacity run's agents live this share of their lifetime at the SLO limits (planning.capacity.slo_lifetime_s):
    # fitted to the rounds the window-stopped runs simulated (online-serving 64K: 0.55-0.75; quick: see BENCHMARKS.md)
    lifetime_share_at_search: float = 0.65


COEFFICIENTS = Coefficients()


@dataclass
class RunEstimate:
    """What a run of a scenario is expected to cost, before any work is done."""

    rounds: int  # rounds (requests) over all trajectories
    rounds_source: str  # how ``rounds`` was obtained
    agents: int
    policies: int
    workers: int  # policies simulated at the same time (processes)
    sim_time_s: float  # expected simulated time (sets the time-series length)
    samples: int  # time-series ticks
    series: int  # time-series rows per tick
    memory_bytes: float  # peak resident memory of the whole run (every worker + the results the caller keeps)
    memory_bytes_per_policy: float  # one simulating process
    wall_s: float  # expected wall time of the whole run
    wall_s_per_policy: float
    drivers: dict[str, str] = field(default_factory=dict)  # scenario field -> what it contributes
    rounds_simulated: int | None = None  # rounds a run stopped before its end simulates (None: all ``rounds``)

    def text(self) -> str:
        """One line: '~154,306 rounds, ~1.2 GB, ~2 min wall (4 policies, 2 at a time)'."""
        return (
            f"~{self.rounds:,} rounds ({self.rounds_source}), ~{human_bytes(self.memory_bytes)} peak memory,"
            f" ~{human_seconds(self.wall_s)} wall ({self.policies} polic{'y' if self.policies == 1 else 'ies'},"
            f" {self.workers} at a time)"
        )


@dataclass(frozen=True)
class Limits:
    """Refuse a run above these (settings; see the module docstring)."""

    max_memory_bytes: float
    max_wall_s: float
    source: str = "defaults"

    def text(self) -> str:
        """'max 16.5 GB memory, 30 min wall (defaults)'."""
        return f"max {human_bytes(self.max_memory_bytes)} memory, {human_seconds(self.max_wall_s)} wall ({self.source})"


class RunTooLarge(ValueError):
    """A run's estimate exceeds the limits; ``problems`` name the scenario field and the fix."""

    def __init__(self, problems: list[str], estimate: RunEstimate, limits: Limits) -> None:
        self.problems = problems
        self.estimate = estimate
        self.limits = limits
        super().__init__("run refused before it started:\n" + "\n".join(f"  - {p}" for p in problems))


def human_bytes(v: float) -> str:
    """6.6e9 -> '6.6 GB'."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:,.3g} {unit}" if v / scale < 1000 else f"{v / scale:,.0f} {unit}"
    return f"{v:,.0f} B"


def human_seconds(s: float) -> str:
    """75 -> '1.2 min', 7200 -> '2 h'."""
    if not math.isfinite(s):
        return "unbounded"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.2g} min"
    if s < 2 * 86400:
        return f"{s / 3600:.3g} h"
    return f"{s / 86400:,.3g} days"


# rounds without building the workload: dualpath_twin.workload.expected (api uses them without this module)


def time_series_shape(sc: Scenario) -> int:
    """Time-series rows per sampling tick (measured: 7 + nodes x (9 + 2 per CNIC when nodes <= 16))."""
    nodes = sc.cluster.prefill_nodes + sc.cluster.decode_nodes
    per_node = 9 + (2 * sc.network.cnics_per_node if nodes <= 16 else 0)
    return 7 + nodes * per_node


# ---------------------------------------------------------------- the estimate


def estimate_run(
    sc: Scenario,
    policies: int | list[str] | tuple[str, ...] = 1,
    *,
    workers: int | None = None,
    base_dir: Path | None = None,
    coefficients: Coefficients = COEFFICIENTS,
    simulated_share: float = 1.0,
) -> RunEstimate:
    """Memory (bytes) and wall time (s) of simulating ``sc`` under ``policies`` (a count or names), no work done.

    ``workers`` is how many policies run at the same time (the CLI's ``compare`` default: one per
    core); each simulating process peaks at ``memory_bytes_per_policy`` and the caller keeps every
    policy's per-round frame. Cheap (no workload, no cost model): call it on every widget change.
    ``simulated_share`` < 1 is a run stopped before its end (a capacity run at its measurement
    window's end, :func:`window_stop_share`): the wall counts that share of the rounds and an online
    run has no drain tail; memory stays the full run's (the whole workload is built).
    """
    c = coefficients
    n_pol = policies if isinstance(policies, int) else max(1, len(policies))
    n_pol = max(1, n_pol)
    if workers is None:
        workers = 1
    workers = max(1, min(workers, n_pol))
    rounds, how = expected_rounds(sc, base_dir)
    w = sc.workload
    agents = w.agents if w.kind == "synthetic" else 0
    # simulated time: online runs last the arrival window plus a tail; offline ~ rounds over the
    # throughput a cluster of this size sustains (rounds/s grow with prefill nodes), capped by the run limit
    share = min(1.0, max(0.0, float(simulated_share)))
    if w.kind == "synthetic" and w.mode == "online":
        arriving = min(agents, sc.run.online_max_agents or agents)
        sim_t = arriving / w.arrival_rate_aps + (600.0 if share >= 1.0 else 0.0)  # stopped at the last arrival: no drain
    else:
        rps = c.rounds_per_s_sim * max(1, sc.cluster.prefill_nodes) / 2
        sim_t = rounds / rps + 60.0
    sim_t = min(sim_t, sc.run.max_sim_time_s)
    samples = int(sim_t / sc.run.sample_interval_s) + 1
    series = time_series_shape(sc)
    ts_rows = samples * series
    per_policy = c.base_bytes + rounds * c.bytes_per_round + agents * c.bytes_per_agent + ts_rows * c.bytes_per_sample_row
    kept = n_pol * (rounds * c.result_bytes_per_round + ts_rows * c.bytes_per_sample_row)
    memory = workers * per_policy + (kept if workers > 1 or n_pol > 1 else 0.0)
    simulated = int(math.ceil(rounds * share))
    wall_one = c.wall_s_base + simulated * c.wall_s_per_round  # not capped by run.wall_budget_s: that truncates the run
    wall = wall_one * math.ceil(n_pol / workers)
    drivers = {
        "workload.agents" if w.kind == "synthetic" else "workload.trace_path": f"{rounds:,} rounds ({how})",
        "run.sample_interval_s": f"{samples:,} samples x {series} series = {ts_rows:,} time-series rows",
        "cluster.prefill_nodes/decode_nodes": f"{sc.cluster.prefill_nodes + sc.cluster.decode_nodes} nodes",
    }
    return RunEstimate(
        rounds=rounds,
        rounds_source=how,
        agents=agents,
        policies=n_pol,
        workers=workers,
        sim_time_s=sim_t,
        samples=samples,
        series=series,
        memory_bytes=memory,
        memory_bytes_per_policy=per_policy,
        wall_s=wall,
        wall_s_per_policy=wall_one,
        drivers=drivers,
        rounds_simulated=simulated if share < 1.0 else None,
    )


# ---------------------------------------------------------------- limits


def available_memory_bytes() -> float:
    """Memory the OS can give this process now (psutil), or 8 GB when psutil is missing."""
    try:
        import psutil

        return float(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil is optional at run time
        return 8 * GB


def _settings_file_limits() -> dict[str, float]:
    path = os.environ.get(ENV_SETTINGS)
    if not path:
        return {}
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"{ENV_SETTINGS}={path}: cannot read the settings file ({err}); fix it or unset {ENV_SETTINGS}") from err
    lim = data.get("limits", {})
    out: dict[str, float] = {}
    for key in ("max_memory_gb", "max_wall_s"):
        if key in lim:
            try:
                out[key] = float(lim[key])
            except (TypeError, ValueError) as err:
                raise ValueError(f"{path}: [limits] {key} = {lim[key]!r} is not a number") from err
    return out


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        v = float(raw)
    except ValueError as err:
        raise ValueError(f"{name}={raw!r} is not a number; set it to e.g. 16 (or unset it)") from err
    if v <= 0:
        raise ValueError(f"{name}={raw!r} must be > 0")
    return v


def get_limits(max_memory_gb: float | None = None, max_wall_s: float | None = None) -> Limits:
    """The run limits: explicit arguments (CLI options) > environment > settings file > defaults."""
    file = _settings_file_limits()
    src: list[str] = []

    def pick(explicit: float | None, option: str, env: str, key: str) -> float | None:
        """One limit from the first source that sets it, naming that source in ``src``."""
        for value, where in ((explicit, option), (_env_float(env), env), (file.get(key), f"{ENV_SETTINGS} [limits]")):
            if value is not None:
                src.append(where)
                return value
        return None

    mem = pick(max_memory_gb, "--max-memory-gb", ENV_MAX_MEMORY_GB, "max_memory_gb")
    mem_bytes = mem * GB if mem is not None else DEFAULT_MEMORY_FRACTION * available_memory_bytes()
    wall = pick(max_wall_s, "--max-wall-s", ENV_MAX_WALL_S, "max_wall_s")
    if mem is None or wall is None:
        src.append(f"defaults: {DEFAULT_MEMORY_FRACTION:.0%} of available memory, {DEFAULT_MAX_WALL_S:g} s")
    return Limits(mem_bytes, float(wall if wall is not None else DEFAULT_MAX_WALL_S), ", ".join(src))


def suggested_agents(est: RunEstimate, limits: Limits, sc: Scenario) -> int | None:
    """The largest workload.agents (synthetic workloads) whose estimate fits both limits, with a 10% margin."""
    if sc.workload.kind != "synthetic" or est.rounds <= 0:
        return None
    c = COEFFICIENTS
    fixed = est.memory_bytes - est.workers * (est.rounds * c.bytes_per_round + est.agents * c.bytes_per_agent)
    fixed -= est.policies * est.rounds * c.result_bytes_per_round if (est.workers > 1 or est.policies > 1) else 0.0
    per_agent_mem = (est.memory_bytes - fixed) / max(est.agents, 1)
    per_agent_wall = (est.wall_s - c.wall_s_base * math.ceil(est.policies / est.workers)) / max(est.agents, 1)
    caps = []
    if per_agent_mem > 0:
        caps.append((limits.max_memory_bytes - fixed) / per_agent_mem)
    if per_agent_wall > 0:
        caps.append((limits.max_wall_s - c.wall_s_base * math.ceil(est.policies / est.workers)) / per_agent_wall)
    if not caps:
        return None
    return max(1, int(min(caps) * 0.9))


def check_estimate(est: RunEstimate, limits: Limits, sc: Scenario, force_hint: str = DASHBOARD_FORCE_HINT) -> list[str]:
    """Problems (each naming the scenario field, the numbers and the fix) when ``est`` exceeds ``limits``.

    ``force_hint`` says how this front end overrides a refusal (the dashboard's tick box, the CLI's --yes).
    """
    problems: list[str] = []
    w = sc.workload
    field_name = "workload.agents" if w.kind == "synthetic" else "workload.trace_path"
    value = f"{w.agents:,}" if w.kind == "synthetic" else str(w.trace_path)
    n = suggested_agents(est, limits, sc)
    fix_size = f"lower workload.agents to ~{n:,} (fits both limits)" if n is not None else "replay a shorter trace"
    if est.memory_bytes > limits.max_memory_bytes:
        fix = fix_size
        if est.samples * est.series * COEFFICIENTS.bytes_per_sample_row > 0.5 * est.memory_bytes_per_policy:
            fix += f", or raise run.sample_interval_s (now {sc.run.sample_interval_s:g} s)"
        if est.workers > 1:
            fix += ", or run fewer policies at a time (--workers 1)"
        problems.append(
            f"{field_name} = {value}: the run needs ~{human_bytes(est.memory_bytes)} of memory ({est.rounds:,} rounds),"
            f" above the limit of {human_bytes(limits.max_memory_bytes)} ({limits.source}). Fix: {fix};"
            f" or raise the limit ({ENV_MAX_MEMORY_GB} or the settings file), or {force_hint}"
        )
    if est.wall_s > limits.max_wall_s:
        fix = fix_size
        if w.kind == "synthetic" and w.max_context_tokens is None:
            fix += " or set workload.max_context_tokens (fewer rounds per trajectory)"
        budget = ""
        if est.wall_s_per_policy > sc.run.wall_budget_s:
            budget = f"; run.wall_budget_s = {sc.run.wall_budget_s:g} would truncate each policy's run"
        problems.append(
            f"{field_name} = {value}: the run is expected to take ~{human_seconds(est.wall_s)} of wall time"
            f" ({est.rounds:,} rounds x {est.policies} polic{'y' if est.policies == 1 else 'ies'}), above the limit of"
            f" {human_seconds(limits.max_wall_s)} ({limits.source}){budget}. Fix: {fix}; or raise the limit"
            f" ({ENV_MAX_WALL_S} or the settings file), or {force_hint}"
        )
    return problems


def guard_run(
    sc: Scenario,
    policies: int | list[str] | tuple[str, ...] = 1,
    *,
    workers: int | None = None,
    limits: Limits | None = None,
    force: bool = False,
    base_dir: Path | None = None,
    force_hint: str = DASHBOARD_FORCE_HINT,
) -> RunEstimate:
    """Estimate the run and raise :class:`RunTooLarge` above the limits (unless ``force``); returns the estimate."""
    est = estimate_run(sc, policies, workers=workers, base_dir=base_dir)
    lim = limits or get_limits()
    problems = check_estimate(est, lim, sc, force_hint)
    if problems and not force:
        raise RunTooLarge(problems, est, lim)
    return est


def guard_many(
    scenarios: list[Scenario],
    policies: int | list[str] | tuple[str, ...] = 1,
    *,
    workers: int = 1,
    limits: Limits | None = None,
    force: bool = False,
    force_hint: str = DASHBOARD_FORCE_HINT,
    runs_per_scenario: int = 1,
) -> RunEstimate | None:
    """Guard a batch (sweep points, capacity rates): each point against the memory limit, the total against the wall limit.

    Returns the largest point's estimate (None for an empty batch). ``workers`` points run at the same time;
    each scenario is run ``runs_per_scenario`` times (a capacity search runs one scenario at several rates).
    """
    if not scenarios:
        return None
    lim = limits or get_limits()
    ests = [estimate_run(s, policies) for s in scenarios]
    i = max(range(len(ests)), key=lambda k: ests[k].memory_bytes)
    big = ests[i]
    problems = []
    w = max(1, workers)
    if big.memory_bytes * min(w, len(ests)) > lim.max_memory_bytes:
        scaled = RunEstimate(**{**big.__dict__, "memory_bytes": big.memory_bytes * min(w, len(ests))})
        problems += [p for p in check_estimate(scaled, lim, scenarios[i], force_hint) if "memory" in p]
    total_wall = sum(e.wall_s for e in ests) * max(1, runs_per_scenario) / w
    if total_wall > lim.max_wall_s:
        problems.append(
            f"{len(ests) * max(1, runs_per_scenario):,} runs: expected ~{human_seconds(total_wall)} of wall time in total on {w} worker(s), above the limit of"
            f" {human_seconds(lim.max_wall_s)} ({lim.source}). Fix: fewer grid points or a smaller workload.agents; or raise"
            f" the limit ({ENV_MAX_WALL_S} or the settings file), or {force_hint}"
        )
    if problems and not force:
        raise RunTooLarge(problems, big, lim)
    return big


# ---------------------------------------------------------------- a capacity search: its runs, from its settings


@dataclass
class CapacityPlan:
    """The runs a bracket-and-bisect capacity search of one design is expected to make, and what that assumes."""

    rates: list[float]  # agents/s of each expected run, in the order the search would visit them
    bracket_runs: int  # runs doubling (or halving) from the start rate until one fails and one meets
    bisect_runs: int  # runs narrowing the bracket to the tolerance
    start_aps: float
    start_source: str  # where the start rate came from
    boundary_aps: float  # the rate assumed to be the SLO boundary (the analytic ceiling when known)
    boundary_source: str
    window_s: float  # arrival window: each rate runs rate x window agents
    tolerance: float
    max_evaluations: int
    capped: bool  # the search would stop at max_evaluations before reaching the tolerance
    rounds: list[int]  # expected rounds of each run
    rounds_per_agent: float
    rounds_source: str
    direction: str = "doubling"  # "halving" when the start rate is assumed to fail
    stop_share: float = 1.0  # share of each run's rounds simulated: runs stop at their measurement window's end
    lifetime_s: float | None = None  # an agent's mean lifetime at the SLO limits (planning.capacity.slo_lifetime_s)
    population: str = "window"  # which rounds the SLO counts (SloCriterion.population): "all" runs to the end
    confirm_runs: int = 0  # replicas of the bracket ends with other seeds (the search's confirmation step)
    unsimulated: int = 0  # rates above the analytic ceiling: they fail without a simulation (0 rounds)
    horizon_runs: int = 0  # the horizon check: the capacity rate re-measured with horizon_factor x the window
    horizon_factor: float = 1.0

    def run_window_s(self, i: int) -> float:
        """The arrival window of run ``i``: the search's, or horizon_factor x it for the horizon checks (the last runs)."""
        return self.window_s * (self.horizon_factor if i >= len(self.rates) - self.horizon_runs else 1.0)

    def run_stop_share(self, i: int) -> float:
        """Share of run ``i``'s rounds simulated (a horizon check's longer window stops at a larger share)."""
        if self.horizon_runs and i >= len(self.rates) - self.horizon_runs and self.population == "window":
            return window_stop_share(self.run_window_s(i), self.lifetime_s)
        return self.stop_share

    @property
    def simulated(self) -> list[int]:
        """Expected rounds each run simulates (``rounds`` x its stop share)."""
        return [int(math.ceil(n * self.run_stop_share(i))) for i, n in enumerate(self.rounds)]

    @property
    def runs(self) -> int:
        """Expected runs of the search."""
        return len(self.rates)

    def text(self) -> str:
        """What was assumed, in one sentence a planner can check against the form."""
        cap = f", capped by max_evaluations {self.max_evaluations}" if self.capped else f" (at most {self.max_evaluations})"
        run = [(r, n) for r, n in zip(self.rates, self.rounds, strict=False) if n > 0] or [(0.0, 0)]
        top, sim = max(r for r, _ in run), [n for _, n in run]
        return (
            f"~{self.runs} runs{cap}: {self.bracket_runs} {self.direction} from {self.start_aps:.3g} agents/s "
            f"({self.start_source}) to bracket the SLO boundary, assumed at {self.boundary_aps:.3g} agents/s "
            f"({self.boundary_source}), then {self.bisect_runs} bisecting to tolerance {self.tolerance:g}"
            + (f", then {self.confirm_runs} re-measuring the bracket ends with other seeds (more if a verdict flips)"
               if self.confirm_runs else "")
            + (f", then {self.horizon_runs} horizon check of the capacity with a {self.horizon_factor:g}x longer "
               f"window (more if it fails)" if self.horizon_runs else "") + "; "
            + (f"{self.unsimulated} of them above the analytic ceiling, refused without a simulation; "
               if self.unsimulated else "")
            + f"each run = rate x {self.window_s:g} s window x {self.rounds_per_agent:.3g} rounds per agent "
            f"= {min(sim):,}-{max(sim):,} rounds (up to {top:.3g} agents/s), {self.stop_text()}"
        )

    def stop_text(self) -> str:
        """How much of each run is simulated: to its measurement window's end (population "window") or to the end."""
        if self.population != "window" or self.stop_share >= 1.0:
            return "each simulated to the end of its drain (every round counts)"
        life = f"{self.lifetime_s:,.0f} s" if self.lifetime_s is not None else "unknown"
        return (f"each stopped at its measurement window's end, ~{self.stop_share:.0%} of its rounds simulated "
                f"(agents live ~{COEFFICIENTS.lifetime_share_at_search:g} x {life}, their mean lifetime at the SLO "
                f"limits, and issue their rounds evenly; rounds after the last arrival are not simulated)")


@dataclass
class CapacityEstimate:
    """A capacity search's expected cost over all its designs (guard_capacity)."""

    plans: dict[str, CapacityPlan]  # design -> its expected runs
    largest: RunEstimate  # the run at the highest rate (memory)
    runs: int  # over every design
    wall_s: float  # expected wall time of the whole search, runs in parallel as the search runs them
    memory_bytes: float  # peak memory: the largest run times the runs at the same time
    concurrent: int  # runs at the same time

    def text(self) -> str:
        """What was assumed (:func:`plans_text`)."""
        return plans_text(self.plans)

    def headline(self) -> str:
        """'~52 runs (4 runs at one rate, 48 in 4 capacity searches), ~1.2 GB peak memory, ~6 min wall'."""
        searched = sum(pl.runs for pl in self.plans.values())
        single = self.runs - searched
        parts = ([f"{single:,} run(s) at one rate"] if single else []) + (
            [f"{searched:,} in {len(self.plans)} capacity search(es)"] if self.plans else [])
        return (f"~{self.runs:,} runs ({', '.join(parts) or 'none'}), ~{human_bytes(self.memory_bytes)} peak memory,"
                f" ~{human_seconds(self.wall_s)} wall")


def plans_text(plans: dict[str, CapacityPlan]) -> str:
    """What capacity estimates assumed: each search's plan, or for many searches their range and the largest one's."""
    if len(plans) <= 3:
        return "; ".join(f"{p}: {pl.text()}" for p, pl in plans.items())
    runs = [pl.runs for pl in plans.values()]
    k, top = max(plans.items(), key=lambda kv: (sum(kv[1].rounds), kv[1].runs))
    return f"{len(runs)} searches of {min(runs)}-{max(runs)} runs each; the largest, {k}: {top.text()}"


CEILING_SAMPLE_AGENTS = AGENTS_PER_BLOCK  # agents of the workload sample the estimate's ceiling is computed on (one block)


@lru_cache(maxsize=1024)
def _ceiling_aps(toml: str, policy: str | None, window_s: float) -> tuple[float | None, str]:
    """The analytic ceiling (agents/s) of the scenario's TOML under ``policy``, or (None, why not)."""
    from dualpath_twin import api
    from dualpath_twin.scenario import from_toml

    try:
        sc = from_toml(toml, check_catalog=False)
        if sc.workload.kind == "synthetic" and sc.workload.agents != CEILING_SAMPLE_AGENTS:
            # the ceiling is a rate (rounds/s over the workload's mix): one fixed sample of agents gives it within
            # ~1%, whatever the window (agents = rate x window), so two windows plan the same rates
            sc = sc.model_copy(update={"workload": sc.workload.model_copy(update={"agents": CEILING_SAMPLE_AGENTS})})
        per, _ = _dataset_rounds_per_trajectory(sc.workload.dataset, float(sc.workload.append_scale),
                                                sc.workload.max_context_tokens)
        b = api.bounds(sc, policy)
        if not (b.max_rounds_per_s and math.isfinite(b.max_rounds_per_s) and per > 0):
            return None, "no finite analytic bound"
        from dualpath_twin.analysis.verdict import resource_label

        return b.max_rounds_per_s / per, f"the analytic ceiling, bound by {resource_label(b.binding_resource) or 'no resource'}"
    except Exception as err:  # noqa: BLE001 - an estimate: the search itself reports a broken scenario
        return None, f"analytic ceiling unavailable ({type(err).__name__})"


_LIFETIMES: dict[str, float | None] = {}


def _slo_lifetime_s(sc: Scenario) -> float | None:
    """An agent's mean lifetime at the SLO limits (``planning.capacity.slo_lifetime_s``), or None; cached.

    Keyed on what the lifetime depends on (the workload but its arrival rate, at most the 1,024 agents
    it samples; the SLO, the seed, the model, the KV block size), not on the cluster: the points of a
    sizing grid share one workload generation.
    """
    import json

    from dualpath_twin.planning.capacity import slo_lifetime_s

    w = sc.workload
    key = json.dumps([w.model_dump(mode="json", exclude={"agents", "arrival_rate_aps"}),
                      min(w.agents, CEILING_SAMPLE_AGENTS) if w.kind == "synthetic" else w.agents, sc.slo.model_dump(mode="json"),
                      sc.run.seed, sc.model.model_dump(mode="json"), sc.storage.block_tokens, sc.cache is not None],
                     sort_keys=True, default=str)
    if key not in _LIFETIMES:
        if len(_LIFETIMES) > 4096:
            _LIFETIMES.clear()
        try:
            _LIFETIMES[key] = slo_lifetime_s(sc)
        except Exception:  # noqa: BLE001 - an estimate: the search itself reports a broken scenario
            _LIFETIMES[key] = None
    return _LIFETIMES[key]


def window_stop_share(window_s: float, slo_lifetime_s: float | None, coefficients: Coefficients = COEFFICIENTS) -> float:
    """Share of a capacity run's rounds simulated when it stops at its measurement window's end (``WindowStop``).

    The measurement window ends at the last agent's arrival (``planning.capacity.measurement_span_s``),
    about ``window_s`` after the first, and the run stops once the window's rounds are done: rounds
    issued after the last arrival (the drain) are not simulated. Agents arriving evenly over the
    window and each issuing its rounds evenly over a life of ``L`` (``lifetime_share_at_search`` x
    the mean lifetime at the SLO limits) have issued ``1 - L / (2 window)`` of their rounds by then
    (``window / (2 L)`` when ``L`` is longer than the window). 1.0 when the lifetime is unknown.
    """
    if slo_lifetime_s is None or not slo_lifetime_s > 0 or not window_s > 0:
        return 1.0
    life = coefficients.lifetime_share_at_search * slo_lifetime_s
    return 1.0 - life / (2.0 * window_s) if life <= window_s else window_s / (2.0 * life)


def _online_estimate_scenario(sc: Scenario, aps: float, window_s: float) -> Scenario:
    """``planning.capacity.online_scenario`` for an estimate: the same three fields set, without re-validating.

    Cheap (a copy; validating costs ~1 ms a rate, seconds over a sizing grid's searches). A search
    doubling past workload.agents' upper bound would fail at that rate; its estimate still counts
    the run, so a window too long for the rates is refused by size rather than by a crash.
    """
    wl = sc.workload.model_copy(update={"mode": "online", "arrival_rate_aps": float(aps),
                                        "agents": max(2, math.ceil(aps * window_s))})
    return sc.model_copy(update={"workload": wl})


def plan_capacity_search(
    sc: Scenario,
    policy: str | None = None,
    *,
    tolerance: float = 0.05,
    start_aps: float | None = None,
    window_s: float | None = None,
    max_evaluations: int = 40,
    from_bound: bool = False,
    batch: int = 1,
    boundary_aps: float | None = None,
    population: str = "window",
    confirm: bool = True,
    horizon_factor: float = 2.0,
) -> CapacityPlan:
    """The runs a capacity search with these settings is expected to make (``planning.capacity.capacity_search``).

    The search doubles from its start rate until a run fails, then bisects until ``(hi - lo) / hi <=
    tolerance``, at most ``max_evaluations`` runs. Where the SLO fails is what the search finds out; the
    estimate assumes it fails at the analytic ceiling (``boundary_aps`` overrides), the highest rate it
    could hold, so the rates (and each run's rounds = rate x window x rounds per agent) are an upper
    estimate. ``start_aps``/``from_bound`` choose the start rate as the search does. With ``population``
    "window" (``SloCriterion``'s default) each run stops at its measurement window's end and simulates
    ``stop_share`` of its rounds (:func:`window_stop_share`); "all" runs to the end of the drain. No run
    is simulated; the ceiling and the lifetime cost a bounds computation and a workload of at most
    1,024 agents (cached per scenario). With ``horizon_factor`` > 1 the capacity rate is run once more
    with that many times the window (``SloCriterion.horizon_factor``).
    """
    from dualpath_twin.planning.capacity import (
        CapacityPoint,
        bracket_and_bisect,
        default_window_s,
        online_scenario,
    )

    w = sc.workload
    window = float(window_s) if window_s else default_window_s(sc)  # the window the search itself will use
    sc_at = online_scenario(sc, w.arrival_rate_aps, window)
    ceiling, c_src = _ceiling_aps(sc_at.to_toml(), policy, window)
    lifetime = _slo_lifetime_s(sc_at) if population == "window" else None
    stop_share = window_stop_share(window, lifetime) if population == "window" else 1.0
    if start_aps:
        start, s_src = float(start_aps), "the start rate given"
    elif from_bound and ceiling:
        start, s_src = 0.5 * ceiling, "half the analytic ceiling"
    else:
        start, s_src = w.arrival_rate_aps, "workload.arrival_rate_aps"
    if boundary_aps:
        boundary, b_src = float(boundary_aps), "given"
    elif ceiling:
        boundary, b_src = ceiling, c_src
    else:
        boundary, b_src = 4.0 * start, f"4x the start rate: {c_src}"
    visited: list[float] = []

    def evaluate(rates: list[float]) -> list[CapacityPoint]:
        visited.extend(rates)
        return [CapacityPoint(aps=r, meets=r < boundary * (1 - 1e-9)) for r in rates]

    _lo, _hi, _curve, converged, _notes = bracket_and_bisect(evaluate, start, tolerance, batch, None, None, max_evaluations)
    # bracketing ends with the first step holding both a meeting and a failing rate
    searched = list(visited)
    # the confirmation step (capacity_search(confirm=True)): one replica of each bracket end on a clean curve
    ok = [r for r in searched if r < boundary * (1 - 1e-9)]
    bad = [r for r in searched if r >= boundary * (1 - 1e-9)]
    replicas = ([max(ok)] if ok else []) + ([min(bad)] if bad else []) if confirm and converged else []
    replicas = replicas[: max(0, max_evaluations - len(searched))]
    visited.extend(replicas)
    horizon = [max(ok)] if horizon_factor > 1 and ok and converged and len(visited) < max_evaluations else []
    windows = [window] * len(visited) + [window * horizon_factor] * len(horizon)
    visited.extend(horizon)
    bracket = len(searched)
    for i in range(len(searched)):
        sides = {r < boundary * (1 - 1e-9) for r in searched[: i + 1]}
        if len(sides) == 2:
            bracket = min(len(searched), math.ceil((i + 1) / batch) * batch)
            break
    per, how = _dataset_rounds_per_trajectory(w.dataset, float(w.append_scale), w.max_context_tokens)
    rounds = [expected_rounds(_online_estimate_scenario(sc, r, win))[0] for r, win in zip(visited, windows, strict=True)] \
        if w.kind == "synthetic" else [expected_rounds(sc)[0]] * len(visited)
    # a rate above the analytic ceiling fails unsimulated (planning.capacity.above_ceiling): it costs no rounds
    free = [i for i, r in enumerate(visited) if ceiling and r > ceiling * (1 + 1e-9)]
    for i in free:
        rounds[i] = 0
    return CapacityPlan(
        rates=visited, bracket_runs=bracket, bisect_runs=len(searched) - bracket, start_aps=start, start_source=s_src,
        boundary_aps=boundary, boundary_source=b_src, window_s=window, tolerance=tolerance,
        max_evaluations=max_evaluations, capped=not converged and len(visited) >= max_evaluations,
        rounds=rounds or [0], rounds_per_agent=per, rounds_source=how,
        direction="doubling" if start < boundary * (1 - 1e-9) else "halving",
        stop_share=stop_share, lifetime_s=lifetime, population=population, confirm_runs=len(replicas),
        unsimulated=len(free), horizon_runs=len(horizon), horizon_factor=horizon_factor,
    )


def guard_capacity(
    sc: Scenario,
    policies: list[str],
    *,
    tolerance: float = 0.05,
    start_aps: float | None = None,
    window_s: float | None = None,
    max_evaluations: int = 40,
    from_bound: bool = False,
    workers: int = 1,
    limits: Limits | None = None,
    force: bool = False,
    force_hint: str = DASHBOARD_FORCE_HINT,
    population: str = "window",
    confirm: bool = True,
    horizon_factor: float = 2.0,
) -> CapacityEstimate:
    """Guard a capacity search per design: its largest run against memory, all its runs against wall time.

    Raises :class:`RunTooLarge` (unless ``force``) naming the runs, the rates and what was assumed
    (:meth:`CapacityPlan.text`); returns the estimate with each design's plan.
    """
    pols = list(policies) or [sc.policy.name]
    w = max(1, workers)
    # as capacity_search_many runs them: designs in parallel (one rate at a time each), else rates in parallel
    parallel_designs = len(pols) > 1 and w > 1
    searches = {p: sc.with_policy(p) for p in pols}
    plans = _plan_searches(searches, batch=1 if parallel_designs else w, tolerance=tolerance, start_aps=start_aps,
                           window_s=window_s, max_evaluations=max_evaluations, from_bound=from_bound,
                           population=population, confirm=confirm, horizon_factor=horizon_factor)
    return _check_searches(plans, searches, concurrent=min(w, len(pols)) if parallel_designs else w, workers=w,
                           limits=limits, force=force, force_hint=force_hint, what="design")


def guard_capacity_many(
    searches: dict[str, Scenario],
    *,
    tolerance: float = 0.05,
    window_s: float | None = None,
    max_evaluations: int = 40,
    from_bound: bool = True,
    workers: int = 1,
    limits: Limits | None = None,
    force: bool = False,
    force_hint: str = DASHBOARD_FORCE_HINT,
    start_aps: float | None = None,
    population: str = "window",
    fix: str | None = None,
    confirm: bool = True,
    window_fix: str | None = None,
    horizon_factor: float = 2.0,
) -> CapacityEstimate:
    """Guard one capacity search per scenario (a capacity sweep's points, sensitivity's moves; label -> scenario).

    The searches run ``workers`` at a time, each one rate at a time, as ``run_sweep`` and
    ``sensitivity`` run them. ``fix`` replaces the advice of a wall-time refusal (what to change in that form);
    ``window_fix`` adds how to shorten the arrival window to a memory refusal's.
    """
    w = max(1, workers)
    plans = _plan_searches(searches, batch=1, tolerance=tolerance, start_aps=start_aps, window_s=window_s,
                           max_evaluations=max_evaluations, from_bound=from_bound, population=population,
                           confirm=confirm, horizon_factor=horizon_factor)
    return _check_searches(plans, searches, concurrent=min(w, max(1, len(searches))), workers=w, limits=limits,
                           force=force, force_hint=force_hint, what="search", fix=fix, window_fix=window_fix)


WINDOW_FIX = ("a shorter arrival window: fewer workload.agents (each run's window is workload.agents /"
              " workload.arrival_rate_aps, at least the agent population's warm-up at the SLO limits plus two run.online_window_s)")
SIZING_FIX = ("fewer grid points, capacity measured for fewer configurations (none: only the target-rate runs),"
              " a looser capacity tolerance or " + WINDOW_FIX)
SENSITIVITY_FIX = ("fewer parameters to move (each is two capacity searches, down and up), a looser capacity"
                   " tolerance or " + WINDOW_FIX)


def guard_sizing(
    candidates: list[Scenario] | dict[str, Scenario],
    target_aps: float,
    *,
    measure: str = "meets",
    tolerance: float = 0.1,
    workers: int = 1,
    limits: Limits | None = None,
    force: bool = False,
    force_hint: str = DASHBOARD_FORCE_HINT,
    population: str = "window",
    max_evaluations: int = 40,
    confirm: bool = True,
    horizon_factor: float = 2.0,
) -> CapacityEstimate | None:
    """Guard a sizing job (``planning.sizing.size``): a run per candidate at the target rate, then capacity searches.

    ``candidates`` are the sizing points online at the target (``planning.sizing.sizing_points``'
    ``online`` scenarios; a dict labels them). Every candidate is counted as one run at the target
    (pruned and implied ones are not run: an upper count). ``measure`` (``size``'s
    ``measure_capacity``) "all" searches every candidate, "meets" those that can meet the target:
    ``size`` searches the ones that met it, which is known only after their runs, so the guard takes
    those whose plan's assumed boundary (the analytic ceiling, or 4x the target without one) is
    above the target; "none" none. Each search is planned as ``size`` runs it: from the target rate,
    to ``tolerance``, the window of its scenario (``default_window_s``), ``population`` of
    ``size``'s criterion, at most ``max_evaluations`` runs with the confirmation replicas; the
    searches run ``workers`` at a time, one rate at a time each. None when there is no candidate.
    """
    if measure not in ("none", "meets", "all"):
        raise ValueError(f"measure {measure!r}: use none, meets or all")
    labels = dict(candidates) if isinstance(candidates, dict) else {
        f"#{i + 1} {c.name}": c for i, c in enumerate(candidates)}
    if not labels:
        return None
    w = max(1, workers)
    plans = _plan_searches(labels, batch=1, tolerance=tolerance, start_aps=target_aps, window_s=None,
                           max_evaluations=max_evaluations, from_bound=False, population=population,
                           confirm=confirm, horizon_factor=horizon_factor) if measure != "none" else {}
    if measure == "meets":
        plans = {k: pl for k, pl in plans.items() if pl.boundary_aps > target_aps * (1 + 1e-9)}
    return _check_searches(plans, labels, concurrent=min(w, max(1, len(plans))), workers=w, limits=limits, force=force,
                           force_hint=force_hint, what="search", fix=SIZING_FIX, single_runs=list(labels.values()),
                           population=population, window_fix=WINDOW_FIX)


def _plan_searches(
    searches: dict[str, Scenario], *, batch: int, tolerance: float, start_aps: float | None, window_s: float | None,
    max_evaluations: int, from_bound: bool, population: str, confirm: bool = True, horizon_factor: float = 2.0,
) -> dict[str, CapacityPlan]:
    """Every search's plan (:func:`plan_capacity_search`)."""
    return {k: plan_capacity_search(s, s.policy.name, tolerance=tolerance, start_aps=start_aps, window_s=window_s,
                                    max_evaluations=max_evaluations, from_bound=from_bound, batch=batch,
                                    population=population, confirm=confirm, horizon_factor=horizon_factor)
            for k, s in searches.items()}


def _check_searches(
    plans: dict[str, CapacityPlan], searches: dict[str, Scenario], *, concurrent: int, workers: int,
    limits: Limits | None, force: bool, force_hint: str, what: str, fix: str | None = None,
    single_runs: list[Scenario] | tuple[Scenario, ...] = (), population: str = "window", window_fix: str | None = None,
) -> CapacityEstimate:
    """Check the largest run x the runs at once against memory and all runs against wall time.

    ``single_runs`` are judged runs at one rate each (sizing's target-rate runs, already online at
    their rate, window = agents / rate), run ``workers`` at a time before the searches. ``window_fix``
    says how to shorten the arrival window in that form (a memory refusal), when no window is set directly.
    """
    lim = limits or get_limits()
    total_wall = 0.0
    big: RunEstimate | None = None
    big_sc: Scenario | None = None
    big_window = 0.0
    big_conc = 1
    big_note = ""
    for k, plan in plans.items():
        for i, (r, n) in enumerate(zip(plan.rates, plan.rounds, strict=False)):
            if n == 0 and plan.unsimulated:  # above the analytic ceiling: refused without a simulation
                continue
            win = plan.run_window_s(i)
            s_r = _online_estimate_scenario(searches[k], r, win)
            est = estimate_run(s_r, simulated_share=plan.run_stop_share(i))
            total_wall += est.wall_s
            if big is None or est.memory_bytes * concurrent > big.memory_bytes * big_conc:
                # the window to shorten is the search's (a horizon check's is a multiple of it)
                big, big_sc, big_window, big_conc = est, s_r, plan.window_s, concurrent
                big_note = (f" in its horizon check, {plan.horizon_factor:g}x that window (a horizon factor of 1 skips it)"
                            if win > plan.window_s else "")
    total_wall /= max(1, concurrent)
    singles_wall = 0.0
    single_conc = min(workers, max(1, len(single_runs)))
    for s in single_runs:
        win = s.workload.agents / s.workload.arrival_rate_aps
        share = window_stop_share(win, _slo_lifetime_s(s)) if population == "window" else 1.0
        est = estimate_run(s, simulated_share=share)
        singles_wall += est.wall_s
        if big is None or est.memory_bytes * single_conc > big.memory_bytes * big_conc:
            big, big_sc, big_window, big_conc = est, s, win, single_conc
            big_note = ""
    total_wall += singles_wall / single_conc
    assert big is not None and big_sc is not None, "no capacity search to guard"
    n_runs = sum(pl.runs for pl in plans.values()) + len(single_runs)
    out = CapacityEstimate(plans, big, n_runs, total_wall, big.memory_bytes * big_conc, big_conc)
    problems: list[str] = []
    top_aps = big_sc.workload.arrival_rate_aps
    if big.memory_bytes * big_conc > lim.max_memory_bytes:
        # agents = rate x window: the window, not workload.agents, sets a search's run size;
        # all but the process base grows ~linearly with the window (agents, rounds, simulated time)
        base = big_conc * COEFFICIENTS.base_bytes
        share = (lim.max_memory_bytes - base) / max(big.memory_bytes * big_conc - base, 1.0)
        fit = (f"an arrival window of ~{0.9 * share * big_window:,.0f} s fits at that rate" if share > 0
               else "a shorter arrival window")
        if window_fix:
            fit += f" ({window_fix})"
        problems.append(
            f"capacity search at its highest rate, {top_aps:.3g} agents/s ({big_sc.workload.agents:,} agents over the"
            f" {big_window:g} s arrival window{big_note}, {big.rounds:,} rounds): ~{human_bytes(big.memory_bytes)} per run x"
            f" {big_conc} at a time, above the memory limit of {human_bytes(lim.max_memory_bytes)} ({lim.source})."
            f" Fix: {fit}, or fewer workers; or raise the limit ({ENV_MAX_MEMORY_GB} or the settings file), or {force_hint}"
        )
    if total_wall > lim.max_wall_s:
        singles = (f" and {len(single_runs):,} run(s) at the target rate (~{human_seconds(singles_wall / single_conc)})"
                   if single_runs else "")
        assumed = out.text() if plans else "no capacity search"
        advice = fix or ("a looser tolerance, a shorter arrival window (fewer agents per run), a start rate nearer"
                         " the capacity or fewer max evaluations")
        problems.append(
            f"capacity search: ~{n_runs:,} runs ({len(plans)} {what}(s){singles}) expected to take"
            f" ~{human_seconds(total_wall)} of wall time in total on {workers} worker(s), above the limit of"
            f" {human_seconds(lim.max_wall_s)} ({lim.source}). Assumed: {assumed}. Fix: {advice}; or raise the limit"
            f" ({ENV_MAX_WALL_S} or the settings file), or {force_hint}"
        )
    if problems and not force:
        raise RunTooLarge(problems, big, lim)
    return out


# ---------------------------------------------------------------- while running: memory watchdog


class MemoryWatchdog:
    """Poll this process's resident memory (psutil); past ``limit_bytes`` set :attr:`event`, past 1.25x call ``on_hard``.

    Used inside a worker process (a dashboard job's child, a compare worker): pass
    ``EitherEvent(cancel, dog.event)`` as the run's cancel, so a run over its budget stops (soft:
    the simulation returns at its next check) and the caller records it as failed with
    :attr:`exceeded` as the reason. Work that cannot be cancelled (building a huge workload) keeps
    growing; at ``hard_factor`` x the budget ``on_hard(reason)`` runs (the job child reports the
    failure and exits) so the machine never runs out of memory.
    """

    def __init__(self, limit_bytes: float, on_hard=None, interval_s: float = 0.2, hard_factor: float = 1.25) -> None:  # noqa: ANN001
        self.limit_bytes = float(limit_bytes)
        self.on_hard = on_hard
        self.interval_s = interval_s
        self.hard_factor = hard_factor
        self.exceeded = ""
        self.peak_bytes = 0.0
        self.event = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dualpath-memory-watchdog", daemon=True)

    def __enter__(self) -> MemoryWatchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def reason(self, rss: float) -> str:
        """The failure message for a run stopped at ``rss`` bytes."""
        return (
            f"stopped: the run's memory reached {human_bytes(rss)}, above its budget of {human_bytes(self.limit_bytes)}"
            f" (limit: {ENV_MAX_MEMORY_GB}, default {DEFAULT_MEMORY_FRACTION:.0%} of available memory);"
            " lower workload.agents or raise the limit"
        )

    def _loop(self) -> None:
        try:
            import psutil

            proc = psutil.Process()
        except Exception:  # noqa: BLE001 - no psutil: no watchdog
            return
        while not self._stop.wait(self.interval_s):
            rss = float(proc.memory_info().rss)
            self.peak_bytes = max(self.peak_bytes, rss)
            if rss > self.limit_bytes and not self.event.is_set():
                self.exceeded = self.reason(rss)
                self.event.set()
            if rss > self.hard_factor * self.limit_bytes and self.on_hard is not None:
                self.exceeded = self.reason(rss)
                self.on_hard(self.exceeded)
                return


class EitherEvent:
    """A cancel flag set when any of its events is (the user's cancel, the memory watchdog's)."""

    def __init__(self, *events: object) -> None:
        self.events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        """True once any event is set."""
        return any(e.is_set() for e in self.events)  # type: ignore[attr-defined]

    def set(self) -> None:
        """Set the first event (the user's cancel)."""
        if self.events:
            self.events[0].set()  # type: ignore[attr-defined]


def memory_budget_bytes(limits: Limits | None = None, share: int = 1) -> float:
    """The memory one worker process may use: the limit divided among ``share`` concurrent workers."""
    lim = limits or get_limits()
    return lim.max_memory_bytes / max(1, share)
