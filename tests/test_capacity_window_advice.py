"""A capacity run whose windows hold too few rounds ("steadiness unknown") tells the planner to lengthen the
arrival window, naming the setting: --window-s on the CLI, the form's "Arrival window (s)" on the dashboard.

The rule is SloCriterion.check's; these tests only check that the CLI and the dashboard show its reason in full
with the setting to change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from dualpath_twin import cli
from dualpath_twin.planning.capacity import CapacityPoint, CapacityResult, SloCriterion
from dualpath_twin.planning.reasons import (
    DASHBOARD_WINDOW,
    actionable_reason,
    needs_longer_window,
    window_advice,
)
from dualpath_twin.planning.storeio import save_capacity
from dualpath_twin.scenario import Scenario
from dualpath_twin.store import open_store
from dualpath_twin.store.synthetic import synthetic_result

ROOT = Path(__file__).resolve().parents[1]
ONLINE = str(ROOT / "scenarios" / "examples" / "online-serving.toml")
PAGE = str(ROOT / "dualpath_twin" / "ui" / "pages" / "planning.py")


def _unknown_reason() -> str:
    """The rule's own wording for a run whose steadiness windows hold too few rounds."""
    s = synthetic_result("basic", n_rounds=20, n_samples=10).summary
    sc = Scenario()
    crit = SloCriterion(ttft_s=1e9, tpot_ms=1e9)
    ok, why = crit.check(s, sc, None, True)
    assert not ok and needs_longer_window(why), why
    return why


def test_actionable_reason_names_the_setting_and_keeps_the_rule_text() -> None:
    why = _unknown_reason()
    cli_text = actionable_reason(why)
    assert "--window-s" in cli_text and "lengthen the arrival window" in cli_text
    assert cli_text.startswith(why.split(" (lengthen")[0])  # the rule's explanation is kept whole
    assert "Arrival window (s)" in actionable_reason(why, DASHBOARD_WINDOW)
    assert actionable_reason("TTFT p90 5 s > 4 s") == "TTFT p90 5 s > 4 s"  # other failures as they are


def test_window_advice_counts_the_runs_and_suggests_a_window() -> None:
    why = _unknown_reason()
    pts = [CapacityPoint(aps=0.25, meets=False, reason=why), CapacityPoint(aps=0.5, meets=False, reason=why),
           CapacityPoint(aps=1.0, meets=False, reason="TTFT p90 5 s > 1 s")]
    text = window_advice("basic", pts, 8.0)
    assert text is not None
    assert "2 of 3 run(s)" in text and "0.25, 0.5 agents/s" in text and "--window-s" in text
    assert "set --window-s to 0 (automatic" in text and "or to 16 s or more (now 8 s)" in text
    assert window_advice("basic", pts[2:], 8.0) is None
    # with the scenario's steadiness windows known: at least the window plus the two measured ones
    assert "or to 18 s or more (now 8 s)" in (window_advice("basic", pts, 8.0, online_window_s=5.0) or "")
    assert "or to 16 s or more (now 8 s)" in (window_advice("basic", pts, 8.0, online_window_s=2.0) or "")


def test_cli_capacity_says_lengthen_the_window_with_its_option(tmp_path: Path) -> None:
    # 2-8 agents per run over an 8 s window with 5 s steadiness windows: too few rounds to judge steadiness
    r = CliRunner().invoke(cli.app, [
        "capacity", ONLINE, "--policy", "basic", "--set", "workload.max_context_tokens=8192",
        "--set", "run.online_window_s=5", "--set", "slo.ttft_s=1", "--window-s", "8", "--start-aps", "1",
        "--tolerance", "0.25", "--max-evaluations", "2", "--workers", "1", "--no-save", "--no-from-bound",
    ])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "steadiness unknown" in r.stdout
    note = next(line for line in r.stdout.splitlines() if "for want of a longer window" in line)
    assert "or to 18 s or more (now 8 s) and search again" in note  # 8 s + two 5 s steadiness windows
    assert "lengthen the arrival window: --window-s" in " ".join(r.stderr.split())  # the per-rate progress lines


@pytest.fixture
def db(dashboard_db: Path) -> Path:
    return dashboard_db


def test_dashboard_capacity_view_shows_the_whole_reason_and_the_field(db: Path) -> None:
    why = _unknown_reason()
    res = CapacityResult(policy="basic", capacity_aps=0.5, lo_aps=0.5, hi_aps=1.0, tolerance=0.25, converged=False,
                         evaluations=2, window_s=30.0,
                         curve=[CapacityPoint(aps=0.5, meets=True, reason="meets SLO"),
                                CapacityPoint(aps=1.0, meets=False, reason=why)])
    sid = save_capacity(open_store(db), Scenario(name="few-rounds"), [res])
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.query_params["capacity"] = sid
    at.run()
    assert not at.exception, at.exception
    warn = [w.value for w in at.warning if "longer window" in w.value]
    assert len(warn) == 1
    assert "1 of 2 run(s)" in warn[0] and "at 1 agents/s" in warn[0]
    assert "set 'Arrival window (s)' in New capacity search (--window-s on the CLI) to 0 (automatic" in warn[0]
    assert "or to 330 s or more (now 30 s)" in warn[0]  # 30 s + the two default 150 s steadiness windows
