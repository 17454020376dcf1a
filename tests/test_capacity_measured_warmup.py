"""A capacity run's measurement window ends once the population has settled at the run's own measured latencies."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dualpath_twin import api
from dualpath_twin import scenario as scn
from dualpath_twin.planning.capacity import (
    SloCriterion,
    WindowStop,
    capacity_search,
    lifetime_terms,
    measure_rate,
    online_scenario,
    population_warmup_s,
)
from dualpath_twin.planning.common import override

ROOT = Path(__file__).resolve().parents[1]


def _small() -> scn.Scenario:
    sc = scn.load(ROOT / "scenarios" / "examples" / "online-serving.toml")
    return override(sc, {"workload.max_context_tokens": 8192, "run.online_window_s": 20.0})


def test_population_warmup_solves_the_expected_population() -> None:
    """E[min(L, t)] = share x E[L] at the returned t; share 1 waits for the longest lifetime."""
    life = np.random.default_rng(3).exponential(100.0, 500)
    for share in (0.5, 0.9, 0.98, 0.999):
        t = population_warmup_s(life, share)
        assert np.minimum(life, t).mean() == pytest.approx(share * life.mean(), rel=1e-9)
    assert population_warmup_s(life, 1.0) == pytest.approx(life.max())
    assert population_warmup_s(life, 0.9) < population_warmup_s(life, 0.98) < population_warmup_s(life, 1.0)
    assert population_warmup_s(np.array([]), 0.98) == 0.0


def test_lifetime_terms_reproduce_a_lifetime() -> None:
    """d + n x TTFT + g x TPOT: tool delays after round 0, one TTFT per round, TPOT per token after a round's first."""
    sc = online_scenario(_small(), 0.5, 40.0)
    wl = api.load_workload(sc)
    d, n, g = lifetime_terms(wl)
    t = 0
    lo, hi = int(wl.round_offsets[t]), int(wl.round_offsets[t + 1])
    expect = float(wl.delay_s[lo + 1:hi].sum()) + (hi - lo) * 2.0 + float((wl.gen_tokens[lo:hi] - 1).sum()) * 0.03
    assert d[t] + n[t] * 2.0 + g[t] * 0.03 == pytest.approx(expect)


def _fake_world(n_rounds: int, now: float, ttft_s: float, per_token_s: float, gen_tokens: int):
    """A world whose rounds all arrived at ``now - 1 - TTFT - decode`` and are done 1 s before ``now``."""
    done = np.full(n_rounds, now - 1.0)
    first = done - (gen_tokens - 1) * per_token_s
    col = {"done_s": done, "first_token_s": first, "arrival_s": first - ttft_s}
    wl = SimpleNamespace(n_rounds=n_rounds, gen_tokens=np.full(n_rounds, gen_tokens))
    return SimpleNamespace(env=SimpleNamespace(now=now), col=col, wl=wl)


def test_window_ends_once_the_measured_warmup_has_passed() -> None:
    """With lifetimes of 11.1, 21.1 and 101.1 s at the measured latencies, a 20 s window ends at the first check past 141.1 s."""
    sc = _small()
    terms = (np.array([10.0, 20.0, 100.0]), np.ones(3), np.full(3, 10.0))  # d, n, g per agent
    stop = WindowStop(SloCriterion(), sc, 900.0, 1000.0, early_fail=False, lifetimes=terms, share=1.0)
    assert stop(_fake_world(700, 100.0, 1.0, 0.01, 11)) is None
    assert stop.ended_early_s is None and stop.t_last_s == 1000.0  # 100 - 2 x 20 < 101.1
    reason = stop(_fake_world(700, 144.0, 1.0, 0.01, 11))
    assert stop.ended_early_s == 144.0 and stop.warmup_s == pytest.approx(101.1)
    assert (stop.t_from_s, stop.t_last_s) == (104.0, 144.0)
    assert reason == "measurement window complete"  # every round in [104, 144] s is done

    slow = WindowStop(SloCriterion(), sc, 900.0, 1000.0, early_fail=False, lifetimes=terms, share=1.0)
    assert slow(_fake_world(700, 144.0, 3.0, 0.5, 11)) is None  # longer rounds: 108 s lives, not yet
    assert slow.ended_early_s is None

    fixed = WindowStop(SloCriterion(), sc, 900.0, 1000.0, early_fail=False)  # no lifetimes: the last arrival
    assert fixed(_fake_world(700, 500.0, 1.0, 0.01, 11)) is None and fixed.ended_early_s is None


def test_measured_end_gives_the_verdict_from_fewer_rounds() -> None:
    """Both window ends pass at 2 agents/s; the measured one ends its window long before the last arrival."""
    sc = _small()
    measured = measure_rate(sc, 2.0, "dualpath", SloCriterion(warmup_from="measured"), 400.0)
    last = measure_rate(sc, 2.0, "dualpath", SloCriterion(), 400.0)
    assert measured.meets and last.meets
    assert last.window_end_s is None
    assert measured.window_end_s is not None and measured.window_end_s < 400.0 - 40.0
    assert measured.rounds < last.rounds
    assert measured.window_rounds and measured.window_rounds > 100
    assert measured.ttft_p90_s == pytest.approx(last.ttft_p90_s, rel=0.25)  # same steady state, another window


def test_capacity_search_notes_the_measured_ends() -> None:
    """The search says how many runs ended their windows at the measured warm-up."""
    res = capacity_search(_small(), "dualpath", criterion=SloCriterion(warmup_from="measured"), tolerance=0.5, start_aps=2.0,
                          max_evaluations=2, window_s=400.0, confirm=False)
    assert any("at the measured latencies" in n for n in res.notes)
