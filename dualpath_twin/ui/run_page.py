"""Live run page: start a comparison, watch its progress and live plots, cancel it."""

from __future__ import annotations

import time

import streamlit as st

from dualpath_twin import guard
from dualpath_twin.scenario import POLICY_NAMES
from dualpath_twin.ui import live_figures, state, widgets
from dualpath_twin.ui.jobs import REGISTRY, Job

RESULTS_PAGE = "dualpath_twin/ui/pages/results.py"
K_CHART_CACHE = "dp_live_chart_cache"
CHART_REFRESH_S = 2.5
BUILDER_PAGE = "dualpath_twin/ui/pages/builder.py"


def _controls() -> None:
    sc = state.scenario()
    c = sc.cluster
    st.markdown(f"**Scenario:** {sc.name} - {c.prefill_nodes}P{c.decode_nodes}D x {c.gpus_per_node} {c.gpu}, "
                f"{sc.model.name}, {sc.workload.agents} agents ({sc.workload.mode})")
    if state.problems():
        st.warning("The builder has unfixed problems; the last valid version of the scenario will run.")
        st.page_link(BUILDER_PAGE, label="Fix them on the Scenario page", icon=":material/edit:")

    def sync() -> None:
        st.session_state[state.K_POLICIES] = list(st.session_state["dp_run_policy_pick"])

    st.session_state["dp_run_policy_pick"] = state.policies()
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    with c1:
        st.multiselect("Policies", list(POLICY_NAMES), key="dp_run_policy_pick", on_change=sync)
    with c2:
        if st.button("Run comparison", type="primary", key="dp_run_start", disabled=not state.policies(),
                     width="stretch"):
            try:
                job = REGISTRY.start(sc, state.policies())
            except guard.RunTooLarge as err:
                st.error("Run refused before it started (change the scenario, or tick 'Run anyway' on the Scenario "
                         "page):\n\n" + "\n".join(f"- {p}" for p in err.problems))
            else:
                st.session_state[state.K_JOB] = job.job_id


def _pick_job() -> Job | None:
    jobs = REGISTRY.jobs()
    if not jobs:
        return None
    mine = st.session_state.get(state.K_JOB)
    ids = [j.job_id for j in jobs]
    labels = {j.job_id: j.label() for j in jobs}
    idx = ids.index(mine) if mine in ids else 0
    chosen = st.selectbox("Watching", ids, index=idx, format_func=labels.get, key="dp_watch_job",
                          help="Runs started from any browser tab of this dashboard")
    if chosen != mine:
        st.session_state[state.K_JOB] = chosen
    return REGISTRY.get(chosen)


def _progress(job: Job) -> None:
    for run in job.runs.values():
        p = run.progress
        text = f"{run.policy}: {run.status}"
        if run.result is not None:
            s = run.result.summary
            total = f" / {s.rounds_total:,}" if s.rounds_total else ""
            text += f" - {s.rounds:,}{total} rounds, {s.sim_time_s:,.1f} s simulated, {s.wall_s:,.1f} s wall"
        elif p is not None:
            text += (f" - {p.rounds_done:,} / {p.rounds_total:,} rounds, {p.sim_time_s:,.1f} s simulated, "
                     f"{p.wall_s:,.1f} s wall")
        if run.error:
            text += f" - {run.error}"
        st.progress(run.fraction_done, text=text)


def _charts(job: Job) -> None:
    """Live plots; rebuilt at most every CHART_REFRESH_S while running so each poll stays well under a second."""
    cache = st.session_state.setdefault(K_CHART_CACHE, {})
    key = tuple((r.policy, r.status, id(r.progress), r.result is not None) for r in job.runs.values())
    cached = cache.get(job.job_id)
    now = time.monotonic()
    if cached is not None and (cached[1] == key or (job.active and now - cached[0] < CHART_REFRESH_S)):
        figs = cached[2]
    else:
        frames = {}
        for run in job.runs.values():
            if run.result is not None:
                frames[run.policy] = run.result.timeseries
            elif run.progress is not None and run.progress.timeseries is not None:
                frames[run.policy] = run.progress.timeseries
        figs = live_figures.live_figures(frames)
        cache.clear()  # keep only the watched job's figures
        cache[job.job_id] = (now, key, figs)
    if not figs:
        st.info("Live plots appear with the first progress report (about every half second of wall time).")
        return
    st.plotly_chart(figs[0], width="stretch", key="dp_live_tp")
    slo_fig = live_figures.live_slo_figure({r.policy: list(r.slo_history) for r in job.runs.values()})
    if slo_fig is not None:
        st.plotly_chart(slo_fig, width="stretch", key="dp_live_slo")
    cols = st.columns(2)
    for i, fig in enumerate(figs[1:]):
        with cols[i % 2]:
            st.plotly_chart(fig, width="stretch", key=f"dp_live_nic_{i}")


def _finished(job: Job) -> None:
    results = job.results()
    if not results:
        return
    summaries = [r.summary for r in results]
    st.subheader("Result")
    widgets.show_ratios(summaries)
    st.dataframe(widgets.headline_rows(summaries), hide_index=True, width="stretch")
    widgets.show_verdicts(summaries)
    if job.store_error:
        st.warning(job.store_error)
    run_ids = [r.run_id for r in job.runs.values() if r.run_id is not None]
    if run_ids and st.button("Open these runs in Results", key="dp_open_results"):
        st.session_state[state.K_SELECTED] = run_ids
        st.switch_page(RESULTS_PAGE)


def _panel(job_id: str, was_active: bool) -> None:
    job = REGISTRY.get(job_id)
    if job is None:
        return
    if was_active and not job.active:
        st.rerun()  # the job just ended: redraw the page without polling
    st.markdown(f"#### {job.label()}  \nstatus: **{job.status}**")
    _progress(job)
    if job.active:
        if st.button("Cancel run", key="dp_cancel", icon=":material/stop_circle:"):
            REGISTRY.cancel(job.job_id)
            st.toast("Cancelling: the simulation stops at its next progress check")
    _charts(job)
    if not job.active:
        _finished(job)


_polling_panel = st.fragment(run_every=1.0)(_panel)
_static_panel = st.fragment(_panel)


def render() -> None:
    """Draw the Run page."""
    state.ensure()
    st.title("Live run")
    st.caption("Simulations run in the background: you can browse other pages or tabs while they go.")
    _controls()
    st.divider()
    job = _pick_job()
    if job is None:
        st.info("No run yet. Press **Run comparison** to simulate the scenario under the chosen policies.")
        return
    if job.active:
        _polling_panel(job.job_id, True)
    else:
        _static_panel(job.job_id, False)
