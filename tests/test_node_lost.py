"""Fault ``node_lost``: the lost EP group's rounds are re-queued, nothing is placed there, nothing is lost."""

from __future__ import annotations

import polars as pl
import pytest

from dualpath_twin import api
from dualpath_twin.scenario import Scenario, ScenarioError, from_dict
from tests.test_sim_core import ds27b, small_workload

WL = small_workload(n_traj=64, rounds=8, first=3000)
POLICIES = ["basic", "dualpath", "dualpath-split"]


def _cluster(faults: list[dict], p: int = 2, d: int = 2) -> Scenario:
    """DS 27B with one node per EP group (a loss takes down one node's engines), 2P2D by default."""
    sc = ds27b(cluster__prefill_nodes=p, cluster__decode_nodes=d, cluster__prefill_ep_nodes=1,
               cluster__decode_ep_nodes=1, run__sample_interval_s=0.1)
    data = sc.model_dump(mode="json", exclude_none=True)
    data["faults"] = faults
    return from_dict(data, check_catalog=False)


def _lost(node: str, start: float, end: float | None) -> dict:
    f = {"kind": "node_lost", "node": node, "start_s": start}
    if end is not None:
        f["end_s"] = end
    return f


def _window(policy: str) -> tuple[float, float]:
    """A window well inside the fault-free run: from a third of its length, for a quarter of it."""
    t = api.simulate(_cluster([]), policy, workload=WL).summary.sim_time_s
    return t / 3, t / 3 + t / 4


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("node", ["P0", "D1"])
def test_no_round_is_lost_and_none_is_placed_on_the_lost_node(policy: str, node: str) -> None:
    t0, t1 = _window(policy)
    r = api.simulate(_cluster([_lost(node, t0, t1)]), policy, workload=WL, check_invariants=True)
    s = r.summary
    assert r.invariants == []
    assert s.status == "finished" and s.rounds == s.rounds_total == WL.n_rounds
    assert r.rounds["done_s"].null_count() == 0
    col, idx = ("pe_node", 0) if node == "P0" else ("de_node", 1)
    during = r.rounds.filter((pl.col("sched_s") >= t0) & (pl.col("sched_s") < t1))
    assert during.height > 0
    assert during.filter(pl.col(col) == idx).height == 0  # nothing placed on the lost node while it is down
    after = r.rounds.filter(pl.col("sched_s") >= t1 + 0.5)
    assert after.filter(pl.col(col) == idx).height > 0  # back in use after the repair
    (eff,) = s.faults
    assert eff.rounds_requeued is not None
    if node.startswith("D"):
        assert eff.rounds_requeued > 0  # a decode node always holds running rounds: they start over


def test_without_the_fault_the_node_takes_work_in_the_same_window() -> None:
    t0, t1 = _window("dualpath")
    r = api.simulate(_cluster([]), "dualpath", workload=WL)
    during = r.rounds.filter((pl.col("sched_s") >= t0) & (pl.col("sched_s") < t1))
    assert during.filter(pl.col("de_node") == 1).height > 0


@pytest.mark.parametrize("policy", ["basic", "dualpath"])
def test_a_whole_role_down_stops_prefill_and_every_round_finishes_after_the_repair(policy: str) -> None:
    t0 = _window(policy)[0]
    t1 = t0 + 2.0
    sc = ds27b(run__sample_interval_s=0.1)  # 1P1D: losing P0 leaves no prefill engine until t1
    data = sc.model_dump(mode="json", exclude_none=True)
    data["faults"] = [_lost("P0", t0, t1)]
    r = api.simulate(from_dict(data, check_catalog=False), policy, workload=WL, check_invariants=True)
    assert r.invariants == []
    assert r.summary.rounds == WL.n_rounds
    ended = r.rounds.filter((pl.col("prefill_end_s") > t0 + 1e-6) & (pl.col("prefill_end_s") < t1))
    assert ended.height == 0
    (eff,) = r.summary.faults
    assert eff.degradation == pytest.approx(1.0)
    base = api.simulate(sc, policy, workload=WL)
    assert r.rounds["ttft_s"].max() >= (t1 - t0) * 0.5 > base.rounds["ttft_s"].max()  # someone waited out the outage


def test_a_permanent_loss_of_one_of_two_groups_runs_to_the_end_on_the_other() -> None:
    t0 = _window("dualpath")[0]
    r = api.simulate(_cluster([_lost("D0", t0, None)]), "dualpath", workload=WL, check_invariants=True)
    assert r.invariants == []
    assert r.summary.rounds == WL.n_rounds
    assert r.rounds.filter(pl.col("sched_s") >= t0)["de_node"].unique().to_list() == [1]


def test_losing_every_prefill_group_for_good_is_refused() -> None:
    with pytest.raises(ScenarioError) as err:
        _cluster([_lost("P0", 1.0, None), _lost("P1", 2.0, None)])
    text = str(err.value)
    assert "faults[0]" in text and "no prefill engine" in text and "cluster.prefill_ep_nodes" in text
    _cluster([_lost("P0", 1.0, None), _lost("P1", 2.0, 3.0)])  # one comes back: accepted
