"""Self-contained HTML (or PDF) reports of one or several runs, from the store or from results.

One file, works offline: plotly.js is inlined once (first figure) and every other figure
reuses it. A ``.pdf`` output prints that HTML with headless Chromium (the browser kaleido
uses), so the PDF shows exactly what the HTML shows.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl

from dualpath_twin.report import figures as F
from dualpath_twin.results import RunResult, RunSummary
from dualpath_twin.scenario import SloConfig
from dualpath_twin.store import Store, downsample_frame

__all__ = [
    "ReportError", "ReportRun", "build_report", "build_report_from_results", "render_html", "report_filename",
    "report_filename_for",
]

MAX_POINTS = 2000
DESIGN_PATH = "policy.name"
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


# ------------------------------------------------------------------ output


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
        _print_pdf(page, out)
    return out


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary (BROWSER_PATH first, as kaleido does), None if absent."""
    env = os.environ.get("BROWSER_PATH")
    if env and Path(env).is_file():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def _print_pdf(page: Path, out: Path) -> None:
    browser = find_chromium()
    if browser is None:
        raise ReportError(
            "PDF output needs Chromium (the browser kaleido uses): install it (apt-get install chromium) or set"
            " BROWSER_PATH, or write the report as .html"
        )
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--no-pdf-header-footer", "--virtual-time-budget=15000",
            f"--print-to-pdf={out.resolve()}", page.resolve().as_uri(),
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            raise ReportError(
                f"Chromium did not finish printing {out} within 180 s; try the .html output"
            ) from None
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise ReportError(
            f"Chromium failed to print {out} (exit {proc.returncode}): {proc.stderr.strip()[-400:]}"
        )


# ------------------------------------------------------------------ HTML

_CSS = """
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

_SCENARIO_FIELDS = (
    ("cluster.prefill_nodes", "prefill nodes"), ("cluster.decode_nodes", "decode nodes"),
    ("cluster.gpus_per_node", "GPUs per node"), ("cluster.gpu", "GPU"), ("cluster.dram_buffer_gb", "DRAM KV buffer (GB/node)"),
    ("model.name", "model"), ("model.kv_format", "KV format"), ("workload.kind", "workload"),
    ("workload.dataset", "dataset"), ("workload.mode", "mode"), ("workload.agents", "agents"),
    ("workload.arrival_rate_aps", "arrival rate (agents/s)"), ("network.snic_gbps", "storage NIC (Gbit/s)"),
    ("network.cnic_gbps", "compute NIC (Gbit/s)"), ("network.dram_gbps", "DRAM bandwidth (Gbit/s)"),
    ("policy.name", "design (policy)"), ("slo.ttft_s", "SLO TTFT (s)"), ("slo.tpot_ms", "SLO TPOT (ms)"), ("run.seed", "seed"),
)  # fmt: skip


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return str(v)


def _toml_dict(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError:
        return {}


def _get(d: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _slo(runs: list[ReportRun]) -> tuple[float, float]:
    d = _toml_dict(runs[0].scenario_toml)
    dflt = SloConfig()
    ttft = _get(d, "slo.ttft_s")
    tpot = _get(d, "slo.tpot_ms")
    return float(ttft if ttft is not None else dflt.ttft_s), float(
        tpot if tpot is not None else dflt.tpot_ms
    ) / 1000


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _Figs:
    """Renders figures, inlining plotly.js with the first one only."""

    def __init__(self) -> None:
        self.first = True

    def __call__(self, fig: go.Figure) -> str:
        h = fig.layout.height or 420
        div = fig.to_html(full_html=False, include_plotlyjs=self.first, default_height=f"{h}px",
                          config={"displaylogo": False, "responsive": True})  # fmt: skip
        self.first = False
        return f'<div class="fig">{div}</div>'


def _differences(runs: list[ReportRun]) -> list[str]:
    """Scenario paths that differ between the runs: the design first, then every other varying field."""
    from dualpath_twin.comparison import differing_paths

    if len(runs) < 2:
        return []
    tomls = [r.scenario_toml for r in runs]
    return [DESIGN_PATH] + [p for p in differing_paths(tomls) if p != DESIGN_PATH]


def _scenario_section(runs: list[ReportRun]) -> str:
    """ONE scenario table (the fields the runs share) plus a table of what differs per run."""
    from dualpath_twin.comparison import _normalised, flatten_toml

    diff = _differences(runs)
    d = _toml_dict(runs[0].scenario_toml)
    name = d.get("name") or runs[0].summary.scenario_name or "unnamed"
    parts = [f'<section id="scenario"><h2>Scenario: {_esc(name)}</h2>']
    if d.get("description"):
        parts.append(f"<p>{_esc(d['description'])}</p>")
    rows = [
        [_esc(lab), _esc(_fmt(_get(d, path)))]
        for path, lab in _SCENARIO_FIELDS
        if _get(d, path) is not None and path not in diff
        and not (path == "workload.arrival_rate_aps" and _get(d, "workload.mode") != "online")
    ]
    if rows:
        shared = " (shared by every run)" if len(runs) > 1 else ""
        parts.append(f"<h3>Scenario{_esc(shared)}</h3>" + _table(["field", "value"], rows))
    if diff:
        flats = _normalised([flatten_toml(r.scenario_toml) for r in runs])
        labels = dict(_SCENARIO_FIELDS)
        drows = [
            [_esc(labels.get(path, path))]
            + [_esc(_fmt(f.get(path))) for f in flats]
            for path in diff
        ]
        parts.append("<h3>Per-design differences</h3>" + _table(["field"] + [r.label for r in runs], drows))
        if len(diff) > 1:
            parts.append(
                "<p class='note'>The runs differ in more than the design, so their ratios are not like-for-like.</p>"
            )
    parts.append(
        f"<details><summary>Scenario TOML ({_esc(runs[0].label)})</summary>"
        f"<pre>{_esc(runs[0].scenario_toml or '(not recorded)')}</pre></details>"
    )
    if len(runs) > 1:
        parts.append("<p class='note'>The other runs' TOMLs differ from it only in the fields listed above.</p>")
    parts.append("</section>")
    return "".join(parts)


_SUMMARY_ROWS = (
    ("status", "status", ""), ("mode", "mode", ""), ("jct_s", "job completion time", "s"),
    ("sim_time_s", "simulated time", "s"), ("rounds", "rounds completed", ""),
    ("prompt_tokens_per_s", "prompt throughput", "tokens/s"), ("generated_tokens_per_s", "generated throughput", "tokens/s"),
    ("rounds_per_s", "rounds per second", "rounds/s"), ("ttft_s.p50", "TTFT p50", "s"), ("ttft_s.p99", "TTFT p99", "s"),
    ("tpot_s.p50", "TPOT p50", "ms"), ("tpot_s.p99", "TPOT p99", "ms"), ("slo_attainment", "SLO attainment", "share"),
    ("snic_imbalance", "SNIC load imbalance (max/avg)", ""), ("bottleneck", "bottleneck", ""),
)  # fmt: skip


def _summary_section(runs: list[ReportRun], slo: tuple[float, float]) -> str:
    flats = [r.summary.flat() for r in runs]
    rows = [[_esc(f"{lab} ({unit})" if unit else lab)]
            + [_esc(_fmt(F.metric_value(f, key) if key in F.METRIC_SCALE else f.get(key))) for f in flats]
            for key, lab, unit in _SUMMARY_ROWS]  # fmt: skip
    note = f"SLO: TTFT ≤ {slo[0]:g} s and TPOT ≤ {slo[1] * 1000:g} ms per round."
    return (
        '<section id="summary"><h2>Summary metrics</h2>'
        f"<p class='note'>{_esc(note)}</p>{_table(['metric'] + [r.label for r in runs], rows)}</section>"
    )


def _bounds_section(runs: list[ReportRun]) -> str:
    parts = ['<section id="bounds"><h2>Analytic bounds and the binding resource</h2>']
    for r in runs:
        s = r.summary
        sentence = (
            s.bottleneck_sentence
            or (s.bound.explanation if s.bound else "")
            or "no bottleneck verdict recorded"
        )
        parts.append(f"<h3>{_esc(r.label)}</h3><p class='bottleneck'>{_esc(sentence)}</p>")
        b = s.bound
        if b is not None:
            rows = [
                ["binding resource", _esc(b.binding_resource or "–")],
                ["second resource", _esc(b.second_resource or "–")],
                ["margin (second / binding rate)", _esc(_fmt(b.binding_margin))],
                ["max rounds/s (bound)", _esc(_fmt(b.max_rounds_per_s))],
                ["achieved rounds/s", _esc(_fmt(s.rounds_per_s))],
                ["max prompt tokens/s (bound)", _esc(_fmt(b.max_prompt_tokens_per_s))],
                ["max generated tokens/s (bound)", _esc(_fmt(b.max_generated_tokens_per_s))],
            ]
            parts.append(_table(["bound", "value"], rows))
    parts.append("</section>")
    return "".join(parts)


def _comparison_section(runs: list[ReportRun]) -> str:
    sums = {r.label: r.summary for r in runs}
    base = F.pick_baseline(list(sums))
    rows = []
    for key, (lab, unit, higher) in F.COMPARISON_METRICS.items():
        b = F.metric_value(sums[base].flat(), key)
        cells = [_esc(f"{lab} ({unit})")]
        for r in runs:
            v = F.metric_value(r.summary.flat(), key)
            ratio = (
                f" <span class='note'>({v / b:.2f}x)</span>"
                if (v is not None and b) and r.label != base
                else ""
            )
            cells.append(_esc(_fmt(v)) + ratio)
        cells.append("higher" if higher else "lower")
        rows.append(cells)
    return (
        '<section id="comparison"><h2>Side-by-side comparison</h2>'
        f"<p class='note'>Ratios are against {_esc(base)}.</p>"
        + _table(["metric"] + [r.label for r in runs] + ["better"], rows)
        + "</section>"
    )


def _comparison_figures(runs: list[ReportRun], fig: _Figs) -> str:
    sums = {r.label: r.summary for r in runs}
    base = F.pick_baseline(list(sums))
    return (
        '<section id="comparison-figures"><h2>Side-by-side comparison: figures</h2>'
        + fig(F.comparison_figure(sums, "generated_tokens_per_s", base))
        + fig(F.comparison_figure(sums, "prompt_tokens_per_s", base))
        + "</section>"
    )


def _bounds_figures(runs: list[ReportRun], fig: _Figs) -> str:
    figs = "".join(fig(F.bounds_figure(r.summary)) for r in runs if r.summary.bound is not None)
    if not figs:
        return ""
    return f'<section id="bounds-figures"><h2>Analytic bounds per resource</h2>{figs}</section>'



def _faults_section(runs: list[ReportRun]) -> str:
    """The configured faults of each run and what they did (empty when no run has faults)."""
    rows = []
    for r in runs:
        for f in r.summary.faults:
            rows.append([_esc(r.label), _esc(f"{f.node}{'' if f.gpu is None else f'.gpu{f.gpu}'}"), _esc(f.kind),
                         _esc(f"{f.start_s:g}-{'end' if f.end_s is None else f'{f.end_s:g}'}"),
                         _esc(_fmt(f.prompt_tokens_per_s_before)), _esc(_fmt(f.prompt_tokens_per_s_during)),
                         _esc("-" if f.degradation is None else f"{f.degradation:.1%}"),
                         _esc("not within the run" if f.recovery_s is None else f"{f.recovery_s:.1f} s")])  # fmt: skip
    if not rows:
        return ""
    head = ["run", "where", "fault", "interval (s)", "prompt tok/s before", "during", "degradation", "recovery"]
    note = ("Shaded on the time-series plots. Degradation = 1 - prompt tokens/s prefilled during the fault over the "
            "window before it; recovery = time after the repair until a 10 s window is back at 90% of that level.")  # fmt: skip
    return f'<section id="faults"><h2>Faults</h2><p class="note">{_esc(note)}</p>{_table(head, rows)}</section>'


def _best(runs: list[ReportRun]) -> ReportRun:
    """The best run: online by SLO attainment (then TTFT p99), offline by JCT (then throughput)."""
    online = all(r.summary.mode == "online" for r in runs)
    if online:
        return max(runs, key=lambda r: (r.summary.slo_attainment or 0.0, -(r.summary.ttft_s.p99 or float("inf"))))
    if all(r.summary.jct_s for r in runs):
        return min(runs, key=lambda r: r.summary.jct_s or float("inf"))
    return max(runs, key=lambda r: r.summary.prompt_tokens_per_s)


TIE_TOLERANCE = 0.02
"""Designs whose throughput and JCT are all within this share of the best are called a tie."""


def _tied(runs: list[ReportRun], best: ReportRun) -> bool:
    """True when every run is within TIE_TOLERANCE of the best on throughput, JCT and SLO attainment."""
    b = best.summary
    for r in runs:
        s = r.summary
        if b.prompt_tokens_per_s > 0 and abs(s.prompt_tokens_per_s / b.prompt_tokens_per_s - 1) > TIE_TOLERANCE:
            return False
        if b.jct_s and s.jct_s and abs(s.jct_s / b.jct_s - 1) > TIE_TOLERANCE:
            return False
        if abs((s.slo_attainment or 0.0) - (b.slo_attainment or 0.0)) > TIE_TOLERANCE:
            return False
    return True


def _economics(runs: list[ReportRun]) -> dict[str, Any]:
    """Each run's cost figures, or the reason they are unavailable (a string)."""
    from dualpath_twin.economics import try_run_economics

    out: dict[str, Any] = {}
    for r in runs:
        out[r.label] = try_run_economics(r.summary, r.scenario_toml) if r.scenario_toml else "cost unavailable: no scenario recorded"
    return out


def _binding_text(s: RunSummary) -> str:
    from dualpath_twin.analysis.bounds import RESOURCE_LABELS
    from dualpath_twin.analysis.verdict import OFFERED_LOAD

    if s.bottleneck == OFFERED_LOAD:
        return "none (offered load)"
    return RESOURCE_LABELS.get(s.bottleneck, s.bottleneck) or "–"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def _ratio_phrase(best: RunSummary, other: RunSummary, other_label: str) -> str:
    parts = []
    if other.prompt_tokens_per_s > 0:
        parts.append(f"{best.prompt_tokens_per_s / other.prompt_tokens_per_s:.2f}x {other_label}'s throughput")
    if best.jct_s and other.jct_s:
        parts.append(f"{best.jct_s / other.jct_s:.2f}x its JCT")
    return " and ".join(parts)


def _executive_section(runs: list[ReportRun], slo: tuple[float, float]) -> str:
    """The question, the answer (best design vs the others), cost, the binding resource and SLO attainment."""
    from dualpath_twin.comparison import comparison_verdict

    d = _toml_dict(runs[0].scenario_toml)
    name = d.get("name") or runs[0].summary.scenario_name or "unnamed"
    designs = [r.label for r in runs]
    if len(runs) > 1:
        question = f"On scenario {name}, which design does best: {', '.join(designs)}?"
    else:
        question = f"How does {designs[0]} perform on scenario {name}?"
    best = _best(runs)
    b = best.summary
    head = f"{best.label}: {_fmt(b.prompt_tokens_per_s)} prompt tokens/s, {_fmt(b.generated_tokens_per_s)} generated tokens/s"
    if b.jct_s:
        head += f", JCT {_fmt(b.jct_s)} s"
    if b.slo_attainment is not None:
        head += f", SLO attainment {_pct(b.slo_attainment)}"
    others = [_ratio_phrase(b, r.summary, r.label) for r in runs if r is not best]
    others = [o for o in others if o]
    if len(runs) > 1 and _tied(runs, best):
        answer = (
            f"No design is clearly better: all are within {TIE_TOLERANCE:.0%} of each other "
            f"(best {head}; that is {'; '.join(others)})."
        )
    elif len(runs) > 1:
        answer = f"Best design: {head}" + (f"; that is {'; '.join(others)}." if others else ".")
        verdict = comparison_verdict([r.scenario_toml for r in runs])
        if not verdict.like_for_like:
            answer += f" Caution: {verdict.label}."
    else:
        answer = head + "."
    econ = _economics(runs)
    have_cost = any(not isinstance(e, str) for e in econ.values())
    header = ["design", "prompt tokens/s", "generated tokens/s", "JCT (s)", "TTFT p99 (s)", "SLO attainment"]
    if have_cost:
        header += ["$/hour", "$ per M generated tokens", "$ per M prompt tokens"]
    header.append("binding resource")
    rows = []
    for r in runs:
        s = r.summary
        lab = f"<span class='best'>{_esc(r.label)}</span>" if r is best else _esc(r.label)
        row = [lab, _esc(_fmt(s.prompt_tokens_per_s)), _esc(_fmt(s.generated_tokens_per_s)), _esc(_fmt(s.jct_s)),
               _esc(_fmt(s.ttft_s.p99)), _esc(_pct(s.slo_attainment))]  # fmt: skip
        if have_cost:
            e = econ[r.label]
            if isinstance(e, str):
                row += ["–", "–", "–"]
            else:
                row += [_esc(f"${e.usd_per_hour:,.2f}"), _esc(_money(e.usd_per_m_generated_tokens)),
                        _esc(_money(e.usd_per_m_prompt_tokens))]  # fmt: skip
        row.append(_esc(_binding_text(s)))
        rows.append(row)
    cost_note = ""
    if have_cost:
        src = next(e.cost_source for e in econ.values() if not isinstance(e, str))
        cost_note = f"Costs from the cost table ({Path(src).name if src else 'defaults'}); they are assumptions for comparing designs, not quotes."
    else:
        reasons = sorted({e for e in econ.values() if isinstance(e, str)})
        cost_note = "; ".join(reasons)
    binding = "".join(
        f"<p class='bottleneck'><b>{_esc(r.label)}</b>: {_esc(r.summary.bottleneck_sentence or 'no bottleneck verdict recorded')}</p>"
        for r in runs
    )
    slo_text = f"SLO: TTFT ≤ {slo[0]:g} s and TPOT ≤ {slo[1] * 1000:g} ms per round. Attainment: " + ", ".join(
        f"{r.label} {_pct(r.summary.slo_attainment)}" for r in runs
    ) + "."
    return (
        '<section id="executive" class="exec"><h2>Executive summary</h2>'
        f"<p><b>Question.</b> {_esc(question)}</p>"
        f"<p><b>Answer.</b> {_esc(answer)}</p>"
        + _table(header, rows)
        + f"<p class='note'>{_esc(cost_note)}</p>"
        + "<p><b>Binding resource.</b></p>" + binding
        + f"<p><b>SLO attainment.</b> {_esc(slo_text)}</p></section>"
    )


def _money(v: float | None) -> str:
    return "–" if v is None else (f"${v:,.2f}" if v >= 0.1 else f"${v:.3g}")


def render_html(runs: list[ReportRun]) -> str:
    """The complete report page as one self-contained HTML string."""
    if not runs:
        raise ReportError("a report needs at least one run")
    fig = _Figs()
    slo = _slo(runs)
    ts = {r.label: r.timeseries for r in runs}
    rounds = {r.label: r.rounds for r in runs}
    sums = {r.label: r.summary for r in runs}
    scen = ", ".join(dict.fromkeys(r.summary.scenario_name or "unnamed" for r in runs))
    title = f"dualpath-twin report: {scen} — " + " vs ".join(r.label for r in runs)
    ids = ", ".join(r.run_id for r in runs if r.run_id)
    body = [
        f"<h1>{_esc(title)}</h1><p class='note'>generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        f"{_esc(f'; runs {ids}') if ids else ''}</p>",
        _executive_section(runs, slo),
        # tables first
        _scenario_section(runs),
        _summary_section(runs, slo),
        _bounds_section(runs),
        _comparison_section(runs) if len(runs) > 1 else "",
        _faults_section(runs),
        # then the figures
        _bounds_figures(runs, fig),
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
        body.append(_comparison_figures(runs, fig))
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_esc(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )
