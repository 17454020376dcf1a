"""Faults and degradation ([[faults]]): schema, links down or slowed, slow storage, stragglers, summary."""

from __future__ import annotations

import polars as pl
import pytest

from dualpath_twin import api
from dualpath_twin.results import RunSummary
from dualpath_twin.scenario import Scenario, ScenarioError, from_dict
from tests.test_sim_core import ds27b, small_workload

WL = small_workload(n_traj=48, rounds=8, first=3000)


def _with_faults(sc: Scenario, faults: list[dict]) -> Scenario:
    d = sc.model_dump(mode="json", exclude_none=True)
    d["faults"] = faults
    return from_dict(d, check_catalog=False)


def _base(**over) -> Scenario:
    return ds27b(network__snic_gbps=100.0, run__sample_interval_s=0.1, **over)


# ---------------------------------------------------------------- schema
@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ({"kind": "snic_down", "node": "P3", "start_s": 1}, ["faults[0].node", "cluster.prefill_nodes = 1", "P0..P0"]),
        ({"kind": "snic_down", "node": "D1", "start_s": 1}, ["faults[0].node", "cluster.decode_nodes = 1", "D0..D0"]),
        ({"kind": "snic_down", "node": "Q0", "start_s": 1}, ["faults[0].node", "P<i>"]),
        ({"kind": "straggler_gpu", "node": "D0", "gpu": 8, "start_s": 1}, ["faults[0].gpu", "gpus_per_node = 8", "0..7"]),
        ({"kind": "straggler_gpu", "node": "D0", "start_s": 1}, ["needs gpu"]),
        ({"kind": "snic_down", "node": "P0", "start_s": 5, "end_s": 2}, ["end_s = 2 must be after start_s = 5"]),
        ({"kind": "nic_down", "node": "P0", "start_s": 1}, ["faults.0.kind", "snic_down"]),
        ({"kind": "snic_degraded", "node": "P0", "start_s": 1, "rate_factor": 1.5}, ["faults.0.rate_factor"]),
    ],
)
def test_bad_faults_name_the_field_and_the_fix(fault: dict, says: list[str]) -> None:
    with pytest.raises(ScenarioError) as err:
        _with_faults(_base(), [fault])
    text = str(err.value)
    for s in says:
        assert s in text, text


def test_no_faults_keeps_the_scenario_text_and_hash() -> None:
    sc = _base()
    assert "faults" not in sc.to_toml()
    f = _with_faults(sc, [{"kind": "snic_down", "node": "P0", "start_s": 1}])
    assert "[[faults]]" in f.to_toml() and f.content_hash() != sc.content_hash()
    assert from_dict(__import__("tomllib").loads(f.to_toml()), check_catalog=False) == f


# ---------------------------------------------------------------- links
def _util(ts: pl.DataFrame, metric: str, entity: str) -> pl.DataFrame:
    return ts.filter((pl.col("metric") == metric) & (pl.col("entity") == entity)).sort("t_s")


def test_a_downed_snic_carries_no_bytes_while_down_and_no_round_is_lost() -> None:
    sc = _with_faults(_base(), [{"kind": "snic_down", "node": "P0", "start_s": 1.0, "end_s": 2.0}])
    r = api.simulate(sc, "basic", workload=WL, check_invariants=True)
    assert r.invariants == []
    assert r.rounds["done_s"].null_count() == 0  # every round finished once the SNIC came back
    rx = _util(r.timeseries, "snic_rx_util", "P0.snic")
    before = rx.filter(pl.col("t_s") <= 1.0)["value"]
    during = rx.filter((pl.col("t_s") > 1.0 + 1e-9) & (pl.col("t_s") <= 2.0 + 1e-9))["value"]
    assert before.max() > 0.5  # it was busy before
    assert during.len() >= 5 and during.max() < 1e-12  # ~1e-6 B/s floor: nothing moves
    # Basic can only read through the PE's SNIC: no read lands while it is down
    ends = r.rounds["read_end_s"].drop_nulls()
    reads_in = r.rounds.filter((pl.col("read_end_s") > 1.0 + 1e-9) & (pl.col("read_end_s") < 2.0) & (pl.col("hit_tokens") > 0))
    assert ends.len() > 0 and reads_in.height == 0
    (fe,) = r.summary.faults
    assert fe.kind == "snic_down" and fe.start_s == 1.0 and fe.end_s == 2.0
    assert fe.degradation is not None and fe.degradation > 0.5


def test_dualpath_reads_around_a_dead_prefill_snic() -> None:
    sc = _with_faults(_base(), [{"kind": "snic_down", "node": "P0", "start_s": 1.0, "end_s": 2.0}])
    r = api.simulate(sc, "dualpath", workload=WL, check_invariants=True)
    assert r.invariants == []
    placed = r.rounds.filter((pl.col("sched_s") > 1.0) & (pl.col("sched_s") < 2.0) & (pl.col("hit_tokens") > 0))
    assert placed.height > 0
    assert placed["read_side"].unique().to_list() == ["de"]
    base = api.simulate(_base(), "dualpath", workload=WL)
    basic_f = api.simulate(sc, "basic", workload=WL)
    basic = api.simulate(_base(), "basic", workload=WL)
    # the fault costs DualPath less time than Basic
    assert r.summary.jct_s - base.summary.jct_s < basic_f.summary.jct_s - basic.summary.jct_s


def test_degraded_cnic_is_held_to_its_share() -> None:
    sc = _with_faults(_base(), [{"kind": "cnic_degraded", "node": "D0", "start_s": 0.0, "rate_factor": 0.05}])
    r = api.simulate(sc, "dualpath", workload=WL, check_invariants=True)
    assert r.invariants == []
    util = r.timeseries.filter(pl.col("metric").str.starts_with("cnic_") & pl.col("entity").str.starts_with("D0.cnic"))
    assert util.height and util["value"].max() <= 0.05 * 0.95 + 1e-6
    healthy = api.simulate(_base(), "dualpath", workload=WL)
    h = healthy.timeseries.filter(pl.col("metric").str.starts_with("cnic_") & pl.col("entity").str.starts_with("D0.cnic"))
    assert h["value"].max() > 0.05 * 0.95 + 1e-3  # without the fault the NIC goes above that share


# ---------------------------------------------------------------- storage and compute
def test_slow_storage_delays_the_affected_share_of_reads() -> None:
    sc = _with_faults(_base(), [{"kind": "slow_storage", "node": "P0", "start_s": 0.0, "extra_latency_us": 200_000, "read_share": 0.5}])
    r = api.simulate(sc, "basic", workload=WL, check_invariants=True)
    base = api.simulate(_base(), "basic", workload=WL)
    hits = pl.col("hit_tokens") > 0
    waited = r.rounds.filter(hits).select((pl.col("read_end_s") - pl.col("read_start_s")).alias("d"))["d"]
    share = (waited >= 0.2).mean()
    assert 0.3 <= share <= 0.7  # about half the reads waited the extra 200 ms
    b = base.rounds.filter(hits).select((pl.col("read_end_s") - pl.col("read_start_s")).alias("d"))["d"]
    assert (b >= 0.2).mean() < share


def test_a_straggler_gpu_slows_its_engine_only() -> None:
    sc = _with_faults(_base(), [{"kind": "straggler_gpu", "node": "D0", "gpu": 3, "start_s": 0.0, "compute_factor": 3.0}])
    r = api.simulate(sc, "dualpath", workload=WL, check_invariants=True)
    tp = r.rounds.filter(pl.col("tpot_s").is_not_null()).group_by(pl.col("de") == 3).agg(pl.col("tpot_s").mean())
    slow = tp.filter(pl.col("de"))["tpot_s"].item()
    other = tp.filter(~pl.col("de"))["tpot_s"].item()
    assert slow > 2.0 * other
    pre = _with_faults(_base(), [{"kind": "straggler_gpu", "node": "P0", "gpu": 0, "start_s": 0.0, "compute_factor": 3.0}])
    rp = api.simulate(pre, "dualpath", workload=WL)
    base = api.simulate(_base(), "dualpath", workload=WL)
    assert rp.summary.cnic_utilization["gpu_busy_prefill"] > base.summary.cnic_utilization["gpu_busy_prefill"]


def test_losing_the_only_decode_group_for_good_is_refused_with_the_fix() -> None:
    with pytest.raises(ScenarioError) as err:
        _with_faults(_base(), [{"kind": "node_lost", "node": "D0", "start_s": 1.0}])
    text = str(err.value)
    assert "faults[0]" in text and "no decode engine" in text and "set end_s" in text


# ---------------------------------------------------------------- results
def test_fault_effects_survive_the_store_round_trip(tmp_path) -> None:
    from dualpath_twin.store import open_store

    sc = _with_faults(_base(), [{"kind": "snic_degraded", "node": "P0", "start_s": 1.0, "end_s": 2.0, "rate_factor": 0.3}])
    r = api.simulate(sc, "basic", workload=WL)
    assert len(r.summary.faults) == 1
    store = open_store(tmp_path / "t.duckdb")
    rid = store.save_run(r)
    back = store.get_summary(rid)
    assert back == r.summary and back.faults[0].kind == "snic_degraded"
    assert RunSummary.model_validate_json(r.summary.model_dump_json()).faults == r.summary.faults
    assert r.summary.flat()["faults.0.start_s"] == 1.0


def test_dualpath_loses_less_than_basic_with_a_prefill_snic_down_on_the_paper_2p4d() -> None:
    """Paper DS 660B 2P4D (32 agents): P0's SNIC down for 150 s; prompt tokens prefilled in that window vs no fault."""
    from pathlib import Path

    from dualpath_twin.scenario import apply_overrides, load

    root = Path(__file__).resolve().parents[1]
    sc = apply_overrides(load(root / "scenarios/paper/ds660b-2p4d-32k.toml"), {"workload.agents": 32})
    start, end = 100.0, 250.0
    scf = _with_faults(sc, [{"kind": "snic_down", "node": "P0", "start_s": start, "end_s": end}])

    def window_tokens(r) -> float:
        x = r.rounds.filter((pl.col("prefill_end_s") >= start) & (pl.col("prefill_end_s") < end))
        return float(x["prompt_tokens"].sum())

    loss = {}
    for pol in ("basic", "dualpath"):
        healthy, faulty = api.simulate(sc, pol), api.simulate(scf, pol, check_invariants=True)
        assert faulty.invariants == [] and faulty.rounds["done_s"].null_count() == 0
        loss[pol] = 1.0 - window_tokens(faulty) / window_tokens(healthy)
    assert loss["dualpath"] < loss["basic"]
    assert loss["basic"] > 0.5  # Basic has no other path to storage for P0's requests


def test_reports_shade_the_fault_and_list_its_effect(tmp_path) -> None:
    from dualpath_twin.report import build_report_from_results
    from dualpath_twin.report import figures as F

    sc = _with_faults(_base(), [{"kind": "snic_down", "node": "P0", "start_s": 1.0, "end_s": 2.0}])
    r = api.simulate(sc, "basic", workload=WL)
    fig = F.shade_faults(F.throughput_figure(r.timeseries), r.summary)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 2 and {(s.x0, s.x1) for s in rects} == {(1.0, 2.0)}  # both subplots
    assert not F.shade_faults(F.throughput_figure(r.timeseries), api.simulate(_base(), "basic", workload=WL).summary).layout.shapes
    html = build_report_from_results([r], tmp_path / "r.html").read_text()
    assert 'id="faults"' in html and "P0" in html and "snic_down" in html
