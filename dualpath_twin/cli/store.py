"""The result store from the command line: ``runs``, ``show``, ``export``, ``gc`` and ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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


def runs_cmd(
    json_: JsonOpt = False,
    policy: Annotated[str | None, typer.Option("--policy", help="only runs of this policy")] = None,
    scenario: Annotated[
        str | None, typer.Option("--scenario", help="only runs of this scenario name")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="only runs with this status")] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="at most this many runs (newest first)")
    ] = 50,
    db: DbOpt = None,
) -> None:
    """List stored runs, newest first."""
    with guard():
        store = common.open_store(db)
        try:
            df = store.list_runs(scenario=scenario, policy=policy, status=status)
        finally:
            close(store)
        df = df.head(limit)
        rows = df.to_dicts()
        if json_:
            print_json(rows)
            return
        if not rows:
            typer.echo("no runs stored" + (f" in {db}" if db else ""), err=True)
            return
        preferred = [
            "run_id", "created_at", "status", "scenario_name", "policy", "seed", "jct_s",
            "prompt_tokens_per_s", "ttft_p99_s", "slo_attainment", "bottleneck",
        ]  # fmt: skip
        cols = [c for c in preferred if c in df.columns] or list(df.columns)[:8]
        table = Table(title=f"{len(rows)} run(s)", title_justify="left")
        for c in cols:
            table.add_column(c)
        for r in rows:
            table.add_row(*[fmt_cell(r.get(c)) for c in cols])
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
        finally:
            close(store)
        if json_:
            obj = summary.model_dump(mode="json")
            obj["run_id"] = rid
            print_json(obj)
            return
        print_summary_table([summary], [rid], f"run {rid}: {summary.scenario_name}")


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
    output: Annotated[Path, typer.Option("--output", "-o", help="report.html or report.pdf")] = Path(
        "report.html"
    ),
    db: DbOpt = None,
) -> None:
    """Build a self-contained HTML (or PDF) report of stored runs."""
    with guard():
        if output.suffix.lower() not in (".html", ".htm", ".pdf"):
            die(f"-o {output}: the report must end in .html or .pdf")
        store = common.open_store(db)
        try:
            ids = [store.resolve_run_id(r) for r in run_ids]
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
