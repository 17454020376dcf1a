"""Live-progress figures: the report's builders (dualpath_twin.report.figures) over partial time series."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

from dualpath_twin.report import figures as F
from dualpath_twin.store import downsample_frame

MAX_LIVE_POINTS = 600


def live_figures(frames: dict[str, pl.DataFrame]) -> list[go.Figure]:
    """Throughput of every policy overlaid, then SNIC/CNIC utilisation by role for each policy."""
    thin = {p: downsample_frame(f, MAX_LIVE_POINTS) for p, f in frames.items() if f is not None and f.height}
    if not thin:
        return []
    figs = [F.throughput_figure(thin)]
    for policy, ts in thin.items():
        figs.append(F.nic_utilization_figure(ts, f" - {policy}"))
    return figs
