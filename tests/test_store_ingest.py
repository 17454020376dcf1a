"""Spool ingest: an entry that cannot be ingested is set aside with its error; the others still land."""

from __future__ import annotations

import json
from pathlib import Path

from dualpath_twin.store import Store, open_store
from dualpath_twin.store.spool import write_json_atomic
from dualpath_twin.store.synthetic import synthetic_result


def test_bad_run_and_capacity_entries_are_set_aside_and_the_rest_ingested(tmp_path: Path) -> None:
    store: Store = open_store(tmp_path / "twin.duckdb")
    spool = store.spool
    # a finished run whose Parquet files are missing, and a capacity search without results
    bad_run = {"run_id": "bad-run", "kind": "finish", "status": "finished", "scenario_toml": "x = 1",
               "summary": {}, "rows": {"rounds": 1}}
    write_json_atomic(spool.done_path("bad-run"), bad_run)
    bad_cap = {"search_id": "cap-bad", "scenario_hash": "h", "name": "n"}
    write_json_atomic(spool.capacity_path("cap-bad"), bad_cap)
    good = store.save_run(synthetic_result("basic", seed=1, n_rounds=10, n_samples=5))  # ingests the spool too

    assert store.list_runs()["run_id"].to_list() == [good]
    assert store.list_capacity_searches().is_empty()
    for eid, rec in (("bad-run", bad_run), ("cap-bad", bad_cap)):
        aside = json.loads((spool.root / f"{eid}.rejected.json").read_text())
        assert aside["rejected_error"] and {k: aside[k] for k in rec} == rec
    assert not spool.done_path("bad-run").exists() and not spool.capacity_path("cap-bad").exists()
    assert "KeyError" in json.loads((spool.root / "cap-bad.rejected.json").read_text())["rejected_error"]
    # set aside once: the next housekeeping has nothing left to reject
    assert store._housekeep(budget_s=5.0) == []
