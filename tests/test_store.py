"""Result store: round trips, queries, SQL downsampling, sweeps, export, gc, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from dualpath_twin.store import (
    SCHEMA_VERSION,
    Store,
    StoreError,
    default_db_path,
    downsample_frame,
    open_store,
    point_key,
)
from dualpath_twin.store.synthetic import synthetic_result, synthetic_timeseries


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return open_store(tmp_path / "twin.duckdb")


def test_save_and_read_back_round_trip(store: Store) -> None:
    res = synthetic_result("dualpath", seed=3, n_rounds=50, n_samples=20)
    rid = store.save_run(res)
    runs = store.list_runs()
    assert runs["run_id"].to_list() == [rid]
    row = runs.row(0, named=True)
    assert row["status"] == "finished" and row["policy"] == "dualpath" and row["seed"] == 3
    assert row["scenario_name"] == "synthetic"
    assert row["generated_tokens_per_s"] == pytest.approx(res.summary.generated_tokens_per_s)
    assert row["ttft_p99_s"] == pytest.approx(res.summary.ttft_s.p99)
    assert store.get_summary(rid) == res.summary
    rounds = store.get_rounds(rid)
    assert rounds.equals(res.rounds.select(rounds.columns))
    ts = store.get_timeseries(rid, max_points=None)
    assert ts.height == res.timeseries.height
    assert store.get_scenario_toml(rid) == res.scenario_toml
    # everything was ingested: the spool holds nothing
    assert list(store.spool.root.iterdir()) == []


def test_list_runs_filters(store: Store) -> None:
    a = store.save_run(synthetic_result("basic", n_rounds=10, n_samples=5, scenario_name="s1"))
    b = store.save_run(synthetic_result("dualpath", n_rounds=10, n_samples=5, scenario_name="s2"))
    c = store.save_run(
        synthetic_result("dualpath", n_rounds=10, n_samples=5, scenario_name="s1", status="truncated")
    )
    assert store.list_runs()["run_id"].to_list() == [c, b, a]  # newest first
    assert set(store.list_runs(policy="dualpath")["run_id"]) == {b, c}
    assert set(store.list_runs(scenario="s1")["run_id"]) == {a, c}
    assert store.list_runs(status="truncated")["run_id"].to_list() == [c]
    assert store.list_runs(since=datetime.now(UTC) + timedelta(hours=1)).is_empty()
    assert store.list_runs(since=datetime.now(UTC) - timedelta(hours=1)).height == 3
    h = store.list_runs().filter(pl.col("run_id") == a)["scenario_hash"][0]
    assert store.list_runs(scenario=h)["run_id"].to_list() == [a]  # the TOML differs by policy


def test_run_ids_sortable_and_prefix_resolution(store: Store) -> None:
    ids = [store.save_run(synthetic_result("basic", n_rounds=5, n_samples=3)) for _ in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert store.resolve_run_id(ids[1]) == ids[1]
    with pytest.raises(StoreError, match="ambiguous"):
        store.resolve_run_id(ids[0][:6])  # same day: all three match
    with pytest.raises(StoreError, match="no run id starts with 'zz'"):
        store.resolve_run_id("zz")
    with pytest.raises(StoreError, match="no run id"):
        store.get_summary("nope")


def test_get_timeseries_downsamples_in_sql(store: Store) -> None:
    res = synthetic_result(
        "dualpath", n_rounds=10, n_samples=100, prefill_nodes=1, decode_nodes=1, cnics_per_node=2
    )
    rid = store.save_run(res)
    ds = store.get_timeseries(rid, metrics=["gen_tokens_per_s", "snic_rx_util"], max_points=10)
    assert set(ds["metric"]) == {"gen_tokens_per_s", "snic_rx_util"}
    per_series = ds.group_by("metric", "entity").len()
    assert per_series["len"].max() == 10
    # reference: t = 0..99 s, 10 equal buckets of 10 samples, mean per bucket
    ref = (
        res.timeseries.filter(pl.col("metric") == "gen_tokens_per_s")
        .with_columns(b=(pl.col("t_s") // 10))
        .group_by("b")
        .agg(pl.col("t_s").mean(), pl.col("value").mean())
        .sort("t_s")
    )
    got = ds.filter(pl.col("metric") == "gen_tokens_per_s").sort("t_s")
    assert got["t_s"].to_list() == pytest.approx(ref["t_s"].to_list())
    assert got["value"].to_list() == pytest.approx(ref["value"].to_list())
    # fewer samples than max_points: raw rows come back
    assert store.get_timeseries(rid, metrics=["gen_tokens_per_s"], max_points=5000).height == 100
    with pytest.raises(StoreError, match="max_points"):
        store.get_timeseries(rid, max_points=0)
    # the in-memory variant uses the same SQL
    mem = downsample_frame(res.timeseries.filter(pl.col("metric") == "gen_tokens_per_s"), 10).sort("t_s")
    assert mem["value"].to_list() == pytest.approx(ref["value"].to_list())


def test_begin_finish_and_mark(store: Store) -> None:
    rid = store.begin_run('name = "x"\n', "x", "basic", 7)
    assert store.list_runs(status="running")["run_id"].to_list() == [rid]
    with pytest.raises(StoreError, match="running and has no results"):
        store.get_summary(rid)
    store.finish_run(rid, synthetic_result("basic", seed=7, n_rounds=12, n_samples=4))
    row = store.list_runs().row(0, named=True)
    assert row["status"] == "finished" and row["scenario_name"] == "x"
    assert store.get_rounds(rid).height == 12
    assert store.get_scenario_toml(rid) == 'name = "x"\n'
    with pytest.raises(StoreError, match="already finished"):
        store.finish_run(rid, synthetic_result("basic"))

    r2 = store.begin_run('name = "y"\n', "y", "dualpath", 0)
    store.mark_run(r2, "cancelled", "stopped by the user")
    row = store.list_runs(status="cancelled").row(0, named=True)
    assert row["run_id"] == r2 and row["error"] == "stopped by the user"
    with pytest.raises(StoreError, match="not one of"):
        store.mark_run(r2, "exploded")
    with pytest.raises(StoreError, match="unknown run id"):
        store.mark_run("999999-000000-0000000", "failed")


def test_bad_status_and_read_only(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="use mark_run"):
        store.save_run(synthetic_result("basic", n_rounds=5, n_samples=2, status="failed"))
    store.save_run(synthetic_result("basic", n_rounds=5, n_samples=2))
    ro = open_store(tmp_path / "twin.duckdb", read_only=True)
    assert ro.list_runs().height == 1
    with pytest.raises(StoreError, match="read-only"):
        ro.save_run(synthetic_result("basic", n_rounds=5, n_samples=2))
    ro.close()
    with pytest.raises(StoreError, match="closed"):
        ro.list_runs()


def test_new_round_columns_are_added(store: Store) -> None:
    res = synthetic_result("basic", n_rounds=5, n_samples=2)
    res.rounds = res.rounds.with_columns(pl.lit(1.5).alias("extra_metric_s"))
    rid = store.save_run(res)
    assert store.get_rounds(rid)["extra_metric_s"].to_list() == [1.5] * 5


def test_sweeps_and_resume(store: Store) -> None:
    sid = store.create_sweep("grid", json.dumps({"policy.name": ["basic", "dualpath"]}))
    p1 = {"policy.name": "basic", "cluster.prefill_nodes": 2}
    p2 = {"policy.name": "dualpath", "cluster.prefill_nodes": 2}
    r1 = store.save_run(synthetic_result("basic", n_rounds=5, n_samples=2), sweep_id=sid, point=p1)
    assert (
        store.find_finished_point(sid, point_key({"cluster.prefill_nodes": 2, "policy.name": "basic"})) == r1
    )
    assert store.find_finished_point(sid, point_key(p2)) is None
    r2 = store.save_run(synthetic_result("dualpath", n_rounds=5, n_samples=2), sweep_id=sid, point=p2)
    df = store.sweep_runs(sid)
    assert df["run_id"].to_list() == [r1, r2]
    assert df["policy.name"].to_list() == ["basic", "dualpath"]
    assert df["cluster.prefill_nodes"].to_list() == [2, 2]
    assert store.list_runs(sweep_id=sid).height == 2
    assert store.find_sweep(sid) == sid
    sid2 = store.create_sweep("planned", json.dumps({"planning_key": "abc123"}))
    assert store.find_sweep("abc123") == sid2 and store.find_sweep("zzz") is None
    sw = store.list_sweeps()
    assert sw["sweep_id"].to_list() == [sid2, sid] and sw["finished"].to_list() == [0, 2]
    with pytest.raises(StoreError, match="unknown sweep"):
        store.sweep_runs("sw-nope")
    with pytest.raises(StoreError, match="not valid JSON"):
        store.create_sweep("bad", "{nope")


def test_export_and_gc(store: Store, tmp_path: Path) -> None:
    res = synthetic_result("oracle", n_rounds=8, n_samples=6)
    rid = store.save_run(res)
    for fmt in ("parquet", "csv"):
        paths = store.export_run(rid, fmt, tmp_path / f"exp-{fmt}")
        names = sorted(p.name for p in paths)
        assert names == sorted(["summary.json", "scenario.toml", f"rounds.{fmt}", f"timeseries.{fmt}"])
        back = pl.read_parquet(paths[2]) if fmt == "parquet" else pl.read_csv(paths[2])
        assert back.height == 8
    with pytest.raises(StoreError, match="'xlsx'"):
        store.export_run(rid, "xlsx", tmp_path / "x")  # type: ignore[arg-type]

    bad = store.begin_run("", "y", "basic", 0)
    store.mark_run(bad, "failed", "boom")
    assert store.gc(older_than_days=1) == 0  # too young
    assert store.gc() == 1  # failed/cancelled of any age
    assert store.list_runs()["run_id"].to_list() == [rid]
    assert store.gc(statuses=["finished"]) == 1
    assert store.list_runs().is_empty()
    with duckdb.connect(str(store.path), read_only=True) as con:
        assert con.sql("select count(*) from timeseries").fetchall()[0][0] == 0
        assert con.sql("select count(*) from scenarios").fetchall()[0][0] == 0
    with pytest.raises(StoreError, match="unknown status"):
        store.gc(statuses=["nope"])


def test_default_db_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DUALPATH_TWIN_DB", str(tmp_path / "x.duckdb"))
    assert default_db_path() == tmp_path / "x.duckdb"
    monkeypatch.delenv("DUALPATH_TWIN_DB")
    p = default_db_path()
    assert p.name == "twin.duckdb" and p.parent.name == "data"


def test_schema_version_recorded(store: Store) -> None:
    with duckdb.connect(str(store.path), read_only=True) as con:
        assert con.sql("select max(version) from schema_version").fetchall()[0][0] == SCHEMA_VERSION


def test_large_timeseries_round_trip(store: Store) -> None:
    # 100K time-series rows go through Parquet and one INSERT ... SELECT
    res = synthetic_result("basic", n_rounds=20, n_samples=1)
    res.timeseries = synthetic_timeseries(720, seed=1)  # 720 samples x 139 series = 100K rows
    assert res.timeseries.height > 100_000
    rid = store.save_run(res)
    assert store.get_timeseries(rid, max_points=None).height == res.timeseries.height


def _cap(policy: str, cap: float) -> dict:
    return {"policy": policy, "capacity_aps": cap, "lo_aps": cap, "hi_aps": cap * 1.1, "tolerance": 0.1,
            "converged": True, "evaluations": 2, "curve": [{"aps": cap, "meets": True}, {"aps": cap * 1.1, "meets": False}]}


def test_capacity_searches_round_trip(store: Store) -> None:
    toml = 'name = "online"\n'
    a = store.save_capacity_search("first", toml, "online", {"tolerance": 0.1}, [_cap("dualpath", 2.5), _cap("basic", 1.25)])
    b = store.save_capacity_search("second", toml, "online", {}, [_cap("basic", 3.0)])
    df = store.list_capacity_searches()
    assert df["search_id"].to_list() == [b, a]  # newest first
    assert df["policies"].to_list() == [["basic"], ["dualpath", "basic"]]  # in the order given
    assert df["capacity_aps"].to_list() == [[3.0], [2.5, 1.25]]
    rec = store.get_capacity_search(a[:-3])  # a unique prefix works
    assert rec["search_id"] == a and rec["name"] == "first" and rec["scenario_toml"] == toml
    assert rec["spec"] == {"tolerance": 0.1}
    assert rec["results"] == [_cap("dualpath", 2.5), _cap("basic", 1.25)]  # curve included, exactly
    assert list(store.spool.root.iterdir()) == []
    with pytest.raises(StoreError, match="ambiguous"):
        store.get_capacity_search("cap-")
    with pytest.raises(StoreError, match="no capacity search"):
        store.get_capacity_search("cap-nope")
    with pytest.raises(StoreError, match="'policy'"):
        store.save_capacity_search("bad", toml, "online", {}, [{"capacity_aps": 1.0}])
    # gc removes runs, not the scenario a capacity search refers to
    store.gc(statuses=["finished"])
    assert store.get_capacity_search(a)["scenario_toml"] == toml


def test_capacity_search_waits_in_the_spool_while_the_db_is_locked(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from dualpath_twin.store import StoreLocked

    def locked(*_a: object, **_k: object) -> None:
        raise StoreLocked("held by another process")

    with monkeypatch.context() as m:
        m.setattr(store, "_housekeep", locked)
        with pytest.warns(UserWarning, match="saved in the spool"):
            sid = store.save_capacity_search("x", "", "online", {}, [_cap("basic", 1.0)])
        assert store.spool.capacity_ids() == [sid]
        # readable while pending
        assert store.list_capacity_searches()["search_id"].to_list() == [sid]
        assert store.get_capacity_search(sid)["results"] == [_cap("basic", 1.0)]
    # the next reader with the lock ingests it
    assert store.list_capacity_searches()["capacity_aps"].to_list() == [[1.0]]
    assert store.spool.capacity_ids() == []
    with duckdb.connect(str(store.path), read_only=True) as con:
        assert con.sql("select count(*) from capacity_results").fetchall()[0][0] == 1
