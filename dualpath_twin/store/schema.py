"""The store's versioned DuckDB schema and its migrations (applied in order on open).

Each migration takes the database from version ``n - 1`` to ``n``. A fresh file runs them
all; an older file runs the missing ones, in one transaction each. Never edit a released
migration: add a new one and bump ``SCHEMA_VERSION``.

No primary keys or indexes on purpose: DuckDB prunes by zone maps (a run's rows are
contiguous), ``ALTER TABLE`` is blocked on indexed tables, and idempotent re-ingest is done
by delete-then-insert inside one transaction.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

# rounds columns of the results.py contract, with their DuckDB types; columns the simulation
# adds later are added to the table on first sight (see Store._ensure_columns)
ROUNDS_COLUMNS: dict[str, str] = {
    "agent_id": "BIGINT",
    "round_idx": "BIGINT",
    "prompt_tokens": "BIGINT",
    "hit_tokens": "BIGINT",
    "gen_tokens": "BIGINT",
    "arrival_s": "DOUBLE",
    "sched_s": "DOUBLE",
    "read_start_s": "DOUBLE",
    "read_end_s": "DOUBLE",
    "read_side": "VARCHAR",
    "prefill_start_s": "DOUBLE",
    "prefill_end_s": "DOUBLE",
    "first_token_s": "DOUBLE",
    "second_token_s": "DOUBLE",
    "decode_admit_s": "DOUBLE",
    "done_s": "DOUBLE",
    "pe": "BIGINT",
    "de": "BIGINT",
    "pe_node": "BIGINT",
    "de_node": "BIGINT",
    "bytes_read_pe_snic": "DOUBLE",
    "bytes_read_de_snic": "DOUBLE",
    "bytes_pe_h2d": "DOUBLE",
    "bytes_de_to_pe": "DOUBLE",
    "bytes_pe_to_de": "DOUBLE",
    "bytes_written": "DOUBLE",
    "ttft_s": "DOUBLE",
    "ttst_s": "DOUBLE",
    "tpot_s": "DOUBLE",
}

TIMESERIES_COLUMNS: dict[str, str] = {
    "t_s": "DOUBLE",
    "metric": "VARCHAR",
    "entity": "VARCHAR",
    "role": "VARCHAR",
    "value": "DOUBLE",
}

# flat summary columns (v2) -> JSON path in RunSummary.model_dump_json()
SUMMARY_FLAT: dict[str, tuple[str, str]] = {
    "mode": ("VARCHAR", "$.mode"),
    "jct_s": ("DOUBLE", "$.jct_s"),
    "sim_time_s": ("DOUBLE", "$.sim_time_s"),
    "rounds": ("BIGINT", "$.rounds"),
    "rounds_total": ("BIGINT", "$.rounds_total"),
    "agents": ("BIGINT", "$.agents"),
    "prompt_tokens_per_s": ("DOUBLE", "$.prompt_tokens_per_s"),
    "generated_tokens_per_s": ("DOUBLE", "$.generated_tokens_per_s"),
    "rounds_per_s": ("DOUBLE", "$.rounds_per_s"),
    "ttft_p50_s": ("DOUBLE", "$.ttft_s.p50"),
    "ttft_p99_s": ("DOUBLE", "$.ttft_s.p99"),
    "tpot_p50_s": ("DOUBLE", "$.tpot_s.p50"),
    "tpot_p99_s": ("DOUBLE", "$.tpot_s.p99"),
    "slo_attainment": ("DOUBLE", "$.slo_attainment"),
    "snic_imbalance": ("DOUBLE", "$.snic_imbalance"),
    "bottleneck": ("VARCHAR", "$.bottleneck"),
    "wall_s": ("DOUBLE", "$.wall_s"),
}


def _cols(d: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


def _v1(con: duckdb.DuckDBPyConnection) -> None:
    """Version 1: scenarios, runs, summaries as JSON, rounds, timeseries."""
    con.sql(
        "create table scenarios (scenario_hash VARCHAR, name VARCHAR, toml VARCHAR, created_at TIMESTAMP)"
    )
    con.sql(
        "create table runs (run_id VARCHAR, scenario_hash VARCHAR, policy VARCHAR, seed BIGINT,"
        " status VARCHAR, created_at TIMESTAMP)"
    )
    con.sql("create table summaries (run_id VARCHAR, summary_json VARCHAR)")
    con.sql(f"create table rounds (run_id VARCHAR, {_cols(ROUNDS_COLUMNS)})")
    con.sql(f"create table timeseries (run_id VARCHAR, {_cols(TIMESERIES_COLUMNS)})")


def _v2(con: duckdb.DuckDBPyConnection) -> None:
    """Version 2: run provenance (pid, host, error, sweep), flat summary columns, sweeps."""
    for col, typ in (
        ("scenario_name", "VARCHAR"),
        ("error", "VARCHAR"),
        ("finished_at", "TIMESTAMP"),
        ("pid", "BIGINT"),
        ("host", "VARCHAR"),
        ("sweep_id", "VARCHAR"),
    ):
        con.sql(f"alter table runs add column {col} {typ}")
    con.sql("update runs set error = '' where error is null")
    con.sql(
        "update runs set scenario_name = s.name from scenarios s"
        " where s.scenario_hash = runs.scenario_hash and runs.scenario_name is null"
    )
    for col, (typ, path) in SUMMARY_FLAT.items():
        con.sql(f"alter table summaries add column {col} {typ}")
        # path is a constant of this module, not user input
        if typ == "VARCHAR":
            expr = f"json_extract_string(summary_json, '{path}')"
        else:
            expr = f"try_cast(json_extract_string(summary_json, '{path}') as {typ})"
        con.sql(f"update summaries set {col} = {expr}")
    con.sql("create table sweeps (sweep_id VARCHAR, name VARCHAR, spec_json VARCHAR, created_at TIMESTAMP)")
    con.sql(
        "create table sweep_runs (sweep_id VARCHAR, run_id VARCHAR, point_key VARCHAR, point_json VARCHAR)"
    )


def _v3(con: duckdb.DuckDBPyConnection) -> None:
    """Version 3: capacity searches (one row per search) and their per-policy results (``idx`` = order given)."""
    con.sql(
        "create table capacity_searches (search_id VARCHAR, name VARCHAR, scenario_hash VARCHAR,"
        " scenario_name VARCHAR, spec_json VARCHAR, created_at TIMESTAMP, host VARCHAR, pid BIGINT)"
    )
    con.sql(
        "create table capacity_results (search_id VARCHAR, idx BIGINT, policy VARCHAR, capacity_aps DOUBLE, lo_aps DOUBLE,"
        " hi_aps DOUBLE, tolerance DOUBLE, converged BOOLEAN, evaluations BIGINT, window_s DOUBLE,"
        " ttft_limit_s DOUBLE, tpot_limit_ms DOUBLE, result_json VARCHAR)"
    )


def _v4(con: duckdb.DuckDBPyConnection) -> None:
    """Version 4: calibrations (one row per ``calibrate`` fit; store/calibrations.py)."""
    con.sql(
        "create table calibrations (fit_id VARCHAR, name VARCHAR, created_at TIMESTAMP, measurements_toml VARCHAR,"
        " fitted_json VARCHAR, residuals_json VARCHAR, result_json VARCHAR)"
    )


MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [_v1, _v2, _v3, _v4]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """Schema version of an open database (0 for an empty file)."""
    exists = con.sql(
        "select count(*) from information_schema.tables where table_name = 'schema_version'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    row = con.sql("select max(version) from schema_version").fetchall()[0][0]
    return int(row or 0)


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply missing migrations, one transaction each; return the versions applied."""
    applied: list[int] = []
    version = current_version(con)
    if version > SCHEMA_VERSION:
        return applied
    for target in range(version + 1, SCHEMA_VERSION + 1):
        con.begin()
        try:
            if target == 1 and version == 0:
                con.sql("create table if not exists schema_version (version INTEGER, applied_at TIMESTAMP)")
            MIGRATIONS[target - 1](con)
            con.sql("insert into schema_version values ($v, now()::TIMESTAMP)", params={"v": target})
            con.commit()
        except Exception:
            con.rollback()
            raise
        applied.append(target)
    return applied
