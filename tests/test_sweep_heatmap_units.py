"""The sweep heatmap shows TPOT in ms (values, label, colour bar), like the sweep table and the report."""

from __future__ import annotations

import pytest

from dualpath_twin.planning import figures
from dualpath_twin.planning.sweep import SweepPointResult, SweepResult
from dualpath_twin.store.synthetic import synthetic_result


def _sweep() -> SweepResult:
    pts = []
    for i, (p, g) in enumerate([(1, 100), (1, 200), (2, 100), (2, 200)]):
        s = synthetic_result("basic", seed=i, n_rounds=20, n_samples=10).summary
        pts.append(SweepPointResult(point={"cluster.prefill_nodes": p, "network.snic_gbps": g}, policy="basic",
                                    key=str(i), status="done", summary=s))
    return SweepResult(sweep_id="sw-1", name="t", grid={"cluster.prefill_nodes": [1, 2], "network.snic_gbps": [100, 200]},
                       policies=["basic"], objective="run", points=pts)


def test_heatmap_tpot_values_and_label_are_in_ms() -> None:
    res = _sweep()
    tpot_s = [p.summary.tpot_s.p90 for p in res.points]
    assert all(v is not None and v < 1 for v in tpot_s)  # stored in seconds
    fig = figures.sweep_heatmap(res.to_frame(), "network.snic_gbps", "cluster.prefill_nodes", "tpot_p90_ms")
    z = [v for row in fig.data[0].z for v in row]
    assert sorted(z) == pytest.approx(sorted(v * 1000 for v in tpot_s))
    assert fig.layout.coloraxis.colorbar.title.text == "TPOT p90 (ms)"
    assert "TPOT p90 (ms)" in fig.layout.title.text and "(s)" not in fig.layout.title.text


def test_heatmap_offers_tpot_in_ms_only_and_maps_the_stored_name() -> None:
    res = _sweep()
    metrics = figures.heatmap_metrics(res.to_frame())
    assert "tpot_p90_ms" in metrics and "tpot_p90_s" not in metrics
    assert figures.METRIC_LABELS["tpot_p90_ms"] == "TPOT p90 (ms)" and "tpot_p90_s" not in figures.METRIC_LABELS
    # `--heatmap X,Y,tpot_p90_s` (the stored column) still plots milliseconds
    fig = figures.sweep_heatmap(res.to_frame(), "network.snic_gbps", "cluster.prefill_nodes", "tpot_p90_s")
    assert fig.layout.coloraxis.colorbar.title.text == "TPOT p90 (ms)"
    assert max(v for row in fig.data[0].z for v in row) == pytest.approx(max(p.summary.tpot_s.p90 for p in res.points) * 1000)


def test_heatmap_cells_match_the_sweep_report_table() -> None:
    import re

    from dualpath_twin.report.sweep import sweep_report_html

    res = _sweep()
    fig = figures.sweep_heatmap(res.to_frame(), "network.snic_gbps", "cluster.prefill_nodes", "tpot_p90_ms")
    html = sweep_report_html(res, figures=[])
    start = html.rindex("<table", 0, html.index("<th>TPOT p90 (ms)</th>"))
    tab = html[start:html.index("</table>", start)]
    head = re.findall(r"<th>(.*?)</th>", tab)
    col = head.index("TPOT p90 (ms)")
    body = tab[tab.index("</tr>"):]
    table_ms = [float(re.findall(r"<td>(.*?)</td>", r)[col].replace(",", "")) for r in re.findall(r"<tr>(.*?)</tr>", body)[:4]]
    heat_ms = [v for row in fig.data[0].z for v in row]
    assert sorted(table_ms) == pytest.approx(sorted(heat_ms), rel=1e-3)
    assert all(1 <= v < 1000 for v in heat_ms)  # tens of ms, not a fraction of a second


def test_cli_sweep_table_prints_tpot_in_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    from typer.testing import CliRunner

    from dualpath_twin.cli import app

    monkeypatch.setenv("COLUMNS", "300")
    quick = Path(__file__).resolve().parents[1] / "scenarios" / "examples" / "quick.toml"
    r = CliRunner().invoke(app, ["sweep", str(quick), "--grid", "cluster.prefill_nodes=1,2", "--policies", "basic",
                                 "--workers", "1", "--no-save"])
    assert r.exit_code == 0, r.output
    assert "tpot_p90_ms" in r.stdout and "tpot_p90_s" not in r.stdout


def test_heatmap_axis_titles_are_the_planning_tables_human_labels() -> None:
    from dualpath_twin.labels import axis_label
    from dualpath_twin.ui import decision

    fig = figures.sweep_heatmap(_sweep().to_frame(), "network.snic_gbps", "cluster.prefill_nodes", "jct_s")
    assert fig.layout.xaxis.title.text == "SNIC (Gb/s)" == decision.axis_label("network.snic_gbps")
    assert fig.layout.yaxis.title.text == "prefill nodes" == axis_label("cluster.prefill_nodes")
    shown = [fig.layout.title.text, fig.layout.xaxis.title.text, fig.layout.yaxis.title.text, fig.data[0].hovertemplate]
    assert not any("." in t.split("<extra>")[0].replace("%{z:.4g}", "") for t in shown), shown  # no dotted field names
    # a field outside the catalogue gets the builder's label, not its path
    frame = _sweep().to_frame().rename({"network.snic_gbps": "cluster.decode_tp_gpus"})
    fig = figures.sweep_heatmap(frame, "cluster.decode_tp_gpus", "cluster.prefill_nodes", "jct_s")
    assert fig.layout.xaxis.title.text == "decode TP (GPUs per engine)"
    frame = _sweep().to_frame().rename({"network.snic_gbps": "storage.io_latency_us"})
    assert figures.sweep_heatmap(frame, "storage.io_latency_us", "cluster.prefill_nodes", "jct_s").layout.xaxis.title.text == "I/O latency (µs)"


def test_heatmap_cells_print_large_numbers_without_exponents() -> None:
    fig = figures.sweep_heatmap(_sweep().to_frame(), "network.snic_gbps", "cluster.prefill_nodes", "prompt_tokens_per_s")
    cells = [t for row in fig.data[0].text for t in row]
    assert cells and not any("e+" in t for t in cells), cells
    assert figures._cell(1190.4) == "1,190" and figures._cell(24.44) == "24.4" and figures._cell(None) == ""
