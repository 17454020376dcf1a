"""About page: what the twin simulates, the two loading paths, how to use the dashboard."""

from __future__ import annotations

import streamlit as st

from dualpath_twin.ui import backend, explainer

HOW_TO = """
**How to use it**

1. **Scenario**: start from a bundled scenario (`examples/quick` is a small DeepSeek-V3.2 2P4D cluster
   that simulates in seconds) or upload a TOML; edit the cluster, NICs, storage, model and workload.
   Invalid values are flagged next to the field. The derived values and analytic bounds tell you,
   before running, which resource should limit each design.
2. **Live run**: compare the designs; progress and throughput/NIC plots update every second. Cancel any time.
3. **Results**: browse the run history, open a run's full set of plots and its bottleneck verdict.
4. **Compare**: put several runs side by side and overlaid, with throughput ratios; download the HTML report
   or the run data (Parquet/CSV).
"""


def render() -> None:
    """Draw the About page."""
    st.title("What is this?")
    explainer.render(expanded=True)
    st.markdown(HOW_TO)
    st.caption(f"Results store: `{backend.db_path()}` (set DUALPATH_TWIN_DB to use another file).")
