"""Capacity runs judged on the measurement window before the last arrival, stopped once it is done."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from dualpath_twin import api
from dualpath_twin import scenario as scn
from dualpath_twin.planning.capacity import (
    SloCriterion,
    measure_rate,
    measurement_span_s,
    online_scenario,
    population_growth,
)
from dualpath_twin.planning.common import override

ROOT = Path(__file__).resolve().parents[1]


def _small() -> scn.Scenario:
    sc = scn.load(ROOT / "scenarios" / "examples" / "online-serving.toml")
    return override(sc, {"workload.max_context_tokens": 8192, "run.online_window_s": 20.0})


def test_window_population_counts_only_the_window_and_skips_the_drain() -> None:
    """The window run's percentiles are those of the full run's window rounds, from fewer simulated rounds."""
    sc = _small()
    aps, window_s = 0.5, 100.0
    sc_at = online_scenario(sc, aps, window_s)
    full = api.simulate(sc_at, "dualpath")
    wl = api.load_workload(sc_at)
    t_from, t_last = measurement_span_s(sc_at, float(wl.arrival_s.max()))
    assert t_last - t_from == pytest.approx(40.0)
    rounds = full.rounds
    win = rounds.filter((pl.col("arrival_s") >= t_from) & (pl.col("arrival_s") <= t_last))
    assert 0 < win.height < rounds.height

    p = measure_rate(sc, aps, "dualpath", SloCriterion(require_steady=False), window_s)
    assert p.population == "window" and p.window_rounds == win.height
    assert p.ttft_p90_s == pytest.approx(float(win["ttft_s"].quantile(0.9, "linear")), rel=1e-12)
    assert p.tpot_p90_s == pytest.approx(float(win["tpot_s"].drop_nulls().quantile(0.9, "linear")), rel=1e-12)
    assert p.rounds < full.summary.rounds  # the drain after the last arrival was not simulated
    assert p.status == "done"

    every = measure_rate(sc, aps, "dualpath", SloCriterion(require_steady=False, population="all"), window_s)
    assert every.population == "all" and every.rounds == full.summary.rounds
    assert every.ttft_p90_s == pytest.approx(full.summary.ttft_s.p90)


def test_window_early_stop_of_a_certain_failure() -> None:
    """An overloaded rate fails on its window and, with early stop, stops before the window's rounds are done."""
    sc = _small()
    hot = SloCriterion(require_steady=False, ttft_s=0.05)
    full = measure_rate(sc, 20.0, "basic", hot, 20.0)
    fast = measure_rate(sc, 20.0, "basic", hot, 20.0, early_stop=True)
    assert full.meets is False and fast.meets is False
    assert fast.stopped_early == "slo violated" and "measurement window" in fast.reason
    assert fast.rounds <= full.rounds


def _agents(arrivals: list[float], lifetimes: list[float]) -> pl.DataFrame:
    """A rounds frame of one round per agent: arrival and finish time."""
    return pl.DataFrame({
        "agent_id": list(range(len(arrivals))),
        "arrival_s": arrivals,
        "done_s": [a + life for a, life in zip(arrivals, lifetimes, strict=True)],
    })


def test_population_growth_tells_a_ramp_from_a_steady_state() -> None:
    """Agents that outlive the arrival window make the active count grow; short-lived agents keep it flat."""
    arrivals = [i * 0.5 for i in range(2000)]  # 2 agents/s for 1,000 s
    ramp = population_growth(_agents(arrivals, [2000.0] * 2000), 999.5, 150.0)
    steady = population_growth(_agents(arrivals, [100.0] * 2000), 999.5, 150.0)
    assert ramp is not None and ramp == pytest.approx(924.5 / 774.5 - 1, rel=0.01)  # mean active 2t over each window
    assert steady is not None and abs(steady) < 0.02
    # an unfinished agent (a round not done) is still active
    unfinished = _agents([0.0, 1.0], [5.0, 5.0]).with_columns(pl.lit(None, pl.Float64).alias("done_s"))
    assert population_growth(unfinished, 2.0, 1.0) == pytest.approx(1.0, abs=0.02)  # 1 active, then 2


def test_max_population_growth_fails_a_growing_run_with_the_fix() -> None:
    """A run whose active agents still grow (over 5% by default) fails and says to lengthen the window."""
    from dualpath_twin.results import Percentiles, RunSummary

    sc = scn.Scenario()
    s = RunSummary(policy="basic", seed=0, status="done", ttft_s=Percentiles(p90=1.0), tpot_s=Percentiles(p90=0.02))
    ok, why = SloCriterion().check(s, sc, False, True, population_growth=0.3)
    assert not ok and "lengthen" in why and "30%" in why  # 5% by default
    assert SloCriterion().check(s, sc, False, True, population_growth=0.01)[0]
    assert SloCriterion(max_population_growth=None).check(s, sc, False, True, population_growth=0.3)[0]
    assert SloCriterion(require_steady=False).check(s, sc, False, True, population_growth=0.3)[0]
    # a growth within twice what Poisson arrivals and departures alone give is not a ramp
    assert SloCriterion().check(s, sc, False, True, population_growth=0.06, population_noise=0.04)[0]
    assert not SloCriterion().check(s, sc, False, True, population_growth=0.09, population_noise=0.04)[0]


def test_population_noise_is_the_poisson_walk_of_the_windows() -> None:
    """sqrt(arrivals + departures in the two windows) over the population at their start."""
    from dualpath_twin.planning.capacity import population_noise

    arrivals = [i * 0.5 for i in range(2000)]  # 2 agents/s, each living 100 s
    noise = population_noise(_agents(arrivals, [100.0] * 2000), 999.5, 150.0)
    assert noise == pytest.approx((600 + 600) ** 0.5 / 200, rel=0.02)


def test_cli_rejects_a_bad_population() -> None:
    """--population takes window or all; anything else names the option and the choices."""
    from typer.testing import CliRunner

    from dualpath_twin.cli import app

    res = CliRunner().invoke(app, ["capacity", str(ROOT / "scenarios" / "examples" / "online-serving.toml"),
                                   "--population", "ramp", "--no-save", "--yes"])
    assert res.exit_code != 0
    assert "--population" in res.output and "window or all" in res.output


def _ttfts(values: list[float], span_s: float = 300.0) -> pl.DataFrame:
    """Rounds of agents arriving evenly over span_s (the last one at span_s) with the given TTFTs in order."""
    n = len(values)
    arr = [span_s * i / (n - 1) for i in range(n)]
    return pl.DataFrame({"agent_id": list(range(n)), "round_idx": [0] * n, "arrival_s": arr, "ttft_s": values})


def test_ttft_rise_noise_by_batch_means() -> None:
    """Flat windows have no chance rise; windows whose sub-window means swing have a large one."""
    from dualpath_twin.planning.capacity import ttft_rise_noise

    flat = _ttfts([1.0] * 1000 + [1.2] * 1001)
    assert ttft_rise_noise(flat, 150.0) == pytest.approx(0.0, abs=1e-3)  # one round at t=150 s sits in both
    # the TTFT swings between 0.5 s and 2.5 s every ~15 s (a queue filling and draining)
    swing = _ttfts([0.5 if (i // 100) % 2 else 2.5 for i in range(2001)])
    noise = ttft_rise_noise(swing, 150.0)
    assert noise is not None and noise > 0.3


def test_a_rise_within_chance_is_not_rising() -> None:
    """The same 20% rise of the window means fails a flat run and passes a swinging one."""
    sc = scn.Scenario()
    from dualpath_twin.planning.types import CapacityPoint
    from dualpath_twin.results import Percentiles, RunSummary

    s = RunSummary(policy="basic", seed=0, status="done", ttft_s=Percentiles(p90=2.0), tpot_s=Percentiles(p90=0.02))
    crit = SloCriterion()
    rising = CapacityPoint.from_summary(1.0, s, crit, sc, (1.0, 1.2), True, rise_noise_s=0.01)
    noisy = CapacityPoint.from_summary(1.0, s, crit, sc, (1.0, 1.2), True, rise_noise_s=0.2)
    assert not rising.meets and "still rising" in rising.reason
    assert noisy.meets and noisy.ttft_rise_noise_s == 0.2
