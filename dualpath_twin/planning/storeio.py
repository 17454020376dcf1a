"""Adapter from the result store (dualpath_twin.store) to what sweeps need: a deterministic, resumable sweep id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dualpath_twin.results import RunResult, RunSummary


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
