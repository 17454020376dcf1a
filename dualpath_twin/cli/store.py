"""The result store from the command line: ``runs``, ``show``, ``export``, ``gc`` and ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.table import Table

from dualpath_twin.cli import common
from dualpath_twin.cli.common import (
    DbOpt,
    JsonOpt,
    close,
    fmt_cell,
    out_console,
    print_json,
    print_summary_table,
    split_csv,
)
from dualpath_twin.cli_errors import die, guard
from dualpath_twin.comparison import GROUPS

# stored column -> the name shown (and in --json): the names --check uses, TPOT in ms as every table shows it
RUNS_RENAMES = {"scenario_name": "scenario", "ttft_p50_s": "ttft_s.p50", "ttft_p99_s": "ttft_s.p99",
                "tpot_p50_s": "tpot_ms.p50", "tpot_p99_s": "tpot_ms.p99"}  # fmt: skip
RUNS_COLUMNS = (
    "run_id", "status", "scenario", "design", *[c for c in GROUPS], "other", "sweep_id",
    "jct_s", "prompt_tokens_per_s", "ttft_s.p99", "tpot_ms.p99", "meets_slo", "slo_attainment",
    "usd_per_hour", "usd_per_m_generated_tokens", "bottleneck",
)  # fmt: skip
"""Columns of the ``runs`` table (the run id starts with its start time; --json has every column); the
scenario-diff columns (topology ... other) appear only when they vary among the runs listed."""


def runs_frame(df: pl.DataFrame) -> pl.DataFrame:
    """The stored listing (with diff and cost columns) renamed to the metric names of --check, TPOT in ms."""
    ms = [pl.col(c) * 1000.0 for c in ("tpot_p50_s", "tpot_p99_s") if c in df.columns]
    return df.with_columns(ms).rename({k: v for k, v in RUNS_RENAMES.items() if k in df.columns})


def runs_cmd(
    json_: JsonOpt = False,
    policy: Annotated[str | None, typer.Option("--policy", help="only runs of this policy")] = None,
    scenario: Annotated[
        str | None, typer.Option("--scenario", help="only runs of this scenario name")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="only runs with this status")] = None,
    sweep: Annotated[str | None, typer.Option("--sweep", help="only the runs of this sweep id")] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="at most this many runs (newest first)")
    ] = 50,
    db: DbOpt = None,
) -> None:
    """List stored runs, newest first, with the columns that tell them apart and their cost."""
    with guard():
        from dualpath_twin.comparison import runs_with_diff

        store = common.open_store(db)
        try:
            df = runs_frame(runs_with_diff(store, limit, scenario=scenario, policy=policy, status=status, sweep_id=sweep))
        finally:
            close(store)
        rows = df.to_dicts()
        if json_:
            print_json(rows)
            return
        if not rows:
            typer.echo("no runs stored" + (f" in {db}" if db else ""), err=True)
            return
        cols = [c for c in RUNS_COLUMNS if c in df.columns and (c != "sweep_id" or df["sweep_id"].null_count() < df.height)]
        table = Table(title=f"{len(rows)} run(s); TPOT in ms, cost in USD from the cost table", title_justify="left")
        for c in cols:
            table.add_column(c, overflow="fold")
        from dualpath_twin.analysis.verdict import resource_label

        for r in rows:  # the table words the bottleneck key (--json keeps the key)
            table.add_row(*[fmt_cell((resource_label(r.get(c)) or None) if c == "bottleneck" else r.get(c)) for c in cols])
        out_console().print(table)


def show(
    run_id: Annotated[str, typer.Argument(help="run id or a unique prefix of it", show_default=False)],
    json_: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Show one stored run's summary."""
    with guard():
        store = common.open_store(db)
        try:
            rid = store.resolve_run_id(run_id)
            summary = store.get_summary(rid)
            toml = store.get_scenario_toml(rid)
        finally:
            close(store)
        if json_:
            obj = summary.model_dump(mode="json")
            obj["run_id"] = rid
            print_json(obj)
            return
        print_summary_table([summary], [rid], f"run {rid}: {summary.scenario_name}", [toml] if toml else None)


def export(
    run_id: Annotated[str, typer.Argument(help="run id or a unique prefix of it", show_default=False)],
    format_: Annotated[str, typer.Option("--format", "-f", help="parquet | csv")] = "parquet",
    output: Annotated[Path, typer.Option("--output", "-o", help="output folder (or file prefix)")] = Path(
        "export"
    ),
    db: DbOpt = None,
) -> None:
    """Export a run's summary, rounds and time series as Parquet or CSV files."""
    with guard():
        fmt = format_.lower()
        if fmt not in ("parquet", "csv"):
            die(f"--format {format_!r}: choose parquet or csv")
        store = common.open_store(db)
        try:
            rid = store.resolve_run_id(run_id)
            files = store.export_run(rid, fmt, output)
        finally:
            close(store)
        for f in files:
            typer.echo(str(f))


def gc(
    older_than_days: Annotated[
        float | None,
        typer.Option("--older-than-days", min=0, help="remove runs started more than N days ago"),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="comma-separated statuses to remove (default: failed,cancelled)"),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Delete runs: --older-than-days N alone removes every completed run that old; default: failed and cancelled runs."""
    with guard():
        allowed = {"running", "finished", "truncated", "failed", "cancelled"}
        statuses = split_csv(status) if status else None
        if statuses is None:
            # age alone: every completed run that old; neither: failed and cancelled runs of any age
            statuses = (
                ["finished", "truncated", "failed", "cancelled"]
                if older_than_days is not None
                else ["failed", "cancelled"]
            )
        bad = [s for s in statuses or [] if s not in allowed]
        if bad:
            die(f"--status: unknown {', '.join(bad)}; choose from {', '.join(sorted(allowed))}")
        store = common.open_store(db)
        try:
            n = store.gc(older_than_days=older_than_days, statuses=statuses)
        finally:
            close(store)
        typer.echo(f"removed {n} run(s)")


def report_cmd(
    run_ids: Annotated[
        list[str], typer.Argument(help="one or more run ids (or unique prefixes)", show_default=False)
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="report .html or .pdf (default: dualpath-<scenario>-<designs>-<date>.html)"),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Build a self-contained HTML (or PDF) report of stored runs."""
    with guard():
        if output is not None and output.suffix.lower() not in (".html", ".htm", ".pdf"):
            die(f"-o {output}: the report must end in .html or .pdf")
        store = common.open_store(db)
        try:
            ids = [store.resolve_run_id(r) for r in run_ids]
            if output is None:
                from dualpath_twin.report import report_filename_for

                output = Path(report_filename_for([store.get_summary(r) for r in ids]))
            out = common.write_report(store, ids, [], output)
        finally:
            close(store)
        typer.echo(str(out))



def register(app: typer.Typer) -> None:
    """Add the store commands to the CLI."""
    app.command("runs")(runs_cmd)
    app.command()(show)
    app.command()(export)
    app.command()(gc)
    app.command("report")(report_cmd)
