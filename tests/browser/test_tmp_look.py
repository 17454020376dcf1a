import re
from pathlib import Path

import pytest

from tests.browser.test_journey import _number, open_builder_on
from tests.browser.test_planner_journey import PLAN_SCENARIO, PLAN_TIMEOUT_MS, _panel

pytestmark = pytest.mark.browser


def test_look(app_url: str, context, screenshots: Path, server_log: Path) -> None:
    page = open_builder_on(context, app_url, PLAN_SCENARIO)
    _number(page, "Agents", "8")
    page.get_by_text("More workload settings").click()
    _number(page, "Max context (tokens)", "4096")
    page.get_by_text("8 agents (offline").wait_for(timeout=15_000)
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Planning", exact=True).click()
    page.get_by_role("tab", name="Capacity").click()
    panel = _panel(page)
    panel.get_by_text("from the Scenario page: 1P1D").first.wait_for(timeout=30_000)
    _number(panel, "Tolerance (share of the rate)", "0.25")
    _number(panel, "Start rate (agents/s, 0 = the scenario's)", "1")
    _number(panel, "Arrival window (s, 0 = automatic)", "60")
    page.screenshot(path="/tmp/p17/look1-form.png", full_page=True)
    panel.get_by_role("button", name="find capacity", exact=True).click()
    panel.get_by_text(re.compile(r"basic capacity")).first.wait_for(timeout=PLAN_TIMEOUT_MS)
    panel.get_by_text(re.compile(r"dualpath capacity")).first.wait_for(timeout=30_000)
    page.wait_for_timeout(3000)
    page.screenshot(path="/tmp/p17/look2-result.png", full_page=True)
    log = server_log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]
