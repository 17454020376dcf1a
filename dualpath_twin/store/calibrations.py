"""The calibrations table: one row per ``dualpath-twin calibrate`` fit (schema v4).

A fit is small (a measurement file and two JSON documents), so it is written directly under a
brief write connection instead of through the spool; reads use the store's reader connection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from dualpath_twin.store.common import StoreError, _utcnow, new_run_id


@dataclass(frozen=True)
class CalibrationRecord:
    """One stored fit: id, name, creation time, the measurement file text, fitted values and residuals."""

    fit_id: str
    name: str
    created_at: datetime
    measurements_toml: str
    fitted: dict[str, float]
    residuals: list[dict[str, Any]]
    result: dict[str, Any]


def save_calibration(
    store: Any,
    name: str,
    measurements_toml: str,
    fitted: dict[str, float],
    residuals: list[dict[str, Any]],
    result: dict[str, Any] | None = None,
) -> str:
    """Insert one fit into the store and return its fit id."""
    store._check_open(write=True)
    fit_id = new_run_id("cal-")
    with store._connect(write=True) as con:
        con.begin()
        try:
            con.sql(
                "insert into calibrations values ($i, $n, $c, $m, $f, $r, $j)",
                params={
                    "i": fit_id, "n": name, "c": _utcnow(), "m": measurements_toml,
                    "f": json.dumps(fitted), "r": json.dumps(residuals), "j": json.dumps(result or {}, default=str),
                },
            )  # fmt: skip
            con.commit()
        except Exception:
            con.rollback()
            raise
    return fit_id


def list_calibrations(store: Any) -> pl.DataFrame:
    """Stored fits, newest first: fit_id, name, created_at, rms residual % and the fitted values JSON."""
    with store._reader() as con:
        return con.sql(
            "select fit_id, name, created_at,"
            " try_cast(json_extract_string(result_json, '$.rms_residual_pct') as DOUBLE) as rms_residual_pct,"
            " json_extract_string(result_json, '$.verdict') as verdict, fitted_json"
            " from calibrations order by created_at desc, fit_id desc"
        ).pl()


def load_calibration(store: Any, fit_id: str) -> CalibrationRecord:
    """One stored fit by id (a unique prefix is enough)."""
    with store._reader() as con:
        rows = con.sql(
            "select fit_id, name, created_at, measurements_toml, fitted_json, residuals_json, result_json"
            " from calibrations where starts_with(fit_id, $p) order by fit_id",
            params={"p": fit_id},
        ).fetchall()
    if not rows:
        raise StoreError(f"no calibration {fit_id!r} in {store.path}; list them with `dualpath-twin calibrate --list`")
    if len(rows) > 1 and rows[0][0] != fit_id:
        raise StoreError(f"calibration id {fit_id!r} is ambiguous ({len(rows)} fits); give more characters")
    r = rows[0]
    return CalibrationRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), json.loads(r[6] or "{}"))
