"""The Results page's run history puts the planner's key columns first (design, status, SLO, throughput, latency, binding resource)."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dualpath_twin.store.synthetic import synthetic_result
from dualpath_twin.ui import backend
from dualpath_twin.ui.jobs import REGISTRY

APP = str(Path(__file__).resolve().parents[1] / "app.py")
KEY = ["design", "status", "meets SLO (p99)", "SLO attainment (%)", "gen tok/s", "prompt tok/s", "JCT (s)", "TTFT p99 (s)",
       "TPOT p99 (ms)", "binding resource"]


@pytest.fixture
def at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("DUALPATH_TWIN_DB", str(tmp_path / "r.duckdb"))
    st.cache_data.clear()
    st.cache_resource.clear()
    REGISTRY.clear()
    backend._STORES.clear()
    for i, pol in enumerate(("basic", "dualpath")):
        backend.store().save_run(synthetic_result(pol, seed=i, n_rounds=20, n_samples=10))
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page("dualpath_twin/ui/pages/results.py").run()
    assert not app.exception, app.exception
    yield app
    backend._STORES.clear()


def test_history_shows_the_key_columns_first(at: AppTest) -> None:
    table = next(d.value for d in at.dataframe if "run id" in d.value.columns)
    cols = list(table.columns)
    assert cols[: len(KEY)] == KEY, cols
    assert {"scenario", "started", "run id"} <= set(cols[len(KEY):])  # the rest are kept, after
    assert sorted(table["design"].to_list()) == ["basic", "dualpath"]
    assert table["binding resource"].to_list() == ["storage NIC reads"] * 2  # worded, not the raw key
    assert table["meets SLO (p99)"].dtype == bool  # a verdict per run, against its own scenario's SLO



def test_history_numbers_are_rounded_for_reading(at: AppTest) -> None:
    table = next(d.value for d in at.dataframe if "run id" in d.value.columns)
    assert all(v == round(v, 1) for v in table["gen tok/s"]) and all(v == round(v) for v in table["prompt tok/s"])
    assert all(v == round(v, 1) for v in table["JCT (s)"] if v == v)
