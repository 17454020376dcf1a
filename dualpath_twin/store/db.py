"""The DuckDB result store: spool-first writes, short-lived connections, queries to Polars.

Design (docs/store.md): DuckDB lets one process hold a file read-write and then refuses every
other process, even read-only ones. So a ``Store`` never keeps a connection open between
calls. Writers first write each run as files into the spool (``<db>.spool/``: Parquet plus a
JSON manifest renamed into place last), then ingest pending spool entries under a brief
write connection, retrying with backoff while another process holds the lock. Readers open a
read-only connection per query and, when they can get the write lock, ingest what is pending
and mark runs whose writer died as failed. A run's rows and its final status land in one
transaction, so nobody ever sees half a run as finished.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl

from dualpath_twin.results import RunResult, RunSummary
from dualpath_twin.store.schema import SCHEMA_VERSION, SUMMARY_FLAT, current_version, migrate
from dualpath_twin.store.spool import (
    Spool,
    host_name,
    pid_alive,
    process_start_ticks,
    read_json,
    write_json_atomic,
)

RUN_STATUSES = ("running", "finished", "truncated", "cancelled", "failed")
FINAL_RESULT_STATUSES = ("finished", "truncated", "cancelled")
DONE_POINT_STATUSES = ("finished", "truncated")
PAUSE_ENV = "DUALPATH_TWIN_STORE_PAUSE_AT"  # test hook: stop at a named point so a test can kill -9 there

_PATH_LOCKS: dict[str, threading.RLock] = {}
_PATH_LOCKS_GUARD = threading.Lock()


class StoreError(RuntimeError):
    """A store operation failed; the message says what and how to fix it."""


class StoreLocked(StoreError):
    """Another process held the database lock for longer than the wait budget."""


def default_db_path() -> Path:
    """Env DUALPATH_TWIN_DB if set, else the repo's data/twin.duckdb (or ./data/twin.duckdb outside a checkout)."""
    env = os.environ.get("DUALPATH_TWIN_DB")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "app.py").is_file():
        return repo / "data" / "twin.duckdb"
    return Path.cwd() / "data" / "twin.duckdb"


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id(prefix: str = "") -> str:
    """Short id sortable by creation time (UTC): ``YYMMDD-HHMMSS-mmmxxxx`` (ms + 4 random hex)."""
    now = datetime.now(UTC)
    return f"{prefix}{now:%y%m%d-%H%M%S}-{now.microsecond // 1000:03d}{secrets.token_hex(2)}"


def point_key(point: dict[str, Any] | None) -> str:
    """Canonical key of a sweep point (sorted-key JSON) used by save_run and find_finished_point."""
    return json.dumps(point or {}, sort_keys=True, separators=(",", ":"), default=str)


def _path_lock(path: Path) -> threading.RLock:
    with _PATH_LOCKS_GUARD:
        return _PATH_LOCKS.setdefault(str(path), threading.RLock())


def _is_lock_error(err: Exception) -> bool:
    msg = str(err).lower()
    return "lock" in msg and ("conflicting" in msg or "could not set" in msg)


def _pause(point: str) -> None:
    """Test hook: block forever at ``point`` when the env var names it (so a test can kill -9 here)."""
    if os.environ.get(PAUSE_ENV) == point:
        sys.stderr.write(f"PAUSED {point}\n")
        sys.stderr.flush()
        time.sleep(3600)


def _ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


_LIST_COLUMNS = (
    "r.run_id, r.created_at, r.finished_at, r.status, r.scenario_name, r.scenario_hash, r.policy, r.seed,"
    " r.sweep_id, r.error, s.mode, s.jct_s, s.sim_time_s, s.rounds, s.prompt_tokens_per_s,"
    " s.generated_tokens_per_s, s.ttft_p50_s, s.ttft_p99_s, s.tpot_p50_s, s.tpot_p99_s, s.slo_attainment,"
    " s.bottleneck, s.wall_s, r.pid, r.host"
)


class Store:
    """Handle on one result database; holds no DuckDB connection between calls (safe to keep open)."""

    def __init__(self, path: str | Path, read_only: bool = False, lock_timeout_s: float = 30.0) -> None:
        self.path = Path(path).expanduser().absolute()
        self.read_only = read_only
        self.lock_timeout_s = lock_timeout_s
        self.spool = Spool(self.path.with_name(self.path.stem + ".spool"))
        self._lock = _path_lock(self.path)
        self._closed = False
        self._schema_checked = False
        if self.path.exists() and self.path.is_dir():
            raise StoreError(
                f"{self.path} is a directory; give the path of a .duckdb file (e.g. data/twin.duckdb)"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not read_only:
            self.spool.ensure()
        try:
            self._housekeep(
                budget_s=lock_timeout_s if not self.path.exists() else min(2.0, lock_timeout_s), full=True
            )
        except StoreLocked:
            if not self.path.exists():
                raise

    # ------------------------------------------------------------------ plumbing

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the handle (there is no open connection to close; further calls raise)."""
        self._closed = True

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, read_only={self.read_only})"

    def _check_open(self, write: bool = False) -> None:
        if self._closed:
            raise StoreError("this store was closed; open it again with open_store()")
        if write and self.read_only:
            raise StoreError(
                f"store {self.path} was opened read-only; open it with read_only=False to write runs"
            )

    @contextmanager
    def _connect(self, write: bool, budget_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; waits with backoff while another process holds the file."""
        budget = self.lock_timeout_s if budget_s is None else budget_s
        with self._lock:
            deadline = time.monotonic() + budget
            delay = 0.01
            last: Exception | None = None
            intent: Path | None = None
            if not write:
                self._yield_to_writers()
            while True:
                try:
                    ro = not write and self.path.exists()
                    con = duckdb.connect(str(self.path), read_only=ro)
                    break
                except (duckdb.IOException, duckdb.ConnectionException) as err:
                    if not _is_lock_error(err):
                        raise StoreError(f"cannot open the result database {self.path}: {err}") from None
                    last = err
                    if write and intent is None and self.spool.root.is_dir():
                        intent = self.spool.root / f".want-write.{os.getpid()}.{threading.get_ident()}"
                        intent.touch()
                    if time.monotonic() + delay > deadline:
                        if intent is not None:
                            intent.unlink(missing_ok=True)
                        raise StoreLocked(
                            f"the result database {self.path} stayed locked by another process for {budget:.1f} s"
                            f" ({last}); close the other program or retry; written runs wait safely in"
                            f" {self.spool.root}"
                        ) from None
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.2 if write else 0.5)
            if intent is not None:
                intent.unlink(missing_ok=True)
            try:
                yield con
            finally:
                con.close()

    def _yield_to_writers(self, max_wait_s: float = 1.0) -> None:
        """Let a waiting writer in first: readers pause (bounded) while a fresh write-intent file exists."""
        if not self.spool.root.is_dir():
            return
        deadline = time.monotonic() + max_wait_s
        while time.monotonic() < deadline:
            now = time.time()
            waiting = False
            for p in self.spool.root.glob(".want-write.*"):
                try:
                    fresh = now - p.stat().st_mtime < 5.0
                except OSError:
                    continue
                if fresh and pid_alive(int(p.name.split(".")[2])):
                    waiting = True
                    break
                if not fresh:
                    p.unlink(missing_ok=True)
            if not waiting:
                return
            time.sleep(0.02)

    @contextmanager
    def _reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Connection for a query: ingest pending spool entries first if the lock is free."""
        self._check_open()
        if self.spool.has_pending():
            try:
                self._housekeep(budget_s=0.5)
            except StoreLocked:
                pass
        with self._connect(write=False) as con:
            if not self._schema_checked:
                v = current_version(con)
                if v < SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} has schema version {v}, this code needs {SCHEMA_VERSION}; it is migrated"
                        " automatically when a process opens it while no other process holds it: close other"
                        " programs using it and open it again"
                    )
                if v > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} has schema version {v}, newer than this code's {SCHEMA_VERSION};"
                        " upgrade dualpath-twin"
                    )
                self._schema_checked = True
            yield con

    def _housekeep(self, budget_s: float, full: bool = False) -> list[tuple[str, str]]:
        """Under the write lock: migrate, ingest manifests, fail runs whose writer died."""
        with self._connect(write=True, budget_s=budget_s) as con:
            v = current_version(con)
            if v > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {v}, newer than this code's {SCHEMA_VERSION}; upgrade dualpath-twin"
                )
            migrate(con)
            rejected = self._ingest_all(con)
            if full:
                self._fail_orphans(con)
        return rejected

    # ------------------------------------------------------------------ ingest

    def _ingest_all(self, con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
        """Ingest every manifest, register running markers, fail markers of dead processes."""
        rejected: list[tuple[str, str]] = []
        for rid in self.spool.done_ids():
            m = read_json(self.spool.done_path(rid))
            if m is None:
                continue
            try:
                self._ingest_manifest(con, rid, m)
            except Exception as err:  # keep other runs flowing; surface to the writer
                msg = f"{type(err).__name__}: {err}"
                rejected.append((rid, msg))
                bad = self.spool.root / f"{rid}.rejected.json"
                write_json_atomic(bad, {**m, "rejected_error": msg})
                self.spool.done_path(rid).unlink(missing_ok=True)
                continue
            self.spool.remove(rid)
        for sid in self.spool.capacity_ids():
            path = self.spool.capacity_path(sid)
            rec = read_json(path)
            if rec is None:
                continue
            try:
                self._ingest_capacity(con, sid, rec)
            except Exception as err:  # keep other entries flowing; surface to the writer
                msg = f"{type(err).__name__}: {err}"
                rejected.append((sid, msg))
                write_json_atomic(self.spool.root / f"{sid}.rejected.json", {**rec, "rejected_error": msg})
                path.unlink(missing_ok=True)
                continue
            path.unlink(missing_ok=True)
        me = host_name()
        for rid in self.spool.running_ids():
            mk = read_json(self.spool.running_path(rid))
            if mk is None or self.spool.done_path(rid).exists():
                continue
            dead = mk.get("host") == me and not pid_alive(int(mk.get("pid", 0)), mk.get("pid_start"))
            if dead:
                if self.spool.done_path(rid).exists():  # finished just before dying
                    continue
                err = (
                    f"writer process {mk.get('pid')} on {mk.get('host')} ended without finishing the run"
                    " (killed or crashed); its partial data was discarded"
                )
                self._write_run_row(con, {**mk, "status": "failed", "error": err, "finished_at": _utcnow()})
                self.spool.remove(rid)
            elif not self._run_exists(con, rid):
                self._write_run_row(con, {**mk, "status": "running", "error": ""})
        return rejected

    def _fail_orphans(self, con: duckdb.DuckDBPyConnection) -> None:
        """Runs 'running' in the DB on this host with no marker left: their writer is gone."""
        me = host_name()
        rows = con.sql(
            "select run_id, pid from runs where status = 'running' and host = $h", params={"h": me}
        ).fetchall()
        alive_markers = set(self.spool.running_ids()) | set(self.spool.done_ids())
        for rid, pid in rows:
            if rid in alive_markers:
                continue
            con.sql(
                "update runs set status = 'failed', error = $e, finished_at = $t where run_id = $r and status = 'running'",
                params={
                    "r": rid,
                    "t": _utcnow(),
                    "e": f"writer process {pid} left no progress marker (lost or deleted); the run cannot finish",
                },
            )

    def _run_exists(self, con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
        return bool(
            con.sql("select count(*) from runs where run_id = $r", params={"r": run_id}).fetchall()[0][0]
        )

    def _write_run_row(self, con: duckdb.DuckDBPyConnection, m: dict[str, Any]) -> None:
        """Replace the run row (and its scenario) from a manifest/marker dict, in one transaction."""
        con.begin()
        try:
            self._put_run_row(con, m)
            con.commit()
        except Exception:
            con.rollback()
            raise

    def _put_run_row(self, con: duckdb.DuckDBPyConnection, m: dict[str, Any]) -> None:
        toml_text = m.get("scenario_toml") or ""
        h = m.get("scenario_hash") or sha256(toml_text.encode()).hexdigest()[:16]
        con.sql(
            "insert into scenarios select $h, $n, $t, $c where not exists"
            " (select 1 from scenarios where scenario_hash = $h)",
            params={"h": h, "n": m.get("scenario_name", ""), "t": toml_text, "c": _utcnow()},
        )
        con.sql("delete from runs where run_id = $r", params={"r": m["run_id"]})
        con.sql(
            "insert into runs (run_id, scenario_hash, policy, seed, status, created_at, scenario_name, error,"
            " finished_at, pid, host, sweep_id) values ($r, $h, $p, $s, $st, $c, $n, $e, $f, $pid, $host, $sw)",
            params={
                "r": m["run_id"],
                "h": h,
                "p": m.get("policy", ""),
                "s": int(m.get("seed") or 0),
                "st": m["status"],
                "c": _ts(m.get("created_at")) or _utcnow(),
                "n": m.get("scenario_name", ""),
                "e": m.get("error", ""),
                "f": _ts(m.get("finished_at")),
                "pid": int(m.get("pid") or 0),
                "host": m.get("host", ""),
                "sw": m.get("sweep_id"),
            },
        )

    def _ensure_columns(self, con: duckdb.DuckDBPyConnection, table: str, parquet: Path) -> None:
        """Add columns the frame has and the table lacks (the results contract may grow)."""
        have = {
            r[0]
            for r in con.sql(
                "select column_name from information_schema.columns where table_name = $t",
                params={"t": table},
            ).fetchall()
        }
        cols = con.sql("describe select * from read_parquet($p)", params={"p": str(parquet)}).fetchall()
        for name, typ, *_ in cols:
            if name not in have:
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    raise StoreError(
                        f"{table} column {name!r} is not a plain identifier; rename it in the result frame"
                    )
                con.sql(f'alter table {table} add column "{name}" {typ}')

    def _ingest_manifest(self, con: duckdb.DuckDBPyConnection, rid: str, m: dict[str, Any]) -> None:
        """One transaction: the run row, its summary, rounds, timeseries and sweep link, or nothing."""
        kind = m.get("kind")
        if kind == "mark" and not m.get("scenario_toml") and m.get("policy") is None:
            con.sql(
                "update runs set status = $s, error = $e, finished_at = $f where run_id = $r",
                params={"s": m["status"], "e": m.get("error", ""), "f": _ts(m.get("finished_at")), "r": rid},
            )
            return
        data = self.spool.data_dir(rid)
        if kind == "finish":
            # schema changes are DDL: do them before the data transaction
            for table in ("rounds", "timeseries"):
                self._ensure_columns(con, table, data / f"{table}.parquet")
        con.begin()
        try:
            for table in ("summaries", "rounds", "timeseries", "sweep_runs"):
                con.sql(f"delete from {table} where run_id = $r", params={"r": rid})
            self._put_run_row(con, m)
            if kind == "finish":
                summary = RunSummary.model_validate(m["summary"])
                self._put_summary(con, rid, summary)
                for table in ("rounds", "timeseries"):
                    con.sql(
                        f"insert into {table} by name select $r as run_id, * from read_parquet($p)",
                        params={"r": rid, "p": str(data / f"{table}.parquet")},
                    )
                n = con.sql("select count(*) from rounds where run_id = $r", params={"r": rid}).fetchall()[0][
                    0
                ]
                if n != m.get("rows", {}).get("rounds", n):
                    raise StoreError(
                        f"run {rid}: spooled rounds has {n} rows, manifest says {m['rows']['rounds']}"
                    )
            if m.get("sweep_id"):
                con.sql(
                    "insert into sweep_runs values ($s, $r, $k, $j)",
                    params={
                        "s": m["sweep_id"],
                        "r": rid,
                        "k": m.get("point_key") or point_key(m.get("point")),
                        "j": json.dumps(m.get("point") or {}, default=str),
                    },
                )
            _pause("before_commit")
            con.commit()
        except Exception:
            con.rollback()
            raise

    def _put_summary(self, con: duckdb.DuckDBPyConnection, rid: str, summary: RunSummary) -> None:
        sj = summary.model_dump_json()
        flat = summary.flat()
        keys = {
            "ttft_p50_s": "ttft_s.p50",
            "ttft_p99_s": "ttft_s.p99",
            "tpot_p50_s": "tpot_s.p50",
            "tpot_p99_s": "tpot_s.p99",
        }
        cols = ["run_id", "summary_json", *SUMMARY_FLAT]
        params: dict[str, Any] = {"c0": rid, "c1": sj}
        for i, col in enumerate(SUMMARY_FLAT, start=2):
            params[f"c{i}"] = flat.get(keys.get(col, col))
        placeholders = ", ".join(f"$c{i}" for i in range(len(cols)))
        con.sql(f"insert into summaries ({', '.join(cols)}) values ({placeholders})", params=params)

    def _ingest_capacity(self, con: duckdb.DuckDBPyConnection, sid: str, rec: dict[str, Any]) -> None:
        """One transaction: the search row, its scenario and one row per policy result (replacing earlier rows)."""
        con.begin()
        try:
            for table in ("capacity_searches", "capacity_results"):
                con.sql(f"delete from {table} where search_id = $s", params={"s": sid})
            h = rec["scenario_hash"]
            con.sql(
                "insert into scenarios select $h, $n, $t, $c where not exists"
                " (select 1 from scenarios where scenario_hash = $h)",
                params={"h": h, "n": rec.get("scenario_name", ""), "t": rec.get("scenario_toml", ""), "c": _utcnow()},
            )
            con.sql(
                "insert into capacity_searches values ($s, $n, $h, $sn, $j, $c, $host, $pid)",
                params={
                    "s": sid, "n": rec.get("name", ""), "h": h, "sn": rec.get("scenario_name", ""),
                    "j": json.dumps(rec.get("spec") or {}, default=str), "c": _ts(rec.get("created_at")) or _utcnow(),
                    "host": rec.get("host", ""), "pid": int(rec.get("pid") or 0),
                },
            )  # fmt: skip
            for i, r in enumerate(rec["results"]):
                con.sql(
                    "insert into capacity_results values ($s, $i, $p, $cap, $lo, $hi, $tol, $conv, $ev, $w, $tt, $tp, $j)",
                    params={
                        "s": sid, "i": i, "p": r["policy"], "cap": r["capacity_aps"], "lo": r.get("lo_aps"),
                        "hi": r.get("hi_aps"), "tol": r.get("tolerance"), "conv": r.get("converged"),
                        "ev": r.get("evaluations"), "w": r.get("window_s"), "tt": r.get("ttft_limit_s"),
                        "tp": r.get("tpot_limit_ms"), "j": json.dumps(r, default=str),
                    },
                )  # fmt: skip
            con.commit()
        except Exception:
            con.rollback()
            raise

    # ------------------------------------------------------------------ writes

    def _identity(
        self,
        run_id: str,
        scenario_toml: str,
        scenario_name: str,
        policy: str,
        seed: int,
        sweep_id: str | None = None,
        point: dict[str, Any] | None = None,
        scenario_hash: str = "",
    ) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "scenario_toml": scenario_toml,
            "scenario_name": scenario_name,
            "scenario_hash": scenario_hash or sha256(scenario_toml.encode()).hexdigest()[:16],
            "policy": policy,
            "seed": int(seed),
            "sweep_id": sweep_id,
            "point": point,
            "point_key": point_key(point) if sweep_id else None,
            "created_at": _utcnow().isoformat(),
            "pid": os.getpid(),
            "pid_start": process_start_ticks(os.getpid()),
            "host": host_name(),
        }

    def _try_ingest(self, run_id: str, budget_s: float | None = None) -> None:
        """Ingest pending spool entries now if the lock can be had; a run we wrote must not be rejected."""
        try:
            rejected = self._housekeep(budget_s=self.lock_timeout_s if budget_s is None else budget_s)
        except StoreLocked as err:
            warnings.warn(
                f"run {run_id} is saved in the spool and will be ingested later: {err}", stacklevel=3
            )
            return
        for rid, msg in rejected:
            if rid == run_id:
                raise StoreError(
                    f"run {run_id} could not be stored: {msg}; its files are kept in {self.spool.root}"
                )

    @staticmethod
    def _check_result(result: RunResult) -> None:
        status = result.summary.status
        if status not in FINAL_RESULT_STATUSES:
            raise StoreError(
                f"summary.status = {status!r}: a stored result must be one of {', '.join(FINAL_RESULT_STATUSES)};"
                " use mark_run() for failed runs"
            )
        for name, df in (("rounds", result.rounds), ("timeseries", result.timeseries)):
            if not isinstance(df, pl.DataFrame):
                raise StoreError(f"RunResult.{name} must be a polars DataFrame, got {type(df).__name__}")
        missing = [
            c for c in ("t_s", "metric", "entity", "role", "value") if c not in result.timeseries.columns
        ]
        if missing:
            raise StoreError(
                f"RunResult.timeseries lacks columns {missing} (see results.py for the contract)"
            )

    def _write_artefact(self, identity: dict[str, Any], result: RunResult) -> None:
        status = result.summary.status
        rid = identity["run_id"]
        data = self.spool.data_dir(rid)
        data.mkdir(parents=True, exist_ok=True)
        result.rounds.write_parquet(data / "rounds.parquet")
        result.timeseries.write_parquet(data / "timeseries.parquet")
        _pause("before_manifest")
        manifest = {
            **identity,
            "kind": "finish",
            "status": status,
            "error": result.summary.status_reason if status != "finished" else "",
            "finished_at": _utcnow().isoformat(),
            "summary": result.summary.model_dump(mode="json"),
            "rows": {"rounds": result.rounds.height, "timeseries": result.timeseries.height},
        }
        if result.scenario_toml and not identity.get("scenario_toml"):
            manifest["scenario_toml"] = result.scenario_toml
        write_json_atomic(self.spool.done_path(rid), manifest)

    def save_run(self, result: RunResult, sweep_id: str | None = None, point: dict | None = None) -> str:
        """Store a finished/truncated/cancelled result (atomically) and return its new run id."""
        self._check_open(write=True)
        self._check_result(result)
        s = result.summary
        rid = new_run_id()
        identity = self._identity(
            rid, result.scenario_toml, s.scenario_name, s.policy, s.seed, sweep_id, point, s.scenario_hash
        )
        write_json_atomic(self.spool.running_path(rid), identity)
        self._write_artefact(identity, result)
        self._try_ingest(rid)
        return rid

    def begin_run(self, scenario_toml: str, scenario_name: str, policy: str, seed: int) -> str:
        """Register a run in progress (status running, with this process's pid) and return its id."""
        self._check_open(write=True)
        rid = new_run_id()
        write_json_atomic(
            self.spool.running_path(rid), self._identity(rid, scenario_toml, scenario_name, policy, seed)
        )
        self._try_ingest(rid, budget_s=min(2.0, self.lock_timeout_s))
        return rid

    def _marker_or_row(self, run_id: str) -> dict[str, Any]:
        mk = read_json(self.spool.running_path(run_id))
        if mk is not None:
            return mk
        with self._reader() as con:
            rows = con.sql(
                "select r.run_id, r.scenario_hash, r.scenario_name, r.policy, r.seed, r.status, r.created_at,"
                " r.sweep_id, c.toml from runs r left join scenarios c using (scenario_hash) where r.run_id = $r",
                params={"r": run_id},
            ).fetchall()
        if not rows:
            raise StoreError(
                f"unknown run id {run_id!r}; list runs with Store.list_runs() or `dualpath-twin runs`"
            )
        r = rows[0]
        return {
            "run_id": r[0], "scenario_hash": r[1], "scenario_name": r[2], "policy": r[3], "seed": r[4],
            "status": r[5], "created_at": str(r[6]), "sweep_id": r[7], "scenario_toml": r[8] or "",
            "pid": os.getpid(), "host": host_name(),
        }  # fmt: skip

    def finish_run(self, run_id: str, result: RunResult) -> None:
        """Store the result of a run started with begin_run (rows and final status in one transaction)."""
        self._check_open(write=True)
        self._check_result(result)
        ident = self._marker_or_row(run_id)
        if ident.get("status") not in (None, "running"):
            raise StoreError(f"run {run_id} is already {ident['status']}; start a new run with begin_run()")
        ident = {**ident, "scenario_toml": ident.get("scenario_toml") or result.scenario_toml}
        self._write_artefact(ident, result)
        self._try_ingest(run_id)

    def mark_run(self, run_id: str, status: str, error: str = "") -> None:
        """Set a run's final status without results (failed or cancelled), with an error message."""
        self._check_open(write=True)
        if status not in RUN_STATUSES:
            raise StoreError(f"status {status!r} is not one of {', '.join(RUN_STATUSES)}")
        mk = read_json(self.spool.running_path(run_id))
        if mk is None:
            self._marker_or_row(run_id)  # raises for unknown ids
            m: dict[str, Any] = {"run_id": run_id}
        else:
            m = dict(mk)
        m.update({"kind": "mark", "status": status, "error": error, "finished_at": _utcnow().isoformat()})
        write_json_atomic(self.spool.done_path(run_id), m)
        self._try_ingest(run_id)

    def create_sweep(self, name: str, spec_json: str) -> str:
        """Record a sweep (its spec as JSON text) and return its id."""
        self._check_open(write=True)
        try:
            json.loads(spec_json)
        except ValueError as err:
            raise StoreError(
                f"create_sweep: spec_json is not valid JSON ({err}); pass json.dumps(spec)"
            ) from None
        sid = new_run_id("sw-")
        with self._connect(write=True) as con:
            migrate(con)
            con.sql(
                "insert into sweeps values ($s, $n, $j, $c)",
                params={"s": sid, "n": name, "j": spec_json, "c": _utcnow()},
            )
        return sid

    def save_capacity_search(
        self,
        name: str,
        scenario_toml: str,
        scenario_name: str,
        spec: dict[str, Any],
        results: list[dict[str, Any]],
    ) -> str:
        """Store a capacity search (spec, scenario, per-policy results with their curves) and return its id."""
        self._check_open(write=True)
        if not results:
            raise StoreError("save_capacity_search: no results to store (one dict per policy)")
        for r in results:
            if not isinstance(r, dict) or not isinstance(r.get("policy"), str) or not isinstance(
                r.get("capacity_aps"), int | float
            ):
                raise StoreError(
                    "save_capacity_search: each result must be a dict with 'policy' (str) and 'capacity_aps'"
                    " (number), e.g. CapacityResult.model_dump(mode='json')"
                )
        try:
            json.dumps({"spec": spec, "results": results})
        except (TypeError, ValueError) as err:
            raise StoreError(f"save_capacity_search: spec/results are not JSON-serialisable ({err})") from None
        sid = new_run_id("cap-")
        rec = {
            "search_id": sid,
            "name": name,
            "scenario_toml": scenario_toml,
            "scenario_name": scenario_name,
            "scenario_hash": sha256(scenario_toml.encode()).hexdigest()[:16],
            "spec": spec,
            "results": results,
            "created_at": _utcnow().isoformat(),
            "pid": os.getpid(),
            "host": host_name(),
        }
        write_json_atomic(self.spool.capacity_path(sid), rec)
        try:
            rejected = self._housekeep(budget_s=self.lock_timeout_s)
        except StoreLocked as err:
            warnings.warn(f"capacity search {sid} is saved in the spool and will be ingested later: {err}", stacklevel=2)
            return sid
        for rid, msg in rejected:
            if rid == sid:
                raise StoreError(f"capacity search {sid} could not be stored: {msg}; its file is kept in {self.spool.root}")
        return sid

    def gc(self, older_than_days: float | None = None, statuses: list[str] | None = None) -> int:
        """Delete runs (default: failed and cancelled ones) older than the age given; return how many."""
        self._check_open(write=True)
        sts = list(statuses) if statuses is not None else ["failed", "cancelled"]
        bad = [s for s in sts if s not in RUN_STATUSES]
        if bad:
            raise StoreError(f"gc: unknown status {bad}; use some of {', '.join(RUN_STATUSES)}")
        cutoff = (
            _utcnow() - timedelta(days=older_than_days)
            if older_than_days is not None
            else _utcnow() + timedelta(days=1)
        )
        with self._connect(write=True) as con:
            migrate(con)
            self._ingest_all(con)
            ids = [
                r[0]
                for r in con.sql(
                    "select run_id from runs where list_contains($s, status) and created_at < $c and status <> 'running'",
                    params={"s": sts, "c": cutoff},
                ).fetchall()
            ]
            if ids:
                con.begin()
                for table in ("summaries", "rounds", "timeseries", "sweep_runs", "runs"):
                    con.sql(f"delete from {table} where list_contains($ids, run_id)", params={"ids": ids})
                con.sql(
                    "delete from scenarios where scenario_hash not in (select scenario_hash from runs)"
                    " and scenario_hash not in (select scenario_hash from capacity_searches)"
                )
                con.commit()
                con.sql("checkpoint")
        for p in self.spool.stale_tmp_files():
            p.unlink(missing_ok=True)
        return len(ids)

    # ------------------------------------------------------------------ reads

    def _pending(self) -> dict[str, dict[str, Any]]:
        """Spool entries not yet in the database (only when the lock was busy), newest state per run."""
        out: dict[str, dict[str, Any]] = {}
        for rid in self.spool.running_ids():
            m = read_json(self.spool.running_path(rid))
            if m is not None:
                out[rid] = {**m, "status": "running", "error": ""}
        for rid in self.spool.done_ids():
            m = read_json(self.spool.done_path(rid))
            if m is not None:
                out[rid] = {**out.get(rid, {}), **m}
        return out

    def resolve_run_id(self, prefix: str) -> str:
        """The one run id starting with ``prefix`` (an exact id always wins)."""
        self._check_open()
        prefix = prefix.strip()
        if not prefix:
            raise StoreError("empty run id; give a run id or a unique prefix of one (see list_runs)")
        with self._reader() as con:
            ids = [
                r[0]
                for r in con.sql(
                    "select run_id from runs where starts_with(run_id, $p) order by run_id limit 20",
                    params={"p": prefix},
                ).fetchall()
            ]
        ids = sorted(set(ids) | {r for r in self._pending() if r.startswith(prefix)})
        if prefix in ids:
            return prefix
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise StoreError(
                f"no run id starts with {prefix!r} in {self.path}; list runs with `dualpath-twin runs`"
            )
        shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
        raise StoreError(
            f"run id prefix {prefix!r} is ambiguous ({len(ids)} runs: {shown}); give more characters"
        )

    def list_runs(
        self,
        scenario: str | None = None,
        policy: str | None = None,
        since: datetime | None = None,
        status: str | None = None,
        sweep_id: str | None = None,
    ) -> pl.DataFrame:
        """Runs, newest first, with their headline metrics; ``scenario`` matches the name or hash."""
        if since is not None and since.tzinfo is not None:
            since = since.astimezone(UTC).replace(tzinfo=None)
        where = ["true"]
        params: dict[str, Any] = {}
        if scenario is not None:
            where.append("(r.scenario_name = $sc or r.scenario_hash = $sc)")
            params["sc"] = scenario
        if policy is not None:
            where.append("r.policy = $po")
            params["po"] = policy
        if since is not None:
            where.append("r.created_at >= $since")
            params["since"] = since
        if status is not None:
            where.append("r.status = $st")
            params["st"] = status
        if sweep_id is not None:
            where.append("r.sweep_id = $sw")
            params["sw"] = sweep_id
        q = (
            f"select {_LIST_COLUMNS} from runs r left join summaries s using (run_id)"
            f" where {' and '.join(where)} order by r.run_id desc"
        )
        with self._reader() as con:
            df = con.sql(q, params=params).pl()
        pending = {k: v for k, v in self._pending().items() if k not in set(df["run_id"].to_list())}
        if not pending:
            return df
        rows = []
        for rid, m in pending.items():
            s = m.get("summary") or {}
            ok = (
                (scenario is None or scenario in (m.get("scenario_name"), m.get("scenario_hash")))
                and (policy is None or m.get("policy") == policy)
                and (status is None or m.get("status") == status)
                and (sweep_id is None or m.get("sweep_id") == sweep_id)
                and (since is None or (_ts(m.get("created_at")) or since) >= since)
            )
            if ok:
                rows.append(
                    {
                        "run_id": rid,
                        "created_at": _ts(m.get("created_at")),
                        "finished_at": _ts(m.get("finished_at")),
                        "status": m.get("status"),
                        "scenario_name": m.get("scenario_name"),
                        "scenario_hash": m.get("scenario_hash"),
                        "policy": m.get("policy"),
                        "seed": m.get("seed"),
                        "sweep_id": m.get("sweep_id"),
                        "error": m.get("error", ""),
                        "prompt_tokens_per_s": s.get("prompt_tokens_per_s"),
                        "generated_tokens_per_s": s.get("generated_tokens_per_s"),
                        "jct_s": s.get("jct_s"),
                    }
                )
        if not rows:
            return df
        extra = pl.DataFrame(rows).cast({c: df.schema[c] for c in rows[0] if c in df.schema}, strict=False)
        return pl.concat([df, extra], how="diagonal_relaxed").sort("run_id", descending=True)

    def _status_of(self, con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[str, str] | None:
        rows = con.sql("select status, error from runs where run_id = $r", params={"r": run_id}).fetchall()
        return (rows[0][0], rows[0][1] or "") if rows else None

    def get_summary(self, run_id: str) -> RunSummary:
        """The run's RunSummary."""
        rid = self.resolve_run_id(run_id)
        with self._reader() as con:
            rows = con.sql(
                "select summary_json from summaries where run_id = $r", params={"r": rid}
            ).fetchall()
            st = self._status_of(con, rid)
        if rows:
            return RunSummary.model_validate_json(rows[0][0])
        m = self._pending().get(rid)
        if m and m.get("summary"):
            return RunSummary.model_validate(m["summary"])
        status, err = st if st else ((m or {}).get("status", "running"), (m or {}).get("error", ""))
        raise StoreError(f"run {rid} is {status} and has no results{f' ({err})' if err else ''}")

    def _pending_parquet(self, rid: str, table: str) -> Path | None:
        m = self._pending().get(rid)
        p = self.spool.data_dir(rid) / f"{table}.parquet"
        return p if m and m.get("kind") == "finish" and p.exists() else None

    def get_rounds(self, run_id: str) -> pl.DataFrame:
        """The run's per-round frame (results.py contract)."""
        rid = self.resolve_run_id(run_id)
        with self._reader() as con:
            if self._status_of(con, rid) is not None:
                return con.sql(
                    "select * exclude (run_id) from rounds where run_id = $r", params={"r": rid}
                ).pl()
        p = self._pending_parquet(rid, "rounds")
        if p is None:
            raise StoreError(f"run {rid} has no rounds stored yet")
        return pl.read_parquet(p)

    def get_timeseries(
        self, run_id: str, metrics: list[str] | None = None, max_points: int | None = 2000
    ) -> pl.DataFrame:
        """Time series ``t_s, metric, entity, role, value``, averaged in SQL into at most ``max_points`` time buckets per series."""
        if max_points is not None and max_points < 1:
            raise StoreError(f"max_points = {max_points}: must be >= 1 (or None for every sample)")
        rid = self.resolve_run_id(run_id)
        with self._reader() as con:
            if self._status_of(con, rid) is not None:
                return _downsample(con, "timeseries where run_id = $r", {"r": rid}, metrics, max_points)
        p = self._pending_parquet(rid, "timeseries")
        if p is None:
            raise StoreError(f"run {rid} has no time series stored yet")
        with duckdb.connect() as mem:
            return _downsample(mem, "read_parquet($r)", {"r": str(p)}, metrics, max_points)

    def get_scenario_toml(self, run_id: str) -> str:
        """The TOML of the scenario the run used."""
        rid = self.resolve_run_id(run_id)
        with self._reader() as con:
            rows = con.sql(
                "select c.toml from runs r join scenarios c using (scenario_hash) where r.run_id = $r",
                params={"r": rid},
            ).fetchall()
        if rows:
            return rows[0][0] or ""
        return (self._pending().get(rid) or {}).get("scenario_toml", "")

    def export_run(self, run_id: str, fmt: Literal["parquet", "csv"], out: Path) -> list[Path]:
        """Write the run's summary.json, scenario.toml, rounds and timeseries (Parquet or CSV) into folder ``out``."""
        if fmt not in ("parquet", "csv"):
            raise StoreError(f"export format {fmt!r}: use 'parquet' or 'csv'")
        rid = self.resolve_run_id(run_id)
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise StoreError(f"export target {out} is a file; give a folder to write the run's files into")
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "summary.json", out / "scenario.toml"]
        paths[0].write_text(self.get_summary(rid).model_dump_json(indent=2), encoding="utf-8")
        paths[1].write_text(self.get_scenario_toml(rid), encoding="utf-8")
        for name, df in (
            ("rounds", self.get_rounds(rid)),
            ("timeseries", self.get_timeseries(rid, max_points=None)),
        ):
            p = out / f"{name}.{fmt}"
            if fmt == "parquet":
                df.write_parquet(p)
            else:
                df.write_csv(p)
            paths.append(p)
        return paths

    def sweep_runs(self, sweep_id: str) -> pl.DataFrame:
        """The sweep's runs with their headline metrics and one column per point parameter."""
        with self._reader() as con:
            known = con.sql(
                "select count(*) from sweeps where sweep_id = $s", params={"s": sweep_id}
            ).fetchall()[0][0]
            if not known:
                raise StoreError(f"unknown sweep id {sweep_id!r}; create it with create_sweep()")
            df = con.sql(
                f"select sr.point_key, sr.point_json, {_LIST_COLUMNS} from sweep_runs sr join runs r using (run_id)"
                " left join summaries s using (run_id) where sr.sweep_id = $s order by r.run_id",
                params={"s": sweep_id},
            ).pl()
        if df.is_empty():
            return df
        points = [json.loads(j) for j in df["point_json"].to_list()]
        keys = sorted({k for p in points for k in p})
        cols = {}
        for k in keys:
            name = k if k not in df.columns else f"point.{k}"
            vals = [p.get(k) for p in points]
            try:
                cols[name] = pl.Series(name, vals, strict=False)
            except (TypeError, ValueError):
                cols[name] = pl.Series(name, [json.dumps(v) for v in vals])
        return df.with_columns(list(cols.values()))

    def find_sweep(self, key: str) -> str | None:
        """Id of the oldest sweep whose id is ``key`` or whose spec JSON has ``"planning_key": key``, else None."""
        with self._reader() as con:
            rows = con.sql(
                "select sweep_id from sweeps where sweep_id = $k"
                " or json_extract_string(spec_json, '$.planning_key') = $k order by created_at limit 1",
                params={"k": key},
            ).fetchall()
        return rows[0][0] if rows else None

    def list_sweeps(self) -> pl.DataFrame:
        """Sweeps, newest first, with how many of their runs finished."""
        with self._reader() as con:
            return con.sql(
                "select w.sweep_id, w.name, w.created_at, count(r.run_id) as runs,"
                " count(r.run_id) filter (where r.status in ('finished', 'truncated')) as finished,"
                " w.spec_json from sweeps w left join sweep_runs sr using (sweep_id)"
                " left join runs r using (run_id) group by all order by w.created_at desc"
            ).pl()

    def find_finished_point(self, sweep_id: str, point_key: str) -> str | None:
        """Run id of a finished (or truncated) run of this sweep point, None if it must still run."""
        with self._reader() as con:
            rows = con.sql(
                "select r.run_id from sweep_runs sr join runs r using (run_id) where sr.sweep_id = $s"
                " and sr.point_key = $k and list_contains($ok, r.status) order by r.run_id desc limit 1",
                params={"s": sweep_id, "k": point_key, "ok": list(DONE_POINT_STATUSES)},
            ).fetchall()
        if rows:
            return rows[0][0]
        for rid, m in self._pending().items():
            if (
                m.get("sweep_id") == sweep_id
                and m.get("point_key") == point_key
                and m.get("status") in DONE_POINT_STATUSES
            ):
                return rid
        return None

    def _pending_capacity(self) -> dict[str, dict[str, Any]]:
        """Capacity searches still in the spool (only while another process held the lock)."""
        out = {}
        for sid in self.spool.capacity_ids():
            rec = read_json(self.spool.capacity_path(sid))
            if rec is not None:
                out[sid] = rec
        return out

    def list_capacity_searches(self) -> pl.DataFrame:
        """Capacity searches, newest first: id, name, scenario, date and, per search, lists of policies and capacities."""
        with self._reader() as con:
            df = con.sql(
                "select c.search_id, c.name, c.scenario_name, c.scenario_hash, c.created_at,"
                " list(r.policy order by r.idx) as policies, list(r.capacity_aps order by r.idx) as capacity_aps,"
                " list(r.converged order by r.idx) as converged, c.spec_json"
                " from capacity_searches c left join capacity_results r using (search_id)"
                " group by all order by c.created_at desc, c.search_id desc"
            ).pl()
        pending = [rec for sid, rec in self._pending_capacity().items() if sid not in set(df["search_id"].to_list())]
        if not pending:
            return df
        extra = pl.DataFrame(
            [
                {
                    "search_id": rec["search_id"], "name": rec.get("name", ""), "scenario_name": rec.get("scenario_name", ""),
                    "scenario_hash": rec.get("scenario_hash", ""), "created_at": _ts(rec.get("created_at")),
                    "policies": [r["policy"] for r in rec["results"]],
                    "capacity_aps": [float(r["capacity_aps"]) for r in rec["results"]],
                    "converged": [r.get("converged") for r in rec["results"]],
                    "spec_json": json.dumps(rec.get("spec") or {}, default=str),
                }
                for rec in pending
            ]
        )  # fmt: skip
        extra = extra.cast({c: df.schema[c] for c in extra.columns if c in df.schema}, strict=False)
        return pl.concat([df, extra], how="diagonal_relaxed").sort(
            ["created_at", "search_id"], descending=True
        )

    def resolve_capacity_id(self, prefix: str) -> str:
        """The one capacity search id starting with ``prefix`` (an exact id always wins)."""
        prefix = prefix.strip()
        if not prefix:
            raise StoreError("empty capacity search id; give an id or a unique prefix (see list_capacity_searches)")
        with self._reader() as con:
            ids = {
                r[0]
                for r in con.sql(
                    "select search_id from capacity_searches where starts_with(search_id, $p) limit 20",
                    params={"p": prefix},
                ).fetchall()
            }
        ids = sorted(ids | {s for s in self._pending_capacity() if s.startswith(prefix)})
        if prefix in ids:
            return prefix
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise StoreError(f"no capacity search id starts with {prefix!r} in {self.path}")
        raise StoreError(f"capacity search id prefix {prefix!r} is ambiguous ({', '.join(ids[:5])}); give more characters")

    def get_capacity_search(self, search_id: str) -> dict[str, Any]:
        """One capacity search: search_id, name, scenario_name/hash/toml, created_at, spec (dict), results (dicts)."""
        sid = self.resolve_capacity_id(search_id)
        with self._reader() as con:
            head = con.sql(
                "select c.search_id, c.name, c.scenario_name, c.scenario_hash, s.toml, c.created_at, c.spec_json"
                " from capacity_searches c left join scenarios s using (scenario_hash) where c.search_id = $s",
                params={"s": sid},
            ).fetchall()
            rows = con.sql(
                "select result_json from capacity_results where search_id = $s order by idx", params={"s": sid}
            ).fetchall()
        if head:
            h = head[0]
            return {
                "search_id": h[0], "name": h[1], "scenario_name": h[2], "scenario_hash": h[3],
                "scenario_toml": h[4] or "", "created_at": h[5], "spec": json.loads(h[6] or "{}"),
                "results": [json.loads(r[0]) for r in rows],
            }  # fmt: skip
        rec = self._pending_capacity()[sid]
        keys = ("search_id", "name", "scenario_name", "scenario_hash", "scenario_toml", "spec", "results")
        return {**{k: rec.get(k) for k in keys}, "created_at": _ts(rec.get("created_at"))}


def _downsample(
    con: duckdb.DuckDBPyConnection,
    source: str,
    params: dict[str, Any],
    metrics: list[str] | None,
    max_points: int | None,
) -> pl.DataFrame:
    """Average samples into equal time buckets per (metric, entity, role), in SQL."""
    p = dict(params)
    mfilter = ""
    if metrics is not None:
        mfilter = " and list_contains($m, metric)"
        p["m"] = list(metrics)
    where = "" if " where " in source else " where true"
    src = f"(select t_s, metric, entity, role, value from {source}{where}{mfilter})"
    lo, hi, n = con.sql(f"select min(t_s), max(t_s), count(distinct t_s) from {src}", params=p).fetchall()[0]
    if max_points is None or n is None or n <= max_points or hi is None or hi <= lo:
        return con.sql(f"select * from {src} order by metric, entity, t_s", params=p).pl()
    p.update({"lo": lo, "w": (hi - lo) / max_points, "mp": max_points - 1})
    q = (
        "select avg(t_s) as t_s, metric, entity, any_value(role) as role, avg(value) as value from"
        f" (select *, least(floor((t_s - $lo) / $w)::BIGINT, $mp) as b from {src})"
        " group by metric, entity, b order by metric, entity, t_s"
    )
    return con.sql(q, params=p).pl()


def downsample_frame(ts: pl.DataFrame, max_points: int | None = 2000) -> pl.DataFrame:
    """Downsample an in-memory time-series frame with the store's SQL (for results not yet stored)."""
    if ts.is_empty():
        return ts
    with duckdb.connect() as mem:
        mem.register("ts_frame", ts)
        return _downsample(mem, "ts_frame", {}, None, max_points)
