"""Compute-time predictor: prefill and decode step times from FLOPs and bytes (roofline).

Prefill (per GPU, attention data-parallel): linear-layer FLOPs of the batch's new tokens run at
``peak x prefill_mfu x eff(T)`` where ``eff(T) = T / (T + prefill_batch_half_tokens)`` and T is
the GPU's new tokens in the forward batch; attention FLOPs run at ``peak_bf16 x attention_mfu``.
An expert-parallel group steps together, so the group's step is its slowest GPU's time, and
EP all-to-all bytes over compute NICs (cross-node share only) set a communication floor.

Decode (per GPU, one step of continuous batching): ``max(HBM bytes / (hbm_bw x eff),
FLOPs / (peak x decode_mfu), EP comm bytes / CNIC)`` plus a fixed step overhead, where HBM
bytes are the GPU's weights plus the KV the batch attends to.
"""

from __future__ import annotations

from dataclasses import dataclass

from dualpath_twin.scenario import Scenario


@dataclass
class CostModel:
    """Pre-resolved constants for fast step-time predictions."""

    layers: int
    kv_bytes_per_token: float
    linear_flops_per_token: float
    peak_linear_flops: float
    peak_attn_flops: float
    prefill_mfu: float
    attention_mfu: float
    half_tokens: float
    hbm_bps: float
    decode_hbm_eff: float
    decode_mfu: float
    step_overhead_s: float
    weights_prefill_gpu_bytes: float
    weights_decode_gpu_bytes: float
    hbm_kv_prefill_bytes: float
    hbm_kv_decode_bytes: float
    ep_bytes_per_token: float
    prefill_cross_frac: float
    decode_cross_frac: float
    cnic_bps: float
    ep_eff: float
    model: object
    decode_extra_flops_per_token: float = 0.0  # e.g. the LM head, computed for every decoded token

    # ---------------------------------------------------------------- prefill
    def attention_flops(self, new_tokens: float, context_start: float) -> float:
        """Attention FLOPs of computing ``new_tokens`` after ``context_start`` cached tokens."""
        if new_tokens <= 0:
            return 0.0
        mid = context_start + new_tokens / 2.0
        return new_tokens * self.model.attention_flops_per_token(mid)

    def attention_time_s(self, new_tokens: float, context_start: float) -> float:
        """Predicted attention time (used by the compute quota)."""
        return self.attention_flops(new_tokens, context_start) / (self.peak_attn_flops * self.attention_mfu)

    def prefill_gpu_time_s(self, tokens: float, attn_s: float) -> float:
        """Time for one GPU's forward batch: linear work at batch-dependent efficiency plus attention."""
        if tokens <= 0:
            return 0.0
        eff = tokens / (tokens + self.half_tokens) if self.half_tokens > 0 else 1.0
        lin = tokens * self.linear_flops_per_token / (self.peak_linear_flops * self.prefill_mfu * eff)
        return lin + attn_s

    def prefill_comm_s(self, group_tokens_per_gpu: float) -> float:
        """EP all-to-all time per GPU for a prefill step (cross-node share over its CNIC)."""
        if self.prefill_cross_frac <= 0 or self.ep_bytes_per_token <= 0:
            return 0.0
        return group_tokens_per_gpu * self.ep_bytes_per_token * self.prefill_cross_frac / (self.cnic_bps * self.ep_eff)

    def prefill_comm_bytes(self, tokens: float) -> float:
        """Cross-node EP bytes a GPU exchanges for ``tokens`` new tokens in one prefill step."""
        return tokens * self.ep_bytes_per_token * self.prefill_cross_frac

    # ---------------------------------------------------------------- decode
    def decode_step_s(self, batch: int, kv_read_bytes: float, flops: float) -> tuple[float, float]:
        """One decode step of ``batch`` requests on one GPU; returns (step time, comm busy fraction)."""
        if batch <= 0:
            return 0.0, 0.0
        mem = (self.weights_decode_gpu_bytes + kv_read_bytes) / (self.hbm_bps * self.decode_hbm_eff)
        comp = flops / (self.peak_linear_flops * self.decode_mfu)
        comm = 0.0
        if self.decode_cross_frac > 0 and self.ep_bytes_per_token > 0:
            comm = batch * self.ep_bytes_per_token * self.decode_cross_frac / (self.cnic_bps * self.ep_eff)
        step = max(mem, comp, comm) + self.step_overhead_s
        return step, (comm / step if step > 0 else 0.0)


def _ep_cross_fraction(nodes_in_group: int) -> float:
    """Share of all-to-all traffic that leaves the node (experts spread evenly over the group)."""
    if nodes_in_group <= 1:
        return 0.0
    return (nodes_in_group - 1) / nodes_in_group


def ep_group_nodes(sc: Scenario) -> tuple[int, int]:
    """Nodes per prefill and decode EP group (0 in the scenario means the whole role)."""
    c = sc.cluster
    p = c.prefill_ep_nodes or c.prefill_nodes
    d = c.decode_ep_nodes or c.decode_nodes
    return min(p, c.prefill_nodes), min(d, c.decode_nodes)


def build_cost_model(sc: Scenario) -> CostModel:
    """Resolve the catalog entries and calibration of a scenario into a CostModel."""
    from dualpath_twin import catalog

    gpu = catalog.get_gpu(sc.cluster.gpu)
    model = catalog.get_model(sc.model.name, sc.model.kv_format, sc.model.overrides or None)
    g = sc.cluster.gpus_per_node
    pe_nodes, de_nodes = ep_group_nodes(sc)
    w_p = float(model.weight_bytes_per_gpu(pe_nodes * g))
    w_d = float(model.weight_bytes_per_gpu(de_nodes * g))
    hbm = gpu.hbm_gb * 1e9
    reserved = sc.cluster.hbm_reserved_gb * 1e9
    cnic_bps = sc.network.cnic_gbps / 8 * 1e9 * sc.network.cnic_efficiency
    ep_bytes = float(model.ep_alltoall_bytes_per_token()) if model.is_moe else 0.0
    return CostModel(
        layers=int(model.layers),
        kv_bytes_per_token=float(model.kv_bytes_per_token),
        linear_flops_per_token=float(model.linear_flops_per_token()),
        peak_linear_flops=float(gpu.peak_flops(sc.compute.use_fp8)),
        peak_attn_flops=float(gpu.peak_flops(False)),
        prefill_mfu=sc.compute.prefill_mfu,
        attention_mfu=sc.compute.attention_mfu,
        half_tokens=sc.compute.prefill_batch_half_tokens,
        hbm_bps=gpu.hbm_tbps * 1e12,
        decode_hbm_eff=sc.compute.decode_hbm_efficiency,
        decode_mfu=sc.compute.decode_mfu,
        step_overhead_s=sc.compute.step_overhead_ms / 1000.0,
        weights_prefill_gpu_bytes=w_p,
        weights_decode_gpu_bytes=w_d,
        hbm_kv_prefill_bytes=max(hbm - w_p - reserved, 0.0),
        hbm_kv_decode_bytes=max(hbm - w_d - reserved, 0.0),
        ep_bytes_per_token=ep_bytes,
        prefill_cross_frac=_ep_cross_fraction(pe_nodes),
        decode_cross_frac=_ep_cross_fraction(de_nodes),
        cnic_bps=cnic_bps,
        ep_eff=sc.compute.ep_comm_efficiency,
        model=model,
        decode_extra_flops_per_token=float(model.lm_head_flops_per_token()) if hasattr(model, "lm_head_flops_per_token") else 0.0,
    )
