"""dualpath-twin dashboard: ``streamlit run app.py`` (pages live in dualpath_twin/ui)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dualpath_twin.ui.jobs import REGISTRY

HERE = Path(__file__).resolve().parent
PAGES = HERE / "dualpath_twin" / "ui" / "pages"
PLANNING = HERE / "dualpath_twin" / "ui" / "planning_page.py"

st.set_page_config(page_title="dualpath-twin", page_icon=":material/hub:", layout="wide")
REGISTRY.warm_up()  # start the simulation process server in the background, once

pages = [
    st.Page(str(PAGES / "builder.py"), title="Scenario", icon=":material/tune:", default=True),
    st.Page(str(PAGES / "run.py"), title="Live run", icon=":material/play_circle:"),
    st.Page(str(PAGES / "results.py"), title="Results", icon=":material/monitoring:"),
    st.Page(str(PAGES / "compare.py"), title="Compare", icon=":material/compare_arrows:"),
]
if PLANNING.is_file():
    pages.append(st.Page(str(PAGES / "planning.py"), title="Planning", icon=":material/calculate:"))
pages.append(st.Page(str(PAGES / "about.py"), title="About", icon=":material/help:"))

with st.sidebar:
    st.markdown("### dualpath-twin")
    st.caption("Digital twin of prefill/decode-disaggregated LLM clusters loading KV-cache from storage: "
               "Basic vs layer-wise vs DualPath vs Oracle.")

st.navigation(pages).run()
