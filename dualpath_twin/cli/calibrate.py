"""The ``calibrate`` command: fit [compute]/[network] fields to measurements, print the fit, write and store it.

Contract (same as the main CLI): ``--json`` prints ONE JSON object on stdout; messages go to
stderr; exit 2 on a user error (bad measurement file, bad store path).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dualpath_twin.calibration.fit import CalibrationResult, fit
from dualpath_twin.calibration.measurements import CalibrationError, load, refit_paths
from dualpath_twin.cli.common import out_console
from dualpath_twin.cli_errors import guard as _guard


def fit_table(result: CalibrationResult) -> Table:
    """The fitted fields: start, fitted, 1-sigma, sensitivity and verdict."""
    t = Table(title="fitted fields")
    for col in ("field", "start", "fitted", "1-sigma", "sensitivity", "verdict"):
        t.add_column(col, justify="left" if col in ("field", "verdict") else "right")
    for f in result.fields:
        sig = f"{f.sigma:.3g}" if f.sigma is not None else "-"
        t.add_row(f.path, f"{f.start:.4g}", f"{f.fitted:.4g}", sig, f"{f.sensitivity:.3g}", f.verdict)
    return t


def points_table(result: CalibrationResult) -> Table:
    """Every measured point against the twin, at the start and after the fit."""
    t = Table(title="measured vs twin")
    for col in ("#", "point", "quantity", "measured", "twin start", "twin fitted", "residual"):
        t.add_column(col, justify="left" if col in ("point", "quantity") else "right")
    for i, p in enumerate(result.points, 1):
        res = "ref" if p.reference else f"{p.residual_pct:+.1f}%"
        t.add_row(str(i), p.name, p.quantity, f"{p.measured:,.4g}", f"{p.twin_start:,.4g}", f"{p.twin:,.4g}", res)
    return t


def register(app: typer.Typer) -> None:
    """Add the ``calibrate`` command to the main typer app."""

    @app.command("calibrate")
    def calibrate_cmd(
        measurements: Annotated[Path | None, typer.Argument(help="measurements TOML (see docs/calibration.md)")] = None,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="write the calibration TOML here (a scenario includes it)")] = None,
        fit_fields: Annotated[list[str] | None, typer.Option("--fit", help="field to fit, dotted path (repeatable; replaces the file's fit list)")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")] = False,
        db: Annotated[Path | None, typer.Option("--db", envvar="DUALPATH_TWIN_DB", help="result store; default data/twin.duckdb")] = None,
        no_save: Annotated[bool, typer.Option("--no-save", help="do not save the fit in the store")] = False,
        list_fits: Annotated[bool, typer.Option("--list", help="list the fits saved in the store and exit")] = False,
        show: Annotated[str | None, typer.Option("--show", help="print a stored fit (id or unique prefix); with -o, write its calibration TOML")] = None,
    ) -> None:
        """Fit the twin's [compute]/[network] efficiency fields to measurements of your cluster (least squares).

        Prints the fitted fields with their 1-sigma, every point measured vs twin with its residual,
        and a confidence verdict; -o writes the calibration TOML a scenario includes with
        calibration = "calibration.toml". The fit is saved in the store (--db) unless --no-save.
        """
        with _guard():
            if list_fits:
                _list(db, json_out)
                return
            fit_id = None
            if show is not None:
                if measurements is not None:
                    raise CalibrationError(["--show prints a stored fit: drop MEASUREMENTS, or drop --show to fit it"])
                fit_id, result = _load_stored(db, show)
                no_save = True
            elif measurements is None:
                raise CalibrationError(["MEASUREMENTS: give the measurements TOML file (or --list, --show FIT_ID)"])
            else:
                ms = load(measurements)
                if fit_fields:
                    refit_paths(ms, [p.strip() for it in fit_fields for p in it.split(",") if p.strip()])
                result = fit(ms)
            if output is not None:
                output.parent.mkdir(parents=True, exist_ok=True)
                output.write_text(result.to_toml(), encoding="utf-8")
                typer.echo(f"wrote {output} (include it in a scenario: calibration = \"{output.name}\")", err=True)
            if not no_save:
                fit_id = _save(db, result)
                typer.echo(f"saved fit {fit_id} (dashboard: Calibration page; `dualpath-twin calibrate --list`)", err=True)
            if json_out:
                sys.stdout.write(json.dumps({"fit_id": fit_id, **result.summary_json()}, default=str) + "\n")
                return
            con = out_console()
            con.print(fit_table(result))
            for f in result.fields:
                if f.note:
                    typer.echo(f"  {f.path}: {f.verdict}: {f.note}")
            con.print(points_table(result))
            typer.echo(
                f"residuals: rms {result.rms_residual_pct:.2f} % (start {result.rms_residual_start_pct:.2f} %),"
                f" max {result.max_abs_residual_pct:.2f} %; {result.dof} degrees of freedom;"
                f" 1-sigma per measurement {result.sigma_pct:.1f} %"
            )
            if result.serving:
                typer.echo("serving summary (reported, not fitted): " + ", ".join(f"{k} {v}" for k, v in result.serving.items()))
            for n in result.notes:
                typer.echo(f"note: {n}")
            typer.echo(f"verdict: {result.verdict}")


def _save(db: Path | None, result: CalibrationResult) -> str:
    from dualpath_twin.calibration.fit import residuals_json
    from dualpath_twin.store import open_store
    from dualpath_twin.store.calibrations import save_calibration

    store = open_store(db)
    try:
        return save_calibration(
            store, result.name or Path(result.source).stem, result.measurements_text, result.fitted_values,
            json.loads(residuals_json(result)), result.summary_json(),
        )  # fmt: skip
    finally:
        store.close()


def _load_stored(db: Path | None, fit_id: str) -> tuple[str, CalibrationResult]:
    """A stored fit as a CalibrationResult (its measurement file text restored)."""
    from dualpath_twin.store import open_store
    from dualpath_twin.store.calibrations import load_calibration

    store = open_store(db)
    try:
        rec = load_calibration(store, fit_id)
    finally:
        store.close()
    return rec.fit_id, CalibrationResult.model_validate({**rec.result, "measurements_text": rec.measurements_toml})


def _list(db: Path | None, json_out: bool) -> None:
    from dualpath_twin.store import open_store
    from dualpath_twin.store.calibrations import list_calibrations

    store = open_store(db)
    try:
        df = list_calibrations(store)
    finally:
        store.close()
    if json_out:
        sys.stdout.write(json.dumps(df.to_dicts(), default=str) + "\n")
        return
    t = Table(title="calibrations")
    for col in ("fit_id", "name", "created_at", "rms residual %", "verdict"):
        t.add_column(col)
    for r in df.to_dicts():
        rms = r["rms_residual_pct"]
        t.add_row(r["fit_id"], r["name"], str(r["created_at"])[:19], f"{rms:.2f}" if rms is not None else "-", (r["verdict"] or "")[:70])
    out_console().print(t)
