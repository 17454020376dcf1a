"""Sizing (costs, pruning, Pareto), sensitivity, figures and the CLI commands, on the deterministic fake simulator."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import typer
from test_planning_fakes import fake_capacity_aps, fake_sim  # noqa: F401
from typer.testing import CliRunner

from dualpath_twin.cli.planning import register
from dualpath_twin.planning.figures import (
    figures_to_html,
    pareto_chart,
    sweep_heatmap,
    tornado_chart,
)
from dualpath_twin.planning.grid import PlanningError
from dualpath_twin.planning.sensitivity import sensitivity
from dualpath_twin.planning.sizing import (
    CostTable,
    dominated_by_failure,
    dominates_success,
    load_costs,
    pareto_front,
    size,
)
from dualpath_twin.planning.sweep import run_sweep
from dualpath_twin.scenario import Scenario, save

SC = Scenario(name="t", model={"name": "DS-27B"}, workload={"agents": 8, "mode": "online", "arrival_rate_aps": 0.2})


def test_pareto_front() -> None:
    pts = [(10, 1.0), (12, 0.9), (12, 2.0), (20, 2.0), (25, 3.0), (5, 0.5), (25, 2.5)]
    assert pareto_front(pts) == [5, 0, 2, 4]
    assert pareto_front([]) == []


def test_dominance_rules() -> None:
    assert dominates_success({"p": 2, "d": 4}, [{"p": 1, "d": 4}]) == {"p": 1, "d": 4}
    assert dominates_success({"p": 2, "d": 3}, [{"p": 1, "d": 4}]) is None
    fails = [{"p": 2, "d": 4}]
    assert dominated_by_failure({"p": 1, "d": 4}, fails) == {"p": 2, "d": 4}
    assert dominated_by_failure({"p": 3, "d": 1}, fails) is None


def test_cost_table(tmp_path: Path) -> None:
    costs = load_costs()
    assert "H800" in costs.gpu_hour_usd and costs.source.endswith("costs.toml")
    node = costs.node_cost_per_hour(Scenario())
    expected = 8 * costs.gpu_hour_usd["H800"] + costs.node_base_usd_per_hour + (400 + 8 * 400) * costs.nic_usd_per_gbps_port_hour
    assert node == pytest.approx(expected)
    assert costs.cluster_cost_per_hour(Scenario()) == pytest.approx(6 * expected)
    bad = tmp_path / "c.toml"
    bad.write_text("gpu_hour_usd = { H800 = -1 }\nnic_usd = 1\n")
    with pytest.raises(PlanningError, match=r"c\.toml.*nic_usd"):
        load_costs(bad)
    with pytest.raises(PlanningError, match="no price for GPU 'H800'.*add a line"):
        CostTable(gpu_hour_usd={"B200": 5}).node_cost_per_hour(Scenario())
    with pytest.raises(PlanningError, match="not found"):
        load_costs(tmp_path / "missing.toml")


@pytest.mark.usefixtures("fake_sim")
def test_size_finds_cheapest_and_prunes() -> None:
    vary = {"cluster.prefill_nodes": [0, 1, 2, 3], "cluster.decode_nodes": [1, 2, 4]}
    res = size(SC, 0.6, vary, policy="basic", tolerance=0.05)
    by = {(c.point["cluster.prefill_nodes"], c.point["cluster.decode_nodes"]): c for c in res.candidates}
    assert by[(0, 1)].status == "skipped" and "prefill_nodes" in by[(0, 1)].reason
    for c in res.candidates:
        if c.status in ("meets", "fails"):
            sc = SC.model_copy(deep=True)
            sc.cluster.prefill_nodes, sc.cluster.decode_nodes = c.point["cluster.prefill_nodes"], c.point["cluster.decode_nodes"]
            truth = fake_capacity_aps(sc.with_policy("basic")) * 0.875 >= 0.6
            assert (c.status == "meets") == truth, c.point
    assert any(c.status == "meets" and c.reason.startswith("implied") for c in res.candidates)
    cheapest = res.cheapest[0]
    assert all(c.cost_per_hour >= cheapest.cost_per_hour for c in res.candidates if c.status == "meets")
    assert res.pareto and all(c.capacity is not None for c in res.pareto)
    caps = [c.capacity_aps for c in res.pareto]
    assert caps == sorted(caps) and all(cap >= 0.6 * 0.95 for cap in caps)
    df = res.to_frame()
    assert df.filter(df["pareto"]).height == len(res.pareto)
    assert pareto_chart(res).data


@pytest.mark.usefixtures("fake_sim")
def test_sensitivity_ranks_parameters() -> None:
    res = sensitivity(SC, "basic", parameters=["cluster.decode_nodes", "network.snic_gbps", "network.pcie_gbps",
                                              "storage.read_gbps_total"], tolerance=0.05)
    assert res.metric == "capacity_aps" and res.baseline and res.baseline > 0
    # fake: capacity ~ sqrt(snic) x min(2P, D): swings 0.517 (SNIC 200 -> 600) and 0.5 (D 2 -> 6) of the
    # baseline, 3.4% apart, which a 5% search cannot order; each is found within the tolerance
    truth = {"network.snic_gbps": 1.5 ** 0.5 - 0.5 ** 0.5, "cluster.decode_nodes": 0.5}
    assert {r.path for r in res.rows[:2]} == set(truth)
    for r in res.rows[:2]:
        assert r.swing / res.baseline == pytest.approx(truth[r.path], abs=0.1)
    assert [r.swing for r in res.rows] == sorted((r.swing for r in res.rows), reverse=True)
    dn = next(r for r in res.rows if r.path == "cluster.decode_nodes")
    assert (dn.low_value, dn.high_value) == (2, 6) and dn.metric_low < res.baseline <= dn.metric_high
    assert res.rows[-1].path == "network.pcie_gbps" and res.rows[-1].swing == 0
    assert any("read_gbps_total" in s for s in res.skipped)
    fig = tornado_chart(res)
    assert len(fig.data) == 2 and list(fig.data[0].y)[-1] == res.rows[0].label  # largest swing on top
    off = sensitivity(SC.model_copy(update={"workload": SC.workload.model_copy(update={"mode": "offline"})}), "basic",
                      parameters=["cluster.decode_nodes"])
    assert off.metric == "jct_s" and off.rows[0].metric_low > off.rows[0].metric_high


@pytest.mark.usefixtures("fake_sim")
def test_figures_and_html() -> None:
    sw = run_sweep(SC, {"cluster.prefill_nodes": [1, 2], "network.snic_gbps": [200, 400]}, ["basic", "dualpath"])
    fig = sweep_heatmap(sw.to_frame(), "cluster.prefill_nodes", "network.snic_gbps", "prompt_tokens_per_s")
    assert len(fig.data) == 2  # one panel per policy
    assert len(fig.data[0].z) == 2 and len(fig.data[0].z[0]) == 2
    with pytest.raises(ValueError, match="not in the sweep frame"):
        sweep_heatmap(sw.to_frame(), "nope", "network.snic_gbps", "jct_s")
    html = figures_to_html([fig, fig])
    assert html.count("<html") == 1 and html.count("plotly.js v") <= 2


@pytest.mark.usefixtures("fake_sim")
def test_cli_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the run-size guard estimates real simulations (~30 min on 1 worker here); the fake answers at once
    monkeypatch.setenv("DUALPATH_TWIN_MAX_WALL_S", str(24 * 3600))
    app = typer.Typer()
    register(app)
    path = tmp_path / "s.toml"
    save(SC, path)
    r = CliRunner().invoke(app, ["capacity", str(path), "--policy", "basic,dualpath", "--json", "--workers", "1",
                                 "--html", str(tmp_path / "c.html"), "--db", str(tmp_path / "t.duckdb")])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    caps = {c["policy"]: c["capacity_aps"] for c in out["capacity"]}
    assert caps["dualpath"] > caps["basic"] > 0
    assert (tmp_path / "c.html").stat().st_size > 100_000
    from dualpath_twin.planning.storeio import list_capacity, open_sweep_store

    stored = list_capacity(open_sweep_store(tmp_path / "t.duckdb"))
    assert stored["search_id"].to_list() == [out["search_id"]]
    assert stored["capacity_aps"].to_list() == [[caps["basic"], caps["dualpath"]]]
    r = CliRunner().invoke(app, ["capacity", str(path), "--policy", "basic", "--json", "--workers", "1", "--no-save",
                                 "--db", str(tmp_path / "t.duckdb")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["search_id"] is None
    assert list_capacity(open_sweep_store(tmp_path / "t.duckdb")).height == 1
    r = CliRunner().invoke(app, ["sweep", str(path), "--grid", "cluster.prefill_nodes=1..2", "--grid",
                                 "network.snic_gbps=200..400x2", "--json", "--workers", "1", "--db", str(tmp_path / "t.duckdb")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["new_runs"] == 4
    argv = ["sweep", str(path), "--grid", "cluster.prefill_nodes=1..2", "--grid",
            "network.snic_gbps=200..400x2", "--json", "--workers", "1", "--db", str(tmp_path / "t.duckdb"),
            "--html", str(tmp_path / "s.html")]
    monkeypatch.setattr(sys, "argv", ["dualpath-twin", *argv])  # the page records the command as typed
    r = CliRunner().invoke(app, argv)
    assert json.loads(r.stdout)["new_runs"] == 0
    page = (tmp_path / "s.html").read_text()
    # the sweep page carries how it was made, the scenario and every point's row, before the figures
    assert "sweep" in page and "--grid" in page and "network.snic_gbps=200..400x2" in page
    assert SC.name in page and page.count("<tr") >= 4 and page.index("<table") < page.index("plotly")
    r = CliRunner().invoke(app, ["sweep", str(path), "--grid", "cluster.prefil_nodes=1,2", "--workers", "1", "--no-save"])
    assert r.exit_code == 2 and "did you mean cluster.prefill_nodes" in r.output
    r = CliRunner().invoke(app, ["size", str(path), "--target-aps", "0.6", "--vary", "cluster.prefill_nodes=1..2",
                                 "--vary", "cluster.decode_nodes=1,2,4", "--policy", "basic", "--workers", "1", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["cheapest"]
    # the fake simulator is instant; the guard estimates the real one (5 searches of ~3,200 s windows: over 30 min)
    r = CliRunner().invoke(app, ["sensitivity", str(path), "--param", "cluster.decode_nodes,network.snic_gbps",
                                 "--workers", "1", "--json", "--max-wall-s", "1e6"])
    assert r.exit_code == 0, r.output
    # the fake's two swings are 3.4% apart, under the 5% tolerance: both lead, in either order
    assert {row["path"] for row in json.loads(r.stdout)["rows"][:2]} == {"network.snic_gbps", "cluster.decode_nodes"}


def test_planning_page_renders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DUALPATH_TWIN_DB", str(tmp_path / "ui.duckdb"))  # the Capacity tab lists the store's searches

    at = AppTest.from_string("from dualpath_twin.ui.planning_page import render\nrender()", default_timeout=30)
    at.run()
    assert not at.exception
    assert [t.label for t in at.tabs] == ["Sweep", "Capacity", "Sizing", "Sensitivity", "Decision"]
    assert any(b.label == "find capacity" for b in at.button)
