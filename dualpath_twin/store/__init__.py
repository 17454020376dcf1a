"""The DuckDB result store: runs, summaries, rounds, time series and sweeps (see docs/store.md)."""

from __future__ import annotations

from pathlib import Path

from dualpath_twin.store.db import (
    RUN_STATUSES,
    Store,
    StoreError,
    StoreLocked,
    default_db_path,
    downsample_frame,
    new_run_id,
    point_key,
)
from dualpath_twin.store.schema import SCHEMA_VERSION

__all__ = [
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "Store",
    "StoreError",
    "StoreLocked",
    "default_db_path",
    "downsample_frame",
    "new_run_id",
    "open_store",
    "point_key",
]


def open_store(path: str | Path | None = None, read_only: bool = False) -> Store:
    """Open (creating and migrating if needed) the result store at ``path`` (default: default_db_path())."""
    return Store(path if path is not None else default_db_path(), read_only=read_only)
