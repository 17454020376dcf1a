"""The planner's journey in a real browser: build, compare Basic vs DualPath live, read results, download the report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

SCENARIO = "paper/ds660b-2p4d-64k"
AGENTS = "16"
MAX_CONTEXT = "8192"
RUN_TIMEOUT_MS = 120_000
LONG_RUN_AGENTS = "8192"  # the run must outlast a second tab loading; it is cancelled after


def _select(page, label: str, option: str) -> None:
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()


def _number(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    for _ in range(100):  # after a rerun that re-keys the widgets, stale copies linger for a moment
        if box.count() == 1:
            break
        page.wait_for_timeout(100)
    box.fill(value)
    box.press("Enter")


def open_builder_on(context, app_url: str, scenario: str):
    """A new page on the Scenario builder with a bundled scenario loaded, its Workload tab open."""
    page = context.new_page()
    page.goto(app_url)
    page.get_by_role("heading", name="Scenario builder").wait_for(timeout=30_000)
    _select(page, "Start from a bundled scenario", scenario)
    page.get_by_role("button", name="Load scenario", exact=True).click()
    page.get_by_text(f"Editing: {scenario}").wait_for(timeout=15_000)
    page.get_by_role("tab", name="Workload").click()
    return page


def _nav(page, name: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(name, exact=True).click()


def _plots(page) -> int:
    return page.locator(".js-plotly-plot").count()


def test_journey_compare_basic_and_dualpath(app_url: str, context, screenshots: Path, tmp_path: Path) -> None:
    # pick the paper's DS 660B 2P4D scenario and shrink it to a few agents
    page = open_builder_on(context, app_url, SCENARIO)
    _number(page, "Agents", AGENTS)
    page.get_by_text("More workload settings").click()
    _number(page, "Max context (tokens)", MAX_CONTEXT)
    page.get_by_text(f"{AGENTS} agents (offline").wait_for(timeout=15_000)

    # an invalid value is flagged next to its field, and fixing it clears the message
    page.get_by_role("tab", name="Topology").click()
    _number(page, "Decode nodes", "0")
    # twice: under the field and in the summary at the top (which names the tab)
    msg = page.get_by_text("cluster.decode_nodes = 0: must be greater than or equal to 1")
    msg.first.wait_for(timeout=15_000)
    assert msg.count() == 2
    page.screenshot(path=str(screenshots / "1-builder-inline-error.png"))
    _number(page, "Decode nodes", "4")
    page.get_by_text("cluster.decode_nodes = 0").first.wait_for(state="detached", timeout=15_000)
    page.get_by_text("Analytic bounds per policy").wait_for(timeout=15_000)
    page.screenshot(path=str(screenshots / "2-builder.png"))

    # compare Basic and DualPath
    page.get_by_role("button", name="Run comparison", exact=True).click()
    page.get_by_role("heading", name="Live run").wait_for(timeout=15_000)
    page.get_by_role("heading", name="Result", exact=True).wait_for(timeout=RUN_TIMEOUT_MS)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=30_000)
    page.get_by_text(re.compile(r"Throughput dualpath vs basic")).wait_for(timeout=10_000)
    page.screenshot(path=str(screenshots / "3-live-run-finished.png"))

    # the runs' detail on the Results page
    page.get_by_role("button", name="Open these runs in Results", exact=True).click()
    page.get_by_role("heading", name="Results").wait_for(timeout=15_000)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 10", timeout=30_000)
    page.screenshot(path=str(screenshots / "4-results-detail.png"))

    # compare side by side, then download the HTML report
    _nav(page, "Compare")
    page.get_by_role("heading", name="Compare runs").wait_for(timeout=15_000)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 8", timeout=30_000)
    assert _plots(page) >= 8
    page.screenshot(path=str(screenshots / "5-compare.png"))
    with page.expect_download(timeout=60_000) as dl:
        page.get_by_role("button", name="Download HTML report", exact=True).click()
    report = tmp_path / "report.html"
    dl.value.save_as(str(report))
    html = report.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert html.rstrip().endswith("</html>")
    assert html.count('class="plotly-graph-div"') >= 8
    assert "basic" in html and "dualpath" in html

    _nav(page, "About")
    page.get_by_role("heading", name="What is this?").wait_for(timeout=15_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(screenshots / "6-about.png"))


def test_second_tab_browses_history_while_a_run_goes(app_url: str, context, screenshots: Path) -> None:
    page = context.new_page()
    page.goto(app_url)
    page.get_by_role("heading", name="Scenario builder").wait_for(timeout=30_000)
    page.get_by_role("tab", name="Workload").click()
    _number(page, "Agents", LONG_RUN_AGENTS)
    page.get_by_text(f"{LONG_RUN_AGENTS} agents (offline").wait_for(timeout=15_000)
    page.get_by_role("button", name="Run comparison", exact=True).click()
    running = page.get_by_text(re.compile(r"status: running"))
    running.wait_for(timeout=30_000)
    page.wait_for_timeout(2500)  # let the live plots draw a few updates
    page.screenshot(path=str(screenshots / "7-live-run-progress.png"))

    other = context.browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
    other.goto(f"{app_url}/results")
    other.get_by_role("heading", name="Results").wait_for(timeout=15_000)
    other.get_by_text("Run history from").wait_for(timeout=15_000)
    _nav(other, "Live run")
    other.get_by_role("heading", name=re.compile(r"basic vs dualpath")).wait_for(timeout=15_000)
    other.get_by_text(re.compile(r"status: running")).wait_for(timeout=15_000)
    other.screenshot(path=str(screenshots / "8-second-tab-during-run.png"))
    other.context.close()
    assert running.count() > 0, "the run ended before the second tab loaded: raise LONG_RUN_AGENTS"

    page.get_by_role("button", name="Cancel run", exact=True).click()
    page.get_by_text(re.compile(r"status: cancelled")).wait_for(timeout=60_000)
