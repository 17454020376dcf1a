"""The Planning page's Sweep tab as a planner drives it: axes from widgets, human columns, the best point named."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_planning_fakes import fake_sim  # noqa: F401

APP = "from dualpath_twin.ui.planning_page import render\nrender()"


def _sweep_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("DUALPATH_TWIN_DB", str(tmp_path / "ui.duckdb"))
    at = AppTest.from_string(APP, default_timeout=60)
    at.run()
    assert not at.exception
    at.selectbox(key="sw_sc").set_value("examples/quick.toml").run()
    at.number_input(key="sw_w").set_value(1).run()  # inline: the fake simulator stays in this process
    assert not at.exception
    return at


@pytest.mark.usefixtures("fake_sim")
def test_sweep_from_widgets_names_the_best_point_with_human_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _sweep_app(tmp_path, monkeypatch)
    at.button(key="sw_go").click().run()
    assert not at.exception, at.exception
    res = at.session_state["planning_sweep"]
    assert res is not None and any(p.status in ("done", "cached") for p in res.points)
    assert all(p.reason for p in res.points if p.status == "skipped")  # e.g. 1P: the model does not fit
    # the grid is what the axis widgets selected (at least one axis, values from the multiselects)
    assert res.grid and all(len(v) >= 1 for v in res.grid.values())
    shown = " ".join(s.value for s in at.success) + " ".join(s.value for s in at.warning)
    assert "best" in shown.lower() or "closest" in shown.lower()
    frames = [d.value for d in at.dataframe]
    cols = [str(c) for f in frames for c in getattr(f, "columns", [])]
    assert cols and not [c for c in cols if "_" in c and c.islower()], cols  # no snake_case headings


@pytest.mark.usefixtures("fake_sim")
def test_an_oversized_sweep_is_refused_with_the_field_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUALPATH_TWIN_MAX_WALL_S", "0.001")
    at = _sweep_app(tmp_path, monkeypatch)
    at.button(key="sw_go").click().run()
    assert not at.exception
    errs = " ".join(e.value for e in at.error)
    assert "above the limit" in errs and "Run anyway" in errs
    assert at.session_state["planning_sweep"] is None if "planning_sweep" in at.session_state else True
