"""The capacity planner's journey in a real browser: a huge input is refused with the server up,
a built scenario is carried into the planning tools, and the server log stays free of tracebacks."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from tests.browser.test_journey import _number, open_builder_on

pytestmark = pytest.mark.browser

SCENARIO = "paper/ds660b-2p4d-64k"
HUGE_AGENTS = "10000000"


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
        return r.status == 200


def test_huge_input_is_refused_and_the_server_stays_up(app_url: str, context, screenshots: Path, server_log: Path) -> None:
    page = open_builder_on(context, app_url, SCENARIO)

    # ten million agents: estimated before any work, refused above the limits, server alive
    _number(page, "Agents", HUGE_AGENTS)
    page.get_by_text("This run is above the limits").wait_for(timeout=30_000)
    page.get_by_text("workload.agents").first.wait_for(timeout=5_000)
    page.screenshot(path=str(screenshots / "j1-huge-input-refused.png"), full_page=True)
    assert _healthy(app_url)
    page.get_by_role("button", name="Run comparison", exact=True).click()
    page.get_by_text("Run refused before it started").wait_for(timeout=15_000)
    assert page.get_by_role("heading", name="Live run").count() == 0
    assert _healthy(app_url)

    # back to a small run: the refusal goes away
    _number(page, "Agents", "16")
    page.get_by_text("16 agents (offline").wait_for(timeout=15_000)
    assert page.get_by_text("This run is above the limits").count() == 0

    log = server_log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]


PLAN_SCENARIO = "paper/ds27b-1p1d-32k"
PLAN_TIMEOUT_MS = 240_000


def _panel(page):
    """The visible tab panel of the Planning page (every tab's widgets are in the page; only one is shown)."""
    return page.get_by_role("tabpanel").filter(visible=True)


def _pick(scope, page, label: str, option: str) -> None:
    scope.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()


def test_built_scenario_carried_into_sweep_capacity_and_decision(app_url: str, context, screenshots: Path,
                                                                server_log: Path, tmp_path: Path) -> None:
    page = open_builder_on(context, app_url, PLAN_SCENARIO)
    _number(page, "Agents", "8")
    page.get_by_text("More workload settings").click()
    _number(page, "Max context (tokens)", "4096")
    page.get_by_text("8 agents (offline").wait_for(timeout=15_000)

    # the Planning page starts from the scenario just built
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Planning", exact=True).click()
    page.get_by_role("tab", name="Sweep").click()
    panel = _panel(page)
    panel.get_by_text("from the Scenario page: 1P1D").first.wait_for(timeout=30_000)
    assert panel.get_by_text("8 agents").count() >= 1
    _pick(panel, page, "axis 1", "decode nodes  [cluster.decode_nodes]")
    _pick(panel, page, "axis 2", "(none)")
    panel.get_by_role("button", name="run sweep", exact=True).click()
    panel.get_by_text(re.compile(r"sweep \S+: 4 points")).wait_for(timeout=PLAN_TIMEOUT_MS)
    best = panel.get_by_text(re.compile(r"Best point .* at \$[\d,.]+/hour"))
    best.wait_for(timeout=30_000)
    panel.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=30_000)  # the table (a canvas grid)
    page.screenshot(path=str(screenshots / "j2-sweep-on-built-scenario.png"), full_page=True)
    with page.expect_download(timeout=60_000) as dl:
        panel.get_by_role("button", name="download sweep report (HTML)", exact=True).click()
    assert dl.value.suggested_filename.endswith(".html") and "sweep" in dl.value.suggested_filename
    rep = tmp_path / dl.value.suggested_filename
    dl.value.save_as(str(rep))
    html = rep.read_text(encoding="utf-8")
    assert "$/hour" in html and "decode nodes" in html and "basic" in html and "dualpath" in html

    # the decision view names the best configuration and its cost, and a tiny budget names the cheapest
    page.get_by_role("tab", name="Decision").click()
    panel = _panel(page)
    panel.get_by_text(re.compile(r"Best configuration meeting the SLO: .* at \$[\d,.]+/hour")).wait_for(timeout=30_000)
    panel.get_by_role("button", name=re.compile(r"Open the run of .* in Results")).first.wait_for(timeout=10_000)
    page.screenshot(path=str(screenshots / "j3-decision.png"), full_page=True)
    _number(panel, "budget ($/hour, empty or 0 = no budget)", "1")
    panel.get_by_text(re.compile(r"Nothing meets the SLO within \$1\.00/hour")).wait_for(timeout=30_000)

    # a capacity search on the same built scenario, saved and shown with its tiles
    page.get_by_role("tab", name="Capacity").click()
    panel = _panel(page)
    panel.get_by_text("from the Scenario page: 1P1D").first.wait_for(timeout=30_000)
    _number(panel, "Tolerance (share of the rate)", "0.25")
    _number(panel, "Start rate (agents/s, 0 = the scenario's)", "1")
    _number(panel, "Arrival window (s, 0 = automatic)", "30")
    panel.get_by_text("require steady state").first.click()  # a 30 s window is too short to prove steadiness
    panel.get_by_role("button", name="find capacity", exact=True).click()
    panel.get_by_text(re.compile(r"basic capacity")).first.wait_for(timeout=PLAN_TIMEOUT_MS)
    panel.get_by_text(re.compile(r"dualpath capacity")).first.wait_for(timeout=30_000)
    page.screenshot(path=str(screenshots / "j4-capacity-on-built-scenario.png"), full_page=True)

    assert _healthy(app_url)
    log = server_log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]
