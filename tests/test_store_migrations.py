"""Schema migrations: an old (v1) file is upgraded on open and its runs stay readable."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from robustness.helpers import V1_DDL

from dualpath_twin.results import RunSummary
from dualpath_twin.store import SCHEMA_VERSION, StoreError, open_store


def _make_v1(path: Path) -> RunSummary:
    summary = RunSummary(
        policy="basic", seed=4, scenario_name="old", jct_s=123.0, generated_tokens_per_s=999.0
    )
    with duckdb.connect(str(path)) as con:
        for q in V1_DDL:
            con.sql(q)
        con.sql("insert into schema_version values (1, $t)", params={"t": datetime(2026, 1, 1)})
        con.sql(
            "insert into scenarios values ('h1', 'old', 'name = \"old\"', $t)",
            params={"t": datetime(2026, 1, 1)},
        )
        con.sql(
            "insert into runs values ('260101-000000-0000abc', 'h1', 'basic', 4, 'finished', $t)",
            params={"t": datetime(2026, 1, 1)},
        )
        con.sql(
            "insert into summaries values ('260101-000000-0000abc', $j)",
            params={"j": summary.model_dump_json()},
        )
        con.sql(
            "insert into timeseries values ('260101-000000-0000abc', 0.0, 'gen_tokens_per_s', 'cluster', 'cluster', 5.0)"
        )
    return summary


def test_v1_file_is_migrated_on_open(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    summary = _make_v1(db)
    store = open_store(db)
    with duckdb.connect(str(db), read_only=True) as con:
        versions = [r[0] for r in con.sql("select version from schema_version order by version").fetchall()]
        tables = {r[0] for r in con.sql("select table_name from information_schema.tables").fetchall()}
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    assert {"sweeps", "sweep_runs", "capacity_searches", "capacity_results"} <= tables
    row = store.list_runs().row(0, named=True)
    # v2 columns were back-filled from the v1 data
    assert row["scenario_name"] == "old"
    assert row["jct_s"] == 123.0 and row["generated_tokens_per_s"] == 999.0
    assert row["error"] == ""
    assert store.get_summary("260101") == summary
    assert store.get_scenario_toml("260101-000000-0000abc") == 'name = "old"'
    assert store.get_timeseries("260101")["value"].to_list() == [5.0]
    # the migrated file takes new runs
    from dualpath_twin.store.synthetic import synthetic_result

    store.save_run(synthetic_result("dualpath", n_rounds=3, n_samples=2))
    assert store.list_runs().height == 2
    sid = store.save_capacity_search("c", 'name = "old"', "old", {}, [{"policy": "basic", "capacity_aps": 1.5}])
    assert store.get_capacity_search(sid)["results"] == [{"policy": "basic", "capacity_aps": 1.5}]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"
    open_store(db)
    with duckdb.connect(str(db)) as con:
        con.sql("insert into schema_version values (99, $t)", params={"t": datetime(2030, 1, 1)})
    with pytest.raises(StoreError, match="newer than this code"):
        open_store(db)


def test_directory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        open_store(tmp_path)
