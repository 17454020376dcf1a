"""The sweep HTML report carries the command, the parameters, the scenario and every result row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_planning_fakes import fake_sim  # noqa: F401

from dualpath_twin.planning.figures import sweep_heatmap
from dualpath_twin.planning.sweep import run_sweep
from dualpath_twin.report import PRINT_CSS_MARKER
from dualpath_twin.report.sweep import cli_command_line, sweep_report_html, write_sweep_report
from dualpath_twin.scenario import Scenario

GRID = {"cluster.prefill_nodes": [1, 2], "network.snic_gbps": [200, 400]}
SC = Scenario(name="sweep-scn", description="a tiny sweep", model={"name": "DS-27B"},
              workload={"agents": 8, "mode": "online", "arrival_rate_aps": 0.2})  # fmt: skip
CMD = "dualpath-twin sweep s.toml -g cluster.prefill_nodes=1,2 -g network.snic_gbps=200,400 -p basic,dualpath --html out.html"


@pytest.fixture
def result(fake_sim):  # noqa: F811
    return run_sweep(SC, GRID, ["basic", "dualpath"])


def _rows(html: str) -> list[list[str]]:
    sec = html[html.index('id="results"'):]
    sec = sec[:sec.index("</section>")]
    return [re.findall(r"<td>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", sec)]


def test_sweep_html_has_command_scenario_and_all_rows_before_figures(result, tmp_path: Path) -> None:
    fig = sweep_heatmap(result.to_frame(), "cluster.prefill_nodes", "network.snic_gbps", "prompt_tokens_per_s")
    out = write_sweep_report(tmp_path / "s.html", result, SC, CMD, [fig])
    html = out.read_text(encoding="utf-8")
    cmd = html[html.index('id="command"'):]
    assert "dualpath-twin sweep s.toml -g cluster.prefill_nodes=1,2" in cmd[:cmd.index("</section>")]
    assert "<td>grid: network.snic_gbps</td><td>200, 400</td>" in html
    assert "<td>designs</td><td>basic, dualpath</td>" in html
    assert "Scenario: sweep-scn" in html and "a tiny sweep" in html and "Scenario TOML" in html
    rows = [r for r in _rows(html) if r]
    df = result.to_frame()
    assert len(rows) == df.height == 8
    # every point's axes, design and throughput appear in its row
    for want, got in zip(df.iter_rows(named=True), rows, strict=True):
        assert got[0] == str(want["cluster.prefill_nodes"]) and got[1] == str(want["network.snic_gbps"])
        assert got[2] == want["policy"]
        assert float(got[4].replace(",", "")) == pytest.approx(want["prompt_tokens_per_s"], rel=1e-3)
    assert html.index('id="results"') < html.index('class="fig"')
    assert len(re.findall(r"plotly\.js v\d", html)) == 1
    assert PRINT_CSS_MARKER in html


def test_sweep_html_without_a_command_lists_the_parameters(result) -> None:
    html = sweep_report_html(result, SC.to_toml(), None, (), {"started from": "dashboard"})
    assert "the parameters below reproduce it" in html
    assert "<td>started from</td><td>dashboard</td>" in html
    assert "<td>objective</td><td>run</td>" in html
    assert 'class="fig"' not in html and len([r for r in _rows(html) if r]) == 8


def test_cli_command_line_quotes_arguments() -> None:
    assert cli_command_line(["/x/bin/dualpath-twin", "sweep", "a b.toml", "-g", "x=1,2"]) == \
        "dualpath-twin sweep 'a b.toml' -g x=1,2"


def test_sweep_html_prices_every_point_and_gives_tpot_in_ms(result) -> None:
    from dualpath_twin.economics import economics_from_rates
    from dualpath_twin.planning.common import override

    html = sweep_report_html(result, SC, None, ())
    assert "<th>$/hour</th>" in html and "<th>$ per M prompt tokens</th>" in html and "TPOT p90 (ms)" in html
    assert "TPOT p90 (s)" not in html
    for p in result.points:
        usd = economics_from_rates(override(SC, dict(p.point)), p.summary.prompt_tokens_per_s, 0.0).usd_per_hour
        assert f"<td>{usd:,.2f}</td>" in html
    assert "<th>$/hour</th>" not in sweep_report_html(result, None, None, ())  # no scenario, no prices
