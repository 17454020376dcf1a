"""Scenario builder page: load a scenario, edit it with inline validation, see derived values and bounds."""

from __future__ import annotations

import re
from typing import Any

import polars as pl
import streamlit as st

from dualpath_twin import guard
from dualpath_twin.results import Bound
from dualpath_twin.scenario import POLICY_NAMES, Scenario, ScenarioError, from_toml
from dualpath_twin.ui import backend, explainer, state, whatif_editor
from dualpath_twin.ui.fields import PRIMARY, TABS, FieldSpec, get_value, spec
from dualpath_twin.ui.jobs import REGISTRY

K_DRAFT = "dp_draft"  # {path: value} of the builder's widgets, kept while the user visits other pages
K_UPLOAD_SEEN = "dp_upload_seen"
K_TRACE_SEEN = "dp_trace_seen"
RUN_PAGE = "dualpath_twin/ui/pages/run.py"
TRACE_TYPES = ["jsonl", "json", "txt", "csv"]
_NONE_CHOICE = "(catalog default)"
HEADLINE_DERIVED = (  # (derived_values key, tile label, tile help)
    ("kv_bytes_per_token", "KV per token", "KV-cache bytes stored per token of context"),
    ("kv_bytes_per_round_mean", "KV per round", "bytes to load from storage for a mean round's context"),
    ("cache_to_compute_gb_per_pflop", "GB per PFLOP", "KV bytes loaded per PFLOP of new compute"),
    ("context_tokens_mean", "Context", "mean context per round, tokens"),
    ("append_tokens_mean", "Append", "mean appended (newly computed) tokens per round"),
    ("free_hbm_per_gpu_bytes_prefill", "Free HBM", "HBM per prefill GPU left for KV after weights"),
)


def _key(path: str) -> str:
    return f"dp_w{st.session_state[state.K_BASE_REV]}:{path}"


def _choices(sp: FieldSpec, current: Any) -> list[str] | None:
    if sp.path == "cluster.gpu":
        names = backend.gpu_names()
    elif sp.path == "model.name":
        names = backend.model_names()
    elif sp.path == "workload.dataset":
        names = list(backend.DATASETS)
    elif sp.path == "model.kv_format":
        names = [_NONE_CHOICE, *backend.kv_formats(str(st.session_state.get(_key("model.name"),
                                                                               get_value(state.base(), "model.name"))))]
    elif sp.kind == "choice":
        names = list(sp.choices)
    else:
        return None
    if not names:
        return None
    if current is not None and str(current) not in names:
        names.append(str(current))
    return names


def _widget(sp: FieldSpec, base_value: Any, draft: dict[str, Any]) -> Any:
    """Draw one field's widget (initialised from the draft or the base) and return its value."""
    key = _key(sp.path)
    current = draft.get(sp.path, base_value)
    choices = _choices(sp, current)
    if sp.path == "model.kv_format" and current is None:
        current = _NONE_CHOICE
    if key not in st.session_state:
        st.session_state[key] = current
    if choices is not None:
        value = st.selectbox(sp.label, choices, key=key, help=sp.help)
        return None if value == _NONE_CHOICE else value
    if sp.kind == "bool":
        return st.checkbox(sp.label, key=key, help=sp.help)
    if sp.kind == "int":
        return st.number_input(sp.label, key=key, step=1, help=sp.help, placeholder="unset" if sp.optional else None)
    if sp.kind == "float":
        return st.number_input(sp.label, key=key, format="%g", step=_step(current), help=sp.help,
                               placeholder="unset (no limit)" if sp.optional else None)
    text = st.text_input(sp.label, key=key, help=sp.help)
    return None if (sp.optional and text == "") else text


def _step(v: Any) -> float:
    if not isinstance(v, int | float) or v == 0:
        return 0.1
    mag = abs(float(v))
    return 1.0 if mag >= 10 else 0.1 if mag >= 1 else 0.01


def _fields(paths: list[str], base: Scenario, draft: dict[str, Any], slots: dict[str, Any]) -> None:
    cols: list[Any] = []
    for i, path in enumerate(paths):
        if i % 3 == 0:
            cols = st.columns(3)
        with cols[i % 3]:
            draft[path] = _widget(spec(path), get_value(base, path), draft)
            slots[path] = st.empty()


def _source_picker() -> None:
    """Pick a bundled scenario or upload a TOML file."""
    bundled = backend.bundled_scenarios()
    labels = [backend.scenario_label(p) for p in bundled]
    by_label = dict(zip(labels, bundled, strict=True))
    c1, c2 = st.columns([2, 3])
    with c1:
        current = st.session_state.get(state.K_BASE_LABEL, "")
        options = labels if labels else ["built-in default"]
        idx = options.index(current) if current in options else 0
        choice = st.selectbox("Start from a bundled scenario", options, index=idx, key="dp_src_pick",
                              help="Scenarios shipped in scenarios/ (examples and the paper's configurations)")
        if st.button("Load scenario", key="dp_src_load"):
            try:
                sc = backend.load_scenario(by_label[choice]) if choice in by_label else backend.default_scenario()
            except ScenarioError as err:
                st.error(f"Cannot load {choice}:\n\n" + "\n".join(f"- {p}" for p in err.problems))
            else:
                state.set_base(sc, choice)
                st.session_state[K_DRAFT] = {}
                st.rerun()
    with c2:
        up = st.file_uploader("...or upload a scenario TOML (parsed, never executed; at most 1 MB)", type=["toml"],
                              key="dp_toml_upload")
        if up is not None:
            seen = st.session_state.get(K_UPLOAD_SEEN)
            if seen is None or seen[0] != up.file_id:
                try:
                    sc = backend.parse_uploaded_toml(up.getvalue(), up.name)
                except ScenarioError as err:
                    st.session_state[K_UPLOAD_SEEN] = (up.file_id, err.problems)
                else:
                    st.session_state[K_UPLOAD_SEEN] = (up.file_id, [])
                    state.set_base(sc, f"upload: {up.name}")
                    st.session_state[K_DRAFT] = {}
                    st.rerun()
            problems = st.session_state[K_UPLOAD_SEEN][1]
            if problems:
                st.error(f"{up.name} is not a valid scenario:\n\n" + "\n".join(f"- {p}" for p in problems))
    st.caption(f"Editing: **{st.session_state.get(state.K_BASE_LABEL, '')}**")


def _trace_upload() -> None:
    """Save an uploaded Mooncake JSONL trace to a temp folder and point the workload at it."""
    up = st.file_uploader("Replay a trace (Mooncake JSONL: timestamp, input_length, output_length, hash_ids)",
                          type=TRACE_TYPES, key="dp_trace_upload")
    if up is None or st.session_state.get(K_TRACE_SEEN) == up.file_id:
        return
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", up.name)[:80] or "trace.jsonl"
    dest = state.trace_dir() / safe
    dest.write_bytes(up.getvalue())
    st.session_state[K_TRACE_SEEN] = up.file_id
    draft = st.session_state.setdefault(K_DRAFT, {})
    for path, value in (("workload.kind", "trace"), ("workload.trace_path", str(dest))):
        draft[path] = value
        st.session_state[_key(path)] = value
    st.toast(f"Trace saved; the workload now replays {safe}")


def _whatif_head(head: str) -> str:
    """'faults' for a problem of any fault or of the cache table (shown on the What-ifs tab), else the path."""
    return "faults" if head.startswith(("faults", "cache")) else head


def _place_problems(problems: list[str], slots: dict[str, Any], tab_of: dict[str, str]) -> list[str]:
    """Show each problem under the field it names; return the ones that name no field."""
    loose = []
    for prob in problems:
        head = _whatif_head(backend.problem_path(prob))
        target = head if head in slots else next((p for p in slots if head and p.startswith(head + ".")), None)
        if target is None:
            loose.append(prob)
            continue
        slots[target].error(prob, icon=":material/error:")
    return loose


def _edit_tabs(base: Scenario) -> tuple[dict[str, Any], dict[str, Any], dict[str, str], tuple[list[dict], dict | None]]:
    draft: dict[str, Any] = st.session_state.setdefault(K_DRAFT, {})
    slots: dict[str, Any] = {}
    tab_of: dict[str, str] = {"faults": whatif_editor.TAB, "cache": whatif_editor.TAB}
    tabs = st.tabs([*TABS, whatif_editor.TAB])
    with tabs[-1]:
        c = base.cluster
        whatifs = whatif_editor.editor(base, int(draft.get("cluster.prefill_nodes", c.prefill_nodes)),
                                       int(draft.get("cluster.decode_nodes", c.decode_nodes)),
                                       int(draft.get("cluster.gpus_per_node", c.gpus_per_node)))
        slots["faults"] = st.empty()  # where a fault's or the cache's problem is shown
    for tab, (name, paths) in zip(tabs, TABS.items(), strict=False):
        with tab:
            if name == "Workload":
                _trace_upload()
            main = [p for p in paths if p in PRIMARY]
            extra = [p for p in paths if p not in PRIMARY]
            _fields(main, base, draft, slots)
            if extra:
                with st.expander(f"More {name.lower()} settings"):
                    _fields(extra, base, draft, slots)
            for p in paths:
                tab_of[p] = name
    overrides = {p: v for p, v in draft.items() if p in slots and p != "faults" and v != get_value(base, p)}
    return overrides, slots, tab_of, whatifs


def _policy_picker() -> None:
    def sync() -> None:
        st.session_state[state.K_POLICIES] = list(st.session_state["dp_policy_pick"])

    st.session_state["dp_policy_pick"] = state.policies()
    st.multiselect("Policies to compare", list(POLICY_NAMES), key="dp_policy_pick", on_change=sync,
                   help="basic: PE-side reads only; layerwise: + layer-wise streaming; dualpath: PE or DE side "
                        "reads with the DualPath scheduler; oracle: zero-cost I/O upper bound")


@st.cache_data(max_entries=64, show_spinner=False)
def _cached_bound(scenario_toml: str, policy: str) -> Bound | str:
    """api.bounds for a scenario (by its TOML), cached: it builds the workload each time."""
    return backend.bounds(from_toml(scenario_toml, check_catalog=False), policy)


def _derived(sc: Scenario) -> None:
    st.subheader("Before you run: derived values and analytic bounds")
    c1, c2 = st.columns([1, 1])
    with c1:
        st.markdown("**Derived values**")
        dv = backend.derived_values(sc)
        if isinstance(dv, str):
            st.info(dv)
        else:
            by_key = {d.key: d for d in dv}
            tiles = [(k, lab, hlp) for k, lab, hlp in HEADLINE_DERIVED if k in by_key]
            cols = st.columns(3)
            for i, (k, lab, hlp) in enumerate(tiles):
                cols[i % 3].metric(lab, by_key[k].value.split(" (")[0], help=hlp)
            if "trace_rounds" in by_key:
                st.caption(f"Context, append and KV per round are the trace file's means ({by_key['trace_rounds'].value} rounds).")
            elif "sampled_agents" in by_key:
                st.caption(f"This dataset publishes no means: context, append and KV per round are measured on "
                           f"{by_key['sampled_agents'].value} generated trajectories.")
            with st.expander("All derived values"):
                st.dataframe(pl.DataFrame({"quantity": [d.label for d in dv], "value": [d.value for d in dv]}),
                             hide_index=True, width="stretch")
    with c2:
        st.markdown("**P/D ratio against DualPath's bottleneck-free range**")
        pr = backend.pd_range(sc)
        if isinstance(pr, str):
            st.info(pr)
        else:
            lines = [f"- P/D ratio: **{sc.cluster.prefill_nodes}P{sc.cluster.decode_nodes}D = "
                     f"{sc.cluster.prefill_nodes / sc.cluster.decode_nodes:.3g}**"]
            if pr.lower is not None and pr.upper is not None:
                lines.append(f"- bottleneck-free range: **{pr.lower:.3g} <= P/D <= {pr.upper:.3g}**")
            if pr.limiting_term:
                lines.append(f"- upper end set by: {pr.limiting_term}")
            st.markdown("\n".join(lines))
            if pr.text:
                (st.success if pr.inside else st.warning if pr.inside is False else st.info)(pr.text)
    rows = []
    notes = []
    for pol in state.policies() or list(backend.DEFAULT_POLICIES):
        b = _cached_bound(sc.to_toml(), pol)
        if isinstance(b, str):
            notes.append(f"{pol}: {b}")
            continue
        rows.append({
            "policy": pol,
            "max rounds/s": round(b.max_rounds_per_s, 3),
            "max prompt tok/s": round(b.max_prompt_tokens_per_s),
            "max generated tok/s": round(b.max_generated_tokens_per_s),
            "min JCT (s)": None if b.min_jct_s is None else round(b.min_jct_s, 1),
            "binding resource": b.binding_resource,
            "next resource": b.second_resource,
            "margin (x)": round(b.binding_margin, 2),
        })
        if b.explanation:
            notes.append(f"**{pol}**: {b.explanation}")
    st.markdown("**Analytic bounds per policy** (closed form: the most any resource allows)")
    if rows:
        st.dataframe(pl.DataFrame(rows), hide_index=True, width="stretch")
    for n in notes:
        st.caption(n)


def render() -> None:
    """Draw the Scenario page."""
    state.ensure()
    st.title("Scenario builder")
    st.caption("Describe the cluster, the model and the agents' workload, then compare the KV-loading designs.")
    explainer.render(expanded=False)
    _source_picker()
    summary = st.container()
    base = state.base()
    overrides, slots, tab_of, (faults, cache) = _edit_tabs(base)
    try:
        sc = backend.apply_overrides(base, overrides) if overrides else base
        sc = whatif_editor.apply(sc, faults, cache, check_catalog=backend.has_validation())
        problems: list[str] = []
    except ScenarioError as err:
        sc = None
        problems = err.problems
    st.session_state[state.K_PROBLEMS] = problems
    loose = _place_problems(problems, slots, tab_of)
    with summary:
        if problems:
            where = sorted({tab_of.get(_whatif_head(backend.problem_path(p)), "") for p in problems} - {""})
            # every reason in full here: a field's own message may sit in a collapsed "More ... settings" expander
            lines = [f"- **{tab_of.get(_whatif_head(backend.problem_path(p)), 'Scenario')}**: {p}" if p not in loose else f"- {p}"
                     for p in problems]
            st.error(f"{len(problems)} problem(s) to fix before running"
                     + (f" (fields on the {', '.join(where)} tab)" if where else "") + ":\n\n" + "\n".join(lines))
    if sc is None:
        return
    st.session_state[state.K_SCENARIO] = sc
    refusals = _fit_refusals(sc)
    with summary:
        if refusals:
            st.error("This scenario does not fit: the run would be refused before it starts:\n\n"
                     + "\n".join(f"- {p}" for p in refusals))
    st.divider()
    _policy_picker()
    force = _run_guard(sc)
    c1, c2, c3 = st.columns([1, 1, 2])
    with c1:
        if st.button("Run comparison", type="primary", key="dp_run_from_builder",
                     disabled=not state.policies() or bool(refusals),
                     help="the scenario does not fit (see the message above)" if refusals else None):
            try:
                job = REGISTRY.start(sc, state.policies(), force=force)
            except guard.RunTooLarge as err:
                st.error("Run refused before it started:\n\n" + "\n".join(f"- {p}" for p in err.problems))
            else:
                st.session_state[state.K_JOB] = job.job_id
                st.switch_page(RUN_PAGE)
    with c2:
        st.download_button("Download scenario TOML", sc.to_toml(), file_name=f"{_slug(sc.name)}.toml",
                           mime="application/toml", on_click="ignore", key="dp_dl_toml")
    with c3:
        c = sc.cluster
        st.caption(f"{c.prefill_nodes}P{c.decode_nodes}D x {c.gpus_per_node} {c.gpu}, {sc.model.name}, "
                   f"{sc.workload.agents} agents ({sc.workload.mode}, {sc.workload.dataset if sc.workload.kind == 'synthetic' else 'trace'})")
    _derived(sc)


@st.cache_data(max_entries=64, show_spinner=False)
def _cached_fits(scenario_toml: str, policy: str) -> list[str]:
    """api.fit_problems for a scenario (by its TOML), cached: it builds the workload."""
    return backend.fit_problems(from_toml(scenario_toml, check_catalog=False), policy)


def _fit_refusals(sc: Scenario) -> list[str]:
    """The distinct pre-run refusals (a request's KV larger than a decode engine's HBM or a DRAM buffer) over the chosen policies."""
    out: list[str] = []
    toml_text = sc.to_toml()
    for pol in state.policies() or list(backend.DEFAULT_POLICIES):
        out.extend(p for p in _cached_fits(toml_text, pol) if p not in out)
    return out


def _run_guard(sc: Scenario) -> bool:
    """Show the run's estimated memory and wall time (guard.estimate_run, no work done); above the limits
    show the problems and a "run anyway" box. Returns whether the user chose to run anyway."""
    try:
        est = guard.estimate_run(sc, state.policies() or 1)
        limits = guard.get_limits()
    except Exception as err:  # noqa: BLE001 - the estimate is advisory
        st.caption(f"run size estimate unavailable: {err}")
        return False
    problems = guard.check_estimate(est, limits, sc)
    st.caption(f"Estimated run: {est.text()}; limits: {limits.text()}")
    if not problems:
        return False
    st.error("This run is above the limits:\n\n" + "\n".join(f"- {p}" for p in problems))
    return st.checkbox("Run anyway (above the limits)", key="dp_run_force", value=False)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "scenario"
