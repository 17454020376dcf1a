"""Tensor parallelism in the builder, the sweep heatmap's human axis titles and the Results history's key columns, in a real browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.test_journey import _number, open_builder_on
from tests.browser.test_planner_journey import PLAN_TIMEOUT_MS, _panel, _pick

pytestmark = pytest.mark.browser

SCENARIO = "paper/qwen32b-1p2d-64k"
DECODE_TP = "GPUs per decode engine (tensor parallel)"


def test_decode_tp_lets_qwen_64k_fit_then_sweep_and_history(app_url: str, context, screenshots: Path,
                                                           server_log: Path) -> None:
    page = open_builder_on(context, app_url, SCENARIO)
    _number(page, "Agents", "8")
    page.get_by_role("tab", name="Topology").click()
    page.get_by_text("This scenario does not fit").wait_for(timeout=30_000)
    page.get_by_text("could never be admitted").first.wait_for(timeout=5_000)
    assert page.get_by_role("button", name="Run comparison", exact=True).is_disabled()
    page.screenshot(path=str(screenshots / "tp1-qwen64k-does-not-fit.png"), full_page=True)

    _number(page, DECODE_TP, "2")
    page.get_by_text("8 agents (offline").wait_for(timeout=15_000)
    page.get_by_role("button", name="Run comparison", exact=True).wait_for(timeout=15_000)
    for _ in range(100):
        if page.get_by_text("This scenario does not fit").count() == 0:
            break
        page.wait_for_timeout(100)
    assert page.get_by_text("This scenario does not fit").count() == 0
    assert page.get_by_role("button", name="Run comparison", exact=True).is_enabled()
    page.screenshot(path=str(screenshots / "tp2-qwen64k-fits.png"), full_page=True)

    # a sweep over prefill TP x prefill nodes: the heatmap's axes carry the human labels
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Planning", exact=True).click()
    page.get_by_role("tab", name="Sweep").click()
    panel = _panel(page)
    panel.get_by_text("from the Scenario page: 1P2D").first.wait_for(timeout=30_000)
    _pick(panel, page, "axis 1", "prefill nodes  [cluster.prefill_nodes]")
    _pick(panel, page, "axis 2", "prefill TP (GPUs per engine)  [cluster.prefill_tp_gpus]")
    panel.get_by_role("button", name="run sweep", exact=True).click()
    try:
        panel.get_by_text(re.compile(r"sweep \S+: 8 points")).wait_for(timeout=PLAN_TIMEOUT_MS)
    finally:
        page.screenshot(path=str(screenshots / "sweep-page.png"), full_page=True)
    plot = panel.locator(".js-plotly-plot").first
    plot.wait_for(timeout=30_000)
    titles = plot.locator(".g-xtitle, .g-ytitle").all_text_contents()
    assert "prefill nodes" in titles and "prefill TP (GPUs per engine)" in titles, titles
    assert not any("cluster." in t for t in titles), titles
    plot.scroll_into_view_if_needed()
    plot.screenshot(path=str(screenshots / "sweep-heatmap-axis-labels.png"))

    # the Results history leads with the key columns
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Results", exact=True).click()
    page.get_by_role("heading", name="Results").wait_for(timeout=30_000)
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(screenshots / "results-history-key-columns.png"), full_page=False)

    log = server_log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]
