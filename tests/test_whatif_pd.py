"""P/D ratio advice (``size --pd``): the split advised from one run matches the measured best."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dualpath_twin.planning.grid import PlanningError
from dualpath_twin.planning.pd_advice import advise_pd, neighbours, parse_splits
from dualpath_twin.scenario import apply_overrides, load

ROOT = Path(__file__).resolve().parents[1]
DS27B = ROOT / "scenarios/paper/ds27b-1p1d-32k.toml"


def test_parse_splits_and_neighbours() -> None:
    assert parse_splits("1:1, 2:1,1P2D") == [(1, 1), (2, 1), (1, 2)]
    for bad in ("1-1", "0:2", ""):
        with pytest.raises(PlanningError, match="--pd"):
            parse_splits(bad)
    assert neighbours(2, 2) == [(2, 2), (3, 1), (1, 3)]
    assert neighbours(1, 1) == [(1, 1)]


@pytest.fixture(scope="module")
def advice():
    sc = apply_overrides(load(DS27B), {"workload.agents": 128})
    return advise_pd(sc, [(1, 1), (2, 1), (1, 2)], measure="all")


def test_advice_matches_the_measured_best_on_the_paper_ds27b_set(advice) -> None:
    """Paper DS 27B 1P1D / 2P1D / 1P2D (128 agents): every split measured, the advice is the best per node."""
    measured = {c.label: c.measured_per_node for c in advice.candidates}
    assert set(measured) == {"1P1D", "2P1D", "1P2D"} and all(v and v > 0 for v in measured.values())
    assert advice.measured_best == max(measured, key=measured.get)
    assert advice.advised == advice.measured_best and advice.matches is True
    # the estimate for the split that was run is what it achieved
    base = next(c for c in advice.candidates if c.label == "1P1D")
    assert base.estimated_rounds_per_s == pytest.approx(base.measured_rounds_per_s, rel=1e-9)
    assert "advised" in advice.text and advice.advised in advice.text


def test_size_pd_cli_prints_the_advice_and_the_neighbours(tmp_path: Path) -> None:
    from dualpath_twin.cli import app
    from dualpath_twin.store import open_store

    db = tmp_path / "pd.duckdb"
    res = CliRunner().invoke(app, ["size", str(DS27B), "--pd", "1:1,2:1,1:2", "--set", "workload.agents=32", "--json",
                                   "--db", str(db)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["advised"] in ("1P1D", "2P1D", "1P2D")
    ran = [c for c in out["candidates"] if c["measured_per_node"] is not None]
    assert len(ran) >= 2  # the advised split and at least one neighbour measured
    # each simulated split is saved: its run id is on its candidate and the store holds it
    store = open_store(db)
    try:
        for c in ran:
            s = store.get_summary(c["run_id"])
            assert s.rounds_per_s == c["measured_rounds_per_s"]
    finally:
        store.close()
    res = CliRunner().invoke(app, ["size", str(DS27B), "--pd", "1:1,2:1", "--set", "workload.agents=8", "--db", str(db),
                                   "--no-save"])
    assert res.exit_code == 0, res.output
    assert "runs saved" not in res.output
    res = CliRunner().invoke(app, ["size", str(DS27B)])
    assert res.exit_code != 0 and "--target-aps" in res.output
