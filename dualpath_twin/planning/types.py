"""Planning's shared types: the SLO criterion, capacity points and results, and the picklable Task/Outcome.

Below both ``planning.capacity`` (the search) and ``planning.tasks`` (the worker entry point), so
neither imports the other's types; both modules re-export what they used to define.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Literal

import polars as pl
from pydantic import BaseModel, Field

from dualpath_twin.results import RunSummary
from dualpath_twin.scenario import Scenario


class SloCriterion(BaseModel):
    """When a run 'meets the SLO': percentile TTFT and TPOT under the limits, optionally attainment and steadiness."""

    percentile: Literal["p50", "p90", "p99"] = Field("p90", description="which TTFT/TPOT percentile must be under the limits")
    ttft_s: float | None = Field(None, gt=0, description="TTFT limit, seconds; unset = scenario slo.ttft_s")
    tpot_ms: float | None = Field(None, gt=0, description="TPOT limit, ms; unset = scenario slo.tpot_ms")
    min_attainment: float | None = Field(
        None, ge=0, le=1, description="if set, also require summary.slo_attainment >= this share of rounds"
    )
    require_steady: bool = Field(
        True,
        description="a run whose TTFT is still rising fails: the last run.online_window_s's mean TTFT is more than "
        "steady_rel (+ steady_abs_s) above the previous window's; a run whose windows hold too few rounds to tell "
        "fails too (only a summary without rounds falls back to summary.steady_state, see docs/planning.md)",
    )
    population: Literal["window", "all"] = Field(
        "window",
        description="which rounds the percentiles and attainment count: 'window' = rounds arriving in the last two "
        "run.online_window_s windows before the last agent's arrival (the loaded part of the run; the ramp-up before "
        "it and the drain after it offer a lighter load, and the run stops once these rounds are done), "
        "'all' = every round of the run, ramp-up and drain included",
    )
    max_population_growth: float | None = Field(
        0.05, ge=0,
        description="with require_steady, a run whose mean number of active agents grew by more than this share "
        "(and by more than twice the growth chance alone could show) from one run.online_window_s window to the "
        "next before the last arrival fails as not steady (agents outlive the arrival "
        "window, so the rate's steady state was not reached); None: the growth is only reported",
    )
    warmup_share: float = Field(
        0.98, gt=0, lt=1,
        description="the default arrival window of a capacity run lets the agent population reach this share of its "
        "steady-state size (at the SLO-limit timings) before the two measured windows; the mean lifetime alone "
        "reaches ~75% on agentic workloads, whose lifetimes spread widely (docs/planning.md, 'Arrival window')",
    )
    warmup_from: Literal["measured", "slo_limits"] = Field(
        "slo_limits",
        description="when a capacity run's measurement window ends: 'measured' (a quicker, optimistic look near "
        "the capacity: a shorter horizon misses slow collapses) = as soon as its agent population "
        "has reached measured_warmup_share of its steady size at the latencies the run measures (mean TTFT and decode time per "
        "token of the rounds done in the last run.online_window_s), at the latest at the last arrival; 'slo_limits' = "
        "at the last arrival of the arrival window, sized for the SLO-limit latencies (docs/planning.md, 'Arrival window')",
    )
    measured_warmup_share: float = Field(
        0.999, gt=0, le=1,
        description="with warmup_from='measured': the share of its steady size the population must have reached at "
        "the measured latencies before the two measured windows (1 = every agent's lifetime has passed); near "
        "capacity TTFT still rises while the last long-lived agents arrive, so this is stricter than warmup_share",
    )
    horizon_factor: float = Field(
        2.0, ge=1, le=4,
        description="a capacity search re-measures the rate it found with an arrival window this many times longer "
        "and, if that run fails, vetoes the rate and searches on below it: a slight overload grows the queue too "
        "slowly for the two measured windows to show it, and a longer run lets it build (docs/planning.md, 'Horizon "
        "check'); 1 = no horizon check",
    )
    steady_rel: float = Field(0.05, ge=0, description="allowed relative rise of mean TTFT between the last two windows "
                              "(a rise must also exceed twice its batch-means standard error to count)")
    steady_abs_s: float = Field(0.1, ge=0, description="allowed absolute rise of mean TTFT (noise floor), seconds")

    def limits(self, sc: Scenario) -> tuple[float, float]:
        """(ttft_s, tpot_s) limits for a scenario."""
        return (self.ttft_s or sc.slo.ttft_s, (self.tpot_ms or sc.slo.tpot_ms) / 1000.0)

    def check(
        self, summary: RunSummary, sc: Scenario, ttft_rising: bool | None = None, trend_measured: bool = False,
        population_growth: float | None = None, population_noise: float | None = None,
    ) -> tuple[bool, str]:
        """Whether one run meets the criterion, and why not.

        ``ttft_rising`` comes from ``ttft_trend`` on the run's rounds. ``trend_measured`` says the rounds were
        there, so ``ttft_rising=None`` means too few rounds to tell; only without rounds does the
        simulator's ``summary.steady_state`` decide (it looks at the drain, see docs/planning.md).
        """
        ttft_lim_s, tpot_lim_s = self.limits(sc)
        if summary.status == "cancelled":
            return False, "run cancelled"
        ttft = getattr(summary.ttft_s, self.percentile)
        tpot = getattr(summary.tpot_s, self.percentile)
        if ttft is None:
            return False, "no round reached its first token"
        if ttft > ttft_lim_s:
            return False, f"TTFT {self.percentile} {ttft:.3g} s > {ttft_lim_s:g} s"
        if tpot is not None and tpot > tpot_lim_s:
            return False, f"TPOT {self.percentile} {tpot * 1000:.3g} ms > {tpot_lim_s * 1000:g} ms"
        if self.min_attainment is not None:
            att = summary.slo_attainment
            if att is None or att < self.min_attainment:
                return False, f"SLO attainment {att} < {self.min_attainment}"
        if self.require_steady and trend_measured and ttft_rising is None:
            return False, (f"steadiness unknown: under 10 rounds reached their first token in one of the last two "
                           f"{sc.run.online_window_s:g} s windows before the last arrival (lengthen the window)")
        rising = ttft_rising if ttft_rising is not None else (None if summary.steady_state is None else not summary.steady_state)
        if self.require_steady and rising:
            return False, "not in steady state (TTFT still rising: queue growing)"
        if self.require_steady and self.max_population_growth is not None and population_growth is not None \
                and population_growth > self.max_population_growth \
                and population_growth > 2 * (population_noise or 0.0):  # beyond 2x the chance growth too
            return False, (f"not in steady state: mean active agents grew {population_growth:.0%} from one "
                           f"{sc.run.online_window_s:g} s window to the next before the last arrival (agents "
                           f"outlive the arrival window: lengthen it)")
        return True, "meets SLO"


STOPPED_SLO = "slo violated"
"""``CapacityPoint.stopped_early`` of a run stopped once its SLO failure was certain."""
STOPPED_CEILING = "above the ceiling"
"""``CapacityPoint.stopped_early`` of a rate not simulated: its offered load exceeds the analytic ceiling."""


class CapacityPoint(BaseModel):
    """One measured rate on the capacity curve."""

    aps: float
    meets: bool
    reason: str = ""
    policy: str = ""  # the design searched (set by capacity_search)
    replica: int = 0  # 0: the search's run; k > 0: the confirmation's k-th independent replica (run.seed + k)
    slo_attainment: float | None = None
    ttft_p90_s: float | None = None
    ttft_p99_s: float | None = None
    tpot_p90_s: float | None = None
    steady_state: bool | None = None
    ttft_window_means_s: tuple[float, float] | None = None  # mean TTFT of the previous and the last window
    status: str = ""
    prompt_tokens_per_s: float = 0.0
    rounds: int = 0
    stopped_early: str | None = None  # STOPPED_SLO (stopped once its failure was certain) or STOPPED_CEILING (not run)
    population: str = "all"  # which rounds the percentiles count ("window" or "all", SloCriterion.population)
    window_rounds: int | None = None  # rounds in the measurement window (population "window")
    population_growth: float | None = None  # mean active agents, last window / the one before, minus 1
    population_noise: float | None = None  # the growth chance alone could show (population_noise)
    ttft_rise_noise_s: float | None = None  # the TTFT rise chance alone could show (ttft_rise_noise)
    window_end_s: float | None = None  # simulated time the measurement window ended, when before the last arrival
    horizon_window_s: float | None = None  # a horizon check's arrival window (None: a run at the search's own window)

    @classmethod
    def from_summary(
        cls, aps: float, summary: RunSummary, crit: SloCriterion, sc: Scenario,
        window_means_s: tuple[float, float] | None = None, trend_measured: bool = False,
        population_growth: float | None = None, population_noise: float | None = None,
        rise_noise_s: float | None = None,
    ) -> CapacityPoint:
        """Judge one run's summary and TTFT trend (``trend_measured``: the rounds were available) against the criterion."""
        rising = None
        if window_means_s is not None:
            a, b = window_means_s
            # a rise counts when over the tolerance and over twice what chance gives (ttft_rise_noise)
            rising = b > a * (1 + crit.steady_rel) + crit.steady_abs_s and b - a > 2 * (rise_noise_s or 0.0)
        ok, why = crit.check(summary, sc, rising, trend_measured or window_means_s is not None, population_growth,
                             population_noise)
        return cls(
            aps=aps,
            meets=ok,
            reason=why,
            slo_attainment=summary.slo_attainment,
            ttft_p90_s=summary.ttft_s.p90,
            ttft_p99_s=summary.ttft_s.p99,
            tpot_p90_s=summary.tpot_s.p90,
            steady_state=summary.steady_state,
            ttft_window_means_s=window_means_s,
            status=summary.status,
            prompt_tokens_per_s=summary.prompt_tokens_per_s,
            rounds=summary.rounds,
            population_growth=population_growth,
            population_noise=population_noise,
            ttft_rise_noise_s=rise_noise_s,
        )


class CapacityResult(BaseModel):
    """Outcome of a capacity search for one policy."""

    policy: str
    capacity_aps: float = Field(description="highest measured rate meeting the SLO (0 if none did)")
    lo_aps: float = Field(description="bracket low end: meets the SLO (0 if none did)")
    hi_aps: float | None = Field(description="bracket high end: fails the SLO (None if no failure was found)")
    tolerance: float
    converged: bool
    evaluations: int
    curve: list[CapacityPoint] = Field(default_factory=list, description="every measured rate, ascending")
    criterion: SloCriterion = Field(default_factory=SloCriterion)
    window_s: float | None = Field(None, description="arrival window: each rate ran aps x window_s agents")
    ttft_limit_s: float | None = Field(None, description="TTFT limit applied, seconds")
    tpot_limit_ms: float | None = Field(None, description="TPOT limit applied, milliseconds")
    notes: list[str] = Field(default_factory=list)


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
    early_stop: bool = False  # kinds "rate" and "capacity": stop a run once its SLO failure is certain
    from_bound: bool = False  # kind "capacity": start at half the analytic ceiling
    replica: int = 0  # kind "rate": run with run.seed + replica (the confirmation's independent replicas)
    confirm: bool = True  # kind "capacity": confirm the bracket ends with independent replicas


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


def error_outcome(key: str, err: BaseException) -> Outcome:
    """What a worker returns for a task that raised: the exception's one-line text (never raised further)."""
    tb = traceback.format_exception_only(type(err), err)
    return Outcome(key=key, error="".join(tb).strip())
