"""The builder's What-ifs tab: faults and the DRAM cache tier edited with widgets, carried into the scenario."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def at(dashboard_app: AppTest) -> AppTest:
    """The dashboard on a fresh store (tests/conftest.py)."""
    return dashboard_app


def _w(widgets, prefix: str):
    return next(w for w in widgets if (w.key or "").startswith(prefix))


def _tab(at: AppTest):
    return next(t for t in at.tabs if t.label == "What-ifs")


def _add(at: AppTest, kind: str, node: str, start: float, end: float, **params) -> AppTest:
    _w(at.selectbox, "dp_w_kind_").set_value(kind).run()
    _w(at.selectbox, "dp_w_node_").set_value(node)
    _w(at.number_input, "dp_w_start_").set_value(start)
    _w(at.number_input, "dp_w_end_").set_value(end)
    for prefix, v in params.items():
        _w(at.number_input, f"dp_w_{prefix}_").set_value(v)
    _w(at.button, "dp_w_add_").click().run()
    assert not at.exception, at.exception
    return at


def test_the_quick_scenario_starts_healthy_and_without_a_cache(at: AppTest) -> None:
    sc = at.session_state["dp_scenario"]
    assert sc.faults == [] and sc.cache is None
    assert any("No faults" in c.value for c in _tab(at).caption)


def test_an_added_fault_goes_into_the_scenario_and_can_be_removed(at: AppTest) -> None:
    _add(at, "snic_degraded", "P1", 30.0, 90.0, rate=0.25)
    (f,) = at.session_state["dp_scenario"].faults
    assert (f.kind, f.node, f.start_s, f.end_s, f.rate_factor) == ("snic_degraded", "P1", 30.0, 90.0, 0.25)
    shown = _tab(at).dataframe[0].value
    assert list(shown["kind"]) == ["snic_degraded"] and "rate_factor = 0.25" in shown["details"][0]
    assert "[[faults]]" in at.session_state["dp_scenario"].to_toml()
    _w(at.button, "dp_w_drop_").click().run()
    assert at.session_state["dp_scenario"].faults == []


def test_a_permanent_loss_of_the_only_decode_group_is_refused_on_the_tab(at: AppTest) -> None:
    _add(at, "node_lost", "D1", 50.0, 0.0)  # quick: the four decode nodes are one EP group; 0 = never repaired
    errs = [e.value for e in at.error]
    assert any("faults[0]" in e and "no decode engine" in e and "set end_s" in e for e in errs), errs
    assert any("What-ifs" in e and "1 problem(s)" in e for e in errs), errs
    assert any("faults[0]" in e.value for e in _tab(at).error)  # inline, on the tab
    assert at.session_state["dp_scenario"].faults == []  # the last valid scenario is kept
    assert not [b for b in at.button if b.key == "dp_run_from_builder"]


def test_the_cache_tier_is_set_from_the_tab(at: AppTest) -> None:
    _w(at.checkbox, "dp_w_cache_").check().run()
    assert at.session_state["dp_scenario"].cache.capacity_gb is None  # 0 = unbounded
    _w(at.number_input, "dp_w_cap_").set_value(50.0).run()
    _w(at.selectbox, "dp_w_scope_").set_value("per_node").run()
    c = at.session_state["dp_scenario"].cache
    assert (c.capacity_gb, c.scope) == (50.0, "per_node")
    _w(at.checkbox, "dp_w_cache_").uncheck().run()
    assert at.session_state["dp_scenario"].cache is None


def test_a_loaded_scenario_brings_its_faults_into_the_tab(at: AppTest) -> None:
    label = next(o for o in at.selectbox(key="dp_src_pick").options if "whatif-faults" in o)
    at.selectbox(key="dp_src_pick").set_value(label)
    at.button(key="dp_src_load").click().run()
    assert not at.exception
    shown = _tab(at).dataframe[0].value
    assert list(shown["kind"]) == ["snic_down"] and list(shown["node"]) == ["P0"]
    assert [f.kind for f in at.session_state["dp_scenario"].faults] == ["snic_down"]
