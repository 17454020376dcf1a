"""Tensor parallelism for dense models: cluster.prefill_tp_gpus / decode_tp_gpus (docs/model.md, Tensor parallelism)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dualpath_twin import api
from dualpath_twin.analysis.bounds import compute_bound
from dualpath_twin.policies import get_policy
from dualpath_twin.scenario import Scenario, ScenarioError, apply_overrides, load
from dualpath_twin.sim.cost import build_cost_model
from dualpath_twin.sim.world import World
from dualpath_twin.validation import derived_values

ROOT = Path(__file__).resolve().parents[1]
QWEN48 = ROOT / "scenarios/paper/qwen32b-1p2d-48k.toml"
QWEN64 = ROOT / "scenarios/paper/qwen32b-1p2d-64k.toml"


def _qwen(path: Path = QWEN48, **ov: object) -> Scenario:
    return apply_overrides(load(path), dict(ov))


def test_tp1_is_todays_model() -> None:
    """Without TP (the default, or TP = 1 set explicitly): the numbers of the model before TP existed, same hash."""
    base = _qwen()
    explicit = _qwen(**{"cluster.decode_tp_gpus": 1, "cluster.prefill_tp_gpus": 1})
    # values of commit 8a0e555 (before tensor parallelism) for this scenario
    assert base.content_hash() == explicit.content_hash() == "f7342e4ec85e1641"
    assert "tp_gpus" not in base.to_toml() and "tp_allreduce" not in base.to_toml()
    for sc in (base, explicit):
        c = build_cost_model(sc)
        assert c.weights_decode_gpu_bytes == 65526431744.0
        assert c.hbm_kv_decode_bytes == 8473568256.0
        assert c.decode_uniform_step_s(8, 32000)[0] == 0.054097347332669986
        assert c.prefill_uniform_step_s(4, 2000, 30000)[0] == 0.8983626836908389
        assert "tp_all_reduce" not in c.decode_uniform_step_s(8, 32000)[1]


def test_tp2_halves_weights_and_kv_per_gpu() -> None:
    """A TP-2 engine: half the weights and half the KV heads per GPU; its KV room is two GPUs' free HBM."""
    c1 = build_cost_model(_qwen())
    c2 = build_cost_model(_qwen(**{"cluster.decode_tp_gpus": 2, "cluster.prefill_tp_gpus": 2}))
    assert c2.weights_decode_gpu_bytes == pytest.approx(c1.weights_decode_gpu_bytes / 2)
    assert c2.weights_prefill_gpu_bytes == pytest.approx(c1.weights_prefill_gpu_bytes / 2)
    assert c2.kv_bytes_per_gpu_per_token("decode") == pytest.approx(c1.kv_bytes_per_gpu_per_token("decode") / 2)
    assert c2.kv_bytes_per_gpu_per_token("decode") == 262144 / 2  # Qwen2.5-32B BF16 KV, 8 KV heads split 4 + 4
    free_gpu = 80e9 - 6e9 - c1.weights_decode_gpu_bytes / 2
    assert c2.hbm_kv_decode_bytes == pytest.approx(2 * free_gpu)
    d = derived_values(_qwen(**{"cluster.decode_tp_gpus": 2}))
    assert d["weight_bytes_per_gpu_decode"] == pytest.approx(c1.weights_decode_gpu_bytes / 2)
    assert d["kv_bytes_per_token_per_gpu_decode"] == pytest.approx(262144 / 2)
    assert d["weight_bytes_per_gpu_prefill"] == pytest.approx(c1.weights_prefill_gpu_bytes)  # prefill stays TP 1


def test_decode_step_halves_plus_all_reduce() -> None:
    """TP 2: every GEMM and the attention core take half the time; two all-reduces per layer are added."""
    c1 = build_cost_model(_qwen())
    c2 = build_cost_model(_qwen(**{"cluster.decode_tp_gpus": 2}))
    fixed = c1.layers * c1.layer_overhead_s + c1.step_overhead_s  # small kernels and host time do not shrink
    for batch in (1, 8, 64):
        s1, _ = c1.decode_uniform_step_s(batch, 30000)
        s2, parts = c2.decode_uniform_step_s(batch, 30000)
        ar = parts["tp_all_reduce"]
        assert ar > 0
        assert s2 == pytest.approx((s1 - fixed) / 2 + fixed + ar, rel=1e-12)
    ar_small = c2.decode_uniform_step_s(1, 30000)[1]["tp_all_reduce"]
    ar_big = c2.decode_uniform_step_s(64, 30000)[1]["tp_all_reduce"]
    assert ar_big > ar_small  # grows with the tokens of the step
    # the formula: per layer 2 x (2(T-1)/T x tokens x hidden x 2 B / NVLink + latency)
    nvlink = 1600 / 8 * 1e9  # H800 per direction
    assert ar_big == pytest.approx(64 * 2 * (1.0 * 64 * 5120 * 2 / nvlink + 15e-6))


def test_prefill_step_halves_plus_all_reduce_and_latency_is_a_field() -> None:
    """Prefill at TP 2 likewise; compute.tp_allreduce_latency_us moves the step by 2 x layers x its change."""
    c1 = build_cost_model(_qwen())
    c2 = build_cost_model(_qwen(**{"cluster.prefill_tp_gpus": 2}))
    fixed = c1.layers * c1.layer_overhead_s + c1.step_overhead_s
    s1, _ = c1.prefill_uniform_step_s(4, 2000, 30000)
    s2, parts = c2.prefill_uniform_step_s(4, 2000, 30000)
    ar = parts["tp_all_reduce"]
    assert ar == pytest.approx(64 * 2 * (1.0 * 8000 * 5120 * 2 / (200e9) + 15e-6))
    assert s2 == pytest.approx((s1 - fixed) / 2 + fixed + ar, rel=1e-12)
    assert c2.attention_time_s(2000, 30000) == pytest.approx(c1.attention_time_s(2000, 30000) / 2)
    c3 = build_cost_model(_qwen(**{"cluster.prefill_tp_gpus": 2, "compute.tp_allreduce_latency_us": 35.0}))
    s3, _ = c3.prefill_uniform_step_s(4, 2000, 30000)
    assert s3 - s2 == pytest.approx(64 * 2 * 20e-6)


def test_qwen_64k_refused_without_tp_runs_with_decode_tp2() -> None:
    """The 64K Qwen scenario: a request never fits one decode GPU; a TP-2 decode engine holds it and the run finishes."""
    sc = _qwen(QWEN64, **{"workload.agents": 16})
    with pytest.raises(ScenarioError, match="cluster.decode_tp_gpus=2"):
        api.simulate(sc, "dualpath")
    tp = _qwen(QWEN64, **{"workload.agents": 16, "cluster.decode_tp_gpus": 2})
    r = api.simulate(tp, "dualpath", check_invariants=True)
    assert r.invariants == []
    assert r.summary.status == "finished"
    assert r.rounds["done_s"].null_count() == 0
    assert r.rounds["de"].max() < 2 * 4  # two decode nodes of four TP-2 engines
    assert set(r.rounds["de_node"].unique().to_list()) == {0, 1}


def test_world_has_g_over_t_engines_with_merged_links() -> None:
    """Engines per node = g / T, each with T GPUs' free HBM; a TP engine's CNIC and PCIe links are one of T x bandwidth."""
    sc = _qwen(**{"workload.agents": 4, "cluster.decode_tp_gpus": 4, "cluster.prefill_tp_gpus": 2})
    cost = build_cost_model(sc)
    wl = api.load_workload(sc)
    w = World(sc, wl, get_policy("dualpath"), cost)
    assert (w.gp, w.gd) == (4, 2)
    assert len(w.pe_hbm) == 1 * 4 and len(w.de_hbm) == 2 * 2
    assert w.prefill_engines_per_node == 4 and w.decode_engines_per_node == 2
    cnic = 400 / 8 * 1e9 * 0.95
    assert [lk.capacity_bps for lk in w.nodes[0].cnic_rx] == pytest.approx([2 * cnic] * 4)
    assert [lk.capacity_bps for lk in w.nodes[1].cnic_tx] == pytest.approx([4 * cnic] * 2)
    # the engine's path into HBM: its merged CNIC (slot 1 of a decode node: GPUs 4-7)
    assert w._into_gpu(1, 1)[0] is w.nodes[1].cnic_rx[1]
    assert w.engine_of_gpu(2, 5) == 2 + 1 and w.engine_of_gpu(0, 5) == 2


def test_bound_counts_engines() -> None:
    """The analytic decode bound uses g / T engines per decode node, each at its TP step time."""
    sc = _qwen(**{"workload.agents": 64, "cluster.decode_tp_gpus": 2})
    wl = api.load_workload(sc)
    b = compute_bound(sc, wl)
    from dualpath_twin.analysis.bounds import decode_rounds_per_s

    cost = build_cost_model(sc)
    rps, bsz = decode_rounds_per_s(sc, cost, 30000.0, 170.0)
    step, _ = cost.decode_step_s(int(bsz), bsz * cost.model.decode_kv_read_bytes(30085.0),
                                 bsz * cost.attention_flops_per_token(30085.0))
    assert rps == pytest.approx(2 * 4 * bsz / step / 169.0)
    assert b.rounds_per_s_by_resource["decode"] > 0


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        ({"cluster.decode_tp_gpus": 3}, ["cluster.decode_tp_gpus = 3", "must divide cluster.gpus_per_node = 8", "[1, 2, 4, 8]"]),
        ({"cluster.prefill_tp_gpus": 0}, ["cluster.prefill_tp_gpus = 0", "greater than or equal to 1"]),
        ({"cluster.decode_tp_gpus": 8, "model.overrides.kv_heads": 4},
         ["cluster.decode_tp_gpus = 8", "kv_heads = 4", "use one of [1, 2, 4]"]),
        ({"model.name": "DS-27B", "cluster.prefill_tp_gpus": 2}, ["cluster.prefill_tp_gpus = 2", "dense models only"]),
        ({"model.name": "DS-27B", "model.overrides.experts_routed": 0, "model.overrides.dense_layers": 30,
          "cluster.decode_tp_gpus": 2}, ["cluster.decode_tp_gpus = 2", "GQA attention only", "MLA"]),
        ({"cluster.gpus_per_node": 6, "network.cnics_per_node": 3, "cluster.decode_tp_gpus": 3},
         ["cluster.decode_tp_gpus = 3", "network.cnics_per_node = 3", "share a compute NIC"]),
    ],
)
def test_bad_tp_values_name_the_field(overrides: dict, needles: list[str]) -> None:
    """Each refused TP value is reported on its field, with the reason and a fix."""
    with pytest.raises(ScenarioError) as err:
        _qwen(**overrides)
    msg = "\n".join(err.value.problems)
    for n in needles:
        assert n in msg, msg


def test_weights_check_suggests_tp() -> None:
    """A dense model too big for one GPU: the error points at cluster.<role>_tp_gpus."""
    with pytest.raises(ScenarioError) as err:
        _qwen(**{"cluster.hbm_reserved_gb": 20.0})
    msg = "\n".join(err.value.problems)
    assert "cluster.prefill_tp_gpus = 2" in msg and "cluster.decode_tp_gpus = 2" in msg
    _qwen(**{"cluster.hbm_reserved_gb": 20.0, "cluster.prefill_tp_gpus": 2, "cluster.decode_tp_gpus": 2})  # accepted


def test_run_diff_names_the_tp() -> None:
    """The runs table's topology column shows TP when it is not 1, and reads as before without it."""
    from dualpath_twin.comparison import _group_text, flatten_toml

    tp = _qwen(**{"cluster.decode_tp_gpus": 2})
    assert _group_text("topology", flatten_toml(tp.to_toml())) == "1P2D x8 H800 TP 1/2"
    assert _group_text("topology", flatten_toml(_qwen().to_toml())) == "1P2D x8 H800"


def test_cached_reads_cross_nodes_with_different_tp() -> None:
    """A DRAM cache hit read from a node whose CNIC links TP merged differently (prefill TP 1, decode TP 2) finishes."""
    sc = _qwen(**{"workload.agents": 16, "workload.max_context_tokens": 16384, "cluster.decode_tp_gpus": 2,
                  "cache.capacity_gb": 50.0, "cache.scope": "per_node"})
    for design in ("basic", "dualpath"):
        r = api.simulate(sc, design, check_invariants=True)
        assert r.invariants == [] and r.summary.status == "finished"
        assert r.summary.cache is not None and r.summary.cache.bytes_from_cache > 0
