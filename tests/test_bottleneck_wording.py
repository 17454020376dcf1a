"""Bottleneck keys reach planners in words (one wording, analysis.verdict.resource_label): report, CLI, dashboard."""

from __future__ import annotations

import re

import pytest

from dualpath_twin.analysis.verdict import OFFERED_LOAD, resource_label
from dualpath_twin.report import build_report_from_results
from dualpath_twin.store.synthetic import synthetic_result


def _section(text: str, sid: str) -> str:
    i = text.index(f'id="{sid}"')
    return text[i:text.index("</section>", i)]


def _row(section: str, label: str) -> str:
    """The <tr> of a table whose first cell is ``label``."""
    m = re.search(rf"<tr><td>{re.escape(label)}</td>.*?</tr>", section)
    assert m, label
    return m.group(0)


def test_resource_label_words_every_kind_of_key() -> None:
    assert resource_label("snic_read") == "storage NIC reads"
    assert resource_label(OFFERED_LOAD) == "the offered load (no resource saturated)"
    assert resource_label("storage_write") == "storage write"  # unknown keys lose their underscores
    assert resource_label(None) == "" and resource_label("") == ""


def test_dashboard_keeps_the_same_wording() -> None:
    from dualpath_twin.ui import decision

    assert decision.resource_label is resource_label


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    a = synthetic_result("basic", n_rounds=40, n_samples=20)
    b = synthetic_result("dualpath", n_rounds=40, n_samples=20)
    b.summary.bottleneck = OFFERED_LOAD  # one run bound by a resource, one by the offered load
    out = build_report_from_results([a, b], tmp_path_factory.mktemp("rep") / "r.html")
    return out.read_text(encoding="utf-8")


def test_report_summary_table_words_the_bottleneck(report_html: str) -> None:
    row = _row(_section(report_html, "summary"), "binding resource")
    assert "<td>storage NIC reads</td>" in row
    assert "<td>the offered load (no resource saturated)</td>" in row
    assert "snic_read" not in row and "offered_load" not in row


def test_report_bounds_and_executive_tables_word_the_binding_resource(report_html: str) -> None:
    bounds = _section(report_html, "bounds")
    assert "snic_read" not in re.sub(r"<p class='bottleneck'>.*?</p>", "", bounds)
    assert "<td>storage NIC reads</td>" in _row(bounds, "binding resource")
    exe = _section(report_html, "executive")
    assert "storage NIC reads" in exe and "snic_read" not in exe and "offered_load" not in exe


def test_cli_summary_rows_word_the_bottleneck() -> None:
    from dualpath_twin.cli.common import summary_rows

    rows = dict(summary_rows(synthetic_result("basic", n_rounds=20, n_samples=10).summary))
    assert rows["bottleneck"] == "storage NIC reads"


def test_dashboard_run_table_words_the_bottleneck() -> None:
    from dualpath_twin.ui.widgets import headline_rows

    s = synthetic_result("basic", n_rounds=20, n_samples=10).summary
    df = headline_rows([s])
    assert df["binding resource"].to_list() == ["storage NIC reads"]


def test_dashboard_run_table_leads_with_the_verdict() -> None:
    from dualpath_twin.ui.widgets import headline_rows

    a = synthetic_result("basic", n_rounds=20, n_samples=10).summary
    b = synthetic_result("dualpath", n_rounds=20, n_samples=10).summary
    df = headline_rows([a, b])
    # design and verdict first, the binding resource before the bookkeeping; no run column repeating the design
    assert df.columns[:3] == ["policy", "status", "SLO attainment (%)"]
    assert df.columns.index("binding resource") < df.columns.index("rounds/s") < df.columns.index("rounds")
    assert "run" not in df.columns
    assert headline_rows([a, b], ["basic", "dualpath"]).columns == df.columns
    named = headline_rows([a, b], ["basic | 12-07 03:39", "dualpath | 12-07 03:40"])
    assert named.columns[:2] == ["run", "policy"] and named["run"].to_list()[0].startswith("basic |")


def test_sweep_report_table_words_the_bottleneck() -> None:
    from dualpath_twin.planning.sweep import SweepPointResult, SweepResult
    from dualpath_twin.report.sweep import sweep_report_html

    s = synthetic_result("basic", n_rounds=20, n_samples=10).summary
    pt = SweepPointResult(point={"cluster.prefill_nodes": 2}, policy="basic", key="k", status="done", summary=s)
    res = SweepResult(sweep_id="sw-1", name="t", grid={"cluster.prefill_nodes": [2]}, policies=["basic"],
                      objective="run", points=[pt])
    html = sweep_report_html(res)
    assert "<th>binding resource</th>" in html and "<td>storage NIC reads</td>" in html and "snic_read" not in html
