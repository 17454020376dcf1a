"""Self-contained HTML (or PDF) reports of one or several runs, from the store or from results.

One file, works offline: plotly.js is inlined once (first figure) and every other figure
reuses it. A ``.pdf`` output prints that HTML with headless Chromium (the browser kaleido
uses), so the PDF shows exactly what the HTML shows.
"""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from dualpath_twin.report import figures as F
from dualpath_twin.report.common import CSS, PRINT_CSS_MARKER, Figs, ReportError, ReportRun, esc, slo_limits
from dualpath_twin.report.executive import executive_section
from dualpath_twin.report.pdf import find_chromium, print_pdf
from dualpath_twin.report.sections import (
    bounds_figures,
    bounds_section,
    cache_section,
    comparison_figures,
    comparison_section,
    faults_section,
    scenario_section,
    summary_section,
)
from dualpath_twin.results import RunResult, RunSummary
from dualpath_twin.store import Store, downsample_frame

__all__ = [
    "PRINT_CSS_MARKER", "ReportError", "ReportRun", "build_report", "build_report_from_results", "find_chromium",
    "render_html", "report_filename", "report_filename_for",
]

MAX_POINTS = 2000
SECTIONS = (
    "executive",
    "scenario",
    "summary",
    "bounds",
    "throughput",
    "latency",
    "slo",
    "nics",
    "storage",
    "memory",
    "breakdown",
)


def report_filename(
    scenarios: str | list[str], designs: list[str], when: date | None = None, suffix: str = ".html"
) -> str:
    """Suggested report file name: 'dualpath-<scenario>-<design>-vs-<design>-<YYYY-MM-DD>.html'.

    Scenario names are joined with '+', designs ordered as the designs are listed everywhere
    (basic, layerwise, dualpath, oracle, dualpath-split; unknown ones after), and every
    character outside letters, digits and '._+-' becomes '-'. At most 120 characters before the suffix.
    """
    from dualpath_twin.scenario import POLICY_NAMES

    names = [scenarios] if isinstance(scenarios, str) else list(scenarios)
    scen = "+".join(dict.fromkeys(n for n in names if n)) or "runs"
    uniq = list(dict.fromkeys(d for d in designs if d))
    ordered = [p for p in POLICY_NAMES if p in uniq] + [d for d in uniq if d not in POLICY_NAMES]
    day = (when or datetime.now(UTC).date()).isoformat()
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "-", f"dualpath-{scen}-{'-vs-'.join(ordered) or 'runs'}-{day}")
    slug = re.sub(r"-{2,}", "-", slug).strip("-")
    return slug[:120] + (suffix if suffix.startswith(".") else f".{suffix}")


def report_filename_for(summaries: list[RunSummary], when: date | None = None, suffix: str = ".html") -> str:
    """:func:`report_filename` for these runs' scenario names and designs."""
    return report_filename([s.scenario_name for s in summaries], [s.policy for s in summaries], when, suffix)


def _labels(summaries: list[RunSummary], run_ids: list[str]) -> list[str]:
    pols = [s.policy for s in summaries]
    out = []
    for i, (s, rid) in enumerate(zip(summaries, run_ids, strict=True)):
        if pols.count(s.policy) == 1:
            out.append(s.policy)
        else:
            out.append(f"{s.policy} {rid[-7:] if rid else f'#{i + 1}'}")
    return out


def build_report(store: Store, run_ids: list[str], out: Path) -> Path:
    """Report on stored runs (ids or unique prefixes); time series are downsampled in SQL."""
    if not run_ids:
        raise ReportError("no run ids given; pick runs from Store.list_runs() / `dualpath-twin runs`")
    ids = [store.resolve_run_id(r) for r in run_ids]
    summaries = [store.get_summary(r) for r in ids]
    labels = _labels(summaries, ids)
    runs = [
        ReportRun(
            lab,
            s,
            store.get_rounds(r),
            store.get_timeseries(r, max_points=MAX_POINTS),
            store.get_scenario_toml(r),
            r,
        )
        for lab, s, r in zip(labels, summaries, ids, strict=True)
    ]
    return _write(runs, Path(out))


def build_report_from_results(results: list[RunResult], out: Path) -> Path:
    """Report on in-memory results (not stored)."""
    if not results:
        raise ReportError("no results given; pass the RunResults returned by api.simulate()/compare()")
    labels = _labels([r.summary for r in results], [""] * len(results))
    runs = [
        ReportRun(lab, r.summary, r.rounds, downsample_frame(r.timeseries, MAX_POINTS), r.scenario_toml)
        for lab, r in zip(labels, results, strict=True)
    ]
    return _write(runs, Path(out))


def _write(runs: list[ReportRun], out: Path) -> Path:
    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".pdf"):
        raise ReportError(f"report output {out}: the name must end in .html or .pdf")
    if suffix == ".pdf" and find_chromium() is None:
        raise ReportError(
            "PDF output needs Chromium (the browser kaleido uses): install it (apt-get install chromium) or set"
            " BROWSER_PATH, or write the report as .html"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render_html(runs)
    if suffix != ".pdf":
        out.write_text(text, encoding="utf-8")
        return out
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(text, encoding="utf-8")
        print_pdf(page, out)
    return out


def render_html(runs: list[ReportRun]) -> str:
    """The complete report page as one self-contained HTML string."""
    if not runs:
        raise ReportError("a report needs at least one run")
    fig = Figs()
    slo = slo_limits(runs)
    ts = {r.label: r.timeseries for r in runs}
    rounds = {r.label: r.rounds for r in runs}
    sums = {r.label: r.summary for r in runs}
    scen = ", ".join(dict.fromkeys(r.summary.scenario_name or "unnamed" for r in runs))
    title = f"dualpath-twin report: {scen} — " + " vs ".join(r.label for r in runs)
    ids = ", ".join(r.run_id for r in runs if r.run_id)
    body = [
        f"<h1>{esc(title)}</h1><p class='note'>generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        f"{esc(f'; runs {ids}') if ids else ''}</p>",
        executive_section(runs, slo),
        # tables first
        scenario_section(runs),
        summary_section(runs, slo),
        bounds_section(runs),
        comparison_section(runs) if len(runs) > 1 else "",
        faults_section(runs),
        cache_section(runs),
        # then the figures
        bounds_figures(runs, fig),
        f'<section id="throughput"><h2>Throughput over time</h2>{fig(F.shade_faults(F.throughput_figure(ts), sums))}</section>',
        '<section id="latency"><h2>Latency distributions against the SLO</h2>'
        + fig(F.latency_cdf_figure(rounds, "ttft_s", slo[0]))
        + fig(F.latency_cdf_figure(rounds, "tpot_s", slo[1]))
        + "</section>",
        f'<section id="slo"><h2>SLO attainment</h2>{fig(F.slo_attainment_figure(sums))}</section>',
        '<section id="nics"><h2>NIC utilisation (SNIC and CNIC, prefill vs decode nodes)</h2>'
        + "".join(
            fig(F.nic_utilization_figure(r.timeseries, f" — {r.label}" if len(runs) > 1 else ""))
            + fig(
                F.nic_heatmap_figure(r.timeseries, "snic_rx_util", f" — {r.label}" if len(runs) > 1 else "")
            )
            + fig(
                F.nic_heatmap_figure(r.timeseries, "cnic_rx_util", f" — {r.label}" if len(runs) > 1 else "")
            )
            for r in runs
        )
        + "</section>",
        f'<section id="storage"><h2>Storage throughput</h2>{fig(F.shade_faults(F.storage_throughput_figure(ts), sums))}</section>',
        f'<section id="memory"><h2>HBM and DRAM buffer occupancy</h2>{fig(F.occupancy_figure(ts))}</section>',
        f'<section id="breakdown"><h2>TTFT breakdown</h2>{fig(F.ttft_breakdown_figure(sums))}</section>',
    ]
    if len(runs) > 1:
        body.append(comparison_figures(runs, fig))
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>"
    )
