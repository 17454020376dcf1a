"""dualpath-twin dashboard: ``streamlit run app.py`` (pages live in dualpath_twin/ui).

Everything runs under ``if __name__ == "__main__"``: Streamlit executes this file as ``__main__``,
and it installs it as ``sys.modules["__main__"]``, so every child process started with
multiprocessing's forkserver or spawn method (the dashboard's simulation jobs, the planning pool)
re-imports it as ``__mp_main__``. Unguarded, that import would start the job server's warm-up
process again inside a child still bootstrapping ("An attempt has been made to start a new process
before the current process has finished its bootstrapping phase"; see "Safe importing of main
module" in the multiprocessing documentation).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGES = HERE / "dualpath_twin" / "ui" / "pages"
PLANNING = HERE / "dualpath_twin" / "ui" / "planning_page.py"


def main() -> None:
    """Configure the page, start the simulation process server once, and run the selected page."""
    import streamlit as st

    from dualpath_twin.ui.jobs import REGISTRY

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
    pages.append(st.Page(str(PAGES / "calibration.py"), title="Calibration", icon=":material/straighten:"))
    pages.append(st.Page(str(PAGES / "about.py"), title="About", icon=":material/help:"))

    with st.sidebar:
        st.markdown("### dualpath-twin")
        st.caption("Digital twin of prefill/decode-disaggregated LLM clusters loading KV-cache from storage: "
                   "Basic vs layer-wise vs DualPath vs Oracle.")
    from dualpath_twin.ui import costs

    costs.editor()  # the session's cost table, for every page

    st.navigation(pages).run()


if __name__ == "__main__":
    main()
