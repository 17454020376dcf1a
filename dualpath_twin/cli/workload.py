"""``workload stats``: rounds, agents, token percentiles, hit ratio and KV bytes per round of a workload."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dualpath_twin.cli.common import (
    JsonOpt,
    SetOpt,
    SkipBadOpt,
    load_scenario,
    print_json,
    with_skip_bad_lines,
)
from dualpath_twin.cli_errors import die, guard


def workload_stats_cmd(
    source: Annotated[Path, typer.Argument(help="a scenario TOML or a trace file", show_default=False)],
    json_: JsonOpt = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="model catalog name for KV bytes per round (default: the scenario's)"
        ),
    ] = None,
    set_: SetOpt = None,
    skip_bad_lines: SkipBadOpt = False,
) -> None:
    """Statistics of a workload: rounds, agents, token percentiles, hit ratio, KV bytes per round."""
    with guard():
        from dualpath_twin.catalog import get_model
        from dualpath_twin.workload import format_stats_table, workload_stats

        if not source.exists():
            die(f"file not found: {source}; give a scenario .toml or a trace file (.jsonl/.csv)")
        if source.suffix.lower() == ".toml":
            sc = with_skip_bad_lines(load_scenario(source, set_), skip_bad_lines)
            spec = (
                get_model(model)
                if model
                else get_model(sc.model.name, sc.model.kv_format, sc.model.overrides)
            )
            stats = workload_stats(sc, model_spec=spec, block_tokens=sc.storage.block_tokens)
        else:
            if set_:
                die("--set applies to scenario files only, not to a trace")
            spec = get_model(model) if model else None
            stats = workload_stats(source, model_spec=spec, skip_bad_lines=skip_bad_lines)
        if json_:
            print_json(stats.to_dict())
        else:
            typer.echo(format_stats_table(stats))



def register(app: typer.Typer) -> None:
    """Add the ``workload`` command group (a typer sub-app) to the CLI."""
    workload_app = typer.Typer(help="Inspect workloads (synthetic datasets and traces).", no_args_is_help=True)
    workload_app.command("stats")(workload_stats_cmd)
    app.add_typer(workload_app, name="workload")
