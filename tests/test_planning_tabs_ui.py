"""The Planning page's Sizing, Sensitivity and Capacity tabs as a planner drives them: widgets, not typed lines;
the best point in words; human table headings; work too large refused before anything runs.

Real simulation core, tiny setting (~6 s): a 1P DS-27B cluster of 2 GPUs, online, 4K contexts, a 9 ms TPOT limit
(1 decode node misses it at 8 agents/s, 2 decode nodes meet it), sized over 1 and 2 decode nodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dualpath_twin.scenario import Scenario
from dualpath_twin.ui import backend, planning_page, state
from dualpath_twin.ui import decision as dec

APP = "from dualpath_twin.ui.planning_page import render\nrender()"
TINY = Scenario(
    name="tiny",
    model={"name": "DS-27B"},
    cluster={"prefill_nodes": 1, "decode_nodes": 1, "gpus_per_node": 2},
    network={"cnics_per_node": 2},
    workload={"agents": 8, "dataset": "paper-32k", "max_context_tokens": 4096, "mode": "online", "arrival_rate_aps": 0.5},
    run={"max_sim_time_s": 600},
    slo={"tpot_ms": 9},
)
# the same cluster with 100,000 agents arriving at 0.5/s: every run is hours of wall time
HUGE = TINY.model_copy(update={"workload": TINY.workload.model_copy(update={"agents": 100_000})})


@pytest.fixture(autouse=True)
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh store (the Capacity tab lists and saves searches there); default run-size limits."""
    path = tmp_path / "tabs.duckdb"
    monkeypatch.setenv("DUALPATH_TWIN_DB", str(path))
    monkeypatch.delenv("DUALPATH_TWIN_MAX_WALL_S", raising=False)
    monkeypatch.delenv("DUALPATH_TWIN_SETTINGS", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    backend._STORES.clear()
    yield path
    backend._STORES.clear()


def _page(sc: Scenario) -> AppTest:
    """The page with ``sc`` as the session's scenario (what the Scenario page built), local executor of 1 worker."""
    at = AppTest.from_string(APP, default_timeout=90)
    at.session_state[state.K_BASE] = sc
    at.session_state[state.K_SCENARIO] = sc
    at.session_state[state.K_PROBLEMS] = []
    at.run()
    assert not at.exception, at.exception
    for key in ("sz_w", "se_w", "cap_w"):
        at.number_input(key=key).set_value(1)
    at.run()
    assert not at.exception, at.exception
    return at


def _tab(at: AppTest, label: str) -> Any:
    return next(t for t in at.tabs if t.label == label)


def _no_run(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """Replace the page's ``name`` (size, sensitivity, capacity_search_many) by a recorder: the work must not start."""
    calls: list[Any] = []
    monkeypatch.setattr(planning_page, name, lambda *a, **k: calls.append((a, k)))
    return calls


def _sizing_axes(at: AppTest, values: list[int]) -> None:
    """Axis 1 = decode nodes with ``values`` picked in its multiselect, axis 2 = none."""
    at.selectbox(key="sz_ax0").set_value("cluster.decode_nodes").run()
    at.selectbox(key="sz_ax1").set_value(planning_page.NONE_AXIS).run()
    at.multiselect(key="sz_v0_cluster.decode_nodes").set_value(values).run()
    assert not at.exception, at.exception


def test_sizing_from_axis_widgets_names_the_cheapest_design_in_words() -> None:
    at = _page(TINY)
    assert not [t for t in at.text_area if t.key == "sz_vary"]  # no typed 'vary' lines any more
    labels = {w.label for w in _tab(at, "Sizing").number_input}
    assert "Target rate (agents/s)" in labels
    _sizing_axes(at, [1, 2])
    at.number_input(key="sz_target").set_value(8.0)
    at.checkbox(key="sz_steady").set_value(False)
    at.button(key="sz_go").click().run()
    assert not at.exception, at.exception
    res = at.session_state["planning_size"]
    # the grid the widgets picked, run for real: 1 decode node misses the 9 ms TPOT limit, 2 meet it
    assert res.axes == ["cluster.decode_nodes"]
    status = {c.point["cluster.decode_nodes"]: c.status for c in res.candidates}
    assert status == {1: "fails", 2: "meets"}
    best = res.cheapest[0]
    assert best.point == {"cluster.decode_nodes": 2} and best.capacity_aps is not None  # capacity of meeting points
    tab = _tab(at, "Sizing")
    text = " ".join(m.value for m in tab.markdown)
    assert (f"Cheapest configuration meeting the SLO at 8 agents/s: **2 decode nodes (dualpath) at "
            f"${best.cost_per_hour:,.2f}/hour**") in text
    assert "{" not in text and "cluster.decode_nodes" not in text  # no dict, no path
    import json

    (chart,) = [json.loads(c.proto.spec) for c in tab.get("plotly_chart")]
    hover = {t for tr in chart["data"] for t in tr.get("text") or []}
    assert hover == {"1 decode node", "2 decode nodes"}  # points named as designs, not decode_nodes=2
    table = _tab(at, "Sizing").dataframe[0].value
    assert not [c for c in table.columns if "_" in c or "." in c], list(table.columns)
    assert {"decode nodes", "$/hour", "status", "TTFT p90 (s)", "TPOT p90 (ms)", "capacity (agents/s)"} <= set(table.columns)
    rows = dict(zip(table["decode nodes"], table["TPOT p90 (ms)"], strict=True))
    assert rows[1] > 9 >= rows[2]  # TPOT shown in ms
    assert rows[2] == pytest.approx(best.at_target.tpot_p90_s * 1000)


def test_a_huge_sizing_grid_is_refused_before_any_run(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _no_run(monkeypatch, "size")
    at = _page(HUGE)
    for i, path in enumerate(["cluster.prefill_nodes", "cluster.decode_nodes", "network.snic_gbps"]):
        at.selectbox(key=f"sz_ax{i}").set_value(path).run()
        at.multiselect(key=f"sz_v{i}_{path}").set_value(dec.presets(HUGE, path)).run()
    at.number_input(key="sz_target").set_value(0.5)
    at.button(key="sz_go").click().run()
    assert not at.exception, at.exception
    errs = " ".join(e.value for e in _tab(at, "Sizing").error)
    assert "Refused before it started" in errs and "above the limit" in errs and "runs" in errs
    # the count of guard.guard_sizing on the points as size() builds them: a run each, then its searches
    from dualpath_twin import guard
    from dualpath_twin.planning.sizing import labelled_online, sizing_points

    grid = {p: dec.presets(HUGE, p) for p in ["cluster.prefill_nodes", "cluster.decode_nodes", "network.snic_gbps"]}
    cands = labelled_online(sizing_points(HUGE, 0.5, grid, "dualpath"), dec.describe_point)
    est = guard.guard_sizing(cands, 0.5, workers=1, limits=guard.Limits(1e18, 1e18, "test"))
    assert est is not None and est.runs == len(cands) + sum(pl.runs for pl in est.plans.values())
    assert f"capacity search: ~{est.runs:,} runs ({len(est.plans)} search(s) and {len(cands):,} run(s) at the target" in errs
    assert "Fix: fewer grid points" in errs
    assert calls == [] and "planning_size" not in at.session_state
    assert at.checkbox(key="sz_anyway").label == "Run anyway"


def test_a_grid_of_a_million_typed_points_is_refused_without_expanding_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _no_run(monkeypatch, "size")
    at = _page(TINY)
    for i in range(2):  # the default axes (prefill, decode nodes) off: only the typed ones
        at.selectbox(key=f"sz_ax{i}").set_value(planning_page.NONE_AXIS).run()
    at.text_area(key="sz_grid_txt").set_value(
        "cluster.decode_nodes=1..100\nnetwork.snic_gbps=1..100\nnetwork.cnic_gbps=1..100").run()
    at.button(key="sz_go").click().run()
    assert not at.exception, at.exception
    errs = " ".join(e.value for e in _tab(at, "Sizing").error)
    assert "1,000,000 points, more than the 10,000" in errs
    assert calls == [] and "planning_size" not in at.session_state


def test_sensitivity_offers_human_parameter_names_and_refuses_huge_work(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _no_run(monkeypatch, "sensitivity")
    at = _page(HUGE)
    opts = at.multiselect(key="se_par").options
    assert "storage NIC speed" in opts and not [o for o in opts if "." in o or "_" in o]
    at.button(key="se_go").click().run()
    assert not at.exception, at.exception
    errs = " ".join(e.value for e in _tab(at, "Sensitivity").error)
    assert "Refused before it started" in errs and "above the limit" in errs
    # a base run and 2 per default parameter set in the scenario, each a capacity search (online) planned from
    # its settings (guard.plan_capacity_search), as sensitivity() builds and runs them
    from dualpath_twin import guard
    from dualpath_twin.planning.sensitivity import sensitivity_moves

    moves = sensitivity_moves(HUGE, "dualpath")
    runs = moves.scenarios()
    est = guard.guard_capacity_many(runs, tolerance=0.1, from_bound=True, limits=guard.Limits(1e18, 1e18, "test"))
    assert len(runs) == 1 + 2 * len(moves.rows) and len(moves.rows) + len(moves.skipped) == len(
        planning_page.DEFAULT_PARAMETERS)  # parameters unset (storage.read_gbps_total) or invalid when moved: skipped
    assert f"capacity search: ~{est.runs:,} runs ({len(runs)} search(s))" in errs
    assert "to tolerance 0.1" in errs and "Fix: fewer parameters to move" in errs
    assert calls == [] and "planning_sens" not in at.session_state


def test_sensitivity_table_has_human_headings() -> None:
    offline = TINY.model_copy(update={"workload": TINY.workload.model_copy(update={"mode": "offline"})})
    at = _page(offline)
    at.multiselect(key="se_par").set_value(["cluster.decode_nodes"])
    at.button(key="se_go").click().run()
    assert not at.exception, at.exception
    res = at.session_state["planning_sens"]
    assert res.metric == "jct_s" and [r.path for r in res.rows] == ["cluster.decode_nodes"]
    table = _tab(at, "Sensitivity").dataframe[0].value
    assert not [c for c in table.columns if "_" in c or "." in c], list(table.columns)
    assert table["parameter"].tolist() == ["decode nodes"]
    assert table["JCT (s) at high"].tolist() == pytest.approx([res.rows[0].metric_high])


def test_a_huge_capacity_search_is_refused_before_any_run(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dualpath_twin.planning.storeio import list_capacity
    from dualpath_twin.store import open_store

    calls = _no_run(monkeypatch, "capacity_search_many")
    at = _page(HUGE)
    at.button(key="cap_go").click().run()
    assert not at.exception, at.exception
    errs = " ".join(e.value for e in _tab(at, "Capacity").error)
    assert "Refused before it started" in errs and "above the limit" in errs
    # both designs' runs from the form's settings (bracket, bisect to the tolerance), with what was assumed
    assert "capacity search" in errs and "Assumed: basic:" in errs and "dualpath:" in errs and "to tolerance 0.05" in errs
    assert "tick 'Run anyway' below" in errs and "Scenario page" not in errs
    assert calls == [] and "planning_capacity" not in at.session_state
    assert list_capacity(open_store(db)).height == 0


def test_sizing_notes_name_designs_not_dicts() -> None:
    """Pruned and implied candidates' notes (sizing names the deciding point as a dict) name it as a design."""
    note = planning_page._sizing_note
    assert note("implied: at least the resources of meeting {'cluster.prefill_nodes': 1, 'cluster.decode_nodes': 2}") == (
        "not simulated at the target: at least the resources of meeting 1P2D")
    assert note("no more resources than failing {'cluster.decode_nodes': 1}") == (
        "not simulated: no more resources than failing 1 decode node")
    assert note("TPOT p90 10 ms > 9 ms") == "TPOT p90 10 ms > 9 ms"


def test_typed_overrides_are_opt_in_and_still_guarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scenario comes from the Scenario page; typed path=value lines only behind a toggle, and they are guarded."""
    calls = _no_run(monkeypatch, "size")
    at = _page(TINY)
    assert not [t for t in at.text_area if t.key in ("sw_set", "cap_set", "sz_set", "se_set")]
    at.toggle(key="sz_ovr").set_value(True).run()
    at.text_area(key="sz_set").set_value("workload.agents=100000").run()
    _sizing_axes(at, [1, 2])
    at.button(key="sz_go").click().run()
    assert not at.exception, at.exception
    errs = " ".join(e.value for e in _tab(at, "Sizing").error)
    assert "Refused before it started" in errs and "above the limit" in errs
    assert calls == []
