"""Sweeps: cartesian product, invalid points, resumability (memory and DuckDB store), executors agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_planning_fakes import fake_sim  # noqa: F401

from dualpath_twin.planning.executors import InlineExecutor, open_executor
from dualpath_twin.planning.grid import PlanningError
from dualpath_twin.planning.sweep import MemoryStore, SweepProgress, run_sweep, sweep_id_for
from dualpath_twin.scenario import Scenario

GRID = {"cluster.prefill_nodes": [1, 2], "network.snic_gbps": [200, 400]}
SC = Scenario(name="t", model={"name": "DS-27B"}, workload={"agents": 8, "mode": "online", "arrival_rate_aps": 0.2})


def _comparable(res) -> list[tuple]:
    return [(p.key, p.status, p.summary.model_dump(exclude={"wall_s"}) if p.summary else None) for p in res.points]


@pytest.mark.usefixtures("fake_sim")
def test_sweep_runs_every_point_and_resumes() -> None:
    store = MemoryStore()
    seen: list[SweepProgress] = []
    res = run_sweep(SC, GRID, ["basic", "dualpath"], store=store, progress=seen.append)
    assert len(res.points) == 8 and res.new_runs == 8
    assert {p.status for p in res.points} == {"done"}
    assert seen[-1].done == seen[-1].total == 8
    df = res.to_frame()
    assert df.height == 8 and {"cluster.prefill_nodes", "network.snic_gbps", "policy", "ttft_p90_s"} <= set(df.columns)
    again = run_sweep(SC, GRID, ["basic", "dualpath"], store=store)
    assert again.sweep_id == res.sweep_id and again.new_runs == 0
    assert {p.status for p in again.points} == {"cached"}
    assert [p.summary for p in again.points] == [p.summary for p in res.points]
    # a different grid is a different sweep
    assert sweep_id_for(SC, {"cluster.prefill_nodes": [1]}, ["basic"]) != sweep_id_for(SC, GRID, ["basic"])


@pytest.mark.usefixtures("fake_sim")
def test_invalid_points_are_skipped_with_reason() -> None:
    res = run_sweep(SC, {"cluster.prefill_nodes": [0, 1]}, ["basic"])
    skipped = [p for p in res.points if p.status == "skipped"]
    assert len(skipped) == 1 and "cluster.prefill_nodes" in skipped[0].reason
    assert [p.status for p in res.points] == ["skipped", "done"]
    # the catalog check (weights must fit in the EP group's HBM) also skips, with its own reason
    big = run_sweep(SC.model_copy(update={"model": SC.model.model_copy(update={"name": "DeepSeek-V3.2"})}),
                    {"cluster.prefill_nodes": [1]}, ["basic"])
    assert big.points[0].status == "skipped" and "weights" in big.points[0].reason
    with pytest.raises(PlanningError, match="unknown"):
        run_sweep(SC, GRID, ["fastest"])


@pytest.mark.usefixtures("fake_sim")
def test_resume_through_duckdb_store(tmp_path: Path) -> None:
    from dualpath_twin.planning.storeio import open_sweep_store

    store = open_sweep_store(tmp_path / "t.duckdb")
    first = run_sweep(SC, GRID, ["basic"], store=store)
    assert first.new_runs == 4 and all(p.run_id for p in first.points)
    store.close()
    store = open_sweep_store(tmp_path / "t.duckdb")
    second = run_sweep(SC, GRID, ["basic"], store=store)
    assert second.sweep_id == first.sweep_id and second.new_runs == 0
    assert [p.summary.ttft_s.p90 for p in second.points] == [p.summary.ttft_s.p90 for p in first.points]
    runs = store.store.sweep_runs(first.sweep_id)
    assert runs.height == 4
    store.close()


@pytest.mark.usefixtures("fake_sim")
def test_dask_in_process_cluster_matches_inline() -> None:
    from dask.distributed import Client, LocalCluster

    inline = run_sweep(SC, GRID, ["basic", "dualpath"], executor=InlineExecutor())
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cl, Client(cl) as client:
        dask_res = run_sweep(SC, GRID, ["basic", "dualpath"], executor=client.get_executor())
    assert _comparable(dask_res) == _comparable(inline)


def _tiny() -> Scenario:
    return Scenario(
        name="tiny",
        model={"name": "DS-27B"},
        cluster={"prefill_nodes": 1, "decode_nodes": 1, "gpus_per_node": 2},
        network={"cnics_per_node": 2},
        workload={"agents": 8, "dataset": "paper-32k", "max_context_tokens": 4096},
        run={"max_sim_time_s": 600},
    )


def _real_sim_available() -> bool:
    from dualpath_twin import api

    try:
        api.simulate(Scenario(workload={"agents": 1}, run={"max_sim_time_s": 1}))
    except NotImplementedError:
        return False
    return True


@pytest.mark.slow
def test_real_sweep_local_pool_and_dask_cluster_agree(tmp_path: Path) -> None:
    """The done-when check: a 2-D sweep gives identical summaries on a process pool and a Dask LocalCluster."""
    if not _real_sim_available():
        pytest.skip("simulation core not available yet")
    from dask.distributed import LocalCluster

    grid = {"cluster.prefill_nodes": [1, 2], "network.snic_gbps": [200, 400]}
    with open_executor("local", workers=2) as ex:
        local = run_sweep(_tiny(), grid, ["basic"], executor=ex)
    # a threads-only cluster keeps CI fast; the executor path (Client.get_executor) is the same as remote
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cl:
        with open_executor("dask", address=cl.scheduler_address) as ex:
            dask_res = run_sweep(_tiny(), grid, ["basic"], executor=ex)
    assert all(p.status == "done" for p in local.points), [p.reason for p in local.points]
    assert _comparable(dask_res) == _comparable(local)
