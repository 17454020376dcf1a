"""Small display helpers shared by the pages (headline tables, policy colour chips, ratios)."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from dualpath_twin.results import RunSummary

_CHIP = {"basic": "red", "layerwise": "orange", "dualpath": "blue", "oracle": "green", "dualpath-split": "violet"}  # as figures.POLICY_COLORS


def policy_chip(policy: str) -> str:
    """Markdown for a policy name on its colour (the hue of figures.POLICY_COLORS)."""
    return f":{_CHIP.get(policy, 'gray')}-background[**{policy}**]"


def _r(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(float(v), nd)


def headline_rows(summaries: list[RunSummary], labels: list[str] | None = None) -> pl.DataFrame:
    """One row per run: throughput, JCT, latency percentiles, SLO attainment, bound and bottleneck."""
    rows: list[dict[str, Any]] = []
    for i, s in enumerate(summaries):
        bound = s.bound
        rows.append({
            "run": labels[i] if labels else s.policy,
            "policy": s.policy,
            "status": s.status,
            "gen tok/s": _r(s.generated_tokens_per_s, 1),
            "prompt tok/s": _r(s.prompt_tokens_per_s, 1),
            "rounds/s": _r(s.rounds_per_s),
            "bound rounds/s": _r(bound.max_rounds_per_s) if bound else None,
            "% of bound": _r(100 * s.rounds_per_s / bound.max_rounds_per_s, 1)
            if bound and bound.max_rounds_per_s else None,
            "JCT (s)": _r(s.jct_s, 1),
            "TTFT p50 (s)": _r(s.ttft_s.p50),
            "TTFT p99 (s)": _r(s.ttft_s.p99),
            "TPOT p99 (ms)": _r(s.tpot_s.p99 * 1000, 2) if s.tpot_s.p99 is not None else None,
            "SLO attainment (%)": _r(100 * s.slo_attainment, 1) if s.slo_attainment is not None else None,
            "rounds": s.rounds,
            "bottleneck": s.bottleneck,
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
        sentence = s.bottleneck_sentence or (f"bound by {s.bottleneck}" if s.bottleneck else "")
        if sentence:
            st.markdown(f"{policy_chip(s.policy)} {sentence}")
        if s.status != "finished":
            st.caption(f"{s.policy}: run {s.status}{f' ({s.status_reason})' if s.status_reason else ''}")
