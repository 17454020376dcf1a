"""Fixtures shared by the dashboard tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def dashboard_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh store file that the CLI (--db), the library and the dashboard (DUALPATH_TWIN_DB) all use; caches emptied."""
    import streamlit as st

    from dualpath_twin.ui import backend

    path = tmp_path / "dashboard.duckdb"
    monkeypatch.setenv("DUALPATH_TWIN_DB", str(path))
    st.cache_data.clear()
    st.cache_resource.clear()
    backend._STORES.clear()
    yield path
    backend._STORES.clear()


@pytest.fixture
def dashboard_app(dashboard_db: Path) -> Iterator[object]:
    """The dashboard (app.py) run once by Streamlit's AppTest on a fresh store, with no jobs left from other tests."""
    from streamlit.testing.v1 import AppTest

    from dualpath_twin.ui.jobs import REGISTRY

    REGISTRY.clear()
    app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60).run()
    assert not app.exception
    yield app
