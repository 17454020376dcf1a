"""Plotly figure builders for planning results: sweep heatmaps, capacity curves, Pareto front, tornado."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
from plotly.subplots import make_subplots

from dualpath_twin.labels import axis_label
from dualpath_twin.palette import FAILS, MEETS, NEUTRAL, policy_color
from dualpath_twin.planning.capacity import CapacityResult
from dualpath_twin.planning.sensitivity import SensitivityResult
from dualpath_twin.planning.sizing import SizingResult
from dualpath_twin.planning.types import STOPPED_CEILING

METRIC_LABELS = {
    "capacity_aps": "capacity (agents/s)",
    "jct_s": "JCT (s)",
    "prompt_tokens_per_s": "prompt tokens/s",
    "generated_tokens_per_s": "generated tokens/s",
    "ttft_p90_s": "TTFT p90 (s)",
    "ttft_p99_s": "TTFT p99 (s)",
    "tpot_p90_ms": "TPOT p90 (ms)",
    "slo_attainment": "SLO attainment",
}
"""Metrics a sweep heatmap can show, with their labels (TPOT in ms, as every table and report shows it)."""

DERIVED_METRICS: dict[str, tuple[str, float]] = {"tpot_p90_ms": ("tpot_p90_s", 1000.0)}
"""Display metric -> (the ``SweepResult.to_frame()`` column it comes from, the factor to its unit)."""

METRIC_ALIASES: dict[str, str] = {src: name for name, (src, _) in DERIVED_METRICS.items()}
"""A stored column asked for by name (``--heatmap X,Y,tpot_p90_s``) -> the metric shown in its display unit."""


def with_display_metrics(frame: pl.DataFrame) -> pl.DataFrame:
    """The sweep frame with every DERIVED_METRICS column added (e.g. tpot_p90_ms from tpot_p90_s)."""
    add = [(pl.col(src) * k).alias(name) for name, (src, k) in DERIVED_METRICS.items()
           if src in frame.columns and name not in frame.columns]
    return frame.with_columns(add) if add else frame


def heatmap_metrics(frame: pl.DataFrame) -> list[str]:
    """The METRIC_LABELS metrics the sweep frame has values for (in display units)."""
    df = with_display_metrics(frame)
    return [m for m in METRIC_LABELS if m in df.columns and df[m].null_count() < df.height]


def _cell(v: float | None) -> str:
    """A heatmap cell as the planning tables print it: '1,190' (not '1.19e+03'), 3 significant digits below 100."""
    if v is None:
        return ""
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def sweep_heatmap(frame: pl.DataFrame, x: str, y: str, value: str, facet: str = "policy", title: str = "") -> go.Figure:
    """Heatmap of ``value`` over two grid axes, one panel per ``facet`` value (policy by default); TPOT in ms."""
    frame = with_display_metrics(frame)
    value = METRIC_ALIASES.get(value, value)
    for col in (x, y, value):
        if col not in frame.columns:
            raise ValueError(f"heatmap: column {col!r} not in the sweep frame (columns: {', '.join(frame.columns)})")
    x_label, y_label = axis_label(x), axis_label(y)  # the planning tables' headings, not the dotted paths
    facets = frame[facet].unique(maintain_order=True).to_list() if facet in frame.columns else [None]
    fig = make_subplots(rows=1, cols=len(facets), subplot_titles=[str(f) for f in facets], shared_yaxes=True)
    xs = sorted(frame[x].drop_nulls().unique().to_list())
    ys = sorted(frame[y].drop_nulls().unique().to_list())
    vals = frame[value].drop_nulls()
    zmin, zmax = (float(vals.min()), float(vals.max())) if len(vals) else (0.0, 1.0)
    for i, f in enumerate(facets):
        sub = frame if f is None else frame.filter(pl.col(facet) == f)
        z: list[list[float | None]] = []
        for yv in ys:
            row = []
            for xv in xs:
                hit = sub.filter((pl.col(x) == xv) & (pl.col(y) == yv))[value]
                row.append(hit[0] if len(hit) else None)
            z.append(row)
        fig.add_trace(
            go.Heatmap(
                x=[str(v) for v in xs], y=[str(v) for v in ys], z=z, zmin=zmin, zmax=zmax, coloraxis="coloraxis",
                text=[[_cell(v) for v in r] for r in z], texttemplate="%{text}",
                hovertemplate=f"{x_label}=%{{x}}<br>{y_label}=%{{y}}<br>{METRIC_LABELS.get(value, value)}=%{{z:.4g}}<extra>{f}</extra>",
            ),
            row=1, col=i + 1,
        )
        fig.update_xaxes(title_text=x_label, type="category", row=1, col=i + 1)
    fig.update_yaxes(title_text=y_label, type="category", row=1, col=1)
    fig.update_layout(
        title=title or f"{METRIC_LABELS.get(value, value)} by {x_label} x {y_label}",
        coloraxis={"colorscale": "Viridis", "colorbar": {"title": METRIC_LABELS.get(value, value)}},
    )
    return fig


def capacity_curve(results: Sequence[CapacityResult], title: str = "Capacity search: measured SLO curve") -> go.Figure:
    """TTFT p90, TPOT p90 and SLO attainment against arrival rate per policy, pass/fail markers, capacity lines."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=["TTFT p90 (s)", "TPOT p90 (ms)", "SLO attainment"])
    ceilings: dict[float, list[str]] = {}  # lowest rate refused above the analytic ceiling -> policies
    for i, r in enumerate(results):
        color = policy_color(r.policy, i)
        # the search's own runs as a line; confirmation replicas (open) and horizon checks (diamonds) as markers
        own = [p for p in r.curve if p.replica == 0 and p.horizon_window_s is None]
        again = [p for p in r.curve if p.replica != 0 or p.horizon_window_s is not None]
        for pts, mode, extra in ((own, "lines+markers", ""), (again, "markers", " re-measured")):
            if not pts:
                continue
            xs = [p.aps for p in pts]
            symbols = [("diamond" if p.meets else "diamond-x") if p.horizon_window_s is not None
                       else ("circle" if p.meets else "x") + ("-open" if p.replica else "") for p in pts]
            hover = [f"{p.aps:.4g} APS{f' (replica {p.replica})' if p.replica else ''}: "
                     f"{'meets' if p.meets else 'fails'} ({p.reason})" for p in pts]
            panels = (
                [p.ttft_p90_s for p in pts],
                [(p.tpot_p90_s or math.nan) * 1000 for p in pts],
                [p.slo_attainment for p in pts],
            )
            for col, ys in enumerate(panels, start=1):
                fig.add_trace(
                    go.Scatter(x=xs, y=ys, mode=mode, name=f"{r.policy}{extra}", marker={"symbol": symbols, "size": 9},
                               line={"color": color}, marker_color=color, hovertext=hover, legendgroup=r.policy,
                               showlegend=col == 1),
                    row=1, col=col,
                )
        if r.capacity_aps > 0:
            for c in (1, 2, 3):
                fig.add_vline(x=r.capacity_aps, line={"color": color, "dash": "dot"}, row=1, col=c)
        refused = [p.aps for p in r.curve if p.stopped_early == STOPPED_CEILING]
        if refused:  # rates refused unsimulated have no latency: mark where they start
            ceilings.setdefault(min(refused), []).append(r.policy)
            for c in (1, 2, 3):
                fig.add_vline(x=min(refused), line={"color": color, "dash": "longdash", "width": 1}, row=1, col=c)
    for k, (x, names) in enumerate(sorted(ceilings.items())):  # one label per line, staggered so none overlap
        fig.add_annotation(x=x, xref="x", y=1.0 - 0.07 * k, yref="y domain", text=f"{', '.join(names)}: ceiling",
                           showarrow=False, xanchor="right", yanchor="top", font={"size": 11})
    if results:
        r0 = results[0]
        if r0.ttft_limit_s:
            fig.add_hline(y=r0.ttft_limit_s, line={"dash": "dash", "color": "grey"}, row=1, col=1)
        if r0.tpot_limit_ms:
            fig.add_hline(y=r0.tpot_limit_ms, line={"dash": "dash", "color": "grey"}, row=1, col=2)
        if r0.criterion.min_attainment is not None:
            fig.add_hline(y=r0.criterion.min_attainment, line={"dash": "dash", "color": "grey"}, row=1, col=3)
    fig.update_xaxes(title_text="arrival rate (agents/s)")
    fig.update_layout(title=title + "<br><sup>o meets SLO, x fails; open: replicas, diamonds: horizon checks; dotted: "
                      "capacity; long dashes: above the analytic ceiling, not simulated</sup>")
    return fig


def pareto_chart(result: SizingResult) -> go.Figure:
    """Cost per hour vs measured capacity of every configuration, Pareto front highlighted, target marked."""
    df = result.to_frame().filter(pl.col("cost_per_hour").is_not_null())
    label = [", ".join(f"{k.split('.')[-1]}={r[k]}" for k in result.axes) for r in df.iter_rows(named=True)]
    df = df.with_columns(pl.Series("label", label))
    fig = go.Figure()
    for status, color in (("meets", MEETS), ("fails", FAILS), ("pruned", NEUTRAL), ("error", "#000000")):
        sub = df.filter(pl.col("status") == status)
        if sub.height == 0:
            continue
        y = [c if c is not None else (result.target_aps if status == "meets" else 0.0) for c in sub["capacity_aps"].to_list()]
        fig.add_trace(go.Scatter(x=sub["cost_per_hour"].to_list(), y=y, mode="markers", name=status,
                                 marker={"color": color, "size": 9}, text=sub["label"].to_list(),
                                 hovertemplate="%{text}<br>cost %{x:.2f}/h<br>capacity %{y:.3g} APS"))
    front = df.filter(pl.col("pareto")).sort("cost_per_hour")
    if front.height:
        fig.add_trace(go.Scatter(x=front["cost_per_hour"].to_list(), y=front["capacity_aps"].to_list(),
                                 mode="lines+markers", name="Pareto front", line={"color": "#1f77b4", "shape": "hv"},
                                 text=front["label"].to_list(), hovertemplate="%{text}<extra>Pareto</extra>"))
    fig.add_hline(y=result.target_aps, line={"dash": "dash", "color": "grey"}, annotation_text="target")
    fig.update_layout(title=f"Sizing ({result.policy}): cost vs capacity", xaxis_title=f"cluster cost ({result.currency}/hour)",
                      yaxis_title="capacity (agents/s)")
    return fig


def tornado_chart(result: SensitivityResult) -> go.Figure:
    """Horizontal bars of the metric at -change and +change per parameter, around the baseline, largest swing on top."""
    base = result.baseline or 0.0
    rows = list(reversed(result.rows))
    labels = [r.label for r in rows]
    pct = int(round(result.change * 100))
    fig = go.Figure()
    fig.add_trace(go.Bar(y=labels, x=[(r.metric_low - base) if r.metric_low is not None else 0 for r in rows], base=base,
                         orientation="h", name=f"-{pct}%", marker={"color": "#d62728"},
                         hovertext=[f"{r.path}={r.low_value:g}: {r.metric_low}" for r in rows]))
    fig.add_trace(go.Bar(y=labels, x=[(r.metric_high - base) if r.metric_high is not None else 0 for r in rows], base=base,
                         orientation="h", name=f"+{pct}%", marker={"color": "#2ca02c"},
                         hovertext=[f"{r.path}={r.high_value:g}: {r.metric_high}" for r in rows]))
    fig.add_vline(x=base, line={"color": "black"})
    fig.update_layout(barmode="overlay", title=f"Sensitivity ({result.policy}): {METRIC_LABELS.get(result.metric, result.metric)}"
                      f" when each parameter moves +/-{pct}% (baseline {base:.3g})",
                      xaxis_title=METRIC_LABELS.get(result.metric, result.metric))
    return fig


def figures_to_html(figures: Sequence[go.Figure], title: str = "dualpath-twin planning") -> str:
    """One self-contained HTML page (plotly.js inlined once, works offline)."""
    parts = [f"<html><head><meta charset='utf-8'><title>{title}</title></head><body><h1>{title}</h1>"]
    for i, fig in enumerate(figures):
        parts.append(pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0)))
    parts.append("</body></html>")
    return "\n".join(parts)
