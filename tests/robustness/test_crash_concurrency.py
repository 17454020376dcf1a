"""Item 4: kill -9 during a run, a sweep and a store write; concurrent sweeps plus a reader; an old
store file. Real processes only. Afterwards no finished run is lost or corrupted, interrupted runs
are marked, and a re-run sweep completes only the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dualpath_twin.results import RunSummary
from dualpath_twin.store import open_store
from robustness.helpers import CLI, QUICK, V1_DDL, set_args, subprocess_env

pytestmark = pytest.mark.timeout(300)

FAULTS: list[str] = []  # faults injected, reported by the last test


def _spawn(args: list[str], db: Path, pause_at: str | None = None) -> subprocess.Popen[str]:
    env = subprocess_env(db)
    if pause_at:
        env["DUALPATH_TWIN_STORE_PAUSE_AT"] = pause_at
    return subprocess.Popen(
        CLI + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _kill9(p: subprocess.Popen[str], what: str) -> None:
    """SIGKILL the child's whole process group (it and any pool workers it started)."""
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    FAULTS.append(what)


def _wait_for(cond: Any, p: subprocess.Popen[str], what: str, limit_s: float = 120.0) -> None:
    """Poll ``cond()`` until true; fail (not hang) if the child exits first or the limit passes."""
    end = time.monotonic() + limit_s
    while not cond():
        if p.poll() is not None:
            out, err = p.communicate()
            pytest.fail(f"child exited ({p.returncode}) before {what}: {err[-2000:]}")
        if time.monotonic() > end:
            _kill9(p, "cleanup")
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def _wait_stderr(p: subprocess.Popen[str], text: str) -> None:
    assert p.stderr is not None
    for line in p.stderr:
        if text in line:
            return
    pytest.fail(f"child ended without printing {text!r}")


def _spool_markers(db: Path) -> list[Path]:
    spool = db.with_name(db.stem + ".spool")
    return list(spool.glob("*.running.json")) if spool.is_dir() else []


def _runs(db: Path) -> list[dict[str, Any]]:
    store = open_store(db)
    try:
        return store.list_runs().to_dicts()
    finally:
        store.close()


def _assert_intact(db: Path) -> None:
    """Every finished run has a readable, complete summary and (outside sweeps, which store
    summaries only by design) all of its rounds."""
    store = open_store(db)
    try:
        for r in store.list_runs(status="finished").to_dicts():
            s = store.get_summary(r["run_id"])
            assert s.status == "finished" and s.rounds == s.rounds_total > 0
            if r["sweep_id"] is None:
                assert store.get_rounds(r["run_id"]).height == s.rounds_total
    finally:
        store.close()


def test_kill9_during_cli_run(tmp_path: Path) -> None:
    """kill -9 mid-simulation: the run shows as failed (writer killed), never as finished."""
    db = tmp_path / "twin.duckdb"
    done = subprocess.run(CLI + ["run", str(QUICK), *set_args(), "-q"], env=subprocess_env(db), timeout=120)
    assert done.returncode == 0
    p = _spawn(["run", str(QUICK), "--set", "workload.agents=256", "-q"], db)
    _wait_for(lambda: bool(_spool_markers(db)), p, "the run marker")
    _kill9(p, "kill -9 during a CLI run")
    runs = _runs(db)
    by_status = {r["status"]: r for r in runs}
    assert sorted(r["status"] for r in runs) == ["failed", "finished"]
    assert "ended without finishing" in by_status["failed"]["error"]
    _assert_intact(db)


@pytest.mark.parametrize("point, final", [("before_manifest", "failed"), ("before_commit", "finished")])
def test_kill9_during_store_write(tmp_path: Path, point: str, final: str) -> None:
    """Killed while spooling (no manifest yet): failed, no rows. Killed inside the ingest
    transaction: the complete spooled run is ingested by the next opener."""
    db = tmp_path / "twin.duckdb"
    p = _spawn(["run", str(QUICK), *set_args(), "-q"], db, pause_at=point)
    _wait_stderr(p, f"PAUSED {point}")
    _kill9(p, f"kill -9 during a store write ({point})")
    runs = _runs(db)
    assert [r["status"] for r in runs] == [final]
    if final == "failed":
        assert open_store(db).get_rounds(runs[0]["run_id"]).height == 0
    _assert_intact(db)


SWEEP_GRID = ["--grid", "cluster.decode_nodes=2,3,4", "--grid", "network.snic_gbps=200,400"]


def test_kill9_during_sweep_then_resume(tmp_path: Path) -> None:
    """kill -9 a sweep after some points finished; the re-run keeps them and runs only the rest."""
    db = tmp_path / "twin.duckdb"
    # points must take long enough (seconds each) for the kill to land between the 2nd and the 6th
    sweep = ["sweep", str(QUICK), "--set", "workload.agents=256", *SWEEP_GRID, "--workers", "1"]
    p = _spawn(sweep, db)
    _wait_for(lambda: sum(r["status"] == "finished" for r in _runs(db)) >= 2, p, "two finished points")
    _kill9(p, "kill -9 during a sweep")
    before = [r for r in _runs(db) if r["status"] == "finished"]
    assert 2 <= len(before) < 6
    again = subprocess.run(CLI + sweep + ["--json"], env=subprocess_env(db), capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr
    res = json.loads(again.stdout)
    statuses = [pt["status"] for pt in res["points"]]
    assert statuses.count("cached") == len(before) and res["new_runs"] == 6 - len(before)
    assert set(statuses) <= {"cached", "done"}
    store = open_store(db)
    sr = store.sweep_runs(res["sweep_id"]).filter(store.sweep_runs(res["sweep_id"])["status"] == "finished")
    keys = sr["point_key"].to_list()
    assert len(keys) == 6 and len(set(keys)) == 6  # every point exactly once
    assert {r["run_id"] for r in before} <= set(sr["run_id"].to_list())  # nothing finished was lost
    _assert_intact(db)


def test_two_sweeps_and_a_reader(tmp_path: Path) -> None:
    """Two CLI sweeps write the same store at once while a third process lists runs in a loop."""
    db = tmp_path / "twin.duckdb"
    a = _spawn(["sweep", str(QUICK), *set_args(), "--grid", "cluster.decode_nodes=2,3,4", "-w", "1", "--json"], db)
    b = _spawn(["sweep", str(QUICK), *set_args(), "--grid", "network.snic_gbps=100,200,800", "-w", "1", "--json"], db)
    reads = 0
    reader_errors: list[str] = []
    while a.poll() is None or b.poll() is None:  # this test process is the reader (like the dashboard)
        if db.exists():
            try:
                with open_store(db, read_only=True) as ro:
                    ro.list_runs()
                reads += 1
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                reader_errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.02)
    r = subprocess.run(CLI + ["runs", "--json"], env=subprocess_env(db), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 6, r.stderr
    outs = [a.communicate(), b.communicate()]
    assert a.returncode == 0 and b.returncode == 0, outs
    assert not reader_errors, reader_errors
    FAULTS.append(f"2 concurrent sweeps + 1 reader ({reads} reads)")
    runs = _runs(db)
    assert len(runs) == 6 and all(r["status"] == "finished" for r in runs)
    for out, _ in outs:
        assert json.loads(out)["new_runs"] == 3
    _assert_intact(db)




def test_old_schema_file_via_cli(tmp_path: Path) -> None:
    """A version-1 store file: the CLI (a fresh process) migrates it, keeps the old run, adds new ones."""
    db = tmp_path / "old.duckdb"
    t = datetime(2026, 1, 1)
    with duckdb.connect(str(db)) as con:
        for q in V1_DDL:
            con.sql(q)
        con.sql("insert into schema_version values (1, $t)", params={"t": t})
        con.sql("insert into scenarios values ('h1', 'old', 'name = \"old\"', $t)", params={"t": t})
        con.sql("insert into runs values ('260101-000000-0000abc', 'h1', 'basic', 4, 'finished', $t)", params={"t": t})
        summary = RunSummary(policy="basic", seed=4, scenario_name="old", jct_s=123.0)
        con.sql("insert into summaries values ('260101-000000-0000abc', $j)", params={"j": summary.model_dump_json()})
    env = subprocess_env(db)
    r = subprocess.run(CLI + ["runs", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [x["run_id"] for x in rows] == ["260101-000000-0000abc"] and rows[0]["jct_s"] == 123.0
    r = subprocess.run(CLI + ["run", str(QUICK), *set_args(), "-q"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(x["status"] for x in _runs(db)) == ["finished", "finished"]
    FAULTS.append("v1 store file opened by the CLI")


def test_zz_report_faults() -> None:
    """Print the faults injected (copied into docs/robustness.md)."""
    print("faults injected:", FAULTS)
