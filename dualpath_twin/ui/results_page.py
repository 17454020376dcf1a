"""Results page: run history from the store (filters, selection) and one run's full detail and exports."""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import polars as pl
import streamlit as st

from dualpath_twin.analysis.whatif import CACHE_NOTE, FAULT_NOTE, cache_row, fault_rows
from dualpath_twin.report import figures as F
from dualpath_twin.results import RunSummary
from dualpath_twin.scenario import POLICY_NAMES
from dualpath_twin.ui import backend, state, widgets

COMPARE_PAGE = "dualpath_twin/ui/pages/compare.py"
HISTORY_COLUMNS = {
    # the planner's key columns first, so the verdict and the binding resource show without scrolling sideways
    "design": "design", "status": "status", "meets_slo": "meets SLO (p99)", "slo_attainment": "SLO attainment (%)",
    "generated_tokens_per_s": "gen tok/s", "prompt_tokens_per_s": "prompt tok/s",
    "jct_s": "JCT (s)", "ttft_p99_s": "TTFT p99 (s)", "tpot_p99_ms": "TPOT p99 (ms)",
    "bottleneck": "binding resource",
    # then what tells the runs apart, the cost and the bookkeeping
    "scenario_name": "scenario", "topology": "topology", "NICs": "NICs", "model": "model", "kv format": "KV format",
    "workload": "workload", "agents": "agents", "seed": "seed", "other": "other differences",
    "usd_per_hour": "$/hour", "usd_per_m_generated_tokens": "$ per M gen tokens",
    "created_at": "started", "run_id": "run id", "error": "error",
}
"""History columns (store column -> shown name); the scenario-diff columns (comparison.scenario_diff)
appear only when they vary among the listed runs, so a sweep's runs are told apart."""


@dataclass
class RunData:
    """Everything the pages draw for one stored run."""

    run_id: str
    summary: RunSummary
    rounds: pl.DataFrame
    timeseries: pl.DataFrame
    scenario_toml: str


def list_runs() -> pl.DataFrame:
    """All runs in the store, newest first, with the scenario-diff columns (comparison.runs_with_diff)."""
    from dualpath_twin.comparison import runs_with_diff

    store = backend.store()
    try:
        return runs_with_diff(store)
    except Exception:  # noqa: BLE001 - the plain listing still works without the diff columns
        return store.list_runs()


@st.cache_data(max_entries=32, show_spinner="Loading run...")
def load_run(db: str, run_id: str) -> RunData:
    """Summary, rounds and time series of a finished run (cached: stored runs never change)."""
    s = backend.store()
    return RunData(run_id, s.get_summary(run_id), s.get_rounds(run_id), s.get_timeseries(run_id),
                   s.get_scenario_toml(run_id))


def run_label(row: dict) -> str:
    """Human label of a history row: policy, scenario, start time, status."""
    created = row.get("created_at")
    when = created.strftime("%m-%d %H:%M:%S") if isinstance(created, datetime) else str(created or "")
    diff = " ".join(str(row[c]) for c in ("topology", "NICs", "model", "workload", "agents", "seed", "other")
                    if row.get(c))
    return (f"{row.get('policy')} | {row.get('scenario_name')}{f' [{diff}]' if diff else ''} | {when} | "
            f"{row.get('status')} | {row.get('run_id')}")


def short_labels(runs: list[RunData]) -> list[str]:
    """Distinct short labels (policy, plus scenario/id when needed) for figure legends."""
    labels = [r.summary.policy for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{r.summary.policy} ({r.summary.scenario_name}, {r.run_id[-7:]})" for r in runs]
    return labels


def _filters(df: pl.DataFrame) -> pl.DataFrame:
    c1, c2, c3, c4 = st.columns(4)
    scenarios = sorted({s for s in df["scenario_name"].to_list() if s})
    policies = [p for p in POLICY_NAMES if p in set(df["policy"].to_list())]
    statuses = sorted({s for s in df["status"].to_list() if s})
    with c1:
        f_sc = st.multiselect("Scenario", scenarios, key="dp_f_scenario", placeholder="all")
    with c2:
        f_po = st.multiselect("Policy", policies, key="dp_f_policy", placeholder="all")
    with c3:
        f_st = st.multiselect("Status", statuses, key="dp_f_status", placeholder="all")
    with c4:
        f_since = st.date_input("Started on or after", value=None, key="dp_f_since")
    if f_sc:
        df = df.filter(pl.col("scenario_name").is_in(f_sc))
    if f_po:
        df = df.filter(pl.col("policy").is_in(f_po))
    if f_st:
        df = df.filter(pl.col("status").is_in(f_st))
    if isinstance(f_since, date):
        df = df.filter(pl.col("created_at") >= datetime.combine(f_since, time.min))
    return df


def selection_picker(df: pl.DataFrame, key: str) -> list[str]:
    """A multiselect of runs (kept in the session across pages); returns the selected run ids."""
    ids = df["run_id"].to_list()
    labels = {r["run_id"]: run_label(r) for r in df.iter_rows(named=True)}
    current = [r for r in st.session_state.get(state.K_SELECTED, []) if r in labels]

    def sync() -> None:
        st.session_state[state.K_SELECTED] = list(st.session_state[key])

    st.session_state[key] = current
    st.multiselect("Selected runs (pick one for its detail, several to compare)", ids, key=key,
                   format_func=lambda r: labels.get(r, r), on_change=sync)
    return list(st.session_state[key])


def _history(df: pl.DataFrame) -> None:
    if "design" not in df.columns and "policy" in df.columns:  # the plain listing (no scenario-diff columns)
        df = df.with_columns(pl.col("policy").alias("design"))
    if "tpot_p99_s" in df.columns:
        df = df.with_columns((pl.col("tpot_p99_s") * 1000).round(2).alias("tpot_p99_ms"))
    if "slo_attainment" in df.columns:
        df = df.with_columns((pl.col("slo_attainment") * 100).round(1))
    if "bottleneck" in df.columns and df["bottleneck"].dtype == pl.String:
        from dualpath_twin.analysis.verdict import resource_label

        df = df.with_columns(pl.col("bottleneck").map_elements(resource_label, return_dtype=pl.String))
    digits = {"generated_tokens_per_s": 1, "prompt_tokens_per_s": 0, "jct_s": 1, "ttft_p99_s": 3}  # as the run tables
    df = df.with_columns([pl.col(c).round(d) for c, d in digits.items() if c in df.columns and df[c].dtype.is_float()])
    cols = [c for c in HISTORY_COLUMNS if c in df.columns]
    view = df.select(cols).rename({c: HISTORY_COLUMNS[c] for c in cols})
    st.dataframe(view, hide_index=True, width="stretch", height=min(400, 40 + 35 * max(1, view.height)))


def _tiles(s: RunSummary, slo_ttft_s: float, slo_tpot_ms: float) -> None:
    c = st.columns(5)
    bound = s.bound
    c[0].metric("Generated tokens/s", f"{s.generated_tokens_per_s:,.0f}",
                help="simulated throughput; the delta is the share of the analytic bound reached",
                delta=f"{100 * s.generated_tokens_per_s / bound.max_generated_tokens_per_s:.0f}% of bound"
                if bound and bound.max_generated_tokens_per_s else None, delta_color="off", delta_arrow="off")
    c[1].metric("JCT (s)", f"{s.jct_s:,.1f}" if s.jct_s is not None else "-",
                delta=f"bound {bound.min_jct_s:,.1f} s" if bound and bound.min_jct_s else None, delta_color="off",
                delta_arrow="off")
    p99 = s.ttft_s.p99
    c[2].metric("TTFT p99 (s)", f"{p99:.2f}" if p99 is not None else "-",
                delta=f"SLO {slo_ttft_s:g} s {'met' if p99 is not None and p99 <= slo_ttft_s else 'missed'}",
                delta_color="normal" if p99 is not None and p99 <= slo_ttft_s else "inverse", delta_arrow="off")
    tp = s.tpot_s.p99
    c[3].metric("TPOT p99 (ms)", f"{tp * 1000:.1f}" if tp is not None else "-",
                delta=f"SLO {slo_tpot_ms:g} ms {'met' if tp is not None and tp * 1000 <= slo_tpot_ms else 'missed'}",
                delta_color="normal" if tp is not None and tp * 1000 <= slo_tpot_ms else "inverse", delta_arrow="off")
    c[4].metric("SLO attainment", f"{100 * s.slo_attainment:.1f}%" if s.slo_attainment is not None else "-")


def _cost_tiles(s: RunSummary, scenario_toml: str) -> None:
    """$/hour of the cluster, $ per M generated and prompt tokens, generated tokens per $ (session cost table)."""
    from dualpath_twin.ui import costs

    cells = costs.cells(s, scenario_toml)
    c = st.columns(len(cells))
    for col, (k, v) in zip(c, cells.items(), strict=True):
        col.metric(k, v)
    st.caption("Cost from the session's cost table (sidebar **Cost table**; defaults data/costs.toml)"
               + (" - **edited**" if costs.is_edited() else ""))


def slo_of(run: RunData) -> tuple[float, float]:
    """The run's TTFT (s) and TPOT (ms) SLO from its stored scenario (defaults 4 s / 50 ms)."""
    import tomllib

    try:
        slo = tomllib.loads(run.scenario_toml).get("slo", {})
        return float(slo.get("ttft_s", 4.0)), float(slo.get("tpot_ms", 50.0))
    except (tomllib.TOMLDecodeError, TypeError, ValueError):
        return 4.0, 50.0


def _detail(run: RunData) -> None:
    s = run.summary
    ttft_slo, tpot_slo_ms = slo_of(run)
    st.subheader(f"Run {run.run_id}: {s.policy} on {s.scenario_name}")
    if s.status != "finished":
        st.warning(f"This run is **{s.status}**{f': {s.status_reason}' if s.status_reason else ''}; "
                   "its figures cover the simulated time it reached.")
    widgets.show_verdicts([s])
    _tiles(s, ttft_slo, tpot_slo_ms)
    _cost_tiles(s, run.scenario_toml)
    rounds = {s.policy: run.rounds}
    ts = {s.policy: run.timeseries}
    sums = {s.policy: s}
    _whatif_tables(s)
    st.plotly_chart(F.shade_faults(F.throughput_figure(ts), s), width="stretch", key="dp_d_tp")
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(F.latency_cdf_figure(rounds, "ttft_s", ttft_slo), width="stretch", key="dp_d_ttft")
        st.plotly_chart(F.slo_attainment_figure(sums), width="stretch", key="dp_d_slo")
    with c2:
        st.plotly_chart(F.latency_cdf_figure(rounds, "tpot_s", tpot_slo_ms / 1000), width="stretch", key="dp_d_tpot")
        st.plotly_chart(F.bounds_figure(s), width="stretch", key="dp_d_bound")
    st.plotly_chart(F.shade_faults(F.nic_utilization_figure(run.timeseries), s), width="stretch", key="dp_d_nic")
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(F.nic_heatmap_figure(run.timeseries, "snic_rx_util"), width="stretch", key="dp_d_hs")
    with c2:
        st.plotly_chart(F.nic_heatmap_figure(run.timeseries, "cnic_rx_util"), width="stretch", key="dp_d_hc")
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(F.shade_faults(F.storage_throughput_figure(ts), s), width="stretch", key="dp_d_sto")
    with c2:
        st.plotly_chart(F.ttft_breakdown_figure(sums), width="stretch", key="dp_d_bd")
    st.plotly_chart(F.occupancy_figure(ts), width="stretch", key="dp_d_occ")
    with st.expander("Scenario TOML of this run"):
        st.code(run.scenario_toml, language="toml")


def _whatif_tables(s: RunSummary) -> None:
    """The run's faults (degradation, recovery, rounds re-queued) and DRAM cache effect, when it has them."""
    rows = fault_rows(s)
    if rows:
        st.markdown("**Faults** (shaded on the time-series plots)")
        st.dataframe(pl.DataFrame(rows), hide_index=True, width="stretch")
        st.caption(FAULT_NOTE)
    row = cache_row(s)
    if row is not None:
        st.markdown("**DRAM cache tier**")
        st.dataframe(pl.DataFrame([row]), hide_index=True, width="stretch")
        st.caption(CACHE_NOTE)


def export_zip(run_id: str, fmt: str) -> bytes:
    """The run's files (summary, scenario, rounds, timeseries) exported by the store, zipped."""
    with tempfile.TemporaryDirectory(prefix="dualpath-export-") as tmp:
        paths = backend.store().export_run(run_id, fmt, Path(tmp) / run_id)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in paths:
                zf.write(p, arcname=f"{run_id}/{Path(p).name}")
        return buf.getvalue()


def report_html(run_ids: list[str]) -> bytes:
    """The HTML report of these runs, built by dualpath_twin.report.build_report."""
    from dualpath_twin import report

    with tempfile.TemporaryDirectory(prefix="dualpath-report-") as tmp:
        out = Path(tmp) / "report.html"
        ret = report.build_report(backend.store(), run_ids, out)
        path = Path(ret) if isinstance(ret, str | Path) else out
        return path.read_bytes()


def report_file_name(run_ids: list[str]) -> str:
    """'dualpath-<scenario>-<designs>-<YYYY-MM-DD>.html' for the report of these runs (report.report_filename)."""
    from dualpath_twin.report import report_filename

    try:
        df = backend.store().list_runs().filter(pl.col("run_id").is_in(run_ids))
        return report_filename([str(x) for x in df["scenario_name"].to_list() if x], [str(p) for p in df["policy"].to_list()])
    except Exception:  # noqa: BLE001 - a name is still needed
        return report_filename("runs", [])


def export_buttons(run_ids: list[str], key: str) -> None:
    """Download buttons: the HTML report of the runs and each run's data as Parquet or CSV."""
    from dualpath_twin import report

    c1, c2, c3 = st.columns(3)
    with c1:
        if hasattr(report, "build_report"):
            st.download_button("Download HTML report", lambda: report_html(run_ids), file_name=report_file_name(run_ids),
                               mime="text/html", key=f"{key}_html", icon=":material/description:", on_click="ignore")
        else:
            st.caption("HTML report: dualpath_twin.report.build_report is not available yet")
    if len(run_ids) == 1:
        rid = run_ids[0]
        with c2:
            st.download_button("Run data (Parquet, zip)", lambda: export_zip(rid, "parquet"), file_name=f"{rid}-parquet.zip",
                               mime="application/zip", key=f"{key}_pq", on_click="ignore")
        with c3:
            st.download_button("Run data (CSV, zip)", lambda: export_zip(rid, "csv"), file_name=f"{rid}-csv.zip",
                               mime="application/zip", key=f"{key}_csv", on_click="ignore")


def render() -> None:
    """Draw the Results page."""
    state.ensure()
    st.title("Results")
    if not backend.store_available():
        st.error("The results store is not available (dualpath_twin.store).")
        return
    st.caption(f"Run history from `{backend.db_path()}`")
    try:
        df = list_runs()
    except Exception as err:  # noqa: BLE001 - e.g. the file is locked by a long write elsewhere
        st.error(f"Cannot read the run history: {err}")
        return
    if df.height == 0:
        st.info("No runs yet: start one on the **Live run** page.")
        return
    df = _filters(df)
    _history(df)
    selected = selection_picker(df, "dp_results_pick")
    if not selected:
        st.info("Select a run above to see its detail, or several to compare them.")
        return
    if len(selected) > 1:
        st.page_link(COMPARE_PAGE, label=f"Compare the {len(selected)} selected runs", icon=":material/compare_arrows:")
    status = dict(zip(df["run_id"].to_list(), df["status"].to_list(), strict=True))
    shown = st.selectbox("Detail of", selected, key="dp_detail_pick",
                         format_func=lambda r: run_label(next(df.filter(pl.col("run_id") == r).iter_rows(named=True))))
    if status.get(shown) in ("running", "failed"):
        st.info(f"Run {shown} is {status.get(shown)}: it has no stored results"
                + (" yet; watch it on the Live run page." if status.get(shown) == "running" else "."))
        return
    try:
        run = load_run(str(backend.db_path()), shown)
    except Exception as err:  # noqa: BLE001
        st.error(f"Cannot load run {shown}: {err}")
        return
    export_buttons([shown], "dp_exp_one")
    _detail(run)
