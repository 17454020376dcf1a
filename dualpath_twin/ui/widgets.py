"""Small display helpers shared by the pages (headline tables, policy colour chips, ratios)."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from dualpath_twin.analysis.verdict import resource_label
from dualpath_twin.palette import CHIP as _CHIP
from dualpath_twin.results import RunSummary


def policy_chip(policy: str) -> str:
    """Markdown for a policy name on its colour (the hue of palette.POLICY_COLORS)."""
    return f":{_CHIP.get(policy, 'gray')}-background[**{policy}**]"


def _r(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(float(v), nd)


def headline_rows(summaries: list[RunSummary], labels: list[str] | None = None,
                  scenarios: list[str] | None = None) -> pl.DataFrame:
    """One row per run: throughput, JCT, latency, SLO attainment, bound, bottleneck; cost when ``scenarios`` (TOMLs) given."""
    rows: list[dict[str, Any]] = []
    # a "run" column only when the labels tell apart more than the design does
    named = bool(labels) and any(lb != s.policy for lb, s in zip(labels, summaries, strict=True))
    for i, s in enumerate(summaries):
        bound = s.bound
        row: dict[str, Any] = {"run": labels[i]} if named and labels else {}
        # the planner's key columns first (design, verdict, latencies, binding resource), then the detail
        row.update({
            "policy": s.policy,
            "status": s.status,
            "SLO attainment (%)": _r(100 * s.slo_attainment, 1) if s.slo_attainment is not None else None,
            "gen tok/s": _r(s.generated_tokens_per_s, 1),
            "prompt tok/s": _r(s.prompt_tokens_per_s, 1),
            "JCT (s)": _r(s.jct_s, 1),
            "TTFT p99 (s)": _r(s.ttft_s.p99),
            "TPOT p99 (ms)": _r(s.tpot_s.p99 * 1000, 2) if s.tpot_s.p99 is not None else None,
            "binding resource": resource_label(s.bottleneck) or None,
            "rounds/s": _r(s.rounds_per_s),
            "bound rounds/s": _r(bound.max_rounds_per_s) if bound else None,
            "% of bound": _r(100 * s.rounds_per_s / bound.max_rounds_per_s, 1)
            if bound and bound.max_rounds_per_s else None,
            "TTFT p50 (s)": _r(s.ttft_s.p50),
            "rounds": s.rounds,
        })
        rows.append(row)
        if scenarios is not None:
            from dualpath_twin.ui import costs

            v = costs.values(s, scenarios[i])
            rows[-1].update({
                "$/hour": _r(v["usd_per_hour"], 2),
                "$ per M gen tokens": _r(v["usd_per_m_generated_tokens"], 3),
                "gen tokens per $": _r(v["generated_tokens_per_usd"], 0),
            })
    return pl.DataFrame(rows)


def throughput_ratios(summaries: list[RunSummary]) -> dict[str, float]:
    """Generated-token throughput of each policy over Basic's (or the first run's) throughput."""
    if len(summaries) < 2:
        return {}
    ref = next((s for s in summaries if s.policy == "basic"), summaries[0])
    if not ref.generated_tokens_per_s:
        return {}
    return {f"{s.policy} vs {ref.policy}": s.generated_tokens_per_s / ref.generated_tokens_per_s
            for s in summaries if s is not ref}


def show_ratios(summaries: list[RunSummary]) -> None:
    """Metric tiles with throughput ratios (e.g. DualPath vs Basic)."""
    ratios = throughput_ratios(summaries)
    if not ratios:
        return
    cols = st.columns(min(4, len(ratios)))
    for i, (name, r) in enumerate(ratios.items()):
        cols[i % len(cols)].metric(f"Throughput {name}", f"{r:.2f}x")


def show_verdicts(summaries: list[RunSummary]) -> None:
    """The bottleneck sentence of each run."""
    for s in summaries:
        sentence = s.bottleneck_sentence or (f"bound by {resource_label(s.bottleneck)}" if s.bottleneck else "")
        if sentence:
            st.markdown(f"{policy_chip(s.policy)} {sentence}")
        if s.status != "finished":
            st.caption(f"{s.policy}: run {s.status}{f' ({s.status_reason})' if s.status_reason else ''}")
