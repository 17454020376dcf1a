"""Early stop of capacity-search runs: same pass/fail verdict as the full run."""

from __future__ import annotations

from pathlib import Path

import pytest

from dualpath_twin import scenario as scn
from dualpath_twin.planning.capacity import SloCriterion, measure_rate
from dualpath_twin.planning.common import override

ROOT = Path(__file__).resolve().parents[1]


def _small() -> scn.Scenario:
    sc = scn.load(ROOT / "scenarios" / "examples" / "online-serving.toml")
    return override(sc, {"workload.agents": 24, "workload.max_context_tokens": 8192, "run.online_window_s": 20.0})


def test_early_stop_same_verdict_and_stops_overloaded_run() -> None:
    """An overloaded rate fails both ways and the early run says it stopped; a light rate is untouched."""
    sc = _small()
    crit = SloCriterion(require_steady=False)
    hot = SloCriterion(require_steady=False, ttft_s=0.05)
    hot_full = measure_rate(sc, 50.0, "basic", hot)
    hot_fast = measure_rate(sc, 50.0, "basic", hot, early_stop=True)
    assert hot_full.meets is False and hot_fast.meets is False
    assert hot_fast.stopped_early == "slo violated"
    assert hot_fast.rounds < hot_full.rounds
    cold_full = measure_rate(sc, 0.05, "basic", crit)
    cold_fast = measure_rate(sc, 0.05, "basic", crit, early_stop=True)
    assert cold_full.meets == cold_fast.meets
    assert cold_fast.stopped_early is None
    assert cold_fast.model_dump(exclude={"stopped_early"}) == cold_full.model_dump(exclude={"stopped_early"})


def test_sweep_sizing_and_sensitivity_pass_the_fast_search_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """Capacity searches inside a sweep, a sizing and a sensitivity use early stop and the bound start, like the CLI."""
    from dualpath_twin.planning import capacity as cap_mod
    from dualpath_twin.planning.capacity import CapacityResult
    from dualpath_twin.planning.sensitivity import sensitivity
    from dualpath_twin.planning.sizing import size
    from dualpath_twin.planning.sweep import run_sweep
    from dualpath_twin.scenario import Scenario

    seen: list[tuple[bool, bool]] = []

    def fake_search(sc, policy, **kw):
        seen.append((kw["early_stop"], kw["from_bound"]))
        return CapacityResult(policy=policy, capacity_aps=1.0, lo_aps=1.0, hi_aps=2.0, tolerance=0.1, converged=True,
                              evaluations=1)

    monkeypatch.setattr(cap_mod, "capacity_search", fake_search)
    sc = Scenario(name="t", model={"name": "DS-27B"}, workload={"agents": 8, "mode": "online", "arrival_rate_aps": 0.5})
    run_sweep(sc, {"cluster.decode_nodes": [1]}, ["dualpath"], objective="capacity")
    assert seen == [(True, True)]
    run_sweep(sc, {"cluster.decode_nodes": [2]}, ["dualpath"], objective="capacity", early_stop=False, from_bound=False)
    assert seen[-1] == (False, False)
    seen.clear()
    sensitivity(sc, "dualpath", parameters=["network.snic_gbps"])
    assert seen and all(s == (True, True) for s in seen)
    seen.clear()
    size(sc, 0.1, {"cluster.decode_nodes": [1]}, policy="dualpath", measure_capacity="all")
    assert seen and all(s[0] for s in seen)  # early stop; the search starts at the target rate
