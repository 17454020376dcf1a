"""Item 5: invariants hold for every policy on tiny scenarios, and --check-invariants reports them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dualpath_twin import api, cli
from dualpath_twin.results import RunResult
from robustness.helpers import QUICK, set_args, tiny_scenario

pytestmark = pytest.mark.timeout(300)

SCENARIOS = {
    "offline": {},
    "online": {"workload.mode": "online", "workload.arrival_rate_aps": 2.0, "workload.agents": 6},
    "tight-dram": {"cluster.dram_buffer_gb": 1.0, "workload.agents": 8},
    "1p1d-27b": {"model.name": "DS-27B", "cluster.prefill_nodes": 1, "cluster.decode_nodes": 1, "workload.agents": 6},
    "truncated": {"run.max_sim_time_s": 10.0},
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("policy", ["basic", "layerwise", "dualpath", "oracle"])
def test_invariants_hold(name: str, policy: str) -> None:
    """bytes read = hit bytes, no round lost or duplicated, links and memory within capacity, time monotone."""
    res = api.simulate(tiny_scenario(SCENARIOS[name]), policy, check_invariants=True)
    assert res.invariants == [], res.invariants
    assert res.summary.rounds > 0


def _violating(sc: Any, policy: str | None = None, **kw: Any) -> RunResult:
    res = _REAL(sc, policy, **kw)
    res.invariants = ["links above capacity: N0.snic_rx 1.2000"]
    return res


_REAL = api.simulate


def test_cli_check_invariants_run_and_compare(runner: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` and `compare` accept --check-invariants: exit 0 when they hold, 1 with the violation listed."""
    args = set_args()
    res = runner.invoke(cli.app, ["run", str(QUICK), *args, "--no-save", "--check-invariants", "--json", "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["invariants"] == [] and "invariants: all held" in res.stderr
    res = runner.invoke(
        cli.app, ["compare", str(QUICK), *args, "--no-save", "--check-invariants", "--json", "-w", "1", "--policies", "basic,dualpath"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["invariants"] == {"basic": [], "dualpath": []}
    monkeypatch.setattr(api, "simulate", _violating)
    for cmd in (["run"], ["compare", "-w", "1", "--policies", "basic,dualpath"]):
        res = runner.invoke(cli.app, [*cmd, str(QUICK), *args, "--no-save", "--check-invariants", "-q"])
        assert res.exit_code == 1, res.output
        assert "invariant violated" in res.stderr and "N0.snic_rx" in res.stderr


def test_check_detects_broken_conservation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The checker is not vacuous: tampering with the recorded bytes of a finished run is caught."""
    import polars as pl

    from dualpath_twin.sim import invariants

    seen: list[list[str]] = []
    real = invariants.check_run

    def tamper(world: Any, rounds: pl.DataFrame, ts: pl.DataFrame) -> list[str]:
        bad = rounds.with_columns(pl.col("bytes_read_pe_snic") + 1e6)
        dup = pl.concat([bad, bad.head(1)])
        out = real(world, dup, ts)
        seen.append(out)
        return out

    monkeypatch.setattr(invariants, "check_run", tamper)
    res = api.simulate(tiny_scenario(), "basic", check_invariants=True)
    assert any("bytes read differ" in v for v in res.invariants)
    assert any("duplicated rounds" in v for v in res.invariants)
