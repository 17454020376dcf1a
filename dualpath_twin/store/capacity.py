"""The planning tables: capacity searches (one search row, one result row per policy), written and read.

A search is spooled as one JSON record (``<id>.capacity.json``) and ingested in one transaction
like a run (``_ingest_capacity``, called from ``IngestMixin._ingest_all``).
"""

from __future__ import annotations

import json
import os
import warnings
from hashlib import sha256
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dualpath_twin.store.common import StoreError, StoreLocked, _ts, _utcnow, new_run_id
from dualpath_twin.store.spool import Spool, host_name, read_json, write_json_atomic


class CapacityMixin:
    """Part of ``Store``: save, list, resolve and get capacity searches."""

    # shared with the other parts of Store (store/connection.py sets them)
    path: Path
    read_only: bool
    lock_timeout_s: float
    spool: Spool

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
