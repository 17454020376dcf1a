"""A capacity search run from the CLI is saved in the store and the dashboard's Capacity tab shows the same numbers.

Real simulation core, tiny setting (~5 s): the online-serving 2P4D scenario with 8K contexts, a 20 s arrival
window, 10 Gbps storage NICs (so the SNIC binds Basic and DualPath's second read path matters) and a 1 s TTFT
limit, searched to a 25% tolerance.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from dualpath_twin import cli
from dualpath_twin.planning.capacity import CapacityPoint, CapacityResult
from dualpath_twin.planning.common import scenario_from_toml
from dualpath_twin.planning.storeio import load_capacity, save_capacity
from dualpath_twin.scenario import Scenario
from dualpath_twin.store import open_store
from dualpath_twin.ui import backend

ROOT = Path(__file__).resolve().parents[1]
ONLINE = str(ROOT / "scenarios" / "examples" / "online-serving.toml")
PAGE = str(ROOT / "dualpath_twin" / "ui" / "pages" / "planning.py")
TINY = [
    "--set", "workload.max_context_tokens=8192", "--set", "run.online_window_s=20", "--set", "network.snic_gbps=25",
    "--set", "slo.ttft_s=1", "--window-s", "150", "--start-aps", "4", "--tolerance", "0.25", "--max-evaluations", "8",
    "--workers", "1",
]  # fmt: skip


@pytest.fixture
def db(dashboard_db: Path) -> Path:
    """The shared fresh store (tests/conftest.py)."""
    return dashboard_db


def _page(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.query_params.update(query or {})
    at.run()
    assert not at.exception, at.exception
    return at


def _nan_none(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def _assert_page_shows(at: AppTest, out: dict[str, Any]) -> None:
    """Tiles, capacity table, curve table and chart of the Capacity tab equal the CLI's --json output."""
    caps = out["capacity"]
    tab = next(t for t in at.tabs if t.label == "Capacity")
    assert at.selectbox(key="cap_pick").value == out["search_id"]
    tiles = {m.label: m.value for m in tab.metric}
    assert tiles == {f"{c['policy']} capacity": f"{c['capacity_aps']:.4g} agents/s" for c in caps}
    per_policy, curve = (d.value for d in tab.dataframe)
    # human headings only (no snake_case or dotted names), the same numbers as the CLI
    assert not [c for c in [*per_policy.columns, *curve.columns] if "_" in c or "." in c]
    assert per_policy["design"].tolist() == [c["policy"] for c in caps]
    assert per_policy["capacity (agents/s)"].tolist() == [c["capacity_aps"] for c in caps]
    assert [_nan_none(v) for v in per_policy["fails at (agents/s)"]] == [c["hi_aps"] for c in caps]
    assert per_policy["converged"].tolist() == [c["converged"] for c in caps]
    assert per_policy["runs"].tolist() == [c["evaluations"] for c in caps]
    shown = [
        (r["design"], r["rate (agents/s)"], bool(r["meets SLO"]), _nan_none(r["TTFT p90 (s)"]),
         _nan_none(r["SLO attainment (%)"]), r["note"])
        for r in curve.to_dict("records")
    ]
    cli_curve = [
        (c["policy"], p["aps"], p["meets"], p["ttft_p90_s"],
         None if p["slo_attainment"] is None else pytest.approx(p["slo_attainment"] * 100), p["reason"])
        for c in caps for p in c["curve"]
    ]  # fmt: skip
    assert shown == cli_curve
    tpot = [_nan_none(v) for v in curve["TPOT p90 (ms)"]]
    cli_tpot = [None if p["tpot_p90_s"] is None else p["tpot_p90_s"] * 1000 for c in caps for p in c["curve"]]
    assert tpot == pytest.approx(cli_tpot)
    # the chart: per policy, TTFT p90 / TPOT p90 / SLO attainment against the same measured rates
    charts = [json.loads(c.proto.spec) for c in tab.get("plotly_chart")]
    fig = next(c for c in charts if "measured SLO curve" in json.dumps(c["layout"].get("title", "")))
    for c in caps:
        # the search's own runs as the line; replicas and horizon checks as the 're-measured' markers
        own = [p for p in c["curve"] if p["replica"] == 0 and p["horizon_window_s"] is None]
        again = [p for p in c["curve"] if p not in own]
        for name, pts in ((c["policy"], own), (f"{c['policy']} re-measured", again)):
            traces = [t for t in fig["data"] if t["name"] == name]
            assert len(traces) == (3 if pts else 0)
            assert all(list(t["x"]) == [p["aps"] for p in pts] for t in traces)
            if pts:
                assert list(traces[0]["y"]) == [p["ttft_p90_s"] for p in pts]
                assert list(traces[2]["y"]) == [p["slo_attainment"] for p in pts]


def test_cli_capacity_search_is_shown_by_the_dashboard(db: Path) -> None:
    r = CliRunner().invoke(cli.app, ["capacity", ONLINE, "--policy", "basic,dualpath", "--json", "--db", str(db), *TINY])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    caps = {c["policy"]: c for c in out["capacity"]}
    # a real search: each policy bracketed between a meeting and a failing rate, DualPath above Basic
    for c in caps.values():
        assert c["hi_aps"] is not None and 0 < c["capacity_aps"] < c["hi_aps"]
        assert any(p["meets"] for p in c["curve"]) and any(not p["meets"] for p in c["curve"])
    assert caps["dualpath"]["capacity_aps"] > caps["basic"]["capacity_aps"]
    assert out["search_id"].startswith("cap-")
    # the store holds the same search, settings included
    rec = load_capacity(open_store(db), out["search_id"])
    assert [res.model_dump(mode="json") for res in rec.results] == out["capacity"]
    assert rec.spec["source"] == "cli" and "network.snic_gbps=25" in rec.spec["overrides"]

    at = _page()
    _assert_page_shows(at, out)
    # each tile says what the cluster costs per agent/s it serves (the stored scenario, the session cost table)
    from dualpath_twin.economics import cost_table

    usd = cost_table(None).cluster_cost_per_hour(rec_sc := scenario_from_toml(rec.scenario_toml))
    assert usd > 0 and rec_sc.cluster.prefill_nodes == 2
    per = [c.value for c in at.caption if "per agent/s served" in c.value]
    for c in out["capacity"]:
        assert f"cluster ${usd:,.2f}/hour: ${usd / c['capacity_aps']:,.2f}/hour per agent/s served (session cost table)" in per

    # a newer search becomes the default; the CLI's link (?capacity=<id prefix>) still opens this one
    decoy = CapacityResult(policy="basic", capacity_aps=123.0, lo_aps=123.0, hi_aps=130.0, tolerance=0.1,
                           converged=True, evaluations=1, curve=[CapacityPoint(aps=123.0, meets=True)])
    decoy_id = save_capacity(open_store(db), Scenario(name="decoy"), [decoy])
    backend._STORES.clear()
    at = _page()
    assert at.selectbox(key="cap_pick").value == decoy_id
    assert [m.value for m in at.metric] == ["123 agents/s"]
    _assert_page_shows(_page({"capacity": out["search_id"][:-2]}), out)


def test_page_without_stored_searches_says_how_to_make_one(db: Path) -> None:
    at = _page()
    assert any("dualpath-twin capacity" in i.value for i in at.info)
    assert not at.metric


def test_search_run_on_the_page_is_saved_and_selected(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_planning_fakes import fake_simulate

    from dualpath_twin import api
    from dualpath_twin.planning.storeio import list_capacity

    monkeypatch.setattr(api, "simulate", fake_simulate)  # in-process stand-in core: runs inline (1 worker)
    at = _page()
    at.number_input(key="cap_w").set_value(1)
    at.button(key="cap_go").click().run()
    assert not at.exception, at.exception
    stored = list_capacity(open_store(db))
    assert stored.height == 1 and stored["policies"].to_list() == [["basic", "dualpath"]]
    rec = load_capacity(open_store(db), stored["search_id"][0])
    assert rec.spec["source"] == "dashboard" and rec.scenario_name == "quick"  # the session's scenario (Scenario page) by default
    assert at.selectbox(key="cap_pick").value == rec.search_id
    assert {m.label: m.value for m in at.metric} == {
        f"{r.policy} capacity": f"{r.capacity_aps:.4g} agents/s" for r in rec.results
    }
    assert rec.results[1].capacity_aps > rec.results[0].capacity_aps > 0  # the fake cluster: DualPath x1.5
    est = [c.value for c in at.caption if c.value.startswith("Run-size estimate:")]
    assert len(est) == 1  # one bullet per design, not one dense paragraph
    assert [ln.split(":")[0] for ln in est[0].splitlines()[1:]] == ["- **basic**", "- **dualpath**"]
    assert all(" runs" in ln for ln in est[0].splitlines()[1:])
