"""Truthful bottleneck verdicts: only resources that are busy AND near their bound are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from dualpath_twin import scenario as S
from dualpath_twin.analysis import verdict as V
from dualpath_twin.api import simulate
from dualpath_twin.results import Bound

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "examples" / "quick.toml"
PAPER = ROOT / "scenarios" / "paper" / "ds660b-2p4d-64k.toml"
HARDWARE_ADVICE = ("would raise throughput", "would help", "DualPath (which")


def _bound(**rates: float) -> Bound:
    first = min(rates, key=rates.get)
    return Bound(policy="basic", rounds_per_s_by_resource=rates, max_rounds_per_s=rates[first], binding_resource=first)


BOUND = _bound(snic_read=100.0, prefill_compute=300.0, decode=200.0, pe_dram=400.0)
LOAD = V.offered_load_text("offline", 64)


def test_nothing_binds_at_low_load_and_the_sentence_says_so() -> None:
    util = {"snic_read": 0.03, "prefill_compute": 0.02, "decode": 0.5}
    v = V.verdict("basic", 3.0, BOUND, util, offered_load=LOAD)
    assert v.bottleneck == V.OFFERED_LOAD and v.binding == []
    assert "No resource is saturated" in v.sentence and "offered load" in v.sentence
    assert "more hardware would not raise throughput" in v.sentence
    assert "DualPath" not in v.sentence and "storage NICs would" not in v.sentence


def test_busy_alone_or_bound_alone_does_not_bind() -> None:
    # decode GPUs 98% busy yet at 50% of their bound: busy in the latency path, not saturated
    v = V.verdict("oracle", 100.0, _bound(decode=200.0, prefill_compute=900.0), {"decode": 0.98, "prefill_compute": 0.1},
                  offered_load=LOAD, zero_io=True)
    assert v.binding == [] and v.bottleneck == V.OFFERED_LOAD
    assert "98% busy" in v.sentence and "other hardware would not" in v.sentence
    # at 90% of the SNIC bound but the measured SNIC utilisation is low: the bound is not what holds it back
    v = V.verdict("basic", 90.0, BOUND, {"snic_read": 0.3, "prefill_compute": 0.3, "decode": 0.4}, offered_load=LOAD)
    assert v.binding == []


def test_binding_resource_is_named_with_design_specific_advice() -> None:
    util = {"snic_read": 0.92, "prefill_compute": 0.3, "decode": 0.5}
    v = V.verdict("basic", 90.0, BOUND, util, offered_load=LOAD)
    assert v.binding == ["snic_read"] and v.bottleneck == "snic_read"
    assert "storage NIC reads" in v.sentence and "DualPath" in v.sentence
    assert "No resource is saturated" not in v.sentence
    v = V.verdict("dualpath", 90.0, BOUND, util, offered_load=LOAD, de_side_reads=True)
    assert "DualPath" not in v.sentence and "More or faster storage NICs" in v.sentence


def test_near_the_limit_is_not_called_binding() -> None:
    util = {"snic_read": 0.68, "prefill_compute": 0.3, "decode": 0.5}
    v = V.verdict("basic", 68.0, BOUND, util, offered_load=LOAD)
    assert v.binding == [] and "closest is storage NIC reads" in v.sentence
    assert "more hardware would not" not in v.sentence  # it does not claim hardware is useless either


def test_zero_io_design_never_names_io_resources() -> None:
    util = {"snic_read": 0.99, "prefill_compute": 0.1, "decode": 0.2}
    v = V.verdict("oracle", 99.0, BOUND, util, offered_load=LOAD, zero_io=True)
    assert "snic_read" not in v.binding and all(s.resource != "snic_read" for s in v.resources)


def test_snic_utilisation_is_of_the_achievable_rate_and_balanced_over_reading_nodes() -> None:
    u = V.measured_utilisation({"prefill": 0.43, "decode": 0.0}, {"decode": 0.0}, {}, prefill_nodes=2, decode_nodes=4,
                               de_side_reads=False, snic_efficiency=0.86)
    assert u["snic_read"] == pytest.approx(0.5)
    u = V.measured_utilisation({"prefill": 0.6, "decode": 0.3}, {}, {}, prefill_nodes=2, decode_nodes=4, de_side_reads=True)
    assert u["snic_read"] == pytest.approx((2 * 0.6 + 4 * 0.3) / 6)


def test_offered_load_text_names_agents_and_arrivals() -> None:
    assert "16 agents" in V.offered_load_text("offline", 16)
    assert "0.5 agents/s" in V.offered_load_text("online", 100, 0.5)
    assert "tool time" in V.offered_load_text("offline", 8, None, 2.0)


# ------------------------------------------------------------------ real runs


@pytest.mark.parametrize("policy", ["basic", "dualpath"])
def test_quick_scenario_names_no_resource(policy: str) -> None:
    """The bundled quick scenario: SNICs ~3% busy, DualPath ~1.00x Basic. No hardware advice."""
    s = simulate(S.load(QUICK), policy).summary
    assert s.bottleneck == V.OFFERED_LOAD, s.bottleneck_sentence
    assert "No resource is saturated" in s.bottleneck_sentence
    assert not any(a in s.bottleneck_sentence for a in HARDWARE_ADVICE), s.bottleneck_sentence


@pytest.mark.parametrize("policy", ["basic", "dualpath"])
def test_paper_scenario_at_16_agents_names_no_resource(policy: str) -> None:
    """ds660b-2p4d-64k with 16 agents runs at a few % of its bound: nothing binds."""
    sc = S.apply_overrides(S.load(PAPER), {"workload.agents": 16})
    s = simulate(sc, policy).summary
    assert s.rounds_per_s < 0.1 * s.bound.max_rounds_per_s  # the premise: far below every bound
    assert s.bottleneck == V.OFFERED_LOAD, s.bottleneck_sentence
    assert "16 agents" in s.bottleneck_sentence
    assert not any(a in s.bottleneck_sentence for a in HARDWARE_ADVICE), s.bottleneck_sentence


@pytest.mark.slow
def test_paper_scenario_storage_binds_basic_at_2048_agents() -> None:
    """ds660b-2p4d-64k, 2048 agents: Basic's prefill SNICs are ~91% busy at ~91% of their bound."""
    sc = S.apply_overrides(S.load(PAPER), {"workload.agents": 2048})
    s = simulate(sc, "basic").summary
    assert s.bottleneck == "snic_read", s.bottleneck_sentence
    assert "storage NIC reads" in s.bottleneck_sentence and "DualPath" in s.bottleneck_sentence
    assert "No resource is saturated" not in s.bottleneck_sentence


def test_summary_verdict_is_recomputable_from_the_summary_numbers() -> None:
    """The run's sentence is the rule applied to the utilisations it reports (GPU busy included)."""
    sc = S.apply_overrides(S.load(ROOT / "scenarios" / "paper" / "ds27b-1p1d-64k.toml"), {"workload.agents": 256})
    s = simulate(sc, "oracle").summary
    util = V.measured_utilisation(s.snic_read_utilization, s.snic_write_utilization, s.cnic_utilization,
                                  prefill_nodes=1, decode_nodes=1, de_side_reads=True,
                                  snic_efficiency=sc.network.snic_efficiency, cnic_efficiency=sc.network.cnic_efficiency)
    assert util["decode"] == pytest.approx(s.cnic_utilization["gpu_busy_decode"]) and util["decode"] > 0.5
    v = V.verdict("oracle", s.rounds_per_s, s.bound, util, offered_load=V.offered_load_text("offline", 256), zero_io=True)
    assert v.sentence == s.bottleneck_sentence and v.bottleneck == s.bottleneck


def _buffer(occ: float, wait_s: float, ttft_s: float = 2.0) -> V.BufferState:
    return V.BufferState({"decode": occ, "prefill": occ - 0.1}, wait_s, ttft_s, 80.0)


def test_full_dram_buffers_with_a_long_wait_for_room_bind() -> None:
    """Reads waiting for room in full buffers starve what follows: the buffers are named, with the evidence and the fix."""
    util = {"snic_read": 0.6, "prefill_compute": 0.3, "decode": 0.96}
    v = V.verdict("dualpath", 155.0, _bound(decode=195.0, snic_read=199.0, prefill_compute=301.0), util,
                  offered_load=LOAD, de_side_reads=True, buffer=_buffer(0.94, 1.2))
    assert v.bottleneck == V.DRAM_BUFFER and v.binding == [V.DRAM_BUFFER]
    assert "cluster.dram_buffer_gb = 80 GB per node" in v.sentence and "decode nodes' buffers 94% full while reads waited" in v.sentence
    assert "waited 1.2 s on average" in v.sentence and "60% of the mean TTFT" in v.sentence
    assert "decode GPUs" in v.sentence and "79% of its bound" in v.sentence
    assert "More host DRAM for KV buffers (cluster.dram_buffer_gb) would raise throughput." in v.sentence
    assert V.resource_label(V.DRAM_BUFFER) == "host DRAM KV buffers"


@pytest.mark.parametrize(("occ", "wait_s"), [(0.7, 1.2), (0.95, 0.3)])
def test_half_full_buffers_or_a_short_wait_do_not_bind(occ: float, wait_s: float) -> None:
    """Below BUFFER_FULL, or a wait under BUFFER_WAIT_SHARE of TTFT: the verdict is the bound-based one."""
    util = {"snic_read": 0.6, "prefill_compute": 0.3, "decode": 0.96}
    b = _bound(decode=195.0, snic_read=199.0, prefill_compute=301.0)
    v = V.verdict("dualpath", 155.0, b, util, offered_load=LOAD, de_side_reads=True, buffer=_buffer(occ, wait_s))
    plain = V.verdict("dualpath", 155.0, b, util, offered_load=LOAD, de_side_reads=True)
    assert v.bottleneck == plain.bottleneck != V.DRAM_BUFFER and v.sentence == plain.sentence


def test_buffers_bind_alongside_a_bound_resource() -> None:
    """Both a saturated bound resource and full buffers: both named, the bound one first, both fixes given."""
    util = {"snic_read": 0.95, "prefill_compute": 0.3, "decode": 0.5}
    v = V.verdict("basic", 95.0, BOUND, util, offered_load=LOAD, buffer=_buffer(0.9, 1.0))
    assert v.binding == ["snic_read", V.DRAM_BUFFER] and v.bottleneck == "snic_read"
    assert "storage NIC reads" in v.sentence and "cluster.dram_buffer_gb" in v.sentence
    assert V.verdict("oracle", 95.0, BOUND, util, offered_load=LOAD, zero_io=True, buffer=_buffer(0.9, 1.0)).binding \
        == []  # a design without I/O has no read to wait for


def test_a_simulated_run_with_tiny_dram_buffers_names_them_and_the_default_does_not() -> None:
    """DualPath on quick with 1 GB buffers (a 16K request needs 0.7 GB) waits most of its TTFT for room: the verdict
    names the buffers; with the scenario's own buffers the same load does not."""
    base = S.load(QUICK)
    tiny = S.apply_overrides(base, {"cluster.dram_buffer_gb": 1.0, "workload.agents": 512})
    s = simulate(tiny, "dualpath").summary
    assert s.bottleneck == V.DRAM_BUFFER, s.bottleneck_sentence
    assert "cluster.dram_buffer_gb = 1 GB per node" in s.bottleneck_sentence
    assert s.ttft_breakdown_s["alloc"] >= V.BUFFER_WAIT_SHARE * sum(s.ttft_breakdown_s.values())
    roomy = S.apply_overrides(tiny, {"cluster.dram_buffer_gb": base.cluster.dram_buffer_gb})
    assert simulate(roomy, "dualpath").summary.bottleneck != V.DRAM_BUFFER


def test_an_online_run_is_judged_over_its_loaded_window() -> None:
    """Online, the verdict's rate and utilisations come from the two windows before the last arrival (not the ramp-up
    and drain), and the sentence says so; a run too short for the window, and an offline run, are judged whole."""
    base = S.apply_overrides(S.load(QUICK), {"workload.mode": "online", "workload.arrival_rate_aps": 4.0,
                                             "workload.agents": 256, "run.online_window_s": 10.0})
    s = simulate(base, "dualpath").summary
    assert "in its loaded window (" in s.bottleneck_sentence
    assert "the last two 10 s windows, run.online_window_s, before the last agent arrived" in s.bottleneck_sentence
    achieved = float(s.bottleneck_sentence.split("achieved ")[1].split(" rounds/s")[0])
    whole = s.rounds / max(s.jct_s, 1e-9)
    assert achieved > whole  # the loaded window runs faster than the whole run with its ramp-up and drain
    short = S.apply_overrides(base, {"run.online_window_s": 60.0})  # 2 x 60 s > the 64 s of arrivals
    assert "loaded window" not in simulate(short, "dualpath").summary.bottleneck_sentence
    assert "loaded window" not in simulate(S.load(QUICK), "dualpath").summary.bottleneck_sentence
