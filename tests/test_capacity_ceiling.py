"""Capacity runs: the warm-up that sets the default arrival window, and the analytic ceiling as a hard limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_capacity_window import _small  # online-serving at 8K contexts, 20 s steadiness windows

from dualpath_twin import api
from dualpath_twin import scenario as scn
from dualpath_twin.analysis.bounds import compute_bound
from dualpath_twin.planning.capacity import (
    SloCriterion,
    _slo_lifetimes_s,
    above_ceiling,
    capacity_search,
    default_window_s,
    measure_rate,
    online_scenario,
    slo_lifetime_s,
    slo_warmup_s,
)
from dualpath_twin.planning.common import override

ROOT = Path(__file__).resolve().parents[1]


def _ceiling_aps(sc: scn.Scenario, policy: str, window_s: float) -> tuple[float, scn.Scenario]:
    """The rate whose offered rounds/s equal the bound of the run's own agents at that rate (fixed point)."""
    aps = 1.0
    for _ in range(20):  # the run's agents change with the rate (aps x window): iterate to the fixed point
        sc_at = online_scenario(sc, aps, window_s)
        wl = api.load_workload(sc_at)
        nxt = compute_bound(sc_at, wl, policy).max_rounds_per_s / (wl.n_rounds / wl.n_trajectories)
        if abs(nxt - aps) < 1e-12 * aps:
            break
        aps = nxt
    return aps, sc_at


def test_warmup_is_where_the_population_reaches_its_share() -> None:
    """E[min(L, warm-up)] = share x E[L] at the SLO-limit lifetimes; the mean lifetime reaches less."""
    sc = scn.load(ROOT / "scenarios" / "examples" / "online-serving.toml")
    life = _slo_lifetimes_s(sc)
    assert life.mean() == pytest.approx(slo_lifetime_s(sc))
    for share in (0.5, 0.9, 0.98):
        t = slo_warmup_s(sc, SloCriterion(warmup_share=share))
        assert np.minimum(life, t).mean() == pytest.approx(share * life.mean(), rel=1e-9)
    mean_reach = np.minimum(life, life.mean()).mean() / life.mean()
    assert mean_reach < 0.9  # spread lifetimes: the mean lifetime is far from a settled population
    t98 = slo_warmup_s(sc)
    assert slo_lifetime_s(sc) < t98 < life.max()
    assert default_window_s(sc) == pytest.approx(t98 + 2 * sc.run.online_window_s)


def test_a_rate_above_the_ceiling_fails_without_simulating() -> None:
    """Above the analytic ceiling the point fails at once and names the binding resource; below it is simulated."""
    sc, window_s = _small(), 60.0
    ceil_aps, sc_at = _ceiling_aps(sc, "basic", window_s)
    hot = measure_rate(sc, 1.2 * ceil_aps, "basic", SloCriterion(), window_s)
    assert hot.meets is False and hot.stopped_early == "above the ceiling" and hot.rounds == 0
    assert "above the analytic ceiling" in hot.reason and "not simulated" in hot.reason
    bound = compute_bound(sc_at, api.load_workload(sc_at), "basic")
    from dualpath_twin.analysis.bounds import RESOURCE_LABELS

    assert RESOURCE_LABELS[bound.binding_resource] in hot.reason
    # at or below the ceiling the check lets the run through
    low = online_scenario(sc, 0.9 * ceil_aps, window_s)
    assert above_ceiling(low, api.load_workload(low), 0.9 * ceil_aps, "basic") is None
    # the criterion that does not ask for a steady state simulates it anyway (and the sim obeys the ceiling)
    loose = measure_rate(sc, 1.2 * ceil_aps, "basic", SloCriterion(require_steady=False, population="all"), window_s)
    assert loose.stopped_early is None and loose.rounds > 0


def test_a_bounded_cache_skips_the_check() -> None:
    """With a bounded [cache] the ceiling is an estimate of the hit share, so it does not refuse a rate."""
    sc = override(_small(), {"cache.capacity_gb": 20.0})
    sc_at = online_scenario(sc, 100.0, 60.0)
    assert above_ceiling(sc_at, api.load_workload(sc_at), 100.0, "basic") is None
    plain = online_scenario(_small(), 100.0, 60.0)
    assert above_ceiling(plain, api.load_workload(plain), 100.0, "basic") is not None


def test_the_search_notes_the_rates_it_did_not_simulate() -> None:
    """A search started far above the ceiling halves down through free failures, and says so."""
    sc, window_s = _small(), 60.0
    ceil_aps, _ = _ceiling_aps(sc, "basic", window_s)
    res = capacity_search(sc, "basic", start_aps=3 * ceil_aps, window_s=window_s, max_evaluations=3, confirm=False)
    free = [p for p in res.curve if p.stopped_early == "above the ceiling"]
    assert len(free) == 2 and all(p.rounds == 0 for p in free)
    assert any("not simulated" in n and "analytic ceiling" in n for n in res.notes)
