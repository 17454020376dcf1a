"""The report's tables after the executive summary: scenario and differences, summary, bounds, comparison, faults."""

from __future__ import annotations

from dualpath_twin.analysis.verdict import resource_label
from dualpath_twin.analysis.whatif import CACHE_NOTE, FAULT_NOTE, cache_row, fault_rows
from dualpath_twin.report import figures as F
from dualpath_twin.report.common import (
    DESIGN_PATH,
    SCENARIO_FIELDS,
    Figs,
    ReportRun,
    esc,
    fmt,
    get_path,
    table,
    toml_dict,
)


def _differences(runs: list[ReportRun]) -> list[str]:
    """Scenario paths that differ between the runs: the design first, then every other varying field."""
    from dualpath_twin.comparison import differing_paths

    if len(runs) < 2:
        return []
    tomls = [r.scenario_toml for r in runs]
    return [DESIGN_PATH] + [p for p in differing_paths(tomls) if p != DESIGN_PATH]


def scenario_section(runs: list[ReportRun]) -> str:
    """ONE scenario table (the fields the runs share) plus a table of what differs per run."""
    from dualpath_twin.comparison import _normalised, flatten_toml

    diff = _differences(runs)
    d = toml_dict(runs[0].scenario_toml)
    name = d.get("name") or runs[0].summary.scenario_name or "unnamed"
    parts = [f'<section id="scenario"><h2>Scenario: {esc(name)}</h2>']
    if d.get("description"):
        parts.append(f"<p>{esc(d['description'])}</p>")
    rows = [
        [esc(lab), esc(fmt(get_path(d, path)))]
        for path, lab in SCENARIO_FIELDS
        if get_path(d, path) is not None and path not in diff
        and not (path == "workload.arrival_rate_aps" and get_path(d, "workload.mode") != "online")
    ]
    if rows:
        shared = " (shared by every run)" if len(runs) > 1 else ""
        parts.append(f"<h3>Scenario{esc(shared)}</h3>" + table(["field", "value"], rows))
    if diff:
        flats = _normalised([flatten_toml(r.scenario_toml) for r in runs])
        labels = dict(SCENARIO_FIELDS)
        drows = [
            [esc(labels.get(path, path))]
            + [esc(fmt(f.get(path))) for f in flats]
            for path in diff
        ]
        parts.append("<h3>Per-design differences</h3>" + table(["field"] + [r.label for r in runs], drows))
        if len(diff) > 1:
            parts.append(
                "<p class='note'>The runs differ in more than the design, so their ratios are not like-for-like.</p>"
            )
    parts.append(
        f"<details><summary>Scenario TOML ({esc(runs[0].label)})</summary>"
        f"<pre>{esc(runs[0].scenario_toml or '(not recorded)')}</pre></details>"
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
    ("snic_imbalance", "SNIC load imbalance (max/avg)", ""), ("bottleneck", "binding resource", ""),
)  # fmt: skip


def _summary_cell(flat: dict, key: str) -> str:
    """One summary-table cell: TPOT in ms, the bottleneck key in words, anything else formatted."""
    if key == "bottleneck":
        return resource_label(flat.get(key)) or "–"  # type: ignore[arg-type]
    return fmt(F.metric_value(flat, key) if key in F.METRIC_SCALE else flat.get(key))


def summary_section(runs: list[ReportRun], slo: tuple[float, float]) -> str:
    """The per-run summary table against the SLO."""
    flats = [r.summary.flat() for r in runs]
    rows = [[esc(f"{lab} ({unit})" if unit else lab)] + [esc(_summary_cell(f, key)) for f in flats]
            for key, lab, unit in _SUMMARY_ROWS]  # fmt: skip
    note = f"SLO: TTFT ≤ {slo[0]:g} s and TPOT ≤ {slo[1] * 1000:g} ms per round."
    return (
        '<section id="summary"><h2>Summary metrics</h2>'
        f"<p class='note'>{esc(note)}</p>{table(['metric'] + [r.label for r in runs], rows)}</section>"
    )


def bounds_section(runs: list[ReportRun]) -> str:
    """The analytic bounds table: each run against its closed-form limit."""
    parts = ['<section id="bounds"><h2>Analytic bounds and the binding resource</h2>']
    for r in runs:
        s = r.summary
        sentence = (
            s.bottleneck_sentence
            or (s.bound.explanation if s.bound else "")
            or "no bottleneck verdict recorded"
        )
        parts.append(f"<h3>{esc(r.label)}</h3><p class='bottleneck'>{esc(sentence)}</p>")
        b = s.bound
        if b is not None:
            rows = [
                ["binding resource", esc(resource_label(b.binding_resource) or "–")],
                ["second resource", esc(resource_label(b.second_resource) or "–")],
                ["margin (second / binding rate)", esc(fmt(b.binding_margin))],
                ["max rounds/s (bound)", esc(fmt(b.max_rounds_per_s))],
                ["achieved rounds/s", esc(fmt(s.rounds_per_s))],
                ["max prompt tokens/s (bound)", esc(fmt(b.max_prompt_tokens_per_s))],
                ["max generated tokens/s (bound)", esc(fmt(b.max_generated_tokens_per_s))],
            ]
            parts.append(table(["bound", "value"], rows))
    parts.append("</section>")
    return "".join(parts)


def comparison_section(runs: list[ReportRun]) -> str:
    """The comparison table: each metric per design, with its ratio to the baseline design."""
    sums = {r.label: r.summary for r in runs}
    base = F.pick_baseline(list(sums))
    rows = []
    for key, (lab, unit, higher) in F.COMPARISON_METRICS.items():
        b = F.metric_value(sums[base].flat(), key)
        cells = [esc(f"{lab} ({unit})")]
        for r in runs:
            v = F.metric_value(r.summary.flat(), key)
            ratio = (
                f" <span class='note'>({v / b:.2f}x)</span>"
                if (v is not None and b) and r.label != base
                else ""
            )
            cells.append(esc(fmt(v)) + ratio)
        cells.append("higher" if higher else "lower")
        rows.append(cells)
    return (
        '<section id="comparison"><h2>Side-by-side comparison</h2>'
        f"<p class='note'>Ratios are against {esc(base)}.</p>"
        + table(["metric"] + [r.label for r in runs] + ["better"], rows)
        + "</section>"
    )


def comparison_figures(runs: list[ReportRun], fig: Figs) -> str:
    """The comparison figures: generated and prompt tokens/s of each design against the baseline."""
    sums = {r.label: r.summary for r in runs}
    base = F.pick_baseline(list(sums))
    return (
        '<section id="comparison-figures"><h2>Side-by-side comparison: figures</h2>'
        + fig(F.comparison_figure(sums, "generated_tokens_per_s", base))
        + fig(F.comparison_figure(sums, "prompt_tokens_per_s", base))
        + "</section>"
    )


def bounds_figures(runs: list[ReportRun], fig: Figs) -> str:
    """Each run's bounds-versus-achieved figure (runs without a bound are left out)."""
    figs = "".join(fig(F.bounds_figure(r.summary)) for r in runs if r.summary.bound is not None)
    if not figs:
        return ""
    return f'<section id="bounds-figures"><h2>Analytic bounds per resource</h2>{figs}</section>'



def faults_section(runs: list[ReportRun]) -> str:
    """The configured faults of each run and what they did (empty when no run has faults)."""
    rows = [[esc(r.label), *(esc(v) for v in row.values())] for r in runs for row in fault_rows(r.summary)]
    if not rows:
        return ""
    head = ["run", *fault_rows(next(r.summary for r in runs if r.summary.faults))[0]]
    return (f'<section id="faults"><h2>Faults</h2><p class="note">{esc("Shaded on the time-series plots. " + FAULT_NOTE)}'
            f"</p>{table(head, rows)}</section>")


def cache_section(runs: list[ReportRun]) -> str:
    """The DRAM cache tier's effect per run (empty when no run has a [cache])."""
    got = [(r, row) for r in runs if (row := cache_row(r.summary)) is not None]
    if not got:
        return ""
    head = ["run", *got[0][1]]
    rows = [[esc(r.label), *(esc(v) for v in row.values())] for r, row in got]
    return (f'<section id="cache"><h2>DRAM cache tier</h2><p class="note">{esc(CACHE_NOTE)}</p>'
            f"{table(head, rows)}</section>")
