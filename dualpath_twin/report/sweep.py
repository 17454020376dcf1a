"""Self-contained HTML report of a sweep: how it was produced, the scenario, the results table, then figures.

``sweep_report_html(result, scenario, command, figures)`` is what ``dualpath-twin sweep --html``
and the dashboard's Planning page can write: a reader who gets the file alone sees the command
(or parameters) that produced it, the scenario it varied, every point's numbers and the charts.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from dualpath_twin.analysis.verdict import resource_label
from dualpath_twin.report.common import CSS, SCENARIO_FIELDS, esc, fmt, get_path, table, toml_dict

__all__ = ["SWEEP_COLUMNS", "cli_command_line", "sweep_report_html", "write_sweep_report"]

SWEEP_COLUMNS: dict[str, str] = {
    "policy": "design",
    "status": "status",
    "prompt_tokens_per_s": "prompt tokens/s",
    "generated_tokens_per_s": "generated tokens/s",
    "jct_s": "JCT (s)",
    "ttft_p90_s": "TTFT p90 (s)",
    "ttft_p99_s": "TTFT p99 (s)",
    "tpot_p90_ms": "TPOT p90 (ms)",
    "slo_attainment": "SLO attainment",
    "steady_state": "steady",
    "capacity_aps": "capacity (agents/s)",
    "bottleneck": "binding resource",
    "reason": "note",
}
"""Result columns of ``SweepResult.to_frame()`` shown after the grid axes, with their headings."""


def cli_command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed, ``dualpath-twin sweep ...`` (shell-quoted), from ``argv`` or ``sys.argv``."""
    args = list(sys.argv if argv is None else argv)
    return shlex.join(["dualpath-twin", *args[1:]])


def _cell(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return fmt(v, 4) if isinstance(v, float) else str(v)


def _point_costs(result: Any, scenario: Any) -> list[tuple[float | None, float | None]]:
    """Per point ($/hour of its cluster, $ per million prompt tokens at its throughput); None where unpriced."""
    from dualpath_twin.economics import point_economics
    from dualpath_twin.scenario import from_toml

    if scenario is None:
        return [(None, None)] * len(result.points)
    sc = from_toml(scenario, check_catalog=False) if isinstance(scenario, str) else scenario
    out = []
    for p in result.points:
        e = point_economics(sc, dict(p.point), p.summary)
        out.append((None, None) if e is None else (e.usd_per_hour, e.usd_per_m_prompt_tokens if p.summary else None))
    return out


def _results_table(result: Any, scenario: Any = None) -> str:
    import polars as pl

    df = result.to_frame()
    if df.height == 0:
        return "<p>No points.</p>"
    if "tpot_p90_s" in df.columns:
        df = df.with_columns((pl.col("tpot_p90_s") * 1000).alias("tpot_p90_ms"))
    costs = _point_costs(result, scenario)
    axes = [a for a in result.grid if a in df.columns]
    labels = dict(SCENARIO_FIELDS)
    cols = axes + [c for c in SWEEP_COLUMNS if c in df.columns and df[c].null_count() < df.height]
    header = [labels.get(a, a) for a in axes] + [SWEEP_COLUMNS[c] for c in cols[len(axes):]]
    priced = any(u is not None for u, _ in costs)
    if priced:
        header += ["$/hour", "$ per M prompt tokens"]
    rows = []
    for row, (usd_h, per_m) in zip(df.iter_rows(named=True), costs, strict=True):
        cells = [esc((resource_label(row[c]) or "–") if c == "bottleneck" else _cell(row[c])) for c in cols]
        if priced:
            cells += [esc("–" if usd_h is None else f"{usd_h:,.2f}"), esc("–" if per_m is None else f"{per_m:,.4f}")]
        rows.append(cells)
    note = "<p class='note'>Costs from the cost table (data/costs.toml unless set): assumptions for comparing points, not quotes.</p>"
    return table(header, rows) + (note if priced else "")


def _parameters_table(result: Any, extra: dict[str, Any] | None) -> str:
    n_status: dict[str, int] = {}
    for p in result.points:
        n_status[p.status] = n_status.get(p.status, 0) + 1
    rows = [
        ["sweep", esc(f"{result.name} ({result.sweep_id})")],
        ["objective", esc(result.objective)],
        ["designs", esc(", ".join(result.policies))],
    ]
    rows += [[esc(f"grid: {axis}"), esc(", ".join(_cell(v) for v in vals))] for axis, vals in result.grid.items()]
    rows.append(["points", esc(f"{len(result.points)} (" + ", ".join(f"{k} {v}" for k, v in sorted(n_status.items())) + ")")])
    rows.append(["wall time", esc(f"{result.wall_s:.1f} s")])
    rows += [[esc(str(k)), esc(_cell(v))] for k, v in (extra or {}).items()]
    return table(["parameter", "value"], rows)


def _scenario_block(scenario: Any) -> str:
    if scenario is None:
        return "<p class='note'>Scenario not recorded.</p>"
    toml_text = scenario if isinstance(scenario, str) else scenario.to_toml()
    d = toml_dict(toml_text)
    rows = [[esc(lab), esc(fmt(get_path(d, path)))] for path, lab in SCENARIO_FIELDS if get_path(d, path) is not None]
    desc = f"<p>{esc(d['description'])}</p>" if d.get("description") else ""
    return (
        desc
        + (table(["field", "value"], rows) if rows else "")
        + "<p class='note'>Each point overrides the grid axes above; everything else is as below.</p>"
        + f"<details><summary>Scenario TOML</summary><pre>{esc(toml_text)}</pre></details>"
    )


def sweep_report_html(
    result: Any,
    scenario: Any = None,
    command: str | None = None,
    figures: Sequence[go.Figure] = (),
    parameters: dict[str, Any] | None = None,
) -> str:
    """One self-contained HTML page for a ``SweepResult``: command and parameters, scenario, results table, figures.

    ``scenario`` is the swept Scenario (or its TOML); ``command`` the command line that produced
    the sweep (e.g. :func:`cli_command_line`); ``parameters`` extra key/values to list (a dashboard
    without a command line passes its settings here). plotly.js is inlined once.
    """
    d = toml_dict(scenario if isinstance(scenario, str) else scenario.to_toml()) if scenario is not None else {}
    scen = d.get("name") or result.name
    title = f"dualpath-twin sweep: {result.name}"
    how = f"<pre>{esc(command)}</pre>" if command else "<p class='note'>Run from the dashboard or the Python API; the parameters below reproduce it.</p>"
    figs = []
    for i, fig in enumerate(figures):
        h = fig.layout.height or 420
        div = fig.to_html(full_html=False, include_plotlyjs=(i == 0), default_height=f"{h}px",
                          config={"displaylogo": False, "responsive": True})  # fmt: skip
        figs.append(f'<div class="fig">{div}</div>')
    body = [
        f"<h1>{esc(title)}</h1><p class='note'>generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>",
        f'<section id="command"><h2>How it was produced</h2>{how}{_parameters_table(result, parameters)}</section>',
        f'<section id="scenario"><h2>Scenario: {esc(scen)}</h2>{_scenario_block(scenario)}</section>',
        f'<section id="results"><h2>Results</h2>{_results_table(result, scenario)}</section>',
    ]
    if figs:
        body.append(f'<section id="figures"><h2>Figures</h2>{"".join(figs)}</section>')
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>"
    )


def write_sweep_report(path: Path, result: Any, scenario: Any = None, command: str | None = None,
                       figures: Sequence[go.Figure] = (), parameters: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """Write :func:`sweep_report_html` to ``path`` (parent directories created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sweep_report_html(result, scenario, command, figures, parameters), encoding="utf-8")
    return path
