"""The ``dualpath-twin`` command line (typer): one module per command group, all thin shells over the library.

A stable contract other tools script: ``--json`` output goes to stdout as ONE JSON object,
progress and messages go to stderr. Exit codes: 0 ok, 1 a --check (or invariant) failed,
2 a user error (bad scenario, file, run id or --check expression), 130 interrupted.

Modules: ``common`` (options, formatting, loading, progress, store doors, checks), ``validate``,
``run`` (run, compare), ``store`` (runs, show, export, gc, report), ``workload`` (workload stats),
``planning`` (sweep, capacity, size, sensitivity) and ``calibrate``.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dualpath_twin import __version__
from dualpath_twin.cli import calibrate, planning, run, store, validate, workload

app = typer.Typer(
    name="dualpath-twin",
    help="Digital twin of PD-disaggregated LLM inference clusters loading KV-cache from storage "
    "(Basic, layer-wise, DualPath, Oracle).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"dualpath-twin {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """Digital twin of PD-disaggregated LLM inference clusters loading KV-cache from storage."""


for _module in (validate, run, store, workload, planning, calibrate):  # the order of `--help`
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="dualpath-twin")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
