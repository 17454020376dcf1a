"""Fixtures of the robustness suite: an isolated result store and the CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private result store for the test (also exported for the CLI)."""
    path = tmp_path / "twin.duckdb"
    monkeypatch.setenv("DUALPATH_TWIN_DB", str(path))
    monkeypatch.delenv("DUALPATH_TWIN_STORE_PAUSE_AT", raising=False)
    return path


@pytest.fixture
def runner() -> CliRunner:
    """typer's in-process CLI runner."""
    return CliRunner()
