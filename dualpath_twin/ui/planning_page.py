"""Streamlit page for capacity planning: sweeps, capacity search, sizing and sensitivity (a thin shell over dualpath_twin.planning)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from dualpath_twin import scenario as scn
from dualpath_twin.guard import SENSITIVITY_FIX, WINDOW_FIX, guard_capacity_many, guard_sizing
from dualpath_twin.planning import figures
from dualpath_twin.planning.capacity import (
    CapacityPoint,
    CapacityResult,
    SloCriterion,
    capacity_frame,
    capacity_search_many,
    curve_frame,
)
from dualpath_twin.planning.common import labelled_point_scenarios, point_scenarios
from dualpath_twin.planning.executors import default_workers, open_executor
from dualpath_twin.planning.grid import PlanningError, parse_grid
from dualpath_twin.planning.reasons import DASHBOARD_WINDOW, ReasonLog, actionable_reason, window_advice
from dualpath_twin.planning.sensitivity import DEFAULT_PARAMETERS, sensitivity, sensitivity_moves
from dualpath_twin.planning.sensitivity import DEFAULT_TOLERANCE as SENSITIVITY_TOLERANCE
from dualpath_twin.planning.sizing import DEFAULT_TOLERANCE as SIZING_TOLERANCE
from dualpath_twin.planning.sizing import SizingProgress, labelled_online, load_costs, size, sizing_points
from dualpath_twin.planning.storeio import (
    CapacitySearchRecord,
    capacity_label,
    capacity_spec,
    list_capacity,
    load_capacity,
    save_capacity,
)
from dualpath_twin.planning.sweep import SweepProgress, run_sweep
from dualpath_twin.ui import backend
from dualpath_twin.ui import decision as dec

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios"
POLICIES = list(scn.POLICY_NAMES)
SESSION = "the scenario from the Scenario page"


def _scenario_picker(key: str) -> scn.Scenario | None:
    files = sorted(p for p in SCENARIO_DIR.glob("*/*.toml") if p.parent.name != "calibration")  # measurement files
    labels = [str(p.relative_to(SCENARIO_DIR)) for p in files]
    choice = st.selectbox("scenario", [SESSION] + labels + ["upload..."], index=0, key=f"{key}_sc",
                          help="the scenario built or uploaded on the Scenario page (with its edits), a bundled file, "
                               "or an upload")
    try:
        if choice == SESSION:
            from dualpath_twin.ui import state

            if state.problems():
                st.error("The scenario on the Scenario page has problems to fix first: " + "; ".join(state.problems()))
                return None
            sc = state.scenario()
            st.caption(f"Planning on **{sc.name}** from the Scenario page: {sc.cluster.prefill_nodes}P"
                       f"{sc.cluster.decode_nodes}D x{sc.cluster.gpus_per_node} {sc.cluster.gpu}, "
                       f"{sc.workload.agents:,} agents")
        elif choice == "upload...":
            up = st.file_uploader("scenario TOML", type=["toml"], key=f"{key}_up")
            if up is None:
                return None
            sc = scn.from_toml(up.getvalue().decode("utf-8"), up.name)
        else:
            sc = scn.load(SCENARIO_DIR / choice)
        items: list[str] = []
        if st.toggle("advanced: override scenario fields (path=value)", key=f"{key}_ovr",
                     help="edit the scenario on the Scenario page instead; this is for fields it has no widget for"):
            sets = st.text_area("overrides (path=value, one per line)", "", key=f"{key}_set", height=68)
            items = [s.strip() for s in sets.splitlines() if s.strip()]
        if items:
            sc = scn.apply_overrides(sc, scn.parse_assignments(items))
    except (scn.ScenarioError, UnicodeDecodeError) as err:
        st.error(str(err))
        return None
    return sc


NONE_AXIS = "(none)"


def axes_widget(sc: scn.Scenario | None, key: str, defaults: list[str]) -> dict[str, list[Any]] | None:
    """Up to 3 axes picked from the known numeric fields, each with a multiselect of values; plus typed advanced axes.

    Returns the grid ({path: values}) or None (and an error shown) when a typed value cannot be read.
    """
    options = [NONE_AXIS] + list(dec.AXES)
    grid: dict[str, list[Any]] = {}
    cols = st.columns(3)
    for i, col in enumerate(cols):
        dflt = defaults[i] if i < len(defaults) else NONE_AXIS
        path = col.selectbox(f"axis {i + 1}", options, options.index(dflt), key=f"{key}_ax{i}",
                             format_func=lambda p: p if p == NONE_AXIS else f"{dec.axis_label(p)}  [{p}]")
        if path == NONE_AXIS or sc is None:
            continue
        if path in grid:
            col.warning(f"{dec.axis_label(path)} is picked twice; the first is used")
            continue
        pre = dec.presets(sc, path)
        vals = col.multiselect(f"{dec.axis_label(path)} values", pre, dec.default_values(sc, path), key=f"{key}_v{i}_{path}",
                               accept_new_options=True, help="pick presets around the scenario's value "
                               f"({dec.get_value(sc, path)}) or type another value and press Enter")
        try:
            parsed = sorted({dec.parse_value(path, str(v), sc) for v in vals}, key=lambda v: (isinstance(v, str), v))
        except ValueError:
            st.error(f"{dec.axis_label(path)}: values must be numbers, got {vals}")
            return None
        if not parsed:
            col.caption("no value picked: axis ignored")
            continue
        grid[path] = parsed
    with st.expander("advanced: type axes (any scenario field)"):
        txt = st.text_area("extra axes, one per line: path=v1,v2 | a..b | a..bx2 (added to the axes above)", "",
                           key=f"{key}_grid_txt")
    if txt.strip():
        try:
            grid.update(parse_grid([g for g in txt.splitlines() if g.strip()]))
        except PlanningError as err:
            st.error(str(err))
            return None
    return grid


def _scenario_list(sc: scn.Scenario, grid: dict[str, list[Any]], pols: list[str]) -> list[scn.Scenario]:
    """Every (point, policy) scenario the work will run (invalid points left out), as the CLI counts them."""
    return point_scenarios(sc, grid, pols)


def refusal_box(key: str) -> bool:
    """The last refusal of this tab's work (st.error with the problems) and its 'Run anyway' box; True when ticked."""
    problems = st.session_state.get(f"{key}_refused")
    if not problems:
        return False
    st.error("Refused before it started, the work is too large:\n\n" + "\n".join(f"- {p}" for p in problems))
    return bool(st.checkbox("Run anyway", key=f"{key}_anyway",
                            help="start it despite the estimate: tick, then press the button again"))


def guard_ok(scenarios: list[scn.Scenario], workers: int, key: str, force: bool, runs_per_scenario: int = 1) -> bool:
    """Estimate the work like the CLI (guard_many); refused work is remembered for refusal_box and the page reruns."""
    from dualpath_twin.guard import RunTooLarge, guard_many

    try:
        guard_many(scenarios, workers=workers, runs_per_scenario=runs_per_scenario)
    except RunTooLarge as err:
        if force:
            st.warning("running anyway: " + "; ".join(err.problems))
            return True
        st.session_state[f"{key}_refused"] = list(err.problems)
        st.rerun()
    st.session_state.pop(f"{key}_refused", None)
    return True


PAGE_FORCE_HINT = "tick 'Run anyway' below and press the button again"


def guard_capacity_ok(sc: scn.Scenario | None, pols: list[str], workers: int, key: str, force: bool,
                      searches: dict[str, scn.Scenario] | None = None, **settings: Any) -> dict[str, Any]:
    """Estimate a capacity search from its settings (guard.guard_capacity) like the CLI; its plan per design.

    Refused work is remembered for refusal_box and the page reruns; with ``force`` it warns and goes on.
    """
    from dualpath_twin.guard import guard_capacity

    def check(force_it: bool) -> Any:
        if searches is not None:  # one search per sweep point
            return guard_capacity_many(searches, workers=workers, force=force_it, force_hint=PAGE_FORCE_HINT,
                                       **settings)
        assert sc is not None
        return guard_capacity(sc, pols, workers=workers, force=force_it, force_hint=PAGE_FORCE_HINT, **settings)

    est = guarded(check, key, force)
    return est.plans if est is not None else {}


def guarded(check: Callable[[bool], Any], key: str, force: bool) -> Any:
    """Run a guard (``check(force)``) like the CLI: a refusal is remembered for refusal_box and the page reruns.

    With ``force`` (the 'Run anyway' box) it warns and returns the forced estimate.
    """
    from dualpath_twin.guard import RunTooLarge

    try:
        est = check(False)
    except RunTooLarge as err:
        if not force:
            st.session_state[f"{key}_refused"] = list(err.problems)
            st.rerun()
        st.warning("running anyway: " + "; ".join(err.problems))
        est = check(True)
    st.session_state.pop(f"{key}_refused", None)
    return est


def _plans_caption(plans: dict[str, Any]) -> None:
    """What a capacity estimate assumed (guard.plans_text): one bullet per design when there are two or three."""
    from dualpath_twin.guard import plans_text

    if 1 < len(plans) <= 3:
        st.caption("Run-size estimate:\n" + "\n".join(f"- **{p}**: {pl.text()}" for p, pl in plans.items()))
    else:
        st.caption("Run-size estimate: " + plans_text(plans))


MAX_GRID_POINTS = 10_000  # a page job enumerates its grid before estimating it: refuse larger grids outright


def _too_many_points(grid: dict[str, list[Any]]) -> bool:
    """Refuse (st.error, no 'Run anyway') a grid of more points than a page job may have, before expanding it."""
    n = dec.grid_points(grid)
    if n <= MAX_GRID_POINTS:
        return False
    st.error(f"Refused before it started: the axes make {n:,} points, more than the {MAX_GRID_POINTS:,} a planning "
             "job may have. Fix: pick fewer values or fewer axes.")
    return True


def _criterion(key: str) -> SloCriterion:
    c1, c2, c3, c4 = st.columns(4)
    pct = c1.selectbox("SLO percentile", ["p90", "p99", "p50"], key=f"{key}_pct")
    att = c2.number_input("min SLO attainment (0 = off)", 0.0, 1.0, 0.0, 0.05, key=f"{key}_att")
    steady = c3.checkbox("require steady state", True, key=f"{key}_steady",
                         help="a run fails if the mean TTFT still rises from one measured window to the next or the "
                              "mean number of active agents grows by more than 5% (the window is shorter than an "
                              "agent's life)")
    horizon = c4.number_input("horizon check (x window, 1 = off)", 1.0, 4.0, 2.0, 0.5, key=f"{key}_horizon",
                              help="the capacity found is run once more with an arrival window this many times longer "
                                   "and, if it fails there, the search goes on below it: a slight overload grows the "
                                   "queue too slowly for the measured windows to show")
    return SloCriterion(percentile=pct, min_attainment=att or None, require_steady=steady, horizon_factor=horizon)


def _executor_opts(key: str) -> tuple[str, int, str | None]:
    c1, c2, c3 = st.columns(3)
    kind = c1.selectbox("executor", ["local", "dask"], key=f"{key}_ex")
    workers = int(c2.number_input("workers", 1, 256, default_workers(), key=f"{key}_w"))
    addr = c3.text_input("dask address (empty = start a local cluster)", "", key=f"{key}_addr") or None
    return kind, workers, addr


def _download(figs: list[Any], name: str, key: str) -> None:
    st.download_button("download charts (HTML)", figures.figures_to_html(figs, name), file_name=f"{name}.html",
                       mime="text/html", key=f"{key}_dl")


def _sweep_tab() -> None:
    sc = _scenario_picker("sw")
    grid = axes_widget(sc, "sw", ["cluster.prefill_nodes", "network.snic_gbps"])
    pols = st.multiselect("policies", POLICIES, ["basic", "dualpath"], key="sw_pol")
    objective = st.radio("per point", ["run", "capacity"], horizontal=True, key="sw_obj",
                         help="run: one simulation per point (stored, resumable); capacity: a capacity search per point")
    kind, workers, addr = _executor_opts("sw")
    crit = _criterion("sw")
    anyway = refusal_box("sw")
    if sc is None or grid is None or not st.button("run sweep", key="sw_go"):
        res = st.session_state.get("planning_sweep")
    else:
        if not grid:
            st.error("pick at least one axis with values")
            return
        if _too_many_points(grid):
            return
        if objective == "capacity":  # a search per point, its runs from its settings (guard.plan_capacity_search)
            try:
                plans = guard_capacity_ok(None, pols, workers, "sw", anyway,
                                          searches=labelled_point_scenarios(sc, grid, pols), from_bound=True,
                                          horizon_factor=crit.horizon_factor)
            except scn.ScenarioError as err:
                st.error(str(err))
                return
            _plans_caption(plans)
        elif not guard_ok(_scenario_list(sc, grid, pols), workers, "sw", anyway, 1):
            return
        bar = st.progress(0.0, text="starting")

        def on_progress(p: SweepProgress) -> None:
            bar.progress(p.done / max(p.total, 1), text=f"{p.done}/{p.total} points (cached {p.cached}, failed {p.failed})")

        store = None
        if objective == "run":
            from dualpath_twin.planning.storeio import open_sweep_store

            store = open_sweep_store()
        try:
            with open_executor(kind, workers, addr) as ex:
                res = run_sweep(sc, grid, pols, executor=ex, store=store, objective=objective, criterion=crit,
                                progress=on_progress)
        except (PlanningError, scn.ScenarioError) as err:
            st.error(str(err))
            return
        finally:
            if store is not None:
                store.close()
        st.session_state["planning_sweep"] = res
        st.session_state["planning_sweep_sc"] = sc
        st.session_state["planning_sweep_params"] = {
            "policies": ", ".join(pols), "objective": objective, "executor": f"{kind} ({workers} workers)",
            "SLO percentile": crit.percentile, "min SLO attainment": crit.min_attainment or "off",
            **{f"axis {dec.axis_label(k)}": ", ".join(map(str, v)) for k, v in grid.items()}}
    if res is None:
        return
    sc_run = st.session_state.get("planning_sweep_sc") or sc
    df = res.to_frame()
    st.caption(f"sweep {res.sweep_id}: {len(res.points)} points, {res.new_runs} new runs, {res.wall_s:.1f} s")
    rank = st.radio("best point: rank the points that meet the SLO by", list(dec.RANKS), horizontal=True, key="sw_rank",
                    format_func=lambda r: dec.RANKS[r])
    best_i = _best_sweep_point(res, sc_run, crit.min_attainment, rank)
    axes_l = list(res.grid)
    metrics = figures.heatmap_metrics(df)  # TPOT in ms, as the sweep table and report show it
    figs = []
    if len(axes_l) >= 2 and metrics:
        c1, c2, c3 = st.columns(3)
        x = c1.selectbox("x", axes_l, 0, key="sw_x", format_func=dec.axis_label)
        y = c2.selectbox("y", axes_l, 1, key="sw_y", format_func=dec.axis_label)
        m = c3.selectbox("metric", metrics, key="sw_m", format_func=lambda k: figures.METRIC_LABELS.get(k, k))
        fig = figures.sweep_heatmap(df, x, y, m)
        st.plotly_chart(fig, width="stretch")
        figs.append(fig)
    from dualpath_twin.report import report_filename
    from dualpath_twin.report.sweep import sweep_report_html

    html = sweep_report_html(res, sc_run, None, figs, st.session_state.get("planning_sweep_params"))
    name = getattr(sc_run, "name", None) or res.name
    st.download_button("download sweep report (HTML)", html, file_name=report_filename(f"{name}-sweep", res.policies),
                       mime="text/html", key="sw_dl", help="the parameters, scenario, every point's numbers and the charts")
    hf = _sweep_table(res, sc_run)
    sty = hf.style.format(_num_cell, subset=[c for c in hf.columns if hf[c].dtype.kind == "f"])
    if best_i is not None:
        sty = sty.apply(lambda r: ["background-color: #d4edda" if r.name == best_i else "" for _ in r], axis=1)
    st.dataframe(sty, width="stretch", key="sw_table")


def _num_cell(v: Any) -> str:
    """A table number as a planner reads it: thousands separated, 3 significant digits below 100, '-' for none."""
    if v is None or v != v:
        return "-"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _sweep_table(res: Any, sc: scn.Scenario) -> Any:
    """The sweep's points with human headings, $/hour and 'meets SLO' (a pandas frame, index = point order)."""
    df = res.to_frame()
    cost = [dec.point_cost(sc, p.point, p.policy, p.summary) for p in res.points]
    meets = [dec.meets_slo(p.summary, sc)[0] if p.summary is not None else None for p in res.points]
    import polars as pl

    df = df.with_columns(pl.Series("usd_per_hour", cost, dtype=pl.Float64))
    if res.objective == "run":
        df = df.with_columns(pl.Series("meets_slo", meets, dtype=pl.Boolean))
    hf = dec.human_frame(df, list(res.grid)).to_pandas()
    # what a planner decides on first: the point, its design, whether it meets the SLO and what it costs
    first = [dec.axis_label(a) for a in res.grid] + ["design", "meets SLO", "$/hour"]
    lead = [c for c in first if c in hf.columns]
    return hf[lead + [c for c in hf.columns if c not in lead]]


def _best_sweep_point(res: Any, sc: scn.Scenario, min_attainment: float | None, rank: str = "value") -> int | None:
    """Name the best point (st.success with design, cost and why); its row index in the table, or None."""
    choices = dec.sweep_choices(res, sc, min_attainment, rank)
    if rank == "value":
        what = "most capacity per dollar" if res.objective == "capacity" else "most prompt tokens per dollar meeting the SLO"
    else:
        what = "highest capacity" if res.objective == "capacity" else "highest prompt tokens/s meeting the SLO"
    slo = f"TTFT p90 <= {sc.slo.ttft_s:g} s, TPOT p90 <= {sc.slo.tpot_ms:g} ms"
    if not choices or not choices[0].meets:
        st.warning(f"No point meets the SLO ({slo})." + (f" Closest: {choices[0].design} ({choices[0].why})." if choices else ""))
        return None
    b = choices[0]
    cost = f" at ${b.usd_per_hour:,.2f}/hour" if b.usd_per_hour is not None else ""
    st.success(f"Best point ({what}; SLO {slo}): **{b.design}**{cost}: {b.why}.")
    for i, p in enumerate(res.points):
        if dec.describe_point(p.point, p.policy) == b.design:
            return i
    return None


def _capacity_store() -> Any | None:
    """The dashboard's result store (the file the CLI writes: DUALPATH_TWIN_DB or data/twin.duckdb), or None."""
    try:
        return backend.store()
    except (RuntimeError, OSError) as err:  # StoreError is a RuntimeError
        st.warning(f"the result store is unavailable, capacity searches are neither listed nor saved: {err}")
        return None


def _new_capacity_search(store: Any | None) -> bool:
    """The form that runs a capacity search here; True when a result was saved in the store (and selected below)."""
    sc = _scenario_picker("cap")
    pols = st.multiselect("Loading designs", POLICIES, ["basic", "dualpath"], key="cap_pol")
    c1, c2, c3 = st.columns(3)
    tol = c1.number_input("Tolerance (share of the rate)", 0.01, 0.5, 0.05, 0.01, key="cap_tol",
                          help="the search stops when the meeting and failing rates are this close")
    start = c2.number_input("Start rate (agents/s, 0 = the scenario's)", 0.0, 1e4, 0.0, key="cap_start")
    window = c3.number_input("Arrival window (s, 0 = automatic)", 0.0, 1e6, 0.0, key="cap_win",
                             help="each rate runs rate x window agents, so the load lasts this long. Automatic: the "
                                  "larger of the scenario's agents / rate and the time the agent population takes, at "
                                  "the SLO limits, to reach 98% of its steady size, plus the two measured windows, so "
                                  "it is measured settled")
    kind, workers, addr = _executor_opts("cap")
    crit = _criterion("cap")
    fast = st.checkbox("fast search: start at half the analytic ceiling and stop a run once its SLO failure is certain",
                       True, key="cap_fast", help="as `dualpath-twin capacity` does by default: fewer and shorter runs, "
                       "the same capacity within the tolerance")
    anyway = refusal_box("cap")
    if sc is None or not st.button("find capacity", key="cap_go"):
        return False
    if not pols:
        st.error("pick at least one design")
        return False
    try:  # the runs of a search: bracket and bisect from the start rate, each rate x window agents (guard.plan_capacity_search)
        plans = guard_capacity_ok(sc, pols, workers, "cap", anyway, tolerance=tol, start_aps=start or None,
                                  window_s=window or None, from_bound=fast, horizon_factor=crit.horizon_factor)
    except scn.ScenarioError as err:
        st.error(str(err))
        return False
    _plans_caption(plans)
    log = st.empty()
    lines: list[str] = []
    said = ReasonLog()

    def on_point(p: CapacityPoint) -> None:
        who = f"{p.policy}: " if p.policy else ""
        rep = f" (replica {p.replica})" if p.replica else ""
        lines.append(f"{who}{p.aps:.4g} APS{rep}: {'meets' if p.meets else 'fails'} "
                     f"({said(actionable_reason(p.reason, DASHBOARD_WINDOW))})")
        log.code("\n".join(lines[-12:]), language=None, wrap_lines=True)  # whole reasons, not cut at the edge

    try:
        with st.spinner("searching"), open_executor(kind, workers, addr) as ex:
            results = capacity_search_many(sc, pols, criterion=crit, tolerance=tol, start_aps=start or None, executor=ex,
                                           workers=workers, on_point=on_point, window_s=window or None,
                                           early_stop=fast, from_bound=fast)
    except (PlanningError, scn.ScenarioError) as err:
        st.error(str(err))
        return False
    st.session_state["planning_capacity"] = results
    st.session_state["planning_capacity_toml"] = sc.to_toml()
    if store is None:
        return False
    spec = capacity_spec(pols, tolerance=tol, criterion=crit, start_aps=start or None, window_s=window or None,
                         source="dashboard")
    spec.update(early_stop=fast, from_bound=fast and not start)
    try:
        st.session_state["cap_pick"] = save_capacity(store, sc, results, spec)
    except (RuntimeError, OSError) as err:
        st.warning(f"the search was not saved ({err}); it is shown below until the page is reloaded")
        return False
    st.session_state["planning_capacity"] = None
    return True


def show_capacity(results: list[CapacityResult], key: str, caption: str = "", scenario_toml: str | None = None) -> None:
    """Capacity per policy (tiles with the cluster's cost per agent/s, table), the measured SLO curve and its download."""
    from dualpath_twin.ui import costs

    if caption:
        st.caption(caption)
    usd_h = costs.cluster_usd_per_hour(scenario_toml) if scenario_toml else None
    cols = st.columns(len(results))
    for col, r in zip(cols, results, strict=True):
        col.metric(f"{r.policy} capacity", f"{r.capacity_aps:.4g} agents/s",
                   help=f"fails at {r.hi_aps}; {'converged' if r.converged else 'not converged'}; {r.evaluations} runs")
        if usd_h is not None:
            per = f"${usd_h / r.capacity_aps:,.2f}/hour per agent/s served" if r.capacity_aps > 0 else "serves no rate within the SLO"
            col.caption(f"cluster ${usd_h:,.2f}/hour: {per} (session cost table)")
        for n in r.notes:
            col.caption(n)
    st.dataframe(dec.human_frame(capacity_frame(results), drop_empty=False), width="stretch", key=f"{key}_caps")
    fig = figures.capacity_curve(results)
    st.plotly_chart(fig, width="stretch", key=f"{key}_fig")
    _download([fig], "capacity", key)
    st.dataframe(dec.human_frame(curve_frame(results), drop_empty=False), width="stretch", key=f"{key}_curve",
                 column_config={"note": st.column_config.TextColumn(width="large")})
    online_s = None
    if scenario_toml:
        from dualpath_twin.planning.common import scenario_from_toml

        online_s = scenario_from_toml(scenario_toml).run.online_window_s
    for r in results:  # a table cell cuts a long reason: say in full which runs a longer window would settle
        advice = window_advice(r.policy, r.curve, r.window_s, DASHBOARD_WINDOW, online_window_s=online_s)
        if advice:
            st.warning(advice)


def _spec_caption(rec: CapacitySearchRecord) -> str:
    sp = rec.spec
    crit = sp.get("criterion") or {}
    r0 = rec.results[0] if rec.results else None
    parts = [f"search {rec.search_id} ({sp.get('source', '?')})", f"scenario {rec.scenario_name}"]
    if sp.get("scenario_path"):
        parts.append(f"file {sp['scenario_path']}")
    if sp.get("overrides"):
        parts.append("--set " + " --set ".join(sp["overrides"]))
    if r0 is not None:
        if r0.window_s:
            parts.append(f"arrival window {r0.window_s:g} s")
        if r0.ttft_limit_s is not None and r0.tpot_limit_ms is not None:
            parts.append(f"SLO {crit.get('percentile', 'p90')}: TTFT <= {r0.ttft_limit_s:g} s, TPOT <= {r0.tpot_limit_ms:g} ms")
        parts.append(f"tolerance {r0.tolerance:g}")
    if crit.get("min_attainment") is not None:
        parts.append(f"attainment >= {crit['min_attainment']:g}")
    if crit:
        parts.append("steadiness required" if crit.get("require_steady", True) else "steadiness not required")
    return "; ".join(parts)


def _capacity_tab() -> None:
    store = _capacity_store()
    stored = None
    if store is not None:
        try:
            stored = list_capacity(store)
        except (RuntimeError, OSError) as err:  # e.g. a store of a newer schema
            st.warning(f"cannot list the capacity searches of {store.path}: {err}")
            store = None
    has_stored = stored is not None and stored.height > 0
    with st.expander("New capacity search", expanded=not has_stored):
        saved = _new_capacity_search(store)
    if saved and store is not None:
        stored = list_capacity(store)
        has_stored = stored.height > 0
    unsaved = st.session_state.get("planning_capacity")
    if unsaved:
        show_capacity(unsaved, "cap_unsaved", "this search is not saved in the store (shown until the page is reloaded)",
                      st.session_state.get("planning_capacity_toml"))
    if has_stored:
        assert stored is not None
        ids = stored["search_id"].to_list()
        wanted = st.query_params.get("capacity")
        if wanted and st.session_state.get("cap_link") != wanted:  # a link from the CLI: select that search once
            st.session_state["cap_link"] = wanted
            match = [i for i in ids if i.startswith(wanted)]
            if len(match) == 1:
                st.session_state["cap_pick"] = match[0]
            else:
                st.warning(f"capacity search {wanted!r} is not (uniquely) in the store {store.path}")
        if st.session_state.get("cap_pick") not in ids:
            st.session_state["cap_pick"] = ids[0]
        labels = {row["search_id"]: capacity_label(row) for row in stored.iter_rows(named=True)}
        pick = st.selectbox(f"capacity searches in {store.path.name} (CLI `dualpath-twin capacity` and this page save here)",
                            ids, format_func=lambda i: labels.get(i, i), key="cap_pick")
        rec = load_capacity(store, pick)
        show_capacity(rec.results, "cap_stored", _spec_caption(rec), rec.scenario_toml or None)
    elif not unsaved:
        st.info("No capacity search in the store yet: run one above, or from the command line "
                "`dualpath-twin capacity scenarios/examples/online-serving.toml --policy basic,dualpath` "
                "(it saves to the same store; reload this page to see it).")


MEASURE = {"meets": "configurations meeting the target", "all": "every configuration", "none": "none (faster)"}


def _sizing_tab() -> None:
    sc = _scenario_picker("sz")
    c1, c2 = st.columns(2)
    target = c1.number_input("Target rate (agents/s)", 0.001, 1e4, 0.5, key="sz_target",
                             help="the arrival rate every configuration must hold within the SLO")
    pol = c2.selectbox("Loading design", POLICIES, POLICIES.index("dualpath"), key="sz_pol")
    grid = axes_widget(sc, "sz", ["cluster.prefill_nodes", "cluster.decode_nodes"])
    cost_file = st.text_input("Cost table file (empty = data/costs.toml)", "", key="sz_cost") or None
    measure = st.radio("Also measure the capacity of", list(MEASURE), horizontal=True, key="sz_meas",
                       format_func=MEASURE.get,
                       help="a capacity search per configuration, from the target rate (at most 40 runs each), "
                            "for the cost vs capacity chart; the runs it is expected to take are shown when you "
                            "press 'size', before anything runs")
    kind, workers, addr = _executor_opts("sz")
    crit = _criterion("sz")
    anyway = refusal_box("sz")
    if sc is not None and grid is not None and st.button("size", key="sz_go"):
        if not grid:
            st.error("pick at least one axis with values")
            return
        if _too_many_points(grid):
            return
        try:  # the points as size() runs them: a run each at the target, then the capacity searches it makes
            cands = labelled_online(sizing_points(sc, target, grid, pol, crit), dec.describe_point)
            est = guarded(lambda force_it: guard_sizing(cands, target, measure=measure, tolerance=SIZING_TOLERANCE,
                                                        workers=workers, force=force_it, force_hint=PAGE_FORCE_HINT,
                                                        population=crit.population,
                                                        horizon_factor=crit.horizon_factor), "sz", anyway)
        except (PlanningError, scn.ScenarioError) as err:
            st.error(str(err))
            return
        if est is not None:
            st.caption("Run-size estimate: " + est.headline() + (f"; {est.text()}" if est.plans else ""))
        bar = st.progress(0.0, text="starting")

        def on_progress(p: SizingProgress) -> None:
            bar.progress(p.done / max(p.total, 1), text=f"{p.phase}: {p.done}/{p.total}")

        try:
            with open_executor(kind, workers, addr) as ex:
                st.session_state["planning_size"] = size(sc, target, grid, policy=pol, costs=load_costs(cost_file),
                                                         criterion=crit, measure_capacity=measure,  # type: ignore[arg-type]
                                                         tolerance=SIZING_TOLERANCE, executor=ex,
                                                         progress=on_progress)
        except (PlanningError, scn.ScenarioError) as err:
            st.error(str(err))
            return
    res = st.session_state.get("planning_size")
    if res is None:
        return
    st.markdown(sizing_verdict(res))
    fig = _human_pareto(figures.pareto_chart(res), res)
    st.plotly_chart(fig, width="stretch", key="sz_fig")
    _download([fig], "sizing", "sz")
    st.dataframe(_sizing_table(res), width="stretch", key="sz_table",
                 column_config={"$/hour": st.column_config.NumberColumn(format="%.2f")})


def _human_pareto(fig: Any, res: Any) -> Any:
    """The Pareto chart with each point named as a design ('1P2D') instead of 'decode_nodes=2' in its hover text."""
    names = {", ".join(f"{k.split('.')[-1]}={c.point.get(k)}" for k in res.axes): dec.describe_point(c.point)
             for c in res.candidates}
    for tr in fig.data:
        if tr.text is not None and not isinstance(tr.text, str):
            tr.text = [names.get(t, t) for t in tr.text]
    return fig


def _money(v: float | None, currency: str) -> str:
    if v is None:
        return "an unknown cost"
    return f"${v:,.2f}/hour" if currency == "USD" else f"{v:,.2f} {currency}/hour"


def sizing_verdict(res: Any) -> str:
    """One sentence: the cheapest configuration meeting the target (design, $/hour, capacity), or what came closest."""
    if res.cheapest:
        b = res.cheapest[0]
        cap = f"; measured capacity {b.capacity_aps:.3g} agents/s" if b.capacity_aps is not None else ""
        why = f" ({_sizing_note(b.reason)})" if b.reason.startswith("implied") else ""
        return (f"Cheapest configuration meeting the SLO at {res.target_aps:g} agents/s: "
                f"**{dec.describe_point(b.point, res.policy)} at {_money(b.cost_per_hour, res.currency)}**{why}{cap}.")
    tried = [c for c in res.candidates if c.status in ("fails", "error")]
    if not tried:
        return "No configuration could be evaluated (every point was skipped: see the notes in the table)."
    best = max(tried, key=lambda c: c.cost_per_hour or 0.0)
    return (f"No configuration meets the SLO at {res.target_aps:g} agents/s; the largest tried, "
            f"{dec.describe_point(best.point, res.policy)} at {_money(best.cost_per_hour, res.currency)}, "
            f"fails: {best.reason or best.status}. Add larger values to the axes.")


def _sizing_note(reason: str) -> str:
    """A sizing candidate's reason with the grid point it names (a dict) written as a design, e.g. '2P4D'."""
    import ast

    i = reason.find("{")
    if i < 0:
        return reason
    try:
        point = ast.literal_eval(reason[i:])
    except (ValueError, SyntaxError):
        return reason
    if not isinstance(point, dict):
        return reason
    text = reason[:i].replace("implied: ", "not simulated at the target: ")
    if reason.startswith("no more resources"):
        text = "not simulated: " + text
    return text + dec.describe_point(point)


def _sizing_table(res: Any) -> Any:
    """Every sizing candidate with human headings (TPOT in ms) and notes naming designs, not dicts."""
    import polars as pl

    df = res.to_frame()
    if "reason" in df.columns:
        df = df.with_columns(pl.Series("reason", [_sizing_note(c.reason) for c in res.candidates], dtype=pl.String))
    return dec.human_frame(df, res.axes)


def _sensitivity_frame(res: Any) -> Any:
    """The tornado's rows with human headings, the metric named (capacity in agents/s or JCT in s)."""
    df = res.to_frame()
    if df.height == 0:
        return df
    unit = "capacity (agents/s)" if res.metric == "capacity_aps" else "JCT (s)"
    df = df.drop("path").rename({"metric_low": f"{unit} at low", "metric_high": f"{unit} at high",
                                 "swing": f"swing of {unit}"})
    return dec.human_frame(df, drop_empty=False)


def _sensitivity_tab() -> None:
    sc = _scenario_picker("se")
    pol = st.selectbox("Loading design", POLICIES, POLICIES.index("dualpath"), key="se_pol")
    labels = dict(DEFAULT_PARAMETERS)
    params = st.multiselect("Parameters to move", list(labels), list(labels), key="se_par",
                            format_func=lambda p: labels.get(p) or dec.axis_label(p))
    change = st.slider("Move each parameter by +/- (share of its value)", 0.1, 0.9, 0.5, 0.1, key="se_ch")
    kind, workers, addr = _executor_opts("se")
    crit = _criterion("se")
    anyway = refusal_box("se")
    if sc is not None and st.button("run sensitivity", key="se_go"):
        if not params:
            st.error("pick at least one parameter")
            return
        # a base run and one per parameter moved down and up, as sensitivity() builds them; online each is a
        # capacity search from half the analytic ceiling
        try:
            runs = sensitivity_moves(sc, pol, parameters=params, change=change).scenarios()
        except (PlanningError, scn.ScenarioError) as err:
            st.error(str(err))
            return
        if sc.workload.mode == "online":
            est = guarded(lambda force_it: guard_capacity_many(
                runs, workers=workers, force=force_it, force_hint=PAGE_FORCE_HINT, tolerance=SENSITIVITY_TOLERANCE,
                from_bound=True, population=crit.population, fix=SENSITIVITY_FIX, window_fix=WINDOW_FIX,
                horizon_factor=crit.horizon_factor), "se", anyway)
            st.caption("Run-size estimate: " + est.headline() + "; " + est.text())
        elif not guard_ok(list(runs.values()), workers, "se", anyway, 1):
            return
        bar = st.progress(0.0, text="starting")
        try:
            with open_executor(kind, workers, addr) as ex:
                st.session_state["planning_sens"] = sensitivity(
                    sc, pol, parameters=params, change=change, criterion=crit, tolerance=SENSITIVITY_TOLERANCE,
                    executor=ex,
                    progress=lambda d, t: bar.progress(d / max(t, 1), text=f"{d}/{t} runs"))
        except (PlanningError, scn.ScenarioError) as err:
            st.error(str(err))
            return
    res = st.session_state.get("planning_sens")
    if res is None:
        return
    fig = figures.tornado_chart(res)
    st.plotly_chart(fig, width="stretch")
    _download([fig], "sensitivity", "se")
    for s in res.skipped:
        st.caption(f"skipped {s}")
    st.dataframe(_sensitivity_frame(res), width="stretch", key="se_table")


def _decision_rows(best: dec.Choice | None, others: list[dec.Choice]) -> Any:
    """Best and runners-up (or what came closest) as a table with human headings (a pandas frame)."""
    import pandas as pd

    picks = ([("best", best)] if best is not None else []) + [
        ("runner-up" if best is not None else ("cheapest meeting the SLO" if c.meets else "closest"), c) for c in others]
    rows = [{"pick": role, "design": c.design, "source": c.source, "$/hour": c.usd_per_hour, "meets SLO": c.meets,
             "why": c.why, **c.metrics, "run": c.run_id or ""} for role, c in picks]
    return pd.DataFrame(rows)


def _decision_tab() -> None:
    """The configuration to pick under the SLO and a budget, from this session's sweep or sizing, with its runs."""
    sweep, sweep_sc, sizing = (st.session_state.get(k) for k in ("planning_sweep", "planning_sweep_sc", "planning_size"))
    c1, c2 = st.columns(2)
    budget = c1.number_input("budget ($/hour, empty or 0 = no budget)", min_value=0.0, max_value=1e6, value=None,
                             step=10.0, key="dec_budget", placeholder="no budget",
                             help="the most the cluster may cost per hour (prices: the cost table)")
    att = c2.number_input("minimum SLO attainment (%)", 0.0, 100.0, 0.0, 5.0, key="dec_att",
                          help="share of requests within the TTFT/TPOT limits a sweep point needs (0 = off); "
                               "sizing uses the criterion it was run with")
    sources = [s for s, r in (("sweep", sweep), ("sizing", sizing)) if r is not None]
    src = st.radio("decide from", sources, horizontal=True, key="dec_src") if len(sources) > 1 else None
    choices: list[dec.Choice] = []
    if sweep is not None and src in (None, "sweep"):
        rank = st.radio("rank the points that meet the SLO by", list(dec.RANKS), horizontal=True, key="dec_rank",
                        format_func=lambda r: dec.RANKS[r],
                        help="value: what a buyer wants (the same work for less); throughput: the fastest point")
        choices += dec.sweep_choices(sweep, sweep_sc or scn.Scenario(), att / 100 or None, rank)
    if sizing is not None and src in (None, "sizing"):
        choices += dec.sizing_choices(sizing)
    best, others, verdict = dec.decide(choices, budget or None)
    (st.success if best is not None else st.warning)(verdict)
    if sweep is not None and src in (None, "sweep") and sweep_sc is not None:
        st.caption(f"sweep {sweep.sweep_id} of {sweep_sc.name}: SLO TTFT p90 <= {sweep_sc.slo.ttft_s:g} s, "
                   f"TPOT p90 <= {sweep_sc.slo.tpot_ms:g} ms; {len(choices)} points considered")
    shown = ([best] if best is not None else []) + others
    if not shown:
        return
    st.dataframe(_decision_rows(best, others), hide_index=True, width="stretch", key="dec_table",
                 column_config={"$/hour": st.column_config.NumberColumn(format="$%.2f")})
    linked = [c for c in shown if c.run_id]
    if linked:
        from dualpath_twin.ui import state
        from dualpath_twin.ui.run_page import RESULTS_PAGE

        cols = st.columns(len(linked))
        for i, (col, c) in enumerate(zip(cols, linked, strict=True)):
            if col.button(f"Open the run of {c.design} in Results", key=f"dec_open_{i}", icon=":material/monitoring:"):
                st.session_state[state.K_SELECTED] = [c.run_id]
                st.switch_page(RESULTS_PAGE)
    elif any(c.source == "sweep" for c in shown):
        st.caption("these points have no stored run (capacity sweeps keep no single run per point)")


PD_RUNS = 4  # the scenario's own split, the advised one and its two neighbours (at most)


def _pd_advice_section() -> None:
    """P/D split advice for the scenario of the Scenario page: which split keeps both sides busy, neighbours measured."""
    from dualpath_twin.planning.pd_advice import advise_pd
    from dualpath_twin.ui import state

    st.subheader("Prefill/decode split")
    st.caption("One run of the scenario's own split measures how busy each side is; every split of the same node count "
               "is estimated from it, the best per node is advised, and it and its neighbours (one node moved "
               f"between the roles) are simulated (up to {PD_RUNS} runs). CLI: `dualpath-twin size <scenario> --pd all`.")
    if state.problems():
        st.info("Fix the scenario on the Scenario page first: " + "; ".join(state.problems()))
        return
    sc = state.scenario()
    c = sc.cluster
    pol = st.selectbox("design", POLICIES, POLICIES.index(sc.policy.name) if sc.policy.name in POLICIES else 0,
                       key="pd_pol")
    anyway = refusal_box("pd")
    if st.button(f"Advise the split of {sc.name} ({c.prefill_nodes}P{c.decode_nodes}D, {c.prefill_nodes + c.decode_nodes} nodes)",
                 key="pd_go"):
        if guard_ok([sc.with_policy(pol)], 1, "pd", anyway, PD_RUNS):
            try:
                with st.spinner("simulating the splits"):
                    st.session_state["planning_pd"] = advise_pd(sc, policy=pol, store=_capacity_store())
            except (PlanningError, scn.ScenarioError, ValueError) as err:
                st.error(str(err))
                return
    adv = st.session_state.get("planning_pd")
    if adv is None:
        return
    (st.success if adv.matches is not False else st.warning)(adv.text)
    import pandas as pd

    rows = [{"split": x.label, "advised": x.label == adv.advised, "estimated rounds/s per node": x.estimated_per_node,
             "measured rounds/s per node": x.measured_per_node, "sides balanced (1 = equally busy)": x.estimated_balance,
             "binding resource (bound)": dec.resource_label(x.binding_resource), "JCT (s)": x.jct_s, "status": x.status}
            for x in adv.candidates]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="pd_table",
                 column_config={k: st.column_config.NumberColumn(format="%.3f") for k in
                                ("estimated rounds/s per node", "measured rounds/s per node", "sides balanced (1 = equally busy)")})
    ids = [x.run_id for x in adv.candidates if x.run_id]
    if ids and st.button(f"Open the {len(ids)} simulated splits in Results (compare them, download their report)",
                         key="pd_open", icon=":material/monitoring:"):
        from dualpath_twin.ui.run_page import RESULTS_PAGE

        st.session_state[state.K_SELECTED] = ids
        st.switch_page(RESULTS_PAGE)


def render() -> None:
    """The planning page: sweeps, capacity, sizing, sensitivity and decision tabs (nothing outside a Streamlit script run)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if get_script_run_ctx(suppress_warning=True) is None:
        # Streamlit installs the running script as __main__, so a process-pool worker started from this page
        # (forkserver/spawn) re-executes it on start-up; there it must not render, let alone open the store.
        return
    st.header("Capacity planning")
    st.caption("Many simulations answer one planning question. Runs use a local process pool or a Dask cluster; "
               "see docs/planning.md.")
    # a link such as /planning?capacity=cap-... (printed by the CLI) opens the Capacity tab on that search
    default = "Capacity" if st.query_params.get("capacity") else None
    tabs = st.tabs(["Sweep", "Capacity", "Sizing", "Sensitivity", "Decision"], default=default)
    with tabs[0]:
        _sweep_tab()
    with tabs[1]:
        _capacity_tab()
    with tabs[2]:
        _sizing_tab()
    with tabs[3]:
        _sensitivity_tab()
    with tabs[4]:
        _decision_tab()
        st.divider()
        _pd_advice_section()
