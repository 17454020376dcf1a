"""The builder offers tensor parallelism (cluster.prefill_tp_gpus / decode_tp_gpus) and the planning tabs sweep it."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dualpath_twin.scenario import load
from dualpath_twin.ui import decision

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


@pytest.fixture
def at(dashboard_app: AppTest) -> AppTest:
    """The dashboard on a fresh store (tests/conftest.py)."""
    return dashboard_app


def _load(at: AppTest, name: str) -> None:
    next(s for s in at.selectbox if s.key == "dp_src_pick").set_value(name)
    next(b for b in at.button if b.key == "dp_src_load").click().run()
    assert not at.exception, at.exception


def _field(at: AppTest, path: str):
    return next(w for w in at.number_input if (w.key or "").endswith(":" + path))


def _run_button(at: AppTest):
    return [b for b in at.button if b.key == "dp_run_from_builder"]


def test_tp_fields_are_offered_with_labels_and_help(at: AppTest) -> None:
    _load(at, "paper/qwen32b-1p2d-64k")
    for role in ("prefill", "decode"):
        w = _field(at, f"cluster.{role}_tp_gpus")
        assert w.label == f"GPUs per {role} engine (tensor parallel)"
        assert w.value == 1 and "divide GPUs per node" in w.help and "dense" in w.help
        topology = next(t for t in at.tabs if t.label == "Topology")
        assert any((x.key or "").endswith(f":cluster.{role}_tp_gpus") for x in topology.number_input)


def test_decode_tp_2_makes_the_qwen_64k_scenario_fit(at: AppTest) -> None:
    _load(at, "paper/qwen32b-1p2d-64k")
    errs = [e.value for e in at.error]
    assert any("does not fit" in e and "could never be admitted" in e and "cluster.decode_tp_gpus=2" in e for e in errs), errs
    assert [b.disabled for b in _run_button(at)] == [True]
    _field(at, "cluster.decode_tp_gpus").set_value(2).run()
    assert not at.exception
    assert [e.value for e in at.error] == []
    assert at.session_state["dp_scenario"].cluster.decode_tp_gpus == 2
    assert [b.disabled for b in _run_button(at)] == [False]
    assert "decode_tp_gpus = 2" in at.session_state["dp_scenario"].to_toml()


def test_tp_on_a_moe_model_is_refused_under_the_field(at: AppTest) -> None:
    _load(at, "paper/ds660b-2p4d-64k")
    _field(at, "cluster.decode_tp_gpus").set_value(2).run()
    topology = next(t for t in at.tabs if t.label == "Topology")
    inline = [e.value for e in topology.error]
    assert any(e.startswith("cluster.decode_tp_gpus = 2") and "dense models only" in e for e in inline), inline
    assert not _run_button(at)


def test_tp_is_a_sweep_axis_over_the_divisors_of_the_node() -> None:
    sc = load(ROOT / "scenarios/paper/qwen32b-1p2d-64k.toml")
    for role in ("prefill", "decode"):
        path = f"cluster.{role}_tp_gpus"
        assert path in decision.AXES and "TP" in decision.axis_label(path)
        assert decision.presets(sc, path) == [1, 2, 4, 8]
        assert decision.default_values(sc, path) == [1, 2]
        assert decision.parse_value(path, "2", sc) == 2


def test_a_tp_point_reads_as_words() -> None:
    assert decision.describe_point({"cluster.prefill_nodes": 1, "cluster.decode_tp_gpus": 2}, "dualpath") == (
        "1 prefill node, decode TP 2 GPUs per engine (dualpath)")
