"""Closed-form per-resource bounds: the most rounds per second each resource can sustain.

For the workload's mean round (prompt, hit, generated tokens) each resource's capacity is
divided by what one round demands of it under a policy. The smallest quotient is the binding
resource; the run can be no faster. These are bounds (perfect overlap, perfect balance), so a
simulation lands at or below them, and near them when one resource binds by a wide margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dualpath_twin.results import Bound
from dualpath_twin.scenario import Scenario
from dualpath_twin.sim.cost import CostModel, build_cost_model
from dualpath_twin.workload.types import Workload

RESOURCE_LABELS = {
    "snic_read": "storage NIC reads",
    "storage_read": "storage backend read bandwidth",
    "snic_write": "decode storage NIC writes",
    "prefill_compute": "prefill GPU compute",
    "decode": "decode GPUs (HBM bandwidth and capacity)",
    "pe_cnic": "prefill compute NICs",
    "de_cnic": "decode compute NICs",
    "pe_dram": "prefill host DRAM bandwidth",
    "de_dram": "decode host DRAM bandwidth",
}


@dataclass
class PdRange:
    """Where a scenario's P/D ratio sits against DualPath's bottleneck-free range (DualPath paper)."""

    s: float
    lower: float
    upper: float
    ratio: float
    inside: bool
    limiting_term: str
    text: str


def pd_range(sc: Scenario) -> PdRange:
    """Bottleneck-free P/D range s/(g-s) <= P/D <= min{(g-2s)/s, (g-s)/(2s), (M/(sB)-3)/2}."""
    n = sc.network
    g = sc.cluster.gpus_per_node
    b_gpu = n.cnic_gbps * n.cnics_per_node / g  # per-GPU CNIC bandwidth, Gbps
    snic = n.snic_gbps * n.snics_per_node
    s = snic / b_gpu
    m = n.dram_gbps
    lower = s / (g - s) if g > s else math.inf
    terms = {
        "(g-2s)/s: prefill CNIC": (g - 2 * s) / s,
        "(g-s)/(2s): decode CNIC": (g - s) / (2 * s),
        "(M/(sB)-3)/2: DRAM": (m / snic - 3) / 2,
    }
    lim = min(terms, key=terms.get)
    upper = terms[lim]
    ratio = sc.cluster.prefill_nodes / sc.cluster.decode_nodes
    inside = lower <= ratio <= upper
    if inside:
        text = f"P/D = {ratio:.3g} is inside the bottleneck-free range [{lower:.3g}, {upper:.3g}]"
    elif ratio < lower:
        text = f"P/D = {ratio:.3g} is below the range [{lower:.3g}, {upper:.3g}]: too few prefill nodes, decode-side reads would saturate prefill CNICs"
    else:
        text = f"P/D = {ratio:.3g} is above the range [{lower:.3g}, {upper:.3g}]: limited by {lim}"
    return PdRange(s, lower, upper, ratio, inside, lim, text)


def _means(wl: Workload) -> tuple[float, float, float, float]:
    if wl.n_rounds == 0:
        return 1.0, 0.0, 1.0, 1.0
    p = float(np.mean(wl.prompt_tokens))
    h = float(np.mean(wl.hit_tokens))
    gen = float(np.mean(wl.gen_tokens))
    return p, h, max(p - h, 1.0), gen


def prefill_gpu_s_per_round(sc: Scenario, cost: CostModel, miss: float, hit: float) -> float:
    """GPU-seconds of prefill per mean round at the batch the compute quota allows."""
    attn = cost.attention_time_s(miss, hit)
    quota = sc.policy.compute_quota_ms / 1000.0
    b = max(1, min(sc.policy.max_prefill_batch, int(quota / attn) if attn > 0 else sc.policy.max_prefill_batch))
    step, _ = cost.prefill_uniform_step_s(b, max(int(round(miss)), 1), int(round(hit)))
    return step / b


def decode_rounds_per_s(sc: Scenario, cost: CostModel, prompt: float, gen: float) -> tuple[float, float]:
    """(rounds/s the decode GPUs sustain, batch per GPU) with HBM-capped batches at mean context."""
    kv = cost.kv_bytes_per_token
    per_req = (prompt + gen) * kv
    bsz = max(1, int(cost.hbm_kv_decode_bytes // per_req)) if per_req > 0 else 1
    ctx = prompt + gen / 2
    model = cost.model
    step, _ = cost.decode_step_s(bsz, bsz * model.decode_kv_read_bytes(ctx), bsz * model.attention_flops_per_token(ctx))
    tok_per_s_gpu = bsz / step
    n = sc.cluster.decode_nodes * sc.cluster.gpus_per_node
    steps_per_round = max(gen - 1, 1.0)
    return n * tok_per_s_gpu / steps_per_round, bsz


def compute_bound(sc: Scenario, wl: Workload, policy: str | None = None, cost: CostModel | None = None) -> Bound:
    """Per-resource maximum rounds/s for ``policy`` (default: the scenario's) and the binding one."""
    pol = policy or sc.policy.name
    cost = cost or build_cost_model(sc)
    prompt, hit, miss, gen = _means(wl)
    kv = cost.kv_bytes_per_token
    hb, pb = hit * kv, prompt * kv
    n, c = sc.network, sc.cluster
    P, D, g = c.prefill_nodes, c.decode_nodes, c.gpus_per_node
    snic = n.snic_gbps / 8 * 1e9 * n.snics_per_node * n.snic_efficiency
    cnic_node = n.cnic_gbps / 8 * 1e9 * n.cnic_efficiency * n.cnics_per_node
    dram = n.dram_gbps / 8 * 1e9
    write_b = (miss + gen) * kv
    io = pol != "oracle"
    de_reads = pol in ("dualpath", "dualpath-split")
    r: dict[str, float] = {}
    inf = math.inf
    if io and hb > 0:
        r["snic_read"] = (P + D if de_reads else P) * snic / hb
        if sc.storage.read_gbps_total:
            r["storage_read"] = sc.storage.read_gbps_total / 8 * 1e9 / hb
        # share of reads on the decode side at perfect SNIC balance
        f = D / (P + D) if de_reads else 0.0
        pe_rx = hb  # every hit byte enters the PE GPU through its CNIC (loopback or from the DE)
        pe_tx = pb - f * hb  # PD transfer: whole prompt for PE-side reads, only missed KV otherwise
        r["pe_cnic"] = P * cnic_node / max(pe_rx, pe_tx)
        de_rx = pe_tx + (pb if pol != "basic" else 0.0)  # PD in + DRAM->HBM at decode start
        de_tx = f * hb + write_b
        r["de_cnic"] = D * cnic_node / max(de_rx, de_tx, 1.0)
        r["pe_dram"] = P * dram / (2 * (1 - f) * hb)
        de_dram = 2 * f * hb + (2 * (pb - f * hb) if pol != "basic" else 0.0) + 2 * write_b
        r["de_dram"] = D * dram / max(de_dram, 1.0)
        r["snic_write"] = D * snic / max(write_b, 1.0)
        if sc.storage.write_gbps_total:
            r["storage_write"] = sc.storage.write_gbps_total / 8 * 1e9 / max(write_b, 1.0)
    gpu_s = prefill_gpu_s_per_round(sc, cost, miss, hit)
    r["prefill_compute"] = P * g / gpu_s if gpu_s > 0 else inf
    r["decode"], _ = decode_rounds_per_s(sc, cost, prompt, gen)
    items = sorted(r.items(), key=lambda kv_: kv_[1])
    first = items[0]
    second = items[1] if len(items) > 1 else (first[0], inf)
    max_rps = first[1]
    jct = None
    if sc.workload.mode == "offline" and wl.n_rounds:
        work = wl.n_rounds / max_rps
        # critical path of the slowest agent: its rounds run back to back, each needing at least
        # (gen - 1) decode steps at batch 1 plus its delays (prefill and I/O ignored: still a bound)
        step1, _ = cost.decode_step_s(1, cost.model.decode_kv_read_bytes(prompt), cost.model.attention_flops_per_token(prompt))
        per_round = (np.maximum(wl.gen_tokens - 1, 0) * step1).astype(float)
        if not wl.open_loop:
            per_round = per_round + wl.delay_s * (np.arange(wl.n_rounds) != np.repeat(wl.round_offsets[:-1], np.diff(wl.round_offsets)))
        starts = wl.round_offsets[:-1][np.diff(wl.round_offsets) > 0]
        chain = float(np.add.reduceat(per_round, starts).max()) if len(starts) else 0.0
        jct = max(work, chain + float(wl.arrival_s.max()) if wl.n_trajectories else chain)
    label = RESOURCE_LABELS.get(first[0], first[0])
    margin = (second[1] / first[1]) if first[1] > 0 else 1.0
    expl = (
        f"{pol}: at most {max_rps:.1f} rounds/s, bound by {label}"
        + (f" ({margin:.2f}x below the next, {RESOURCE_LABELS.get(second[0], second[0])})" if math.isfinite(second[1]) else "")
    )
    return Bound(
        policy=pol,
        rounds_per_s_by_resource={k: float(v) for k, v in r.items()},
        max_rounds_per_s=float(max_rps),
        max_prompt_tokens_per_s=float(max_rps * prompt),
        max_generated_tokens_per_s=float(max_rps * gen),
        min_jct_s=jct,
        binding_resource=first[0],
        second_resource=second[0] if math.isfinite(second[1]) else "",
        binding_margin=float(margin) if math.isfinite(margin) else 1e9,
        explanation=expl,
    )
