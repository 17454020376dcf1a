"""Live-progress figures: the report's builders (dualpath_twin.report.figures) over partial time series."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

from dualpath_twin.report import figures as F
from dualpath_twin.store import downsample_frame

MAX_LIVE_POINTS = 600


def _thin(ts: pl.DataFrame) -> pl.DataFrame:
    """Downsample only when some series has more samples than the live plots can usefully show."""
    if ts["t_s"].n_unique() <= MAX_LIVE_POINTS:
        return ts
    return downsample_frame(ts, MAX_LIVE_POINTS)


def live_slo_figure(history: dict[str, list[tuple[float, float]]]) -> go.Figure | None:
    """SLO attainment so far per design, or None before any round has finished."""
    if not any(history.values()):
        return None
    return F.live_slo_figure(history)


def live_figures(frames: dict[str, pl.DataFrame]) -> list[go.Figure]:
    """Throughput of every policy overlaid, then SNIC/CNIC utilisation by role for each policy."""
    thin = {p: _thin(f) for p, f in frames.items() if f is not None and f.height}
    if not thin:
        return []
    figs = [F.throughput_figure(thin)]
    for policy, ts in thin.items():
        figs.append(F.nic_utilization_figure(ts, f" - {policy}"))
    return figs
