"""Writing runs and sweeps: spool first (manifest renamed into place last), then ingest if the lock is free; gc."""

from __future__ import annotations

import json
import os
import warnings
from datetime import timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any

import polars as pl

from dualpath_twin.results import RunResult
from dualpath_twin.store.common import (
    FINAL_RESULT_STATUSES,
    RUN_STATUSES,
    StoreError,
    StoreLocked,
    _pause,
    _utcnow,
    new_run_id,
    point_key,
)
from dualpath_twin.store.schema import migrate
from dualpath_twin.store.spool import Spool, host_name, process_start_ticks, read_json, write_json_atomic


class WritesMixin:
    """Part of ``Store``: save, begin, finish and mark runs; create sweeps; delete old runs."""

    # shared with the other parts of Store (store/connection.py sets them)
    path: Path
    read_only: bool
    lock_timeout_s: float
    spool: Spool

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
