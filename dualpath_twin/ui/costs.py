"""The session's cost table (data/costs.toml, editable in the sidebar) and cost cells for the pages.

The table is kept per browser session (``st.session_state``): editing it changes $/hour, $/M tokens
and tokens per $ on Results, Compare, the planning tabs and the reports downloaded in that session,
never the file on disk.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dualpath_twin import economics

K_COSTS = "dp_cost_table"  # the session's CostTable (None until first used: data/costs.toml)
K_REV = "dp_cost_rev"  # bumps on reset so the editor's widgets take the file's values again


def file_table() -> Any:
    """The cost table of data/costs.toml (or the built-in defaults when the file is missing)."""
    return economics.cost_table(None)


def table() -> Any:
    """The cost table in force for this session (the edited one, else data/costs.toml)."""
    t = st.session_state.get(K_COSTS)
    if t is None:
        t = file_table()
        st.session_state[K_COSTS] = t
    return t


def is_edited() -> bool:
    """Whether this session's cost table differs from data/costs.toml."""
    t = st.session_state.get(K_COSTS)
    return t is not None and t.model_dump(exclude={"source"}) != file_table().model_dump(exclude={"source"})


def editor() -> None:
    """Sidebar expander: GPU-hour prices, NIC price per Gbit/s-port-hour, node base price; reset to the file."""
    from dualpath_twin.planning.sizing import CostTable

    t = table()
    rev = st.session_state.get(K_REV, 0)
    with st.sidebar.expander("Cost table" + (" (edited)" if is_edited() else ""), icon=":material/payments:"):
        st.caption("Prices used for $/hour, $ per M tokens and tokens per $ in this session "
                   "(defaults: data/costs.toml, public list prices; assumptions, not quotes).")
        prices: dict[str, float] = {}
        for g, p in t.gpu_hour_usd.items():
            prices[g] = float(st.number_input(f"{g} $ per GPU-hour", 0.0, 1000.0, float(p), 0.1, format="%.2f",
                                              key=f"dp_cost_gpu_{g}_{rev}"))
        nic = st.number_input("NIC $ per Gbit/s-port-hour", 0.0, 1.0, float(t.nic_usd_per_gbps_port_hour),
                              0.0001, format="%.5f", key=f"dp_cost_nic_{rev}")
        base = st.number_input("node base $ per hour (CPU, DRAM, chassis, power)", 0.0, 1000.0,
                               float(t.node_base_usd_per_hour), 0.1, key=f"dp_cost_base_{rev}")
        new = CostTable(currency=t.currency, gpu_hour_usd=prices, nic_usd_per_gbps_port_hour=nic,
                        node_base_usd_per_hour=base, source="edited in the dashboard")
        if new.model_dump(exclude={"source"}) != t.model_dump(exclude={"source"}):
            st.session_state[K_COSTS] = new
        if st.button("reset to data/costs.toml", key="dp_cost_reset"):
            st.session_state[K_COSTS] = file_table()
            st.session_state[K_REV] = rev + 1
            st.rerun()


def cells(summary: Any, scenario_toml: str) -> dict[str, str]:
    """'cost ($/hour)', '$ per M generated tokens', 'generated tokens per $' ... for one run (or the reason)."""
    e = economics.try_run_economics(summary, scenario_toml, table())
    if isinstance(e, str):
        return {economics.LABELS["usd_per_hour"]: e}
    return economics.format_economics(e)


def values(summary: Any, scenario_toml: str) -> dict[str, float | None]:
    """The numbers behind :func:`cells` (None when unavailable), keyed by economics.ECONOMICS_KEYS."""
    e = economics.try_run_economics(summary, scenario_toml, table())
    if isinstance(e, str):
        return dict.fromkeys(economics.ECONOMICS_KEYS)
    d = e.as_dict()
    return {k: d[k] for k in economics.ECONOMICS_KEYS}


def cluster_usd_per_hour(scenario_toml: str) -> float | None:
    """$/hour of a scenario's cluster under the session's cost table, None when it cannot be priced."""
    from dualpath_twin.scenario import from_toml

    try:
        return float(table().cluster_cost_per_hour(from_toml(scenario_toml, check_catalog=False)))
    except Exception:  # noqa: BLE001 - e.g. no price for this GPU: the caller shows no cost
        return None
