"""Adapters from the result store (dualpath_twin.store) to planning: resumable sweeps, stored capacity searches."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, Field

from dualpath_twin.planning.capacity import CapacityResult
from dualpath_twin.results import RunResult, RunSummary
from dualpath_twin.scenario import Scenario


class StoreSweepAdapter:
    """Wraps a ``dualpath_twin.store.Store``: finds the sweep recorded under the same planning key, else creates it."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def _find_sweep(self, key: str) -> str | None:
        if hasattr(self.store, "find_sweep"):
            return self.store.find_sweep(key)
        # fallback until the store offers find_sweep(key): parameterised lookup in the sweeps table
        with self.store._reader() as con:  # noqa: SLF001
            rows = con.sql(
                "select sweep_id from sweeps where json_extract_string(spec_json, '$.planning_key') = $k"
                " order by created_at limit 1",
                params={"k": key},
            ).fetchall()
        return rows[0][0] if rows else None

    def create_sweep(self, sweep_id: str, name: str, scenario_toml: str, grid: dict[str, list[Any]], policies: list[str]) -> str:
        """Return the store's id of the sweep with this planning key, creating it on first use."""
        found = self._find_sweep(sweep_id)
        if found:
            return found
        spec = {"planning_key": sweep_id, "grid": grid, "policies": policies, "scenario_toml": scenario_toml}
        return self.store.create_sweep(name, json.dumps(spec, default=str))

    def find_finished_point(self, sweep_id: str, point: dict[str, Any]) -> RunSummary | None:
        """Summary of the finished run at the point, or None."""
        from dualpath_twin.store import point_key

        rid = self.store.find_finished_point(sweep_id, point_key(point))
        return self.store.get_summary(rid) if rid else None

    def save_run(self, result: RunResult, *, sweep_id: str | None = None, point: dict[str, Any] | None = None) -> str:
        """Persist the run under the sweep point."""
        return self.store.save_run(result, sweep_id=sweep_id, point=point)

    def close(self) -> None:
        """Close the underlying store."""
        if hasattr(self.store, "close"):
            self.store.close()


def open_sweep_store(db: str | Path | None = None) -> StoreSweepAdapter:
    """Open the result store (default path when ``db`` is None) for sweeps."""
    from dualpath_twin.store import open_store

    return StoreSweepAdapter(open_store(db))


# ---------------------------------------------------------------- capacity searches


class CapacitySearchRecord(BaseModel):
    """A capacity search as stored: what was asked (spec, scenario) and the per-policy results with their curves."""

    search_id: str
    name: str = ""
    scenario_name: str = ""
    scenario_toml: str = ""
    created_at: datetime | None = None
    spec: dict[str, Any] = Field(default_factory=dict, description="policies, tolerance, window, criterion, overrides, ...")
    results: list[CapacityResult] = Field(default_factory=list)


def _raw_store(store: Any) -> Any:
    """The ``dualpath_twin.store.Store`` behind a StoreSweepAdapter (or the store itself)."""
    return store.store if isinstance(store, StoreSweepAdapter) else store


def capacity_spec(
    policies: list[str],
    *,
    tolerance: float,
    criterion: Any = None,
    start_aps: float | None = None,
    window_s: float | None = None,
    max_evaluations: int | None = None,
    overrides: list[str] | None = None,
    scenario_path: str | None = None,
    source: str = "library",
) -> dict[str, Any]:
    """The JSON-able description of a capacity search's request, stored next to its results."""
    return {
        "policies": list(policies),
        "tolerance": tolerance,
        "start_aps": start_aps,
        "window_s": window_s,
        "max_evaluations": max_evaluations,
        "criterion": criterion.model_dump(mode="json") if criterion is not None else None,
        "overrides": list(overrides or []),
        "scenario_path": scenario_path,
        "source": source,
    }


def save_capacity(
    store: Any, sc: Scenario, results: list[CapacityResult], spec: dict[str, Any] | None = None, name: str | None = None
) -> str:
    """Persist a capacity search (scenario TOML, spec, every policy's result and curve); return its search id."""
    return _raw_store(store).save_capacity_search(
        name or sc.name,
        sc.to_toml(),
        sc.name,
        spec or {"policies": [r.policy for r in results]},
        [r.model_dump(mode="json") for r in results],
    )


def list_capacity(store: Any) -> pl.DataFrame:
    """Stored capacity searches, newest first (search_id, name, scenario_name, created_at, policies, capacity_aps, ...)."""
    return _raw_store(store).list_capacity_searches()


def load_capacity(store: Any, search_id: str) -> CapacitySearchRecord:
    """One stored capacity search (any unique prefix of its id), results rebuilt as CapacityResult."""
    return CapacitySearchRecord.model_validate(_raw_store(store).get_capacity_search(search_id))


def capacity_label(row: dict[str, Any]) -> str:
    """One-line label of a list_capacity row: id, scenario, capacity per policy, date."""
    caps = ", ".join(f"{p} {c:.4g}" for p, c in zip(row.get("policies") or [], row.get("capacity_aps") or [], strict=False))
    when = row.get("created_at")
    when_s = f"{when:%Y-%m-%d %H:%M} UTC" if isinstance(when, datetime) else str(when or "")
    name = row.get("name") or row.get("scenario_name") or ""
    return f"{row['search_id']} | {name} | {caps} agents/s | {when_s}"
