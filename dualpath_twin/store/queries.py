"""Reading runs and sweeps into Polars: the database first, then spool entries not ingested yet.

Time series are averaged into at most ``max_points`` time buckets in SQL (``_downsample``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl

from dualpath_twin.results import RunSummary
from dualpath_twin.store.common import DONE_POINT_STATUSES, StoreError, _ts
from dualpath_twin.store.spool import Spool, read_json

_LIST_COLUMNS = (
    "r.run_id, r.created_at, r.finished_at, r.status, r.scenario_name, r.scenario_hash, r.policy, r.seed,"
    " r.sweep_id, r.error, s.mode, s.jct_s, s.sim_time_s, s.rounds, s.prompt_tokens_per_s,"
    " s.generated_tokens_per_s, s.ttft_p50_s, s.ttft_p99_s, s.tpot_p50_s, s.tpot_p99_s, s.slo_attainment,"
    " s.bottleneck, s.wall_s, r.pid, r.host"
)


class QueriesMixin:
    """Part of ``Store``: run ids, run lists, summaries, rounds, time series, scenarios, exports and sweeps."""

    # shared with the other parts of Store (store/connection.py sets them)
    path: Path
    read_only: bool
    lock_timeout_s: float
    spool: Spool

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
        filters = (
            ("(r.scenario_name = $sc or r.scenario_hash = $sc)", "sc", scenario),
            ("r.policy = $po", "po", policy),
            ("r.created_at >= $since", "since", since),
            ("r.status = $st", "st", status),
            ("r.sweep_id = $sw", "sw", sweep_id),
        )
        for clause, key, value in filters:  # the filters given, in this order
            if value is not None:
                where.append(clause)
                params[key] = value
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
