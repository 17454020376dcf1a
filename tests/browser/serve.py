"""Launch the dashboard for browser tests: ``python serve.py PORT [--fake-core]``.

With ``--fake-core`` the simulation core is replaced by the deterministic stand-in of
tests/test_ui_fakes.py (slowed down so a run lasts a few seconds), for use while the real core
is unavailable; Streamlit runs app.py in this process, so the substitution holds.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    """Start ``streamlit run app.py`` on 127.0.0.1:PORT, optionally with the fake core."""
    port = sys.argv[1]
    if "--fake-core" in sys.argv:
        sys.path.insert(0, str(ROOT / "tests"))
        import test_ui_fakes

        from dualpath_twin import api
        from dualpath_twin.ui.jobs import REGISTRY

        api.simulate = test_ui_fakes.make_simulate(steps=30, step_s=0.1)
        REGISTRY.mode = "thread"  # the fake core lives in this process
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true", "--server.port", port,
                "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    cli.main()


if __name__ == "__main__":
    main()
