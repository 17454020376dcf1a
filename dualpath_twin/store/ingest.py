"""Spool -> database: each spooled run lands in one transaction (run row, summary, rounds, time series, sweep link).

Writers put runs in the spool first (store/spool.py); whoever gets the write lock next ingests
them here (``_ingest_all``), registers running markers and fails runs whose writer died.
"""

from __future__ import annotations

import json
import re
from hashlib import sha256
from pathlib import Path
from typing import Any

import duckdb

from dualpath_twin.results import RunSummary
from dualpath_twin.store.common import StoreError, _pause, _ts, _utcnow, point_key
from dualpath_twin.store.schema import SUMMARY_FLAT
from dualpath_twin.store.spool import Spool, host_name, pid_alive, read_json, write_json_atomic


class IngestMixin:
    """Part of ``Store``: ingest spool entries under a write connection (``con`` is always passed in)."""

    # shared with the other parts of Store (store/connection.py sets them)
    path: Path
    read_only: bool
    lock_timeout_s: float
    spool: Spool

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
                rejected.append(self._reject(rid, m, err, self.spool.done_path(rid)))
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
                rejected.append(self._reject(sid, rec, err, path))
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

    def _reject(self, entry_id: str, rec: dict[str, Any], err: Exception, path: Path) -> tuple[str, str]:
        """Set a spool entry that failed to ingest aside as ``<id>.rejected.json`` (with the error); (id, message)."""
        msg = f"{type(err).__name__}: {err}"
        write_json_atomic(self.spool.root / f"{entry_id}.rejected.json", {**rec, "rejected_error": msg})
        path.unlink(missing_ok=True)
        return entry_id, msg

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
