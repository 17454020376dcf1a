"""Reports a planner forwards: executive summary first, one scenario table, tables before figures, print CSS, file name."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from dualpath_twin import report as R
from dualpath_twin.api import simulate
from dualpath_twin.report import build_report_from_results, report_filename, report_filename_for
from dualpath_twin.scenario import load
from dualpath_twin.store.synthetic import synthetic_result

QUICK = Path(__file__).resolve().parents[1] / "scenarios" / "examples" / "quick.toml"


@pytest.fixture(scope="module")
def two_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    runs = [synthetic_result("basic", n_rounds=60, n_samples=40), synthetic_result("dualpath", n_rounds=60, n_samples=40)]
    out = build_report_from_results(runs, tmp_path_factory.mktemp("rep") / "r.html")
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def quick_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    sc = load(QUICK)
    runs = [simulate(sc, "basic"), simulate(sc, "dualpath")]
    out = build_report_from_results(runs, tmp_path_factory.mktemp("rep") / "q.html")
    return out.read_text(encoding="utf-8")


def _section(text: str, sid: str) -> str:
    i = text.index(f'id="{sid}"')
    return text[i:text.index("</section>", i)]


def test_executive_summary_precedes_every_table_section_and_the_first_figure(two_html: str) -> None:
    ex = two_html.index('id="executive"')
    assert ex < two_html.index('class="fig"')
    assert ex < two_html.index('id="scenario"') < two_html.index('id="summary"')
    body = _section(two_html, "executive")
    assert "Question." in body and "Answer." in body and "SLO attainment." in body and "Binding resource." in body
    # the synthetic dualpath run is faster: it is named best, with its ratio to basic
    assert "Best design: dualpath" in body and re.search(r"\d\.\d\dx basic", body)
    # its verdict sentence is quoted
    assert "storage NICs bind" in body


def test_every_table_comes_before_the_first_figure(two_html: str) -> None:
    first_fig = two_html.index('class="fig"')
    for sid in ("executive", "scenario", "summary", "bounds", "comparison"):
        sec = _section(two_html, sid)
        assert two_html.index(f'id="{sid}"') < first_fig, sid
        assert 'class="fig"' not in sec, sid
    assert two_html.rindex("<table") < first_fig


def test_scenario_table_appears_once_for_a_two_design_report(two_html: str) -> None:
    sec = _section(two_html, "scenario")
    assert sec.count("Scenario TOML") == 1  # the TOML is not repeated per design
    assert sec.count("<h3>Scenario") == 1
    assert two_html.count("<td>prefill nodes</td>") == 1
    diff = sec[sec.index("Per-design differences"):]
    assert "<th>basic</th><th>dualpath</th>" in diff and "<td>design (policy)</td>" in diff


def test_print_css_hides_mode_bars_and_keeps_headings_with_their_content(two_html: str) -> None:
    style = two_html[two_html.index("<style>"):two_html.index("</style>")]
    assert R.PRINT_CSS_MARKER in style
    printed = style[style.index("@media print"):]
    assert re.search(r"\.modebar[^{]*\{display:none", printed)
    assert re.search(r"h1,h2,h3\{break-after:avoid", printed)
    assert re.search(r"\.fig,table[^{]*\{break-inside:avoid", printed)


def test_quick_report_answers_with_a_tie_cost_and_no_false_bottleneck(quick_html: str) -> None:
    body = _section(quick_html, "executive")
    assert "On scenario quick" in body
    assert "No design is clearly better" in body  # basic and dualpath are within 1% on quick
    assert "$/hour" in body and "$ per M generated tokens" in body and re.search(r"\$\d+(,\d{3})*\.\d\d", body)
    assert "the offered load (no resource saturated)" in body and "No resource is saturated" in body
    assert "DualPath or faster" not in quick_html


def test_report_filename() -> None:
    d = date(2026, 12, 6)
    assert report_filename("ds660b-2p4d-64k", ["dualpath", "basic"], d) == "dualpath-ds660b-2p4d-64k-basic-vs-dualpath-2026-12-06.html"
    assert report_filename(["my scen/1"], ["oracle"], d, ".pdf") == "dualpath-my-scen-1-oracle-2026-12-06.pdf"
    runs = [synthetic_result("dualpath", n_rounds=5, n_samples=5), synthetic_result("basic", n_rounds=5, n_samples=5)]
    assert report_filename_for([r.summary for r in runs], d) == "dualpath-synthetic-basic-vs-dualpath-2026-12-06.html"
