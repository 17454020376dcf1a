"""Item 3: impossible and runaway scenarios are stopped before or during the run, with a reason."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from dualpath_twin import api
from dualpath_twin import scenario as scn
from robustness.helpers import QUICK, tiny_scenario

pytestmark = pytest.mark.timeout(300)


def _trace(tmp_path: Path, big_input_tokens: int) -> str:
    p = tmp_path / "big.jsonl"
    lines = [
        {"timestamp": 0, "input_length": 1000, "output_length": 10, "hash_ids": [1, 2]},
        {"timestamp": 10, "input_length": big_input_tokens, "output_length": 10, "hash_ids": [1, 2, 3]},
    ]
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return str(p)


def _trace_sc(tmp_path: Path, tokens: int, extra: dict[str, Any] | None = None) -> scn.Scenario:
    return tiny_scenario(
        {
            "workload.kind": "trace",
            "workload.trace_path": _trace(tmp_path, tokens),
            "workload.trace_format": "mooncake",
            "workload.max_context_tokens": None,
            **(extra or {}),
        }
    )


@pytest.mark.parametrize("policy", ["basic", "layerwise", "dualpath", "oracle"])
def test_request_larger_than_decode_hbm(tmp_path: Path, policy: str) -> None:
    """1.5M tokens x 40 KB = 60 GB > 35.6 GB of decode HBM for KV: refused before the run, fields named."""
    sc = _trace_sc(tmp_path, 1_500_000)
    with pytest.raises(scn.ScenarioError) as ei:
        api.simulate(sc, policy)
    msg = str(ei.value)
    for field in ("cluster.hbm_reserved_gb", "workload.max_context_tokens", "model"):
        assert field in msg
    assert "60.02 GB" in msg and "35.60 GB" in msg


@pytest.mark.parametrize("policy, refused", [("dualpath", True), ("layerwise", True), ("basic", False), ("oracle", False)])
def test_request_larger_than_dram_buffer(tmp_path: Path, policy: str, refused: bool) -> None:
    """A 100K-token prompt (4 GB of KV) with a 1 GB DRAM buffer: the designs that stage the whole
    prompt in DRAM are refused up front; Basic (stages only the 1K-token hit) and Oracle run."""
    sc = _trace_sc(tmp_path, 100_000, {"cluster.dram_buffer_gb": 1.0})
    if refused:
        with pytest.raises(scn.ScenarioError, match="cluster.dram_buffer_gb"):
            api.simulate(sc, policy)
    else:
        res = api.simulate(sc, policy)
        assert res.summary.status == "finished" and res.summary.rounds == 2


def test_unfit_request_would_otherwise_hang(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the pre-check exists: without it the request waits forever and only the time limit ends the run."""
    sc = _trace_sc(tmp_path, 100_000, {"cluster.dram_buffer_gb": 1.0, "run.max_sim_time_s": 500.0})
    monkeypatch.setattr(api, "check_fits", lambda *a, **k: None)
    res = api.simulate(sc, "dualpath")
    assert res.summary.status == "truncated"
    assert res.summary.rounds == 1 and res.summary.rounds_total == 2
    assert "run.max_sim_time_s=500" in res.summary.status_reason


def test_cli_unfit_exits_2(runner: Any, db: Path, tmp_path: Path) -> None:
    """The CLI turns the pre-run refusal into exit 2 and records no run."""
    from dualpath_twin.cli import app

    sc_path = tmp_path / "s.toml"
    scn.save(_trace_sc(tmp_path, 1_500_000), sc_path)
    res = runner.invoke(app, ["run", str(sc_path)])
    assert res.exit_code == 2, res.output
    assert "hbm_reserved_gb" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["compare", str(sc_path), "--policies", "basic,dualpath", "-w", "2", "--no-save"])
    assert res.exit_code == 2, res.output  # the error survives the worker-process boundary intact
    assert "hbm_reserved_gb" in res.output


def test_scenario_error_pickles() -> None:
    """Worker pools pickle exceptions: ScenarioError keeps its problem lines."""
    err = scn.ScenarioError(["a.b = 1: bad"], "x.toml")
    back = pickle.loads(pickle.dumps(err))
    assert back.problems == ["a.b = 1: bad"] and str(back) == str(err)


def test_max_sim_time_truncates() -> None:
    """run.max_sim_time_s stops the run and says so."""
    res = api.simulate(tiny_scenario({"run.max_sim_time_s": 5.0}), "dualpath")
    s = res.summary
    assert s.status == "truncated"
    assert "run.max_sim_time_s=5" in s.status_reason
    assert s.rounds < s.rounds_total and s.sim_time_s <= 5.0 + 1e-9


def test_wall_budget_truncates() -> None:
    """run.wall_budget_s stops a run that would run much longer (64 agents), reporting the reason."""
    sc = tiny_scenario({"workload.agents": 64, "run.wall_budget_s": 1e-3, "run.sample_interval_s": 0.01})
    res = api.simulate(sc, "dualpath")
    s = res.summary
    assert s.status == "truncated"
    assert "run.wall_budget_s=0.001 exceeded" in s.status_reason
    assert s.rounds < s.rounds_total


def test_runaway_cut_short_via_cli(runner: Any, db: Path) -> None:
    """A run longer than run.max_sim_time_s is cut short via the CLI, reported and stored as truncated."""
    from dualpath_twin.cli import app
    from dualpath_twin.store import open_store

    res = runner.invoke(
        app,
        [
            "run", str(QUICK),
            "--set", "workload.agents=64", "--set", "workload.max_context_tokens=4096",
            "--set", "run.max_sim_time_s=20", "--json", "-q",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["status"] == "truncated" and "max_sim_time_s" in out["status_reason"]
    runs = open_store(db).list_runs()
    assert runs["status"].to_list() == ["truncated"]
