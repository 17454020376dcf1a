"""Per-browser-session state of the dashboard (the scenario being built, chosen policies, selections)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from dualpath_twin.scenario import POLICY_NAMES, Scenario
from dualpath_twin.ui import backend

K_BASE = "dp_base_scenario"  # the loaded scenario the builder edits (bundled or uploaded)
K_BASE_REV = "dp_base_rev"  # bumps when the base changes so the widgets reset to its values
K_BASE_LABEL = "dp_base_label"
K_SCENARIO = "dp_scenario"  # the last valid edited scenario
K_PROBLEMS = "dp_problems"  # problems of the current edits (empty when valid)
K_POLICIES = "dp_policies"  # policies to compare
K_JOB = "dp_job_id"  # the job this session started last
K_SELECTED = "dp_selected_runs"  # run ids selected on the Results page
K_TRACE_DIR = "dp_trace_dir"


def ensure() -> None:
    """Initialise the session's scenario from the default bundled one, once."""
    if K_BASE not in st.session_state:
        set_base(backend.default_scenario(), _default_label())
    st.session_state.setdefault(K_POLICIES, list(backend.DEFAULT_POLICIES))
    st.session_state.setdefault(K_SELECTED, [])


def _default_label() -> str:
    if backend.DEFAULT_SCENARIO.is_file():
        return backend.scenario_label(backend.DEFAULT_SCENARIO)
    return "built-in default"


def set_base(sc: Scenario, label: str) -> None:
    """Start editing from ``sc`` (resets the builder's widgets)."""
    st.session_state[K_BASE] = sc
    st.session_state[K_BASE_LABEL] = label
    st.session_state[K_BASE_REV] = st.session_state.get(K_BASE_REV, 0) + 1
    st.session_state[K_SCENARIO] = sc
    st.session_state[K_PROBLEMS] = []


def base() -> Scenario:
    """The loaded scenario the edits apply to."""
    ensure()
    return st.session_state[K_BASE]


def scenario() -> Scenario:
    """The current valid scenario (base plus the builder's edits)."""
    ensure()
    return st.session_state[K_SCENARIO]


def problems() -> list[str]:
    """Validation problems of the builder's current edits (empty when they are valid)."""
    return list(st.session_state.get(K_PROBLEMS, []))


def policies() -> list[str]:
    """Policies chosen for the next comparison, in canonical order."""
    ensure()
    chosen = st.session_state[K_POLICIES]
    return [p for p in POLICY_NAMES if p in chosen]


def trace_dir() -> Path:
    """A per-session temporary folder for uploaded traces."""
    d = st.session_state.get(K_TRACE_DIR)
    if d is None or not Path(d).is_dir():
        d = tempfile.mkdtemp(prefix="dualpath-twin-trace-")
        st.session_state[K_TRACE_DIR] = d
    return Path(d)
