"""The Results page shows what the what-ifs did: the faults table (with rounds re-queued), the DRAM cache
effect, and the fault intervals shaded on the time-series plots. Real core, tiny setting (~1 s)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dualpath_twin import api
from dualpath_twin.scenario import Scenario
from dualpath_twin.store import open_store

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
RESULTS_PAGE = "dualpath_twin/ui/pages/results.py"


def _scenario(**extra) -> Scenario:
    return Scenario(
        name="tiny-whatif",
        model={"name": "DS-27B"},
        cluster={"prefill_nodes": 2, "decode_nodes": 2, "gpus_per_node": 2, "prefill_ep_nodes": 1, "decode_ep_nodes": 1},
        network={"cnics_per_node": 2},
        workload={"agents": 8, "dataset": "paper-32k", "max_context_tokens": 4096},
        run={"max_sim_time_s": 600},
        **extra,
    )


@pytest.fixture
def run_id(dashboard_db: Path) -> str:
    """A real run with a node loss, a degraded SNIC and an unbounded DRAM cache, saved in a fresh store."""
    path = dashboard_db
    sc = _scenario(
        faults=[{"kind": "node_lost", "node": "D1", "start_s": 5.0, "end_s": 15.0},
                {"kind": "snic_degraded", "node": "P0", "start_s": 2.0, "end_s": 8.0, "rate_factor": 0.5}],
        cache={},
    )
    r = api.simulate(sc, "dualpath")
    assert r.summary.faults[0].rounds_requeued is not None and r.summary.cache is not None
    store = open_store(path)
    try:
        rid = store.save_run(r)
    finally:
        store.close()
    return rid


def test_results_detail_shows_faults_cache_and_shaded_intervals(run_id: str) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["dp_selected_runs"] = [run_id]
    at.run()
    at.switch_page(RESULTS_PAGE).run()
    assert not at.exception, at.exception
    frames = [d.value for d in at.dataframe]
    faults = next(f for f in frames if "rounds re-queued" in f.columns)
    assert list(faults["fault"]) == ["node_lost", "snic_degraded"]
    assert faults["rounds re-queued"][1] == "-" and faults["rounds re-queued"][0] != "-"
    cache = next(f for f in frames if "SNIC relief" in f.columns)
    assert cache["capacity"][0] == "unbounded"
    specs = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    assert "D1 node_lost" in specs and "P0 snic_degraded" in specs  # the intervals are shaded and labelled


def test_a_run_without_what_ifs_shows_no_such_tables(dashboard_db: Path) -> None:
    store = open_store(dashboard_db)
    try:
        rid = store.save_run(api.simulate(_scenario(), "dualpath"))
    finally:
        store.close()
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["dp_selected_runs"] = [rid]
    at.run()
    at.switch_page(RESULTS_PAGE).run()
    assert not at.exception, at.exception
    cols = [c for d in at.dataframe for c in d.value.columns]
    assert "rounds re-queued" not in cols and "SNIC relief" not in cols
