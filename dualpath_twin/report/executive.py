"""The executive summary a planner reads first: the question, the best design, its cost, binding resource and SLO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dualpath_twin.report.common import ReportRun, esc, fmt, table, toml_dict
from dualpath_twin.results import RunSummary


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
    from dualpath_twin.analysis.verdict import resource_label

    return resource_label(s.bottleneck) or "–"


def pct(v: float | None) -> str:
    """A share as a percentage, "–" for none."""
    return "–" if v is None else f"{v:.1%}"


def _ratio_phrase(best: RunSummary, other: RunSummary, other_label: str) -> str:
    parts = []
    if other.prompt_tokens_per_s > 0:
        parts.append(f"{best.prompt_tokens_per_s / other.prompt_tokens_per_s:.2f}x {other_label}'s throughput")
    if best.jct_s and other.jct_s:
        parts.append(f"{best.jct_s / other.jct_s:.2f}x its JCT")
    return " and ".join(parts)


def executive_section(runs: list[ReportRun], slo: tuple[float, float]) -> str:
    """The question, the answer (best design vs the others), cost, the binding resource and SLO attainment."""
    from dualpath_twin.comparison import comparison_verdict

    d = toml_dict(runs[0].scenario_toml)
    name = d.get("name") or runs[0].summary.scenario_name or "unnamed"
    designs = [r.label for r in runs]
    if len(runs) > 1:
        question = f"On scenario {name}, which design does best: {', '.join(designs)}?"
    else:
        question = f"How does {designs[0]} perform on scenario {name}?"
    best = _best(runs)
    b = best.summary
    head = f"{best.label}: {fmt(b.prompt_tokens_per_s)} prompt tokens/s, {fmt(b.generated_tokens_per_s)} generated tokens/s"
    if b.jct_s:
        head += f", JCT {fmt(b.jct_s)} s"
    if b.slo_attainment is not None:
        head += f", SLO attainment {pct(b.slo_attainment)}"
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
        lab = f"<span class='best'>{esc(r.label)}</span>" if r is best else esc(r.label)
        row = [lab, esc(fmt(s.prompt_tokens_per_s)), esc(fmt(s.generated_tokens_per_s)), esc(fmt(s.jct_s)),
               esc(fmt(s.ttft_s.p99)), esc(pct(s.slo_attainment))]  # fmt: skip
        if have_cost:
            e = econ[r.label]
            if isinstance(e, str):
                row += ["–", "–", "–"]
            else:
                row += [esc(f"${e.usd_per_hour:,.2f}"), esc(money(e.usd_per_m_generated_tokens)),
                        esc(money(e.usd_per_m_prompt_tokens))]  # fmt: skip
        row.append(esc(_binding_text(s)))
        rows.append(row)
    cost_note = ""
    if have_cost:
        src = next(e.cost_source for e in econ.values() if not isinstance(e, str))
        cost_note = f"Costs from the cost table ({Path(src).name if src else 'defaults'}); they are assumptions for comparing designs, not quotes."
    else:
        reasons = sorted({e for e in econ.values() if isinstance(e, str)})
        cost_note = "; ".join(reasons)
    binding = "".join(
        f"<p class='bottleneck'><b>{esc(r.label)}</b>: {esc(r.summary.bottleneck_sentence or 'no bottleneck verdict recorded')}</p>"
        for r in runs
    )
    slo_text = f"SLO: TTFT ≤ {slo[0]:g} s and TPOT ≤ {slo[1] * 1000:g} ms per round. Attainment: " + ", ".join(
        f"{r.label} {pct(r.summary.slo_attainment)}" for r in runs
    ) + "."
    return (
        '<section id="executive" class="exec"><h2>Executive summary</h2>'
        f"<p><b>Question.</b> {esc(question)}</p>"
        f"<p><b>Answer.</b> {esc(answer)}</p>"
        + table(header, rows)
        + f"<p class='note'>{esc(cost_note)}</p>"
        + "<p><b>Binding resource.</b></p>" + binding
        + f"<p><b>SLO attainment.</b> {esc(slo_text)}</p></section>"
    )


def money(v: float | None) -> str:
    """Dollars with cents, or 3 significant digits below $0.10."""
    return "–" if v is None else (f"${v:,.2f}" if v >= 0.1 else f"${v:.3g}")
