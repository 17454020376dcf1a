"""Compare page: selected runs side by side and overlaid, with throughput ratios and the report."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dualpath_twin.comparison import comparison_verdict, scenario_diff
from dualpath_twin.report import figures as F
from dualpath_twin.ui import backend, results_page, state, widgets


def _shared_time_axis(figs: list, t_max_s: float) -> None:
    """Give the small multiples one time axis (0 .. the longest run) so they line up."""
    for f in figs:
        if t_max_s > 0:
            f.update_xaxes(range=[0, t_max_s])
        f.update_layout(title={"font": {"size": 14}}, margin={"t": 70})


def render() -> None:
    """Draw the Compare page."""
    state.ensure()
    st.title("Compare runs")
    if not backend.store_available():
        st.error("The results store is not available (dualpath_twin.store).")
        return
    try:
        df = results_page.list_runs()
    except Exception as err:  # noqa: BLE001
        st.error(f"Cannot read the run history: {err}")
        return
    df = df.filter(pl.col("status").is_in(["finished", "truncated", "cancelled"]))
    if df.height == 0:
        st.info("No finished runs yet: start a comparison on the **Live run** page.")
        return
    selected = results_page.selection_picker(df, "dp_compare_pick")
    if len(selected) < 2:
        st.info("Select at least two runs (for example Basic and DualPath on the same scenario).")
        if len(selected) == 0:
            return
    runs = []
    for rid in selected:
        try:
            runs.append(results_page.load_run(str(backend.db_path()), rid))
        except Exception as err:  # noqa: BLE001
            st.error(f"Cannot load run {rid}: {err}")
    if not runs:
        return
    labels = results_page.short_labels(runs)
    summaries = [r.summary for r in runs]
    verdict = comparison_verdict([r.scenario_toml for r in runs])
    if not verdict.like_for_like:
        st.warning(f"**No design ratios: the selected runs use different scenarios.** {verdict.label}. "
                   "A throughput ratio across different clusters or workloads says nothing about the designs; "
                   "select runs of one scenario (the history's diff columns show what differs).")
        diff = scenario_diff([r.scenario_toml for r in runs], [r.summary.policy for r in runs])
        st.dataframe(pl.DataFrame([{"run": lb, **row} for lb, row in zip(labels, diff.rows, strict=True)]),
                     hide_index=True, width="stretch")
    else:
        widgets.show_ratios(summaries)
    st.dataframe(widgets.headline_rows(summaries, labels, scenarios=[r.scenario_toml for r in runs]),
                 hide_index=True, width="stretch")
    widgets.show_verdicts(summaries)
    results_page.export_buttons([r.run_id for r in runs], "dp_exp_cmp")

    pol = {lb: r.summary.policy for lb, r in zip(labels, runs, strict=True)}
    ts = {lb: r.timeseries for lb, r in zip(labels, runs, strict=True)}
    rounds = {lb: r.rounds for lb, r in zip(labels, runs, strict=True)}
    sums = dict(zip(labels, summaries, strict=True))
    ttft_slo, tpot_slo_ms = results_page.slo_of(runs[0])
    base = F.pick_baseline(labels, pol)
    st.subheader("Overlaid")
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(F.comparison_figure(sums, "generated_tokens_per_s", base, pol, ratios=verdict.like_for_like),
                        width="stretch", key="dp_c_gen")
    with c2:
        st.plotly_chart(F.comparison_figure(sums, "prompt_tokens_per_s", base, pol, ratios=verdict.like_for_like),
                        width="stretch", key="dp_c_pr")
    st.plotly_chart(F.throughput_figure(ts, pol), width="stretch", key="dp_c_tp")
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(F.latency_cdf_figure(rounds, "ttft_s", ttft_slo, pol), width="stretch", key="dp_c_ttft")
        st.plotly_chart(F.slo_attainment_figure(sums, pol), width="stretch", key="dp_c_slo")
        st.plotly_chart(F.storage_throughput_figure(ts, pol), width="stretch", key="dp_c_sto")
    with c2:
        st.plotly_chart(F.latency_cdf_figure(rounds, "tpot_s", tpot_slo_ms / 1000, pol), width="stretch",
                        key="dp_c_tpot")
        st.plotly_chart(F.ttft_breakdown_figure(sums), width="stretch", key="dp_c_bd")
        st.plotly_chart(F.occupancy_figure(ts, pol), width="stretch", key="dp_c_occ")
    st.subheader("Side by side: NIC utilisation")
    st.caption("One row per run, on one time axis (0 to the longest run's simulated time).")
    t_max_s = max((float(r.timeseries["t_s"].max() or 0.0) for r in runs if r.timeseries.height), default=0.0)
    for i, (lb, r) in enumerate(zip(labels, runs, strict=True)):
        figs = [F.nic_heatmap_figure(r.timeseries, "snic_rx_util", f" - {lb}"),
                F.nic_utilization_figure(r.timeseries, f" - {lb}")]
        _shared_time_axis(figs, t_max_s)
        c1, c2 = st.columns(2)
        c1.plotly_chart(figs[0], width="stretch", key=f"dp_c_hs_{i}")
        c2.plotly_chart(figs[1], width="stretch", key=f"dp_c_nic_{i}")
