"""What the report modules share: the run record, the page CSS, cell formatting and figure embedding."""

from __future__ import annotations

import html
import tomllib
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import polars as pl

from dualpath_twin.results import RunSummary
from dualpath_twin.scenario import SloConfig

DESIGN_PATH = "policy.name"


class ReportError(RuntimeError):
    """A report could not be built; the message says why and what to do."""


@dataclass
class ReportRun:
    """What the report needs of one run (time series already downsampled)."""

    label: str
    summary: RunSummary
    rounds: pl.DataFrame
    timeseries: pl.DataFrame
    scenario_toml: str
    run_id: str = ""


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:36px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f5f5f5}
pre{background:#f8f8f8;padding:10px;overflow:auto;font-size:12px}.note{color:#666;font-size:13px}
.fig{margin:12px 0;page-break-inside:avoid;break-inside:avoid}.bottleneck{background:#fff6e5;border-left:4px solid #F58518;padding:8px 12px}
.exec{background:#f4f8fb;border:1px solid #cfe0ee;padding:4px 16px 12px}.exec p{margin:8px 0}.best{font-weight:bold}
@media print{
  body{max-width:none;margin:0;font-size:11pt}
  .modebar,.modebar-container{display:none!important}
  h1,h2,h3{break-after:avoid;page-break-after:avoid}
  .fig,table,pre,.exec,.bottleneck{break-inside:avoid;page-break-inside:avoid}
  section{break-inside:auto}
  a{color:inherit;text-decoration:none}
}
@page{margin:14mm}
"""
PRINT_CSS_MARKER = "@media print"
"""The report's print rules start with this (tests look for it)."""

SCENARIO_FIELDS = (
    ("cluster.prefill_nodes", "prefill nodes"), ("cluster.decode_nodes", "decode nodes"),
    ("cluster.gpus_per_node", "GPUs per node"), ("cluster.gpu", "GPU"), ("cluster.dram_buffer_gb", "DRAM KV buffer (GB/node)"),
    ("model.name", "model"), ("model.kv_format", "KV format"), ("workload.kind", "workload"),
    ("workload.dataset", "dataset"), ("workload.mode", "mode"), ("workload.agents", "agents"),
    ("workload.arrival_rate_aps", "arrival rate (agents/s)"), ("network.snic_gbps", "storage NIC (Gbit/s)"),
    ("network.cnic_gbps", "compute NIC (Gbit/s)"), ("network.dram_gbps", "DRAM bandwidth (Gbit/s)"),
    ("policy.name", "design (policy)"), ("slo.ttft_s", "SLO TTFT (s)"), ("slo.tpot_ms", "SLO TPOT (ms)"), ("run.seed", "seed"),
)  # fmt: skip


def esc(x: Any) -> str:
    """HTML-escape any value as text."""
    return html.escape(str(x))


def fmt(v: Any, digits: int = 3) -> str:
    """A number with a few significant digits, "–" for none."""
    if v is None:
        return "–"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return str(v)


def toml_dict(text: str) -> dict[str, Any]:
    """Parse a scenario TOML; an empty dict when it does not parse."""
    try:
        return tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError:
        return {}


def get_path(d: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a nested dict, None when absent."""
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def slo_limits(runs: list[ReportRun]) -> tuple[float, float]:
    """(TTFT, TPOT) SLO limits of the runs, from their scenarios or the defaults."""
    d = toml_dict(runs[0].scenario_toml)
    dflt = SloConfig()
    ttft = get_path(d, "slo.ttft_s")
    tpot = get_path(d, "slo.tpot_ms")
    return float(ttft if ttft is not None else dflt.ttft_s), float(
        tpot if tpot is not None else dflt.tpot_ms
    ) / 1000


def table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table from a header and escaped cells."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Figs:
    """Renders figures, inlining plotly.js with the first one only."""

    def __init__(self) -> None:
        self.first = True

    def __call__(self, fig: go.Figure) -> str:
        """Embed a figure; plotly.js is inlined with the first one only."""
        h = fig.layout.height or 420
        div = fig.to_html(full_html=False, include_plotlyjs=self.first, default_height=f"{h}px",
                          config={"displaylogo": False, "responsive": True})  # fmt: skip
        self.first = False
        return f'<div class="fig">{div}</div>'
