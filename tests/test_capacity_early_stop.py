"""Early stop of capacity-search runs: same pass/fail verdict as the full run."""

from __future__ import annotations

from pathlib import Path

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
