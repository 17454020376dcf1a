"""Crash safety and multi-process use of the store, with real processes and kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from dualpath_twin.store import Store, StoreError, open_store

REPO = Path(__file__).resolve().parents[1]


def _spawn(code: str, db: Path, pause_at: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DUALPATH_TWIN_STORE_PAUSE_AT", None)
    if pause_at:
        env["DUALPATH_TWIN_STORE_PAUSE_AT"] = pause_at
    prelude = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from dualpath_twin.store import open_store, Store\n"
        "from dualpath_twin.store.synthetic import synthetic_result\n"
        f"DB = Path({str(db)!r})\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_line(stream, prefix: str, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> str:
    """Read lines until one starts with prefix (bounded; fails with the child's stderr otherwise)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = stream.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"child never printed {prefix!r}; stderr: {proc.stderr.read()[-2000:]}")


def _kill9(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_killed_mid_run_shows_failed(tmp_path: Path) -> None:
    db = tmp_path / "twin.duckdb"
    open_store(db)
    child = _spawn(
        """
        st = open_store(DB)
        rid = st.begin_run('name = "k"\\n', "k", "dualpath", 1)
        print("RID", rid, flush=True)
        time.sleep(120)
        """,
        db,
    )
    rid = _wait_line(child.stdout, "RID", child).split()[1]
    st = open_store(db)
    assert st.list_runs()["status"].to_list() == ["running"]  # its writer is alive
    _kill9(child)
    st = open_store(db)
    row = st.list_runs().row(0, named=True)
    assert row["run_id"] == rid and row["status"] == "failed"
    assert "killed or crashed" in row["error"]
    with pytest.raises(StoreError, match="failed and has no results"):
        st.get_summary(rid)
    assert not st.spool.running_path(rid).exists()


def test_writer_and_reader_processes_coexist(tmp_path: Path) -> None:
    db = tmp_path / "twin.duckdb"
    open_store(db)
    reader = _spawn(
        """
        st = open_store(DB, read_only=True)
        st.list_runs()
        (DB.parent / "reader-ready").touch()  # the writer starts only once the reader is querying
        print("READY", flush=True)
        n = seen = 0
        t0 = time.monotonic()
        while seen < 4 and time.monotonic() - t0 < 30.0:  # until it has seen every run land
            df = st.list_runs()
            done = df.filter(df["status"] == "finished")["run_id"].to_list()
            for rid in done[:2]:
                st.get_timeseries(rid, max_points=50)
            seen = len(done)
            n += 1
        print("QUERIES", n, seen, flush=True)
        """,
        db,
    )
    writer = _spawn(
        """
        st = open_store(DB)
        while not (DB.parent / "reader-ready").exists():
            time.sleep(0.01)
        ids = [st.save_run(synthetic_result("dualpath", seed=i, n_rounds=30, n_samples=30)) for i in range(4)]
        print("IDS", " ".join(ids), flush=True)
        """,
        db,
    )
    _wait_line(reader.stdout, "READY", reader)
    ids = _wait_line(writer.stdout, "IDS", writer).split()[1:]
    assert writer.wait(timeout=60) == 0, writer.stderr.read()
    queries, seen = map(int, _wait_line(reader.stdout, "QUERIES", reader).split()[1:])
    assert reader.wait(timeout=60) == 0, reader.stderr.read()
    assert queries >= 1 and seen == 4  # the reader kept querying until it saw every run land
    st = open_store(db)
    df = st.list_runs()
    assert sorted(df["run_id"].to_list()) == sorted(ids)
    assert set(df["status"]) == {"finished"}
    assert all(st.get_rounds(r).height == 30 for r in ids)


def test_write_while_another_process_holds_the_file(tmp_path: Path) -> None:
    """A foreign process keeps a connection open: the write lands in the spool and is ingested later."""
    db = tmp_path / "twin.duckdb"
    open_store(db)
    holder = _spawn(
        """
        import duckdb
        con = duckdb.connect(str(DB))  # read-write: nobody else can open the file
        print("HOLDING", flush=True)
        time.sleep(120)
        """,
        db,
    )
    _wait_line(holder.stdout, "HOLDING", holder)
    writer = _spawn(
        """
        import warnings
        st = Store(DB, lock_timeout_s=0.3)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            rid = st.save_run(synthetic_result("basic", n_rounds=9, n_samples=5))
        print("RID", rid, len(w), flush=True)
        """,
        db,
    )
    rid, n_warn = _wait_line(writer.stdout, "RID", writer).split()[1:]
    assert writer.wait(timeout=60) == 0, writer.stderr.read()
    assert int(n_warn) == 1  # told the user the run waits in the spool
    _kill9(holder)
    st = open_store(db)
    row = st.list_runs().row(0, named=True)
    assert row["run_id"] == rid and row["status"] == "finished"
    assert st.get_rounds(rid).height == 9
    assert list(st.spool.root.iterdir()) == []


def test_killed_before_manifest_leaves_no_finished_run(tmp_path: Path) -> None:
    db = tmp_path / "twin.duckdb"
    open_store(db)
    child = _spawn(
        """
        st = open_store(DB)
        st.save_run(synthetic_result("dualpath", n_rounds=40, n_samples=20))
        """,
        db,
        pause_at="before_manifest",
    )
    _wait_line(child.stderr, "PAUSED before_manifest", child)
    _kill9(child)
    st = open_store(db)
    df = st.list_runs()
    assert df["status"].to_list() == ["failed"]
    rid = df["run_id"][0]
    with duckdb.connect(str(db), read_only=True) as con:
        assert (
            con.sql("select count(*) from rounds where run_id = $r", params={"r": rid}).fetchall()[0][0] == 0
        )
    assert list(st.spool.root.iterdir()) == []  # partial Parquet files removed


def test_killed_inside_the_db_transaction(tmp_path: Path) -> None:
    db = tmp_path / "twin.duckdb"
    open_store(db)
    child = _spawn(
        """
        st = open_store(DB)
        st.save_run(synthetic_result("oracle", n_rounds=40, n_samples=20))
        """,
        db,
        pause_at="before_commit",
    )
    _wait_line(child.stderr, "PAUSED before_commit", child)
    _kill9(child)
    # straight after the crash the database holds no rows of the run (the transaction died) ...
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.sql("select count(*) from rounds").fetchall()[0][0] == 0
        assert con.sql("select count(*) from runs where status = 'finished'").fetchall()[0][0] == 0
    # ... and the next opener ingests the durable spool artefact whole
    st: Store = open_store(db)
    row = st.list_runs().row(0, named=True)
    assert row["status"] == "finished"
    assert st.get_rounds(row["run_id"]).height == 40
    assert st.get_timeseries(row["run_id"], max_points=None).height > 0
