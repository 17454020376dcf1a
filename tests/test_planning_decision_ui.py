"""The Planning page's Decision tab: the best configuration under the SLO and a budget, with its run one click away.

Real simulation core, tiny setting (~1 s): a 1P DS-27B cluster of 2 GPUs, 8 agents with 4K contexts, swept over
1 and 2 decode nodes under DualPath and saved in a fresh store, so every point has a run id.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dualpath_twin.planning.storeio import open_sweep_store
from dualpath_twin.planning.sweep import SweepResult, run_sweep
from dualpath_twin.scenario import Scenario
from dualpath_twin.ui import decision as dec

ROOT = Path(__file__).resolve().parents[1]
PAGE_APP = "from dualpath_twin.ui.planning_page import render\nrender()"
APP = str(ROOT / "app.py")
PLANNING_PAGE = "dualpath_twin/ui/pages/planning.py"
SC = Scenario(
    name="tiny",
    model={"name": "DS-27B"},
    cluster={"prefill_nodes": 1, "decode_nodes": 1, "gpus_per_node": 2},
    network={"cnics_per_node": 2},
    workload={"agents": 8, "dataset": "paper-32k", "max_context_tokens": 4096},
    run={"max_sim_time_s": 600},
)


@pytest.fixture
def db(dashboard_db: Path) -> Path:
    """The shared fresh store (tests/conftest.py)."""
    return dashboard_db


@pytest.fixture
def sweep(db: Path) -> SweepResult:
    """A real 2-point sweep (1 and 2 decode nodes, DualPath), its runs saved in the store."""
    store = open_sweep_store()
    try:
        res = run_sweep(SC, {"cluster.decode_nodes": [1, 2]}, ["dualpath"], store=store)
    finally:
        store.close()
    assert [p.status for p in res.points] == ["done", "done"], [p.reason for p in res.points]
    assert all(p.run_id for p in res.points)
    return res


def _page(sweep: SweepResult | None = None, budget: float | None = None, rank: str = "throughput") -> AppTest:
    """The Planning page with a sweep in the session; ``rank`` set on the Decision tab (default here: throughput)."""
    at = AppTest.from_string(PAGE_APP, default_timeout=60)
    if sweep is not None:
        at.session_state["planning_sweep"] = sweep
        at.session_state["planning_sweep_sc"] = SC
    at.run()
    assert not at.exception, at.exception
    if sweep is not None and rank != "value":
        at.radio(key="dec_rank").set_value(rank).run()
        assert not at.exception, at.exception
    if budget is not None:
        at.number_input(key="dec_budget").set_value(budget).run()
        assert not at.exception, at.exception
    return at


def _tab(at: AppTest):
    return next(t for t in at.tabs if t.label == "Decision")


def _cost(res: SweepResult, decode_nodes: int) -> float:
    p = next(p for p in res.points if p.point["cluster.decode_nodes"] == decode_nodes)
    cost = dec.point_cost(SC, p.point, p.policy, p.summary)
    assert cost is not None and cost > 0
    return cost


def test_no_result_yet_says_so(db: Path) -> None:
    tab = _tab(_page())
    assert [w.value for w in tab.warning] == ["No sweep or sizing result yet: run one on the Sweep or Sizing tab."]
    assert not tab.success and not tab.dataframe


def test_real_sweep_names_the_best_design_and_its_cost(sweep: SweepResult) -> None:
    at = _page(sweep)
    tab = _tab(at)
    assert not tab.warning
    (verdict,) = [s.value for s in tab.success]
    # both points meet the SLO; 2 decode nodes has the higher prompt throughput, and costs more
    cost1, cost2 = _cost(sweep, 1), _cost(sweep, 2)
    assert cost2 > cost1
    assert verdict.startswith(f"Best configuration meeting the SLO: 2 decode nodes (dualpath) at ${cost2:,.2f}/hour (sweep)")
    table = tab.dataframe[0].value
    assert list(table.columns[:6]) == ["pick", "design", "source", "$/hour", "meets SLO", "why"]
    assert {"prompt tokens/s", "TTFT p90 (s)", "TPOT p90 (ms)", "run"} <= set(table.columns)
    assert table["design"].tolist() == ["2 decode nodes (dualpath)", "1 decode node (dualpath)"]
    assert table["pick"].tolist() == ["best", "runner-up"]
    assert table["$/hour"].tolist() == pytest.approx([cost2, cost1])
    by_design = {p.point["cluster.decode_nodes"]: p for p in sweep.points}
    assert table["run"].tolist() == [by_design[2].run_id, by_design[1].run_id]
    assert table["prompt tokens/s"].tolist() == pytest.approx(
        [by_design[2].summary.prompt_tokens_per_s, by_design[1].summary.prompt_tokens_per_s])
    # a budget between the two costs picks the cheaper point
    tab = _tab(_page(sweep, budget=(cost1 + cost2) / 2))
    (verdict,) = [s.value for s in tab.success]
    assert f": 1 decode node (dualpath) at ${cost1:,.2f}/hour (sweep)" in verdict
    assert f"within ${(cost1 + cost2) / 2:,.2f}/hour" in verdict


def test_by_default_the_best_is_the_most_prompt_tokens_per_dollar(sweep: SweepResult) -> None:
    """Value ranking (the default): the point with the most prompt tokens per $ among those meeting the SLO."""
    at = _page(sweep, rank="value")
    assert at.radio(key="dec_rank").value == "value"
    per_usd = {}
    for p in sweep.points:
        per_usd[p.point["cluster.decode_nodes"]] = p.summary.prompt_tokens_per_s * 3600 / _cost(sweep, p.point["cluster.decode_nodes"])
    best = max(per_usd, key=per_usd.get)
    assert per_usd[best] != per_usd[3 - best]
    (verdict,) = [s.value for s in _tab(at).success]
    name = "1 decode node" if best == 1 else f"{best} decode nodes"
    assert verdict.startswith(f"Best configuration meeting the SLO: {name} (dualpath) at ${_cost(sweep, best):,.2f}/hour")
    table = _tab(at).dataframe[0].value
    assert table["prompt tokens per $"].tolist() == pytest.approx([per_usd[best], per_usd[3 - best]])
    # the same choices ranked by throughput put the faster point first
    at.radio(key="dec_rank").set_value("throughput").run()
    fastest = max(sweep.points, key=lambda p: p.summary.prompt_tokens_per_s).point["cluster.decode_nodes"]
    assert [s.value for s in _tab(at).success][0].startswith(f"Best configuration meeting the SLO: {fastest} decode node")


def test_a_budget_below_every_cost_names_the_cheapest_meeting_the_slo(sweep: SweepResult) -> None:
    cost1 = _cost(sweep, 1)
    tab = _tab(_page(sweep, budget=1.0))
    assert not tab.success
    (warning,) = [w.value for w in tab.warning]
    assert warning == (f"Nothing meets the SLO within $1.00/hour; the cheapest that meets it is "
                       f"1 decode node (dualpath) at ${cost1:,.2f}/hour.")
    table = tab.dataframe[0].value
    assert table["pick"].tolist() == ["cheapest meeting the SLO"]



def test_the_minimum_attainment_rules_out_a_point(sweep: SweepResult) -> None:
    """The 2-decode point made to reach only 90 % attainment: at a 95 % minimum the 1-decode point is best."""
    import copy

    res = copy.deepcopy(sweep)
    two = next(p for p in res.points if p.point["cluster.decode_nodes"] == 2)
    assert all(p.summary.slo_attainment == 1.0 for p in res.points)  # the tiny run meets every request's limits
    two.summary = two.summary.model_copy(update={"slo_attainment": 0.9})
    at = _page(res)
    assert [s.value for s in _tab(at).success][0].startswith("Best configuration meeting the SLO: 2 decode nodes")
    at.number_input(key="dec_att").set_value(95.0).run()
    assert not at.exception, at.exception
    tab = _tab(at)
    (verdict,) = [s.value for s in tab.success]
    assert verdict.startswith("Best configuration meeting the SLO: 1 decode node (dualpath)")
    table = tab.dataframe[0].value
    assert table["design"].tolist() == ["1 decode node (dualpath)"]  # the other point misses: not a runner-up

def test_the_best_run_opens_on_the_results_page(sweep: SweepResult) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["planning_sweep"] = sweep
    at.session_state["planning_sweep_sc"] = SC
    at.run()
    at.switch_page(PLANNING_PAGE).run()
    assert not at.exception, at.exception
    at.radio(key="dec_rank").set_value("throughput").run()
    best = next(p for p in sweep.points if p.point["cluster.decode_nodes"] == 2)
    btn = at.button(key="dec_open_0")
    assert btn.label == "Open the run of 2 decode nodes (dualpath) in Results"
    btn.click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Results"
    assert at.session_state["dp_selected_runs"] == [best.run_id]
    assert at.multiselect(key="dp_results_pick").value == [best.run_id]
    assert at.selectbox(key="dp_detail_pick").value == best.run_id


def test_a_sizing_result_is_decided_on_too(sweep: SweepResult) -> None:
    """With a sweep and a real sizing in the session the planner picks which to decide from; sizing: cheapest first."""
    from dualpath_twin.planning.capacity import SloCriterion
    from dualpath_twin.planning.sizing import size

    online = SC.model_copy(update={"workload": SC.workload.model_copy(update={"mode": "online", "arrival_rate_aps": 0.5})})
    sized = size(online, 0.5, {"cluster.decode_nodes": [1, 2]}, policy="dualpath", measure_capacity="none",
                 criterion=SloCriterion(require_steady=False))
    assert [c.status for c in sized.candidates] == ["meets", "meets"]
    at = AppTest.from_string(PAGE_APP, default_timeout=60)
    at.session_state["planning_sweep"] = sweep
    at.session_state["planning_sweep_sc"] = SC
    at.session_state["planning_size"] = sized
    at.run()
    assert not at.exception, at.exception
    assert at.radio(key="dec_src").options == ["sweep", "sizing"]
    at.radio(key="dec_rank").set_value("throughput").run()
    assert [s.value for s in _tab(at).success][0].startswith("Best configuration meeting the SLO: 2 decode nodes")
    at.radio(key="dec_src").set_value("sizing").run()
    assert not at.exception, at.exception
    tab = _tab(at)
    cheapest = min(c.cost_per_hour for c in sized.candidates)
    (verdict,) = [s.value for s in tab.success]
    assert verdict.startswith(f"Best configuration meeting the SLO: 1 decode node (dualpath) at ${cheapest:,.2f}/hour (sizing)")
    table = tab.dataframe[0].value
    assert table["source"].tolist() == ["sizing", "sizing"] and table["run"].tolist() == ["", ""]
    assert not [b for b in tab.button if b.key and b.key.startswith("dec_open_")]  # sizing keeps no run per point


def _pd_page(sc: Scenario) -> AppTest:
    at = AppTest.from_string(PAGE_APP, default_timeout=120)
    at.session_state["dp_base_scenario"] = sc  # what the Scenario page holds (base and edited scenario)
    at.session_state["dp_scenario"] = sc
    at.session_state["dp_problems"] = []
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_decision_tab_advises_the_pd_split_of_the_built_scenario(db: Path) -> None:
    sc = SC.model_copy(update={"cluster": SC.cluster.model_copy(update={"decode_nodes": 2})})
    at = _pd_page(sc)
    btn = at.button(key="pd_go")
    assert btn.label == "Advise the split of tiny (1P2D, 3 nodes)"
    btn.click().run()
    assert not at.exception, at.exception
    adv = at.session_state["planning_pd"]
    tab = _tab(at)
    text = [m.value for m in (*tab.success, *tab.warning)]
    assert any(f"{adv.advised} is advised under dualpath" in t for t in text), text
    table = next(d.value for d in tab.dataframe if "split" in d.value.columns)
    assert sorted(table["split"]) == ["1P2D", "2P1D"]
    assert table["advised"].tolist().count(True) == 1
    assert table["measured rounds/s per node"].notna().any()  # the neighbours were simulated
    # every simulated split is in the store, one click from Results
    from dualpath_twin.store import open_store

    ids = [c.run_id for c in adv.candidates if c.run_id]
    assert ids and len(ids) == sum(c.measured_per_node is not None for c in adv.candidates)
    store = open_store(db)
    try:
        assert {store.get_summary(i).scenario_name for i in ids} == {"tiny"}
    finally:
        store.close()
    assert at.button(key="pd_open").label.startswith(f"Open the {len(ids)} simulated splits in Results")


def test_pd_advice_of_a_huge_scenario_is_refused_before_any_run(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dualpath_twin.planning import pd_advice

    called = []
    monkeypatch.setattr(pd_advice, "advise_pd", lambda *a, **k: called.append(1))
    sc = SC.model_copy(update={"workload": SC.workload.model_copy(update={"agents": 5_000_000, "max_context_tokens": 65536})})
    at = _pd_page(sc)
    at.button(key="pd_go").click().run()
    assert not at.exception, at.exception
    assert not called and "planning_pd" not in at.session_state
    assert any("Refused before it started" in e.value for e in _tab(at).error)
