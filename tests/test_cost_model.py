"""The compute cost model's physics: rooflines, experts hit, all-to-all, overlap, MLA prefill forms."""

from __future__ import annotations

import math

import pytest

from dualpath_twin import catalog
from dualpath_twin.analysis.microbench import (
    decode_point,
    prefill_point,
    storage_read_gbytes_per_s_per_client,
)
from dualpath_twin.scenario import Scenario, ScenarioError, from_dict
from dualpath_twin.sim.cost import build_cost_model


def _sc(model: str = "DeepSeek-V3.2", p: int = 2, d: int = 4, **compute: object) -> Scenario:
    return Scenario.model_validate(
        {"cluster": {"prefill_nodes": p, "decode_nodes": d}, "model": {"name": model}, "compute": compute}
    )


def test_small_prefill_batch_is_bound_by_expert_weights() -> None:
    """One 300-token request per GPU: the routed experts cost their weight bytes over HBM, not their FLOPs."""
    sc = _sc()
    cost = build_cost_model(sc)
    pt = prefill_point(sc, 1, 30_000, 300, cost)
    g = cost.prefill_ep_gpus
    local = cost.experts_routed / g
    weights_s = cost.moe_layers * local * cost.expert_w_bytes / cost.weight_bps
    flops_s = cost.moe_layers * 300 * g * cost.experts_active / g * cost.expert_flops_tok / (cost.peak_linear_flops * cost.gemm_mfu)
    assert weights_s > flops_s  # the regime the test is about
    assert pt.breakdown_s["routed_experts"] == pytest.approx(weights_s, rel=0.02)  # (almost) every local expert is hit


def test_large_batch_is_compute_bound_and_amortises_fixed_costs() -> None:
    """Per-request time falls with the batch while weights and overheads are shared, then flattens."""
    sc = _sc("DS 27B", 1, 1)
    steps = {b: prefill_point(sc, b, 30_000, 300).step_s for b in (1, 2, 5, 10, 20, 40)}
    per_req = [steps[b] / b for b in sorted(steps)]
    assert all(a >= b_ - 1e-12 for a, b_ in zip(per_req, per_req[1:], strict=False))
    assert per_req[0] > 1.2 * per_req[-1]  # fixed costs matter at batch 1
    assert per_req[-2] / per_req[-1] < 1.1  # and are amortised by batch 20-40
    assert all(steps[b] < steps[c] for b, c in ((1, 2), (2, 5), (5, 10), (10, 20)))


def test_experts_hit_expectation() -> None:
    """A single token hits k experts in all; many tokens hit every local expert."""
    cost = build_cost_model(_sc())
    g = cost.prefill_ep_gpus
    assert g * cost._experts_hit(1, g) == pytest.approx(cost.experts_active, rel=0.02)
    assert cost._experts_hit(1e6, g) == pytest.approx(cost.experts_routed / g)
    assert cost._experts_hit(0, g) == 0


def test_all_to_all_crosses_nodes_once_per_remote_node() -> None:
    """Inside one node the all-to-all uses NVLink only; across N nodes each token goes once to each remote node hit."""
    one = build_cost_model(_sc(p=1, d=1))
    two = build_cost_model(_sc(p=2, d=4))
    toks = 1000.0
    t1 = one._a2a_layer_s(toks, 1, one.prefill_ep_gpus)
    per_copy = one.a2a_bytes_tok_layer / one.experts_active
    intra = toks * per_copy * one.experts_active * (one.prefill_ep_gpus - 1) / one.prefill_ep_gpus
    assert t1 == pytest.approx(intra / one.nvlink_bps + 2 * one.a2a_latency_s)
    k = two.experts_active
    remote = 1 - 0.5**k  # 2 nodes: the other node is hit unless all k experts are local
    cross_s = toks * per_copy * remote / two.cnic_bps
    t2 = two._a2a_layer_s(toks, 2, two.prefill_ep_gpus)
    intra2 = toks * per_copy * k * (two.prefill_ep_gpus - 1) / two.prefill_ep_gpus / two.nvlink_bps
    assert t2 == pytest.approx(max(cross_s, intra2) + 2 * two.a2a_latency_s)
    assert one._a2a_layer_s(toks, 1, 1) == 0.0  # a single GPU has no all-to-all


def test_overlap_hides_comm_but_costs_sms() -> None:
    """Overlapped, a step is never longer than added, and at least the slowed compute or the comm."""
    base = _sc(p=4, d=18)
    added = prefill_point(base, 4, 30_000, 300)
    over_sc = _sc(p=4, d=18, prefill_ep_overlap=True)
    over = prefill_point(over_sc, 4, 30_000, 300)
    comm = added.breakdown_s["all_to_all"] + added.breakdown_s["ep_sync"]  # the sync hides with the bytes
    assert comm > 0
    assert over.step_s < added.step_s
    assert over.step_s >= comm
    free = prefill_point(_sc(p=4, d=18, prefill_ep_overlap=True, ep_comm_sm_share=0.0), 4, 30_000, 300)
    assert free.step_s <= over.step_s  # SMs taken by the comm kernels slow the overlapped compute
    assert added.step_s - free.step_s == pytest.approx(min(comm, added.step_s - comm - build_cost_model(base).step_overhead_s), rel=1e-6)


def test_ep_sync_adds_a_fixed_time_per_moe_layer_internode_or_intranode() -> None:
    """DeepEP normal-mode synchronisation: per MoE layer, the internode value for multi-node groups, else intranode."""
    for p, field in ((2, "prefill_ep_sync_us"), (1, "prefill_ep_sync_intranode_us")):
        model = "DeepSeek-V3.2" if p == 2 else "DS 27B"
        sc = _sc(model, p, 1, **{field: 700.0})
        cost = build_cost_model(sc)
        pt = prefill_point(sc, 1, 30_000, 300, cost)
        assert pt.breakdown_s["ep_sync"] == pytest.approx(cost.moe_layers * 700e-6)
        none = prefill_point(_sc(model, p, 1, **{field: 0.0}), 1, 30_000, 300)
        assert pt.step_s - none.step_s == pytest.approx(cost.moe_layers * 700e-6, rel=1e-9)
    dense = prefill_point(_sc("Qwen2.5-32B", 1, 2), 1, 30_000, 300)
    assert dense.breakdown_s.get("ep_sync", 0.0) == 0.0  # no experts, no EP


def test_the_dsa_indexer_runs_at_the_fp8_peak() -> None:
    """DeepSeek-V3.2's indexer FLOPs count at the FP8 peak (half the BF16 time on H800); dense MLA has none."""
    fp8, bf16 = build_cost_model(_sc()), build_cost_model(_sc(indexer_fp8=False))
    m = fp8.model
    assert fp8.indexer_weight == pytest.approx(m_bf16 := 989 / 1979, rel=1e-3) and bf16.indexer_weight == 1.0
    idx = m.layers * 2.0 * m.indexer_heads * m.indexer_head_dim * 30_000
    assert bf16.attention_flops_per_token(30_000) - fp8.attention_flops_per_token(30_000) == pytest.approx(idx * (1 - m_bf16), rel=1e-6)
    _, (fa8, fb8, _) = fp8.decode_linear_forms()
    _, (fa16, fb16, _) = bf16.decode_linear_forms()
    assert fa8 == fa16 and fb8 == pytest.approx(fb16 * m_bf16)  # the capped (top-k) core is BF16 either way
    assert bf16.attention_time_s(300, 29_700) > fp8.attention_time_s(300, 29_700)
    v3 = build_cost_model(_sc("DeepSeek-V3"))
    assert v3.indexer_weight == 1.0


def test_dense_mla_prefill_takes_the_cheaper_form() -> None:
    """Dense MLA prefill: MHA form for long appends, absorbed form for one token; sparse and GQA unchanged."""
    v3 = catalog.get_model("DeepSeek-V3")
    absorbed = 3000 * v3.attention_flops_per_token(3000 + 1500)
    assert v3.prefill_attention_flops(3000, 3000) < 0.5 * absorbed
    assert v3.prefill_attention_flops(1, 30_000) == pytest.approx(v3.attention_flops_per_token(30_000))
    for name in ("DeepSeek-V3.2", "Qwen2.5-32B"):
        m = catalog.get_model(name)
        assert m.prefill_attention_flops(300, 30_000) == pytest.approx(300 * m.attention_flops_per_token(30_150))


def test_decode_step_at_least_streams_the_weights() -> None:
    """A decode step of one request reads at least the attention, shared and LM-head weights once."""
    cost = build_cost_model(_sc())
    d = decode_point(_sc(), 1, 1000, cost)
    floor = (cost.layers * cost.attn_w_bytes + cost.moe_layers * cost.shared_w_bytes + cost.lm_head_w_bytes) / cost.weight_bps
    assert d.step_s > floor
    assert d.tokens_per_s_node == pytest.approx(8 / d.step_s)
    big = decode_point(_sc(), 64, 1000, cost)
    assert big.step_s > d.step_s and big.tokens_per_s_node > 20 * d.tokens_per_s_node


def test_decode_reproduces_the_production_figures() -> None:
    """DeepSeek's published decode: ~14.8K tokens/s per node while users see 20-22 tokens/s (V3, EP144)."""
    sc = Scenario.model_validate({"cluster": {"prefill_nodes": 4, "decode_nodes": 18}, "model": {"name": "DeepSeek-V3", "kv_format": "bf16"}})
    cost = build_cost_model(sc)
    best = None
    for b in range(1, 400):
        d = decode_point(sc, b, 6000, cost)
        if d.tokens_per_s_user < 21:
            break
        best = d
    assert best is not None
    assert best.tokens_per_s_node == pytest.approx(14_800, rel=0.10)
    # the batch HBM holds at that context is not below the batch the figure needs
    per_req = 6000 * cost.kv_bytes_per_token
    assert cost.hbm_kv_decode_bytes / per_req >= 0.9 * best.batch_per_gpu


def test_storage_read_per_client() -> None:
    """One 400 Gbps storage NIC at the default efficiency reads ~43 GB/s (40 GiB/s measured for a 3FS client)."""
    gb = storage_read_gbytes_per_s_per_client(_sc())
    assert gb == pytest.approx(40 * 2**30 / 1e9, rel=0.01)


def test_legacy_compute_fields_name_their_replacement() -> None:
    """A scenario written for the earlier cost model gets the new field's name, not 'unknown field'."""
    with pytest.raises(ScenarioError) as e:
        from_dict({"compute": {"prefill_mfu": 0.45}})
    assert "compute.gemm_mfu" in str(e.value)


def test_straggler_factor_slows_one_engine() -> None:
    """The cost model's straggler factor multiplies compute time (hook for slow-GPU what-ifs)."""
    cost = build_cost_model(_sc())
    step, busy, _ = cost.prefill_group_step_s([(300.0, 0.01)], cost.prefill_ep_gpus)
    cost.straggler = 2.0
    step2, busy2, _ = cost.prefill_group_step_s([(300.0, 0.01)], cost.prefill_ep_gpus)
    assert busy2[0] == pytest.approx(2 * busy[0])
    assert step2 > step
    assert math.isfinite(step2)
