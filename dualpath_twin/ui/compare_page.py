"""Compare page: selected runs side by side and overlaid, with throughput ratios and the report."""

from __future__ import annotations

import json
import tomllib

import polars as pl
import streamlit as st

from dualpath_twin.report import figures as F
from dualpath_twin.ui import backend, results_page, state, widgets


def _scenario_key(scenario_toml: str) -> str:
    """The scenario without its policy name (runs of one comparison differ only there)."""
    try:
        data = tomllib.loads(scenario_toml)
    except tomllib.TOMLDecodeError:
        return scenario_toml
    data.get("policy", {}).pop("name", None)
    return json.dumps(data, sort_keys=True)


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
    if len({_scenario_key(r.scenario_toml) for r in runs}) > 1:
        st.caption("The selected runs use different scenarios: ratios compare unlike clusters or workloads.")
    widgets.show_ratios(summaries)
    st.dataframe(widgets.headline_rows(summaries, labels), hide_index=True, width="stretch")
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
        st.plotly_chart(F.comparison_figure(sums, "generated_tokens_per_s", base, pol), width="stretch", key="dp_c_gen")
    with c2:
        st.plotly_chart(F.comparison_figure(sums, "prompt_tokens_per_s", base, pol), width="stretch", key="dp_c_pr")
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
    cols = st.columns(min(3, len(runs)))
    for i, (lb, r) in enumerate(zip(labels, runs, strict=True)):
        with cols[i % len(cols)]:
            st.plotly_chart(F.nic_heatmap_figure(r.timeseries, "snic_rx_util", f" - {lb}"), width="stretch",
                            key=f"dp_c_hs_{i}")
            st.plotly_chart(F.nic_utilization_figure(r.timeseries, f" - {lb}"), width="stretch", key=f"dp_c_nic_{i}")
