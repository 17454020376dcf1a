"""The builder's What-ifs tab: a DRAM cache tier in front of storage and a list of faults, edited with widgets.

The tab keeps its edits in the session (``K_WHATIF``), reset whenever the builder's base scenario
changes (a bundled file loaded or a TOML uploaded), and returns the ``faults`` list and ``cache``
table the edited scenario should have; ``apply`` puts them into a scenario (validated as a whole,
so a bad fault is reported with its field, e.g. ``faults[0].node``).
"""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from dualpath_twin.scenario import FAULT_KINDS, Scenario, from_dict
from dualpath_twin.ui import state

K_WHATIF = "dp_whatif"
TAB = "What-ifs"

KIND_HELP = {
    "snic_down": "the node's storage NIC carries nothing",
    "snic_degraded": "the node's storage NIC keeps rate_factor of its capacity",
    "cnic_down": "the node's compute NICs (or one GPU's) carry nothing",
    "cnic_degraded": "the node's compute NICs (or one GPU's) keep rate_factor of their capacity",
    "node_lost": "the node's EP group stops; its rounds start over on the other groups",
    "slow_storage": "read_share of the node's storage reads wait extra_latency_us longer",
    "straggler_gpu": "one engine computes compute_factor times slower",
}
_PARAMS = {  # the kind's own parameters (besides node, start_s, end_s)
    "snic_degraded": ("rate_factor",),
    "cnic_down": ("gpu",),
    "cnic_degraded": ("rate_factor", "gpu"),
    "slow_storage": ("extra_latency_us", "read_share"),
    "straggler_gpu": ("gpu", "compute_factor"),
}
MAX_FAULTS = 32


def _from_base(base: Scenario) -> dict[str, Any]:
    c = base.cache
    return {
        "rev": st.session_state.get(state.K_BASE_REV, 0),
        "faults": [f.model_dump(mode="json", exclude_none=True) for f in base.faults],
        "cache_on": c is not None,
        "capacity_gb": 0.0 if c is None or c.capacity_gb is None else float(c.capacity_gb),
        "scope": "pooled" if c is None else c.scope,
    }


def _state(base: Scenario) -> dict[str, Any]:
    cur = st.session_state.get(K_WHATIF)
    if cur is None or cur["rev"] != st.session_state.get(state.K_BASE_REV, 0):
        cur = st.session_state[K_WHATIF] = _from_base(base)
    return cur


def _cache(w: dict[str, Any]) -> dict[str, Any] | None:
    if not w["cache_on"]:
        return None
    out: dict[str, Any] = {"scope": w["scope"]}
    if w["capacity_gb"] > 0:
        out["capacity_gb"] = float(w["capacity_gb"])
    return out


def editor(base: Scenario, prefill_nodes: int, decode_nodes: int, gpus_per_node: int) -> tuple[list[dict], dict | None]:
    """Draw the tab's widgets; return (faults, cache table or None) for the edited scenario."""
    w = _state(base)
    rev = w["rev"]
    st.markdown("**DRAM cache tier** (Mooncake-style): KV blocks kept in the nodes' DRAM; a hit is read from the "
                "holder's DRAM over the compute network instead of through a storage NIC.")
    w["cache_on"] = st.checkbox("Cache KV blocks in DRAM in front of storage", value=w["cache_on"], key=f"dp_w_cache_{rev}")
    if w["cache_on"]:
        c1, c2 = st.columns(2)
        with c1:
            w["capacity_gb"] = st.number_input(
                "Cache capacity (GB; 0 = unbounded)", min_value=0.0, max_value=1e7, value=float(w["capacity_gb"]),
                step=10.0, key=f"dp_w_cap_{rev}", help="in total (pooled) or on each node (per node); LRU eviction per block")
        with c2:
            scopes = ["pooled", "per_node"]
            w["scope"] = st.selectbox("Scope", scopes, index=scopes.index(w["scope"]), key=f"dp_w_scope_{rev}",
                                      help="pooled: one cache across the cluster; per_node: each node caches its share")
    st.divider()
    st.markdown("**Faults and degradation**: each from a start time to an optional repair; shaded on the results' "
                "time-series plots, with the degradation, recovery time and rounds re-queued in the summary.")
    faults: list[dict] = w["faults"]
    if faults:
        st.dataframe(pl.DataFrame([{"#": i, "kind": f["kind"], "node": f["node"], "start (s)": f["start_s"],
                                    "end (s)": f.get("end_s"), "details": _details(f)} for i, f in enumerate(faults)]),
                     hide_index=True, width="stretch")
        c1, c2, c3 = st.columns([1, 1, 2])
        with c1:
            drop = st.selectbox("Fault", list(range(len(faults))), key=f"dp_w_drop_pick_{rev}", label_visibility="collapsed")
        with c2:
            if st.button("Remove fault", key=f"dp_w_drop_{rev}"):
                faults.pop(int(drop))
                st.rerun()
        with c3:
            if st.button("Remove all faults", key=f"dp_w_clear_{rev}"):
                faults.clear()
                st.rerun()
    else:
        st.caption("No faults: the cluster stays healthy for the whole run.")
    with st.expander("Add a fault", expanded=not faults):
        _add_form(faults, rev, prefill_nodes, decode_nodes, gpus_per_node)
    return list(faults), _cache(w)


def _details(f: dict) -> str:
    return ", ".join(f"{k} = {f[k]:g}" if isinstance(f[k], float) else f"{k} = {f[k]}"
                     for k in _PARAMS.get(f["kind"], ()) if k in f)


def _add_form(faults: list[dict], rev: int, p: int, d: int, g: int) -> None:
    c1, c2 = st.columns(2)
    with c1:
        kind = st.selectbox("Kind", list(FAULT_KINDS), key=f"dp_w_kind_{rev}", format_func=lambda k: f"{k}: {KIND_HELP[k]}")
    with c2:
        nodes = [f"P{i}" for i in range(max(p, 0))] + [f"D{i}" for i in range(max(d, 0))]
        node = st.selectbox("Node", nodes or ["P0"], key=f"dp_w_node_{rev}")
    c1, c2 = st.columns(2)
    with c1:
        start = st.number_input("Starts at (s, simulated)", min_value=0.0, max_value=1e7, value=60.0, step=10.0,
                                key=f"dp_w_start_{rev}")
    with c2:
        end = st.number_input("Repaired at (s; 0 = never)", min_value=0.0, max_value=1e7, value=120.0, step=10.0,
                              key=f"dp_w_end_{rev}")
    params = _PARAMS.get(kind, ())
    f: dict[str, Any] = {"kind": kind, "node": node, "start_s": float(start)}
    if end > 0:
        f["end_s"] = float(end)
    cols = st.columns(max(len(params), 1))
    for col, name in zip(cols, params, strict=False):
        with col:
            if name == "gpu":
                opts = list(range(-1, max(g, 1))) if kind != "straggler_gpu" else list(range(max(g, 1)))
                v = st.selectbox("GPU", opts, key=f"dp_w_gpu_{rev}_{kind}",
                                 format_func=lambda x: "all of the node's" if x < 0 else str(x))
                if v >= 0:
                    f["gpu"] = int(v)
            elif name == "rate_factor":
                f[name] = st.number_input("Capacity kept (0-1)", min_value=0.01, max_value=0.99, value=0.5, step=0.05,
                                          key=f"dp_w_rate_{rev}")
            elif name == "extra_latency_us":
                f[name] = st.number_input("Extra read latency (µs)", min_value=1.0, max_value=1e8, value=200_000.0,
                                          step=1000.0, key=f"dp_w_lat_{rev}")
            elif name == "read_share":
                f[name] = st.number_input("Share of reads affected (0-1]", min_value=0.01, max_value=1.0, value=1.0,
                                          step=0.05, key=f"dp_w_share_{rev}")
            elif name == "compute_factor":
                f[name] = st.number_input("Slowdown (x)", min_value=1.0, max_value=100.0, value=2.0, step=0.5,
                                          key=f"dp_w_slow_{rev}")
    if st.button("Add fault", key=f"dp_w_add_{rev}", disabled=len(faults) >= MAX_FAULTS,
                 help=f"at most {MAX_FAULTS} faults per scenario"):
        faults.append(f)
        st.rerun()


def apply(sc: Scenario, faults: list[dict], cache: dict | None, check_catalog: bool = True) -> Scenario:
    """The scenario with these faults and cache table (unchanged when they are the scenario's own); validated."""
    own_faults = [f.model_dump(mode="json", exclude_none=True) for f in sc.faults]
    own_cache = None if sc.cache is None else sc.cache.model_dump(mode="json", exclude_none=True)
    if faults == own_faults and _same_cache(cache, own_cache):
        return sc
    data = sc.model_dump(mode="json", exclude_none=True)
    data["faults"] = faults
    if cache is None:
        data.pop("cache", None)
    else:
        data["cache"] = cache
    return from_dict(data, check_catalog=check_catalog)


def _same_cache(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.get("scope", "pooled") == b.get("scope", "pooled") and a.get("capacity_gb") == b.get("capacity_gb")
