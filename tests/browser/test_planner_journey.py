"""The capacity planner's journey in a real browser: a huge input is refused with the server up,
a built scenario is carried into the planning tools, and the server log stays free of tracebacks."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tests.browser.test_journey import _number, _select

pytestmark = pytest.mark.browser

SCENARIO = "paper/ds660b-2p4d-64k"
HUGE_AGENTS = "10000000"


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
        return r.status == 200


def test_huge_input_is_refused_and_the_server_stays_up(app_url: str, context, screenshots: Path, server_log: Path) -> None:
    page = context.new_page()
    page.goto(app_url)
    page.get_by_role("heading", name="Scenario builder").wait_for(timeout=30_000)
    _select(page, "Start from a bundled scenario", SCENARIO)
    page.get_by_role("button", name="Load scenario", exact=True).click()
    page.get_by_text(f"Editing: {SCENARIO}").wait_for(timeout=15_000)
    page.get_by_role("tab", name="Workload").click()

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
