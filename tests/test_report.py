"""HTML/PDF report and Plotly figure builders."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
import pytest

from dualpath_twin import report as R
from dualpath_twin.report import ReportError, build_report, build_report_from_results
from dualpath_twin.report import figures as F
from dualpath_twin.store import open_store
from dualpath_twin.store.synthetic import synthetic_result

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "embed", "source", "track", "wbr"}


class _Checker(HTMLParser):
    """Collects section ids and checks that tags nest properly."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.sections: list[str] = []
        self.script_srcs: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and a.get("id"):
            self.sections.append(a["id"] or "")
        if tag == "script" and a.get("src"):
            self.script_srcs.append(a["src"] or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()


def _check(html_text: str) -> _Checker:
    c = _Checker()
    c.feed(html_text)
    c.close()
    return c


@pytest.fixture(scope="module")
def two_results() -> list:
    return [
        synthetic_result("basic", n_rounds=60, n_samples=40),
        synthetic_result("dualpath", n_rounds=60, n_samples=40),
    ]


def test_report_from_results_is_self_contained(tmp_path: Path, two_results: list) -> None:
    out = build_report_from_results(two_results, tmp_path / "r.html")
    text = out.read_text(encoding="utf-8")
    assert len(re.findall(r"plotly\.js v\d", text)) == 1  # the library is inlined exactly once
    assert not re.search(r"<script[^>]+src=[\"']https?:", text)
    c = _check(text)
    assert not c.errors and c.stack == []
    assert c.script_srcs == []
    for sec in R.SECTIONS + ("comparison",):
        assert sec in c.sections, sec
    # content: SLO, binding resource, sentence, ratios
    assert "TTFT ≤ 4 s and TPOT ≤ 50 ms" in text
    assert "storage NIC reads" in text and "storage NICs bind" in text
    assert "Ratios are against basic" in text
    assert re.search(r"\(\d+\.\d\dx\)", text)
    assert text.count('class="plotly-graph-div"') >= 12


def test_single_run_report_from_store(tmp_path: Path, monkeypatch) -> None:
    st = open_store(tmp_path / "twin.duckdb")
    res = synthetic_result(
        "oracle", n_rounds=30, n_samples=2500, prefill_nodes=1, decode_nodes=1, cnics_per_node=1
    )
    rid = st.save_run(res)
    asked: list[int | None] = []
    real = st.get_timeseries

    def spy(run_id: str, metrics: list[str] | None = None, max_points: int | None = 2000) -> pl.DataFrame:
        asked.append(max_points)
        out = real(run_id, metrics, max_points)
        assert out.group_by("metric", "entity").len()["len"].max() <= R.MAX_POINTS
        return out

    monkeypatch.setattr(st, "get_timeseries", spy)
    out = build_report(st, [rid[:-2]], tmp_path / "one.html")  # a unique prefix is enough
    assert asked == [R.MAX_POINTS]  # downsampled by the store's SQL, not in Python
    text = out.read_text(encoding="utf-8")
    c = _check(text)
    assert not c.errors
    assert "comparison" not in c.sections and "throughput" in c.sections
    assert rid in text
    assert len(re.findall(r"plotly\.js v\d", text)) == 1


def test_report_errors(tmp_path: Path, two_results: list) -> None:
    with pytest.raises(ReportError, match=r"\.html or \.pdf"):
        build_report_from_results(two_results, tmp_path / "r.txt")
    with pytest.raises(ReportError, match="no results"):
        build_report_from_results([], tmp_path / "r.html")
    st = open_store(tmp_path / "twin.duckdb")
    with pytest.raises(ReportError, match="no run ids"):
        build_report(st, [], tmp_path / "r.html")


def test_pdf_without_chromium_is_a_clear_error(tmp_path: Path, two_results: list, monkeypatch) -> None:
    monkeypatch.setattr(R, "find_chromium", lambda: None)
    with pytest.raises(ReportError, match="needs Chromium"):
        build_report_from_results(two_results[:1], tmp_path / "r.pdf")


@pytest.mark.slow
@pytest.mark.skipif(R.find_chromium() is None, reason="needs Debian's chromium")
def test_pdf_report(tmp_path: Path, two_results: list) -> None:
    out = build_report_from_results(two_results[:1], tmp_path / "r.pdf")
    data = out.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000


# ------------------------------------------------------------------ figures


def _axis_titles(fig: go.Figure) -> list[str]:
    lay = fig.to_dict()["layout"]
    return [v["title"]["text"] for k, v in lay.items() if k.startswith(("xaxis", "yaxis")) and v.get("title")]


def test_figures_have_titles_units_and_policy_colours(two_results: list) -> None:
    ts = {"basic": two_results[0].timeseries, "dualpath": two_results[1].timeseries}
    rounds = {"basic": two_results[0].rounds, "dualpath": two_results[1].rounds}
    sums = {"basic": two_results[0].summary, "dualpath": two_results[1].summary}
    figs = [
        F.throughput_figure(ts),
        F.storage_throughput_figure(ts),
        F.occupancy_figure(ts),
        F.nic_utilization_figure(ts["basic"]),
        F.nic_heatmap_figure(ts["basic"], "snic_rx_util"),
        F.nic_heatmap_figure(ts["basic"], "cnic_tx_util"),
        F.latency_cdf_figure(rounds, "ttft_s", 4.0),
        F.latency_cdf_figure(rounds, "tpot_s", 0.05),
        F.slo_attainment_figure(sums),
        F.ttft_breakdown_figure(sums),
        F.comparison_figure(sums),
        F.bounds_figure(sums["dualpath"]),
    ]
    for fig in figs:
        assert fig.layout.title.text
        titles = _axis_titles(fig)
        assert titles and all(t for t in titles)
        assert any("(" in t for t in titles), titles  # a unit in brackets somewhere on the axes
    thr = figs[0]
    colours = {t.name: t.line.color for t in thr.data}
    assert colours["basic prompt"] == F.POLICY_COLORS["basic"]
    assert colours["dualpath gen"] == F.POLICY_COLORS["dualpath"]
    bars = figs[10].data[0]
    assert list(bars.marker.color) == [F.POLICY_COLORS["basic"], F.POLICY_COLORS["dualpath"]]
    assert bars.text[0] == "1.00x"
    ratio = two_results[1].summary.generated_tokens_per_s / two_results[0].summary.generated_tokens_per_s
    assert bars.text[1] == f"{ratio:.2f}x"


def test_heatmap_orders_prefill_before_decode() -> None:
    res = synthetic_result(
        "basic", n_rounds=5, n_samples=6, prefill_nodes=2, decode_nodes=11, cnics_per_node=1
    )
    fig = F.nic_heatmap_figure(res.timeseries, "snic_rx_util")
    ys = list(fig.data[0].y)
    assert ys[:2] == ["P0.snic", "P1.snic"] and ys[2:4] == ["D0.snic", "D1.snic"] and ys[-1] == "D10.snic"
    z = fig.data[0].z
    assert len(z) == 13 and len(z[0]) == 6
    assert max(max(r) for r in z) <= 100


def test_latency_cdf_and_empty_inputs() -> None:
    df = pl.DataFrame({"ttft_s": [1.0, 2.0, 3.0, None, 4.0]})
    fig = F.latency_cdf_figure(df, "ttft_s", slo_s=2.5)
    assert list(fig.data[0].x) == [1.0, 2.0, 3.0, 4.0]
    assert list(fig.data[0].y) == [25.0, 50.0, 75.0, 100.0]
    assert any(s.x0 == 2.5 for s in fig.layout.shapes)
    empty = pl.DataFrame(
        schema={"t_s": pl.Float64, "metric": pl.Utf8, "entity": pl.Utf8, "role": pl.Utf8, "value": pl.Float64}
    )
    assert F.nic_heatmap_figure(empty).layout.annotations  # explains there is no data
    assert F.bounds_figure(
        synthetic_result("basic").summary.model_copy(update={"bound": None})
    ).layout.annotations


def test_run_styles_tell_same_policy_runs_apart() -> None:
    st = F.run_styles(["dualpath a", "dualpath b", "mystery"])
    assert st["dualpath a"][0] == st["dualpath b"][0] == F.POLICY_COLORS["dualpath"]
    assert st["dualpath a"][1] != st["dualpath b"][1]
    assert st["mystery"][0] not in F.POLICY_COLORS.values()


def test_real_simulation_is_stored_and_reported(tmp_path: Path) -> None:
    from dualpath_twin import api, scenario

    repo = Path(__file__).resolve().parents[1]
    sc = scenario.apply_overrides(
        scenario.load(repo / "scenarios" / "examples" / "quick.toml"),
        {"workload.agents": 4, "workload.max_context_tokens": 4096},
    )
    res = api.simulate(sc)
    st = open_store(tmp_path / "twin.duckdb")
    rid = st.save_run(res)
    assert st.get_summary(rid) == res.summary
    assert st.get_rounds(rid).equals(res.rounds)
    assert st.get_timeseries(rid, max_points=None).height == res.timeseries.height
    assert st.list_runs().row(0, named=True)["scenario_name"] == "quick"
    assert scenario.from_toml(st.get_scenario_toml(rid)) == sc
    out = build_report(st, [rid], tmp_path / "real.html")
    text = out.read_text(encoding="utf-8")
    c = _check(text)
    assert not c.errors and set(R.SECTIONS) <= set(c.sections)
    assert len(re.findall(r"plotly\.js v\d", text)) == 1
    assert "P0.snic" in text and "D0.snic" in text  # the SNIC heatmap covers prefill and decode nodes


def test_node_level_nic_aggregates_are_not_double_counted() -> None:
    rows = []
    for t in (0.0, 1.0):
        rows += [
            (t, "cnic_rx_util", "P0.cnic0", "prefill", 0.2),
            (t, "cnic_rx_util", "P0.cnic1", "prefill", 0.4),
        ]
        rows.append((t, "cnic_rx_util", "P0.cnic", "prefill", 0.9))  # an aggregate row the core may add
    ts = pl.DataFrame(rows, schema=["t_s", "metric", "entity", "role", "value"], orient="row")
    assert list(F.nic_heatmap_figure(ts, "cnic_rx_util").data[0].y) == ["P0.cnic0", "P0.cnic1"]
    line = [t for t in F.nic_utilization_figure(ts).data if t.name == "prefill CNIC rx"][0]
    assert list(line.y) == pytest.approx([30.0, 30.0])
