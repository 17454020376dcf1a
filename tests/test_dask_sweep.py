"""Lost workers during a sweep: a worker process that dies mid-sweep has its point retried, on Dask and locally.

The fake simulator (tests/test_planning_fakes.py) is installed in every worker process (a Dask
WorkerPlugin, which a restarted worker gets again; a pool initializer locally). On one chosen
point it kills its own process (os._exit) the first time only, using a marker file.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest
from distributed.diagnostics.plugin import WorkerPlugin
from test_planning_fakes import fake_simulate

from dualpath_twin import api
from dualpath_twin.planning.executors import LocalProcessPool, open_executor
from dualpath_twin.planning.storeio import open_sweep_store
from dualpath_twin.planning.sweep import run_sweep
from dualpath_twin.scenario import Scenario

GRID = {"cluster.prefill_nodes": [1, 2], "network.snic_gbps": [200, 400]}
POLICIES = ["basic", "dualpath"]
SC = Scenario(name="lost-worker", model={"name": "DS-27B"}, workload={"agents": 8, "mode": "online", "arrival_rate_aps": 0.2})
KILLED = {"cluster.prefill_nodes": 2, "network.snic_gbps": 200, "policy": "basic"}  # the 5th of 8 points


def _killing_simulate(marker: str, scenario: Scenario, policy: str | None = None, **kw: object) -> Any:
    """The fake simulator, except that the KILLED point kills this process the first time it runs."""
    pol = policy or scenario.policy.name
    if (scenario.cluster.prefill_nodes, scenario.network.snic_gbps, pol) == tuple(KILLED.values()):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            os._exit(17)  # the worker dies mid-task, as if OOM-killed or preempted
    time.sleep(0.1)  # keep the other worker busy meanwhile
    return fake_simulate(scenario, policy, **kw)


def _install(marker: str) -> None:
    """Replace api.simulate in this (worker) process."""
    api.simulate = functools.partial(_killing_simulate, marker)


class _FakeSim(WorkerPlugin):
    """Installs the killing fake on every worker, including the one the nanny restarts."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def setup(self, worker: Any) -> None:
        _install(self.marker)


def _comparable(res: Any) -> list[tuple]:
    return [(p.key, p.status, p.summary.model_dump(exclude={"wall_s"}) if p.summary else None) for p in res.points]


def _undisturbed(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(api, "simulate", fake_simulate)
    res = run_sweep(SC, GRID, POLICIES)
    monkeypatch.undo()
    return res


def _stored_once(store: Any, sweep_id: str, n: int) -> None:
    runs = store.store.sweep_runs(sweep_id)
    assert runs.height == n and runs["point_key"].n_unique() == n
    assert store.store.list_runs().height == n


def _is_killed(p: Any) -> bool:
    return all(p.point[k] == v for k, v in KILLED.items() if k != "policy") and p.policy == KILLED["policy"]


def _dask_sweep(tmp_path: Path, retries: int) -> tuple[Any, Any, Path]:
    from distributed import default_client

    marker = tmp_path / "killed"
    store = open_sweep_store(tmp_path / "t.duckdb")
    with open_executor("dask", workers=2, retries=retries) as ex:
        default_client().register_plugin(_FakeSim(str(marker)))
        res = run_sweep(SC, GRID, POLICIES, executor=ex, store=store, retries=retries)
    return res, store, marker


def test_dask_worker_killed_mid_sweep_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _undisturbed(monkeypatch)
    res, store, marker = _dask_sweep(tmp_path, retries=2)
    try:
        assert marker.exists()  # a worker did die on the KILLED point
        assert [p.status for p in res.points] == ["done"] * 8, [p.reason for p in res.points]
        assert _comparable(res) == _comparable(expected)
        _stored_once(store, res.sweep_id, 8)
        # resuming finds all 8 stored: nothing is recomputed
        again = run_sweep(SC, GRID, POLICIES, store=store)
        assert again.new_runs == 0 and {p.status for p in again.points} == {"cached"}
    finally:
        store.close()


def test_dask_without_retries_loses_the_point(tmp_path: Path) -> None:
    """The control: with retries=0 the killed point fails (KilledWorker); what finished is still stored once."""
    res, store, marker = _dask_sweep(tmp_path, retries=0)
    try:
        assert marker.exists()
        killed = next(p for p in res.points if _is_killed(p))
        assert killed.status == "failed" and "KilledWorker" in killed.reason
        done = [p for p in res.points if p.status == "done"]
        assert all(p.status in ("done", "failed") for p in res.points) and len(done) >= 4
        _stored_once(store, res.sweep_id, len(done))
    finally:
        store.close()


def _local_sweep(tmp_path: Path, retries: int) -> tuple[Any, Any, LocalProcessPool, Path]:
    marker = tmp_path / "killed"
    store = open_sweep_store(tmp_path / "t.duckdb")
    pool = LocalProcessPool(2, multiprocessing.get_context("forkserver"), initializer=_install, initargs=(str(marker),))
    try:
        res = run_sweep(SC, GRID, POLICIES, executor=pool, store=store, retries=retries)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return res, store, pool, marker


def test_local_pool_broken_by_a_dead_worker_is_renewed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _undisturbed(monkeypatch)
    res, store, pool, marker = _local_sweep(tmp_path, retries=2)
    try:
        assert marker.exists() and pool.renewals == 1
        assert [p.status for p in res.points] == ["done"] * 8, [p.reason for p in res.points]
        assert _comparable(res) == _comparable(expected)
        _stored_once(store, res.sweep_id, 8)
    finally:
        store.close()


def test_local_pool_without_retries_fails_the_unfinished_points(tmp_path: Path) -> None:
    res, store, _pool, marker = _local_sweep(tmp_path, retries=0)
    try:
        assert marker.exists()
        killed = next(p for p in res.points if _is_killed(p))
        assert killed.status == "failed" and "BrokenProcessPool" in killed.reason
        done = [p for p in res.points if p.status == "done"]
        assert len(done) < 8
        _stored_once(store, res.sweep_id, len(done))
    finally:
        store.close()
