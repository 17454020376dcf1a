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
