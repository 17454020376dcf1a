"""The CLI's run-size guard: every simulating command refuses an oversized run before any work starts (exit 2)."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from dualpath_twin import api, cli
from dualpath_twin.planning import capacity as capacity_mod
from dualpath_twin.planning import sweep as sweep_mod

QUICK = "scenarios/examples/quick.toml"
HUGE = ["--set", "workload.agents=10000000"]
runner = CliRunner()


class Started(Exception):
    """Raised by the stand-in simulator: the command got past the guard."""


@pytest.fixture(autouse=True)
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def started(*_a: Any, **_k: Any) -> Any:
        raise Started

    for mod, name in ((api, "simulate"), (api, "compare"), (sweep_mod, "run_task"), (capacity_mod, "capacity_search_many")):
        monkeypatch.setattr(mod, name, started)
    monkeypatch.setattr(cli.planning, "capacity_search_many", started)
    monkeypatch.setattr(cli.planning, "run_sweep", started)
    monkeypatch.delenv("DUALPATH_TWIN_MAX_MEMORY_GB", raising=False)
    monkeypatch.delenv("DUALPATH_TWIN_MAX_WALL_S", raising=False)
    monkeypatch.delenv("DUALPATH_TWIN_SETTINGS", raising=False)


def _refused(args: list[str]) -> str:
    r = runner.invoke(cli.app, args)
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert not isinstance(r.exception, Started)
    return r.stderr


@pytest.mark.parametrize("cmd", [["run", QUICK, "--no-save"], ["compare", QUICK, "--no-save", "--policies", "basic,dualpath"]])
def test_run_and_compare_refuse_a_huge_run_naming_the_field_and_the_fix(cmd: list[str]) -> None:
    err = _refused([*cmd, *HUGE])
    assert "run refused before it started" in err and "workload.agents = 10,000,000" in err
    assert "lower workload.agents to ~" in err and "--yes" in err
    assert "dashboard" not in err  # the CLI's own override, not the dashboard's tick box


def test_yes_runs_anyway_with_a_warning() -> None:
    r = runner.invoke(cli.app, ["run", QUICK, "--no-save", "--max-wall-s", "0.001", "--yes"])
    assert isinstance(r.exception, Started)  # past the guard: the simulation was started
    assert "running anyway (--yes)" in r.stderr


def test_limits_are_options_of_the_command() -> None:
    assert isinstance(runner.invoke(cli.app, ["run", QUICK, "--no-save"]).exception, Started)  # quick fits the defaults
    err = _refused(["run", QUICK, "--no-save", "--max-wall-s", "0.001"])
    assert "above the limit of" in err and "--max-wall-s" in err


def test_sweep_refuses_when_one_grid_point_is_huge() -> None:
    err = _refused(["sweep", QUICK, "--grid", "workload.agents=8,10000000", "--no-save", "--workers", "1"])
    assert "workload.agents = 10,000,000" in err and "memory" in err


def test_capacity_size_and_sensitivity_count_their_runs_against_the_wall_limit() -> None:
    err = _refused(["capacity", QUICK, "--policy", "basic,dualpath", "--no-save", "--workers", "1", "--max-wall-s", "1"])
    # the runs of both searches from their settings (guard.plan_capacity_search), with what was assumed
    assert "capacity search: ~" in err and "Assumed: basic:" in err and "dualpath:" in err and "to tolerance 0.05" in err
    err = _refused(["size", QUICK, "--target-aps", "1", "--vary", "cluster.decode_nodes=1,2", "--workers", "1", "--max-wall-s", "1"])
    # a run per candidate at the target, then the capacity searches size() makes, from the target rate
    assert "run(s) at the target rate" in err and "from 1 agents/s (the start rate given)" in err
    assert "to tolerance 0.1" in err and "Fix: fewer grid points" in err
    err = _refused(["sensitivity", QUICK, "--param", "network.snic_gbps", "--workers", "1", "--max-wall-s", "0.01"])
    assert "3 runs: expected" in err  # offline: one run for the baseline and each move
    err = _refused(["sensitivity", QUICK, "--param", "network.snic_gbps", "--workers", "1", "--max-wall-s", "0.01",
                    "--set", "workload.mode=online"])
    # online: a capacity search for the baseline and each move (3), each planned from half the analytic ceiling
    assert "(3 search(s))" in err and "half the analytic ceiling" in err and "Fix: fewer parameters to move" in err
