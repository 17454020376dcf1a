"""Every Plotly figure of the twin, built from Polars frames (results.py contract) or RunSummaries.

Used by the HTML/PDF report and the dashboard alike. Builders that compare runs take a
mapping ``label -> frame`` (or ``label -> RunSummary``); a single frame is one unnamed run.
A run's colour is its policy's (POLICY_COLORS); ``policies`` maps labels to policy names when
the label is not itself a policy name. Time-series frames are expected already downsampled
(``Store.get_timeseries`` or ``store.downsample_frame``): builders do not thin them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from dualpath_twin.palette import FALLBACK as _FALLBACK
from dualpath_twin.palette import POLICY_COLORS
from dualpath_twin.results import RunSummary

ROLE_COLORS: dict[str, str] = {"prefill": "#9467BD", "decode": "#17BECF", "cluster": "#7F7F7F"}
BREAKDOWN_COLORS: dict[str, str] = {
    "queue": "#BAB0AC",
    "alloc": "#EECA3B",
    "read": "#E45756",
    "prefill": "#4C78A8",
}
_DASHES = ["solid", "dash", "dot", "dashdot", "longdash"]
_GRID = {"gridcolor": "#EBF0F8", "zerolinecolor": "#EBF0F8", "linecolor": "#BBBBBB", "automargin": True}
# a small white template: the stock "plotly_white" is deep-copied per figure (~0.2 s each)
_TEMPLATE = go.layout.Template(
    layout={"paper_bgcolor": "white", "plot_bgcolor": "white", "font": {"color": "#2a3f5f"}, "xaxis": _GRID,
            "yaxis": _GRID, "colorway": _FALLBACK, "hovermode": "closest"}
)  # fmt: skip

TS = pl.DataFrame | Mapping[str, pl.DataFrame]


def _runs(x: TS) -> dict[str, pl.DataFrame]:
    return {"": x} if isinstance(x, pl.DataFrame) else dict(x)


def policy_of(label: str, policies: Mapping[str, str] | None = None) -> str:
    """The policy a run label stands for (explicit mapping, the label itself, or a policy name inside it)."""
    if policies and label in policies:
        return policies[label]
    if label in POLICY_COLORS:
        return label
    for p in POLICY_COLORS:
        if p in label.lower():
            return p
    return ""


def run_styles(labels: list[str], policies: Mapping[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """(colour, dash) per label: colour by policy, dash tells apart runs of the same policy."""
    out: dict[str, tuple[str, str]] = {}
    seen: dict[str, int] = {}
    extra = 0
    for lab in labels:
        pol = policy_of(lab, policies)
        if pol in POLICY_COLORS:
            colour = POLICY_COLORS[pol]
        else:
            colour = _FALLBACK[extra % len(_FALLBACK)]
            extra += 1
        n = seen.get(colour, 0)
        seen[colour] = n + 1
        out[lab] = (colour, _DASHES[n % len(_DASHES)])
    return out


def _name(label: str, what: str) -> str:
    return f"{label} {what}".strip() if label else what


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01},
        template=_TEMPLATE,
        height=height,
        margin={"l": 70, "r": 30, "t": 60, "b": 50},
        legend={"orientation": "h", "y": -0.18},
    )
    return fig


def _metric(df: pl.DataFrame, metric: str) -> pl.DataFrame:
    return df.filter(pl.col("metric") == metric)


def _per_nic(d: pl.DataFrame) -> pl.DataFrame:
    """Drop node-level NIC aggregates ("P0.cnic") when the individual NICs ("P0.cnic3") are present."""
    numbered = pl.col("entity").str.contains(r"\.[a-z]+\d+$")
    if d.is_empty() or not d.select(numbered.any()).item():
        return d
    aggregate = pl.col("entity").str.contains(r"\.[a-z]+$")
    return d.filter(~aggregate)


def _empty(title: str, why: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=why, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, height=220)


# ------------------------------------------------------------------ time series


def throughput_figure(ts: TS, policies: Mapping[str, str] | None = None) -> go.Figure:
    """Prompt and generated tokens per second over simulated time, one line per run."""
    runs = _runs(ts)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("Prompt tokens (prefill)", "Generated tokens (decode)"))  # fmt: skip
    styles = run_styles(list(runs), policies)
    for lab, df in runs.items():
        colour, dash = styles[lab]
        for row, metric in ((1, "prompt_tokens_per_s"), (2, "gen_tokens_per_s")):
            d = _metric(df, metric).filter(pl.col("entity") == "cluster").sort("t_s")
            fig.add_trace(
                go.Scatter(x=d["t_s"].to_list(), y=d["value"].to_list(), mode="lines", name=_name(lab, metric.split("_")[0]),
                           legendgroup=lab, line={"color": colour, "dash": dash}),
                row=row, col=1,
            )  # fmt: skip
    fig.update_yaxes(title_text="tokens/s", row=1, col=1)
    fig.update_yaxes(title_text="tokens/s", row=2, col=1)
    fig.update_xaxes(title_text="simulated time (s)", row=2, col=1)
    return _layout(fig, "Throughput over time", height=520)


def storage_throughput_figure(ts: TS, policies: Mapping[str, str] | None = None) -> go.Figure:
    """Aggregate storage read and write throughput over time (Gbit/s)."""
    runs = _runs(ts)
    fig = go.Figure()
    styles = run_styles(list(runs), policies)
    for lab, df in runs.items():
        colour, _ = styles[lab]
        for metric, dash, what in (
            ("storage_read_gbps", "solid", "read"),
            ("storage_write_gbps", "dot", "write"),
        ):
            d = _metric(df, metric).sort("t_s")
            fig.add_trace(go.Scatter(x=d["t_s"].to_list(), y=d["value"].to_list(), mode="lines", name=_name(lab, what),
                                     line={"color": colour, "dash": dash}))  # fmt: skip
    fig.update_xaxes(title_text="simulated time (s)")
    fig.update_yaxes(title_text="storage throughput (Gbit/s)")
    return _layout(fig, "Storage read / write throughput")


def nic_utilization_figure(ts: pl.DataFrame, title_suffix: str = "") -> go.Figure:
    """Mean NIC utilisation per role over time: storage NICs (rx/tx) and compute NICs (rx/tx)."""
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=("Storage NICs (SNIC)", "Compute NICs (CNIC)"))  # fmt: skip
    for col, prefix in ((1, "snic"), (2, "cnic")):
        for direction, dash in (("rx", "solid"), ("tx", "dot")):
            d = (
                _per_nic(_metric(ts, f"{prefix}_{direction}_util"))
                .group_by("t_s", "role")
                .agg(pl.col("value").mean())
                .sort("role", "t_s")
            )
            for role in ("prefill", "decode"):
                r = d.filter(pl.col("role") == role)
                if r.is_empty():
                    continue
                fig.add_trace(
                    go.Scatter(x=r["t_s"].to_list(), y=(r["value"] * 100).to_list(), mode="lines",
                               name=f"{role} {prefix.upper()} {direction}", line={"color": ROLE_COLORS[role], "dash": dash}),
                    row=1, col=col,
                )  # fmt: skip
    fig.update_yaxes(title_text="mean utilisation (% of line rate)", range=[0, 105], row=1, col=1)
    fig.update_xaxes(title_text="simulated time (s)")
    return _layout(fig, f"NIC utilisation by role (mean over NICs){title_suffix}")


def _entity_order(name: str) -> tuple[int, int, str]:
    node = name.split(".")[0]
    kind = 0 if node.startswith("P") else 1
    digits = "".join(ch for ch in node if ch.isdigit())
    return (kind, int(digits) if digits else 0, name)


def nic_heatmap_figure(ts: pl.DataFrame, metric: str = "snic_rx_util", title_suffix: str = "") -> go.Figure:
    """Utilisation of every NIC over time (entity x time), prefill nodes above decode nodes."""
    d = _per_nic(_metric(ts, metric))
    label = {"snic_rx_util": "Storage NIC read", "snic_tx_util": "Storage NIC write",
             "cnic_rx_util": "Compute NIC rx", "cnic_tx_util": "Compute NIC tx"}.get(metric, metric)  # fmt: skip
    title = f"{label} utilisation per NIC{title_suffix}"
    if d.is_empty():
        return _empty(title, f"no {metric} samples in this run")
    entities = sorted(d["entity"].unique().to_list(), key=_entity_order)
    wide = d.pivot(on="entity", index="t_s", values="value", aggregate_function="mean").sort("t_s")
    z = np.vstack([wide[e].to_numpy() for e in entities]) * 100
    fig = go.Figure(
        go.Heatmap(x=wide["t_s"].to_list(), y=entities, z=z, zmin=0, zmax=100, colorscale="Viridis",
                   colorbar={"title": {"text": "% of line rate"}},
                   hovertemplate="%{y}<br>t=%{x:.1f} s<br>%{z:.0f}%<extra></extra>")
    )  # fmt: skip
    n_prefill = sum(1 for e in entities if _entity_order(e)[0] == 0)
    if 0 < n_prefill < len(entities):
        fig.add_hline(y=n_prefill - 0.5, line={"color": "white", "width": 2})
    fig.update_xaxes(title_text="simulated time (s)")
    fig.update_yaxes(title_text="NIC (prefill P*, decode D*)", autorange="reversed")
    return _layout(fig, title, height=max(320, min(900, 80 + 14 * len(entities))))


def occupancy_figure(ts: TS, policies: Mapping[str, str] | None = None) -> go.Figure:
    """KV bytes held in HBM and in host DRAM buffers, summed per role, over time (GB)."""
    runs = _runs(ts)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("HBM KV occupancy", "DRAM KV buffer occupancy"))  # fmt: skip
    styles = run_styles(list(runs), policies)
    for lab, df in runs.items():
        _, dash = styles[lab]
        for col, metric in ((1, "hbm_kv_bytes"), (2, "dram_buffer_bytes")):
            d = _metric(df, metric).group_by("t_s", "role").agg(pl.col("value").sum()).sort("role", "t_s")
            for role in ("prefill", "decode"):
                r = d.filter(pl.col("role") == role)
                if r.is_empty():
                    continue
                fig.add_trace(
                    go.Scatter(x=r["t_s"].to_list(), y=(r["value"] / 1e9).to_list(), mode="lines",
                               name=_name(lab, f"{role} {'HBM' if col == 1 else 'DRAM'}"),
                               line={"color": ROLE_COLORS[role], "dash": dash}),
                    row=1, col=col,
                )  # fmt: skip
    fig.update_yaxes(title_text="KV held, all nodes of the role (GB)", row=1, col=1)
    fig.update_yaxes(title_text="GB", row=1, col=2)
    fig.update_xaxes(title_text="simulated time (s)")
    return _layout(fig, "HBM and DRAM buffer occupancy")


# ------------------------------------------------------------------ per-round distributions


def _ecdf(values: np.ndarray, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    v = np.sort(values[np.isfinite(values)])
    n = len(v)
    if n == 0:
        return v, v
    y = np.arange(1, n + 1) / n
    if n > max_points:
        idx = np.unique(np.linspace(0, n - 1, max_points).astype(np.int64))
        return v[idx], y[idx]
    return v, y


def latency_cdf_figure(
    rounds: TS, column: str = "ttft_s", slo_s: float | None = None, policies: Mapping[str, str] | None = None
) -> go.Figure:
    """ECDF of a per-round latency (ttft_s, ttst_s or tpot_s) per run, with the SLO as a vertical line."""
    runs = _runs(rounds)
    scale, unit = (1000.0, "ms") if column == "tpot_s" else (1.0, "s")
    nice = {"ttft_s": "Time to first token (TTFT)", "ttst_s": "Time to second token (TTST)",
            "tpot_s": "Time per output token (TPOT)"}.get(column, column)  # fmt: skip
    fig = go.Figure()
    styles = run_styles(list(runs), policies)
    for lab, df in runs.items():
        if column not in df.columns:
            continue
        x, y = _ecdf(df[column].drop_nulls().cast(pl.Float64).to_numpy())
        colour, dash = styles[lab]
        fig.add_trace(go.Scatter(x=(x * scale).tolist(), y=(y * 100).tolist(), mode="lines", name=lab or column,
                                 line={"color": colour, "dash": dash, "shape": "hv"}))  # fmt: skip
    if slo_s is not None:
        fig.add_vline(x=slo_s * scale, line={"color": "black", "dash": "dash"},
                      annotation_text=f"SLO {slo_s * scale:g} {unit}", annotation_position="top right")  # fmt: skip
    fig.update_xaxes(title_text=f"{nice} ({unit})")
    fig.update_yaxes(title_text="rounds at or below (%)", range=[0, 101])
    return _layout(fig, f"{nice} distribution")


# ------------------------------------------------------------------ summaries


def _summaries(s: RunSummary | Mapping[str, RunSummary]) -> dict[str, RunSummary]:
    return {s.policy: s} if isinstance(s, RunSummary) else dict(s)


def slo_attainment_figure(
    summaries: Mapping[str, RunSummary], policies: Mapping[str, str] | None = None
) -> go.Figure:
    """Share of rounds meeting both TTFT and TPOT SLOs, one bar per run."""
    labels = list(summaries)
    styles = run_styles(labels, policies)
    vals = [(summaries[lab].slo_attainment or 0.0) * 100 for lab in labels]
    fig = go.Figure(
        go.Bar(x=labels, y=vals, marker_color=[styles[lab][0] for lab in labels],
               text=[f"{v:.1f}%" for v in vals], textposition="outside")
    )  # fmt: skip
    fig.update_yaxes(title_text="rounds meeting the SLO (%)", range=[0, 110])
    fig.update_xaxes(title_text="run")
    return _layout(fig, "SLO attainment (TTFT and TPOT)", height=360)


def live_slo_figure(history: Mapping[str, list[tuple[float, float]]], target: float | None = None) -> go.Figure:
    """SLO attainment of the rounds finished so far against simulated time, one line per design (live runs)."""
    fig = go.Figure()
    for pol, pts in history.items():
        if not pts:
            continue
        fig.add_trace(go.Scatter(x=[t for t, _ in pts], y=[100 * v for _, v in pts], mode="lines", name=pol,
                                 line={"color": POLICY_COLORS.get(pol)}))  # fmt: skip
    if target is not None:
        fig.add_hline(y=100 * target, line={"dash": "dot", "color": "#777"}, annotation_text=f"target {100 * target:g}%")
    fig.update_yaxes(title_text="rounds meeting the SLO so far (%)", range=[0, 105])
    fig.update_xaxes(title_text="simulated time (s)")
    return _layout(fig, "SLO attainment so far (TTFT and TPOT)", height=320)


def ttft_breakdown_figure(summaries: Mapping[str, RunSummary]) -> go.Figure:
    """Mean TTFT split into queueing, allocation, reading and prefill, stacked per run."""
    labels = list(summaries)
    parts = ["queue", "alloc", "read", "prefill"]
    extra = sorted({k for s in summaries.values() for k in s.ttft_breakdown_s} - set(parts))
    fig = go.Figure()
    for part in parts + extra:
        fig.add_trace(go.Bar(y=labels, x=[summaries[lab].ttft_breakdown_s.get(part, 0.0) for lab in labels],
                             name=part, orientation="h", marker_color=BREAKDOWN_COLORS.get(part)))  # fmt: skip
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title_text="mean time (s)")
    fig.update_yaxes(title_text="run")
    return _layout(fig, "TTFT breakdown (mean per round)", height=max(260, 120 + 50 * len(labels)))


COMPARISON_METRICS: dict[str, tuple[str, str, bool]] = {
    # key in RunSummary.flat() -> (label, unit, higher is better)
    "generated_tokens_per_s": ("generated throughput", "tokens/s", True),
    "prompt_tokens_per_s": ("prompt throughput", "tokens/s", True),
    "rounds_per_s": ("rounds per second", "rounds/s", True),
    "jct_s": ("job completion time", "s", False),
    "ttft_s.p99": ("TTFT p99", "s", False),
    "tpot_s.p99": ("TPOT p99", "ms", False),
    "slo_attainment": ("SLO attainment", "share", True),
}

METRIC_SCALE: dict[str, float] = {"tpot_s.p50": 1000.0, "tpot_s.p90": 1000.0, "tpot_s.p99": 1000.0,
                                  "tpot_s.mean": 1000.0}  # fmt: skip
"""Factor from a RunSummary.flat() value to the unit shown (TPOT is stored in s, shown in ms everywhere)."""


def metric_value(flat: Mapping[str, object], metric: str) -> float | None:
    """``flat[metric]`` in its display unit (TPOT in ms), or None."""
    v = flat.get(metric)
    if not isinstance(v, int | float):
        return None
    return float(v) * METRIC_SCALE.get(metric, 1.0)


def pick_baseline(labels: list[str], policies: Mapping[str, str] | None = None) -> str:
    """The run the others are compared against: the Basic one if any, else the first."""
    for lab in labels:
        if policy_of(lab, policies) == "basic":
            return lab
    return labels[0]


def comparison_figure(
    summaries: Mapping[str, RunSummary], metric: str = "generated_tokens_per_s", baseline: str | None = None,
    policies: Mapping[str, str] | None = None, ratios: bool = True,
) -> go.Figure:  # fmt: skip
    """One bar per run for a summary metric, annotated with its ratio to the baseline run (``ratios=False``: values only)."""
    labels = list(summaries)
    base = baseline or pick_baseline(labels, policies)
    name, unit, _ = COMPARISON_METRICS.get(metric, (metric, "", True))
    vals = [metric_value(summaries[lab].flat(), metric) for lab in labels]
    b = metric_value(summaries[base].flat(), metric) if base in summaries else None
    if ratios:
        text = [f"{v / b:.2f}x" if (v is not None and b) else "" for v in vals]
    else:
        text = [f"{v:,.4g}" if v is not None else "" for v in vals]
    styles = run_styles(labels, policies)
    fig = go.Figure(go.Bar(x=labels, y=[v or 0 for v in vals], marker_color=[styles[lab][0] for lab in labels],
                           text=text, textposition="outside"))  # fmt: skip
    fig.update_yaxes(title_text=f"{name} ({unit})")
    if not ratios:
        fig.update_xaxes(title_text="run (different scenarios: no ratios)")
        return _layout(fig, f"{name.capitalize()} per run", height=380)
    fig.update_xaxes(title_text=f"run (ratio vs {base})")
    return _layout(fig, f"{name.capitalize()}: comparison vs {base}", height=380)


def bounds_figure(summary: RunSummary) -> go.Figure:
    """Closed-form rounds/s each resource allows, against the rounds/s the run achieved."""
    b = summary.bound
    title = f"Analytic bounds vs achieved ({summary.policy})"
    if b is None or not b.rounds_per_s_by_resource:
        return _empty(title, "no analytic bound recorded for this run")
    res = sorted(b.rounds_per_s_by_resource, key=lambda k: b.rounds_per_s_by_resource[k])
    colours = ["#E45756" if r == b.binding_resource else "#BAB0AC" for r in res]
    fig = go.Figure(go.Bar(y=res, x=[b.rounds_per_s_by_resource[r] for r in res], orientation="h",
                           marker_color=colours, name="bound per resource"))  # fmt: skip
    fig.add_vline(x=summary.rounds_per_s, line={"color": POLICY_COLORS.get(summary.policy, "black"), "width": 3},
                  annotation_text=f"achieved {summary.rounds_per_s:.2f} rounds/s", annotation_position="top")  # fmt: skip
    vals = [v for v in b.rounds_per_s_by_resource.values() if v > 0]
    log = bool(vals) and max(vals) / min(vals) > 10  # the binding bar would be an invisible sliver on a linear axis
    fig.update_xaxes(title_text="sustainable rounds per second (rounds/s)" + (", log scale" if log else ""),
                     type="log" if log else "linear")
    fig.update_yaxes(title_text="resource (binding in red)")
    return _layout(fig, title, height=max(280, 120 + 40 * len(res)))


def shade_faults(fig: go.Figure, summaries: RunSummary | Mapping[str, RunSummary]) -> go.Figure:
    """Shade each configured fault's interval (start_s to end_s, or to the run's end) on a time-series figure."""
    seen: set[tuple] = set()
    for s in _summaries(summaries).values():
        end_run = s.sim_time_s
        for f in s.faults:
            key = (f.kind, f.node, f.gpu, f.start_s, f.end_s)
            if key in seen:
                continue
            seen.add(key)
            x1 = f.end_s if f.end_s is not None else max(end_run, f.start_s)
            what = f"{f.node}{'' if f.gpu is None else f'.gpu{f.gpu}'} {f.kind}"
            fig.add_vrect(x0=f.start_s, x1=x1, fillcolor="#E45756", opacity=0.12, line_width=0,
                          annotation_text=what, annotation_position="top left")  # fmt: skip
    return fig
