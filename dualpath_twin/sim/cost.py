"""Compute-time predictor: prefill and decode step times from bytes, FLOPs and fixed latencies.

Every operation of a layer is costed on a roofline, ``max(bytes / (HBM bandwidth x efficiency),
FLOPs / (peak x efficiency))`` (weights at ``weight_hbm_efficiency``, KV at ``hbm_efficiency``), so a small batch is bound by reading the weights and a large one by
the tensor cores; the fixed costs that do not shrink with the batch are added on top. Per layer:

- attention projections (and the sparse-attention indexer's), replicated on every GPU
  (attention is data-parallel): weights read once per step, FLOPs 2 x params per new token;
- the attention core: FLOPs at ``peak_bf16 x attention_mfu`` against the context KV it reads
  (each request's KV of the layer once, sparse models: the indexer keys of the whole context
  and the top-k latents);
- dense MLP layers and shared experts, replicated: a GEMM roofline on the GPU's own tokens;
- routed experts, expert-parallel over the EP group: the group's tokens x top-k spread over the
  experts; a GPU reads the weights of its local experts that got at least one token and runs
  their FLOPs (load balanced across GPUs, as with redundant experts);
- the EP all-to-all (dispatch + combine) per MoE layer: the cross-node share of the bytes over
  the GPU's compute NIC, the rest over NVLink, plus a fixed latency per collective; overlapped
  (two micro-batches: ``prefill_ep_overlap``, ``decode_ep_overlap``) it hides under compute,
  which then runs on the SMs the communication kernels leave (``ep_comm_sm_share``), else it adds;
- ``layer_overhead_us`` per layer (the small kernels: norms, RoPE, routing, top-k, residuals);
- tensor parallelism (dense models, ``cluster.prefill_tp_gpus`` / ``decode_tp_gpus`` = T): an engine
  is T GPUs; each GPU holds 1/T of the weights and of the KV heads, so every GEMM's weight bytes
  and FLOPs and the attention core's KV reads and FLOPs are divided by T, and each layer adds two
  all-reduces (after attention and after the MLP) of tokens x hidden x 2 bytes: a ring over NVLink,
  2(T-1)/T x bytes / NVLink bandwidth, plus ``tp_allreduce_latency_us`` each. The per-layer
  overheads and the step overhead do not shrink. Every step time below is an engine's.

A step adds ``step_overhead_ms`` (host-side scheduling, input preparation, sampling). An EP
group synchronises at every MoE layer, so a prefill step lasts as long as its slowest GPU
(DP-attention stragglers) and idle GPUs still run the experts for the others. Decode steps
read the LM head too. docs/model.md lists every term and the source of every default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dualpath_twin.scenario import Scenario, ep_group_nodes

_MEMO_MAX = 65536  # entries per memo table before it is cleared (bounds memory on long runs)


@dataclass
class CostModel:
    """Pre-resolved per-layer bytes, FLOPs and rates for fast step-time predictions."""

    layers: int
    dense_layers: int
    moe_layers: int
    kv_bytes_per_token: float
    linear_flops_per_token: float
    peak_linear_flops: float
    peak_attn_flops: float
    gemm_mfu: float
    attention_mfu: float
    hbm_bps: float  # achieved HBM bytes/s for KV reads (datasheet x hbm_efficiency)
    weight_bps: float  # achieved HBM bytes/s for weights streamed by small-batch GEMMs
    # per layer: weight bytes and linear FLOPs per token
    attn_w_bytes: float
    attn_flops_tok: float
    dense_mlp_w_bytes: float
    dense_mlp_flops_tok: float
    shared_w_bytes: float  # shared experts + router of one MoE layer
    shared_flops_tok: float
    expert_w_bytes: float  # one routed expert
    expert_flops_tok: float
    experts_routed: int
    experts_active: int
    lm_head_w_bytes: float
    lm_head_flops_tok: float
    # attention KV read per request per layer: a * min(L, topk) + b * L bytes
    kv_layer_capped: float
    kv_layer_full: float
    kv_topk: int
    # expert parallelism
    prefill_ep_gpus: int
    decode_ep_gpus: int
    a2a_bytes_tok_layer: float  # dispatch + combine bytes of one token in one MoE layer (all top-k copies)
    prefill_cross_frac: float
    decode_cross_frac: float
    cnic_bps: float  # achieved CNIC bytes/s for EP traffic (line x cnic_efficiency x ep_comm_efficiency)
    nvlink_bps: float  # achieved NVLink bytes/s per GPU per direction
    a2a_latency_s: float
    prefill_nodes_per_group: int
    decode_nodes_per_group: int
    prefill_ep_overlap: bool
    decode_ep_overlap: bool
    ep_comm_sm_share: float
    layer_overhead_s: float
    step_overhead_s: float
    weights_prefill_gpu_bytes: float
    weights_decode_gpu_bytes: float
    hbm_kv_prefill_bytes: float  # KV room of one prefill engine (its TP GPUs' free HBM)
    hbm_kv_decode_bytes: float  # KV room of one decode engine
    ep_bytes_per_token: float
    model: Any
    decode_extra_flops_per_token: float = 0.0  # the LM head, computed for every decoded token
    indexer_weight: float = 1.0  # indexer FLOPs in BF16-peak units (0.5: FP8 at twice the BF16 peak)
    prefill_sync_s: float = 0.0  # per MoE layer of a prefill step: DeepEP normal-mode notify + host sync
    tokens_per_decode_step: float = 1.0  # tokens a request emits per decode step (no speculative decoding)
    straggler: float = 1.0  # multiplies this engine's compute time (a slow GPU; 1 = nominal)
    # tensor parallelism: GPUs per prefill and per decode engine, and the all-reduce terms
    prefill_tp: int = 1
    decode_tp: int = 1
    tp_ar_bytes_tok: float = 0.0  # bytes of one token's activation in one all-reduce (hidden x 2 B, BF16)
    tp_nvlink_bps: float = 1.0  # NVLink bytes/s per GPU per direction
    tp_ar_latency_s: float = 0.0  # fixed latency of one all-reduce
    # memo tables of the batch-dependent terms (pure functions of the fields above, computed in the
    # same order, so a memoised step equals the computed one bit for bit); cleared when large
    _memo_decode: dict[int, tuple[float, float, float, float, float, float]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _memo_gpu: dict[float, tuple[float, float, float]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _memo_moe: dict[tuple[float, int], float] = field(default_factory=dict, init=False, repr=False, compare=False)
    _memo_a2a: dict[tuple[float, int, int], float] = field(default_factory=dict, init=False, repr=False, compare=False)

    # ---------------------------------------------------------------- pieces
    def allreduce_s(self, tokens: float, tp: int) -> float:
        """One tensor-parallel all-reduce of ``tokens`` activations over ``tp`` GPUs: ring bytes over NVLink + latency."""
        if tp <= 1 or tokens <= 0:
            return 0.0
        return 2.0 * (tp - 1) / tp * tokens * self.tp_ar_bytes_tok / self.tp_nvlink_bps + self.tp_ar_latency_s

    def tp_allreduce_step_s(self, tokens: float, tp: int) -> float:
        """All-reduce seconds of one step of ``tokens`` on a TP engine: two per layer (after attention, after the MLP)."""
        return self.layers * 2.0 * self.allreduce_s(tokens, tp)

    def kv_bytes_per_gpu_per_token(self, role: str) -> float:
        """KV bytes one GPU of a ``role`` engine holds per token (its 1/TP share of the KV heads)."""
        return self.kv_bytes_per_token / (self.prefill_tp if role == "prefill" else self.decode_tp)

    def _roof(self, w_bytes: float, flops: float) -> float:
        """One GEMM-like operation: weights streamed from HBM vs tensor-core time."""
        return max(w_bytes / self.weight_bps, flops / (self.peak_linear_flops * self.gemm_mfu))

    def _experts_hit(self, group_tokens: float, ep_gpus: int) -> float:
        """Expected local experts (of E / ep_gpus) that receive at least one of the group's tokens."""
        e = self.experts_routed
        local = e / ep_gpus
        draws = group_tokens * self.experts_active
        if draws <= 0:
            return 0.0
        return local * -math.expm1(draws * math.log1p(-1.0 / e)) if e > 1 else local

    def _moe_layer_s(self, group_tokens: float, ep_gpus: int) -> float:
        """Routed-expert time of one GPU in one MoE layer (balanced load over the EP group)."""
        if group_tokens <= 0:
            return 0.0
        memo = self._memo_moe
        key = (group_tokens, ep_gpus)
        t = memo.get(key)
        if t is None:
            hit = self._experts_hit(group_tokens, ep_gpus)
            flops = group_tokens * self.experts_active / ep_gpus * self.expert_flops_tok
            t = self._roof(hit * self.expert_w_bytes, flops)
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            memo[key] = t
        return t

    def _cross_node_bytes_layer(self, tokens: float, nodes: int) -> float:
        """All-to-all bytes of ``tokens`` that cross to other nodes in one MoE layer (once per remote node hit)."""
        if nodes <= 1 or tokens <= 0:
            return 0.0
        k = max(self.experts_active, 1)
        remote_nodes = (nodes - 1) * -math.expm1(k * math.log1p(-1.0 / nodes))
        return tokens * self.a2a_bytes_tok_layer / k * remote_nodes

    def _a2a_layer_s(self, tokens: float, nodes: int, ep_gpus: int) -> float:
        """Dispatch + combine time of one GPU's ``tokens`` in one MoE layer.

        Cross-node traffic is sent once per remote node a token's experts sit on (and forwarded over
        NVLink there, as DeepEP does): expected remote nodes = (N-1)(1-(1-1/N)^k) for N nodes in the
        group; every one of the k expert copies crosses NVLink once.
        """
        if ep_gpus <= 1 or tokens <= 0 or self.a2a_bytes_tok_layer <= 0:
            return 0.0
        memo = self._memo_a2a
        key = (tokens, nodes, ep_gpus)
        t = memo.get(key)
        if t is None:
            cross = self._cross_node_bytes_layer(tokens, nodes)
            intra = tokens * self.a2a_bytes_tok_layer * (ep_gpus - 1) / ep_gpus
            # RDMA and NVLink run at once (DeepEP forwards over NVLink while RDMA proceeds)
            t = max(cross / self.cnic_bps, intra / self.nvlink_bps) + 2.0 * self.a2a_latency_s
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            memo[key] = t
        return t

    # ---------------------------------------------------------------- prefill
    def attention_flops(self, new_tokens: float, context_start: float) -> float:
        """Attention FLOPs of computing ``new_tokens`` after ``context_start`` cached tokens."""
        return self.model.prefill_attention_flops(new_tokens, context_start, self.indexer_weight)

    def attention_flops_per_token(self, context_tokens: int) -> float:
        """Attention FLOPs of one decoded token at ``context_tokens`` (indexer in BF16-peak units)."""
        return self.model.attention_flops_per_token(context_tokens, self.indexer_weight)

    def decode_linear_forms(self) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
        """The model's decode KV-read and FLOP forms, the indexer's FLOPs in BF16-peak units."""
        return self.model.decode_linear_forms(self.indexer_weight)

    def attention_time_s(self, new_tokens: float, context_start: float) -> float:
        """Predicted attention-core time of a request's chunk (the compute quota counts this)."""
        if new_tokens <= 0:
            return 0.0
        flops_s = self.attention_flops(new_tokens, context_start) / (self.peak_attn_flops * self.attention_mfu)
        ctx = context_start + new_tokens
        kv = self.layers * (self.kv_layer_capped * min(ctx, self.kv_topk) + self.kv_layer_full * ctx)
        t = max(flops_s, kv / self.hbm_bps)
        return t / self.prefill_tp if self.prefill_tp > 1 else t  # TP: each GPU runs 1/T of the heads

    def prefill_group_step_s(self, gpu_work: list[tuple[float, float]], n_gpus: int) -> tuple[float, list[float], float]:
        """One EP group's forward step: ``gpu_work`` is (new tokens, attention seconds) per busy GPU.

        Returns (step seconds, busy seconds of each listed GPU, all-to-all seconds of the busiest
        GPU per step). GPUs of the group not listed are idle in attention but run their experts.
        """
        if not gpu_work:
            return 0.0, [], 0.0
        group_tokens = sum(t for t, _ in gpu_work)
        if group_tokens <= 0:
            return 0.0, [0.0] * len(gpu_work), 0.0
        ep = self.prefill_ep_gpus
        # a group may hold several EP groups' worth of GPUs only when ep < n_gpus; scale tokens per EP group
        ep_tokens = group_tokens * ep / max(n_gpus, ep)
        moe = self._moe_layer_s(ep_tokens, ep)
        t_max = max(t for t, _ in gpu_work)
        a2a_max = self._a2a_layer_s(max(t_max, ep_tokens / ep), self.prefill_nodes_per_group, ep) if self.moe_layers else 0.0
        busy: list[float] = []
        worst = 0.0
        for toks, attn_s in gpu_work:
            b = self._gpu_prefill_s(toks, attn_s, moe)
            busy.append(b * self.straggler)
            worst = max(worst, b * self.straggler)
        if not self.moe_layers:
            return worst + self.step_overhead_s, busy, 0.0
        # every GPU waits at each MoE layer for the slowest: the step is the slowest GPU's compute,
        # with the all-to-all hidden under it (two micro-batches) or added
        # the normal-mode synchronisation (notify barriers, host wait) is time, not bytes: it joins the
        # all-to-all's time (hidden too when overlapped) but not the CNIC lane the bytes occupy
        comm = self.moe_layers * a2a_max
        sync = self.moe_layers * self.prefill_sync_s if ep > 1 else 0.0
        return self._with_comm(worst, comm + sync, self.prefill_ep_overlap) + self.step_overhead_s, busy, comm

    def _with_comm(self, comp: float, comm: float, overlap: bool) -> float:
        """Compute plus all-to-all: added, or overlapped with compute slowed by the SMs the comm kernels take."""
        if not overlap:
            return comp + comm
        s = self.ep_comm_sm_share
        slowed = comp + min(comm, comp) * s / (1.0 - s)
        return max(slowed, comm)

    def _gpu_prefill_s(self, toks: float, attn_s: float, moe_layer_s: float) -> float:
        """Compute seconds of one GPU's forward step (all layers), attention core given."""
        memo = self._memo_gpu
        terms = memo.get(toks)
        if terms is None:
            if toks > 0:
                per_layer = self._roof(self.attn_w_bytes, toks * self.attn_flops_tok)
                dense = self._roof(self.dense_mlp_w_bytes, toks * self.dense_mlp_flops_tok) if self.dense_layers else 0.0
                shared = self._roof(self.shared_w_bytes, toks * self.shared_flops_tok) if self.moe_layers else 0.0
            else:
                per_layer = dense = shared = 0.0
            tp = self.prefill_tp
            if tp > 1:  # each GPU: 1/T of every GEMM, plus the two all-reduces per layer
                terms = (self.layers * (per_layer / tp + self.layer_overhead_s) + self.tp_allreduce_step_s(toks, tp),
                         self.dense_layers * dense / tp, shared)
            else:
                terms = (self.layers * (per_layer + self.layer_overhead_s), self.dense_layers * dense, shared)
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            memo[toks] = terms
        layers_s, dense_s, shared = terms
        return layers_s + attn_s + dense_s + self.moe_layers * (shared + moe_layer_s)

    def prefill_uniform_step_s(self, batch_per_gpu: int, new_tokens: int, hit_tokens: int) -> tuple[float, dict[str, float]]:
        """Step of ``batch_per_gpu`` equal requests on every GPU of a prefill EP group, with a breakdown."""
        if batch_per_gpu <= 0 or new_tokens <= 0:
            return 0.0, {}
        toks = float(batch_per_gpu * new_tokens)
        attn = batch_per_gpu * self.attention_time_s(new_tokens, hit_tokens)
        tp = self.prefill_tp
        n = self.prefill_ep_gpus // tp if tp > 1 else self.prefill_ep_gpus  # engines of the group
        step, _, comm = self.prefill_group_step_s([(toks, attn)] * n, n)
        ep_tokens = toks * n
        parts = {
            "attention_projections": self.layers * self._roof(self.attn_w_bytes, toks * self.attn_flops_tok) / tp,
            "attention_core": attn,
            "dense_mlp": self.dense_layers * self._roof(self.dense_mlp_w_bytes, toks * self.dense_mlp_flops_tok) / tp if self.dense_layers else 0.0,
            "shared_experts": self.moe_layers * self._roof(self.shared_w_bytes, toks * self.shared_flops_tok) if self.moe_layers else 0.0,
            "routed_experts": self.moe_layers * self._moe_layer_s(ep_tokens, n),
            "layer_overhead": self.layers * self.layer_overhead_s,
            "all_to_all": comm,
            "ep_sync": self.moe_layers * self.prefill_sync_s if n > 1 else 0.0,
            "step_overhead": self.step_overhead_s,
        }
        if tp > 1:
            parts["tp_all_reduce"] = self.tp_allreduce_step_s(toks, tp)
        return step, parts

    def prefill_comm_s(self, group_tokens_per_gpu: float) -> float:
        """EP all-to-all seconds per GPU for a prefill step whose GPUs each compute ``group_tokens_per_gpu``."""
        if not self.moe_layers:
            return 0.0
        return self.moe_layers * self._a2a_layer_s(group_tokens_per_gpu, self.prefill_nodes_per_group, self.prefill_ep_gpus)

    def prefill_comm_bytes(self, tokens: float) -> float:
        """Cross-node EP bytes a GPU exchanges for ``tokens`` new tokens in one prefill step."""
        return self.moe_layers * self._cross_node_bytes_layer(tokens, self.prefill_nodes_per_group)

    # ---------------------------------------------------------------- decode
    def decode_step_s(self, batch: int, kv_read_bytes: float, attn_flops: float) -> tuple[float, float]:
        """One decode step of ``batch`` requests on one GPU; returns (step time, comm busy fraction).

        ``kv_read_bytes`` and ``attn_flops`` are the batch's attention-core KV reads and FLOPs.
        """
        if batch <= 0:
            return 0.0, 0.0
        terms = self._memo_decode.get(batch)
        if terms is None:
            terms = self._decode_terms(batch)
        layers_s, lm_s, dense_s, moe_s, comm, cross_s = terms
        core = max(kv_read_bytes / self.hbm_bps, attn_flops / (self.peak_attn_flops * self.attention_mfu))
        if self.decode_tp > 1:
            core /= self.decode_tp  # each GPU reads and attends over its 1/T of the KV heads
        comp = layers_s + core
        comp += lm_s
        if self.dense_layers:
            comp += dense_s
        if self.moe_layers:
            comp += moe_s
        comp *= self.straggler
        step = self._with_comm(comp, comm, self.decode_ep_overlap) + self.step_overhead_s
        return step, (min(cross_s / step, 1.0) if step > 0 else 0.0)

    def _decode_terms(self, batch: int) -> tuple[float, float, float, float, float, float]:
        """The terms of a decode step that depend on the batch size only (memoised per batch)."""
        ep = self.decode_ep_gpus
        proj = self._roof(self.attn_w_bytes, batch * self.attn_flops_tok)
        layers_s = self.layers * (proj + self.layer_overhead_s)
        lm_s = self._roof(self.lm_head_w_bytes, batch * self.lm_head_flops_tok)
        dense_s = self.dense_layers * self._roof(self.dense_mlp_w_bytes, batch * self.dense_mlp_flops_tok) if self.dense_layers else 0.0
        tp = self.decode_tp
        if tp > 1:  # each GPU: 1/T of every GEMM (LM head vocabulary-parallel), plus two all-reduces per layer
            layers_s = self.layers * (proj / tp + self.layer_overhead_s) + self.tp_allreduce_step_s(batch, tp)
            lm_s /= tp
            dense_s /= tp
        moe_s = comm = cross_s = 0.0
        if self.moe_layers:
            moe = self._moe_layer_s(batch * ep, ep)
            moe_s = self.moe_layers * (self._roof(self.shared_w_bytes, batch * self.shared_flops_tok) + moe)
            comm = self.moe_layers * self._a2a_layer_s(batch, self.decode_nodes_per_group, ep)
            if comm > 0 and self.decode_nodes_per_group > 1:
                cross_s = self.moe_layers * self._cross_node_bytes_layer(batch, self.decode_nodes_per_group) / self.cnic_bps
        terms = (layers_s, lm_s, dense_s, moe_s, comm, cross_s)
        memo = self._memo_decode
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        memo[batch] = terms
        return terms

    def decode_uniform_step_s(self, batch_per_gpu: int, context_tokens: int) -> tuple[float, dict[str, float]]:
        """Decode step of ``batch_per_gpu`` requests at ``context_tokens`` each, with a breakdown."""
        if batch_per_gpu <= 0:
            return 0.0, {}
        m = self.model
        kv = batch_per_gpu * m.decode_kv_read_bytes(context_tokens)
        attn = batch_per_gpu * self.attention_flops_per_token(context_tokens)
        step, _ = self.decode_step_s(batch_per_gpu, kv, attn)
        b = batch_per_gpu
        ep = self.decode_ep_gpus
        tp = self.decode_tp
        parts = {
            "attention_projections": self.layers * self._roof(self.attn_w_bytes, b * self.attn_flops_tok) / tp,
            "attention_core": max(kv / self.hbm_bps, attn / (self.peak_attn_flops * self.attention_mfu)) / tp,
            "dense_mlp": self.dense_layers * self._roof(self.dense_mlp_w_bytes, b * self.dense_mlp_flops_tok) / tp if self.dense_layers else 0.0,
            "shared_experts": self.moe_layers * self._roof(self.shared_w_bytes, b * self.shared_flops_tok) if self.moe_layers else 0.0,
            "routed_experts": self.moe_layers * self._moe_layer_s(b * ep, ep) if self.moe_layers else 0.0,
            "lm_head": self._roof(self.lm_head_w_bytes, b * self.lm_head_flops_tok) / tp,
            "layer_overhead": self.layers * self.layer_overhead_s,
            "all_to_all": self.moe_layers * self._a2a_layer_s(b, self.decode_nodes_per_group, ep) if self.moe_layers else 0.0,
            "step_overhead": self.step_overhead_s,
        }
        if tp > 1:
            parts["tp_all_reduce"] = self.tp_allreduce_step_s(b, tp)
        return step, parts


def _ep_cross_fraction(nodes_in_group: int) -> float:
    """Share of a GPU's remote all-to-all traffic that leaves the node (experts spread evenly)."""
    if nodes_in_group <= 1:
        return 0.0
    return (nodes_in_group - 1) / nodes_in_group


def build_cost_model(sc: Scenario) -> CostModel:
    """Resolve the catalog entries and the [compute] fields of a scenario into a CostModel."""
    from dualpath_twin import catalog

    gpu = catalog.get_gpu(sc.cluster.gpu)
    m = catalog.get_model(sc.model.name, sc.model.kv_format, sc.model.overrides or None)
    cp = sc.compute
    g = sc.cluster.gpus_per_node
    pe_nodes, de_nodes = ep_group_nodes(sc)
    tp_p, tp_d = sc.cluster.prefill_tp_gpus, sc.cluster.decode_tp_gpus
    w_p = float(m.weight_bytes_per_gpu(pe_nodes * g, tp_p))
    w_d = float(m.weight_bytes_per_gpu(de_nodes * g, tp_d))
    hbm = gpu.hbm_gb * 1e9
    reserved = sc.cluster.hbm_reserved_gb * 1e9
    wb = m.weight_bytes_per_param
    ewb = m.expert_weight_bytes_per_param
    moe = m.is_moe
    attn_p = float(m.attention_params_per_layer)
    dense_p = float(m.mlp_matrices * m.hidden * m.intermediate) if m.dense_layers else 0.0
    shared_p = float(m.experts_shared * m.expert_params_each + m.hidden * m.experts_routed) if moe else 0.0
    expert_p = float(m.expert_params_each) if moe else 0.0
    kv_capped, kv_full, topk = 0.0, 0.0, 0
    if m.attention == "mla" and m.sparse_topk:
        kv_capped, kv_full, topk = float(m.attention_kv_bytes_per_layer), float(m.indexer_key_bytes_per_layer), m.sparse_topk
    elif m.attention == "mla":
        kv_full = float(m.attention_kv_bytes_per_layer)
    else:
        kv_full = float(m.kv_bytes_per_token) / max(m.layers, 1)
    a2a_tok_layer = float(m.ep_alltoall_bytes_per_token()) / m.moe_layers if moe and m.moe_layers else 0.0
    cnic_bps = sc.network.cnic_gbps / 8 * 1e9 * sc.network.cnic_efficiency
    return CostModel(
        layers=int(m.layers),
        dense_layers=int(m.dense_layers),
        moe_layers=int(m.moe_layers),
        kv_bytes_per_token=float(m.kv_bytes_per_token),
        linear_flops_per_token=float(m.linear_flops_per_token()),
        peak_linear_flops=float(gpu.peak_flops(cp.use_fp8)),
        peak_attn_flops=float(gpu.peak_flops(False)),
        gemm_mfu=cp.gemm_mfu,
        attention_mfu=cp.attention_mfu,
        hbm_bps=gpu.hbm_tbps * 1e12 * cp.hbm_efficiency,
        weight_bps=gpu.hbm_tbps * 1e12 * cp.weight_hbm_efficiency,
        attn_w_bytes=attn_p * wb,
        attn_flops_tok=2.0 * attn_p,
        dense_mlp_w_bytes=dense_p * wb,
        dense_mlp_flops_tok=2.0 * dense_p,
        shared_w_bytes=shared_p * wb,
        shared_flops_tok=2.0 * shared_p,
        expert_w_bytes=expert_p * ewb,
        expert_flops_tok=2.0 * expert_p,
        experts_routed=int(m.experts_routed),
        experts_active=int(m.experts_active),
        lm_head_w_bytes=float(m.vocab * m.hidden) * wb,
        lm_head_flops_tok=float(m.lm_head_flops_per_token()),
        kv_layer_capped=kv_capped,
        kv_layer_full=kv_full,
        kv_topk=topk,
        prefill_ep_gpus=max(pe_nodes * g, 1),
        decode_ep_gpus=max(de_nodes * g, 1),
        a2a_bytes_tok_layer=a2a_tok_layer,
        prefill_cross_frac=_ep_cross_fraction(pe_nodes),
        decode_cross_frac=_ep_cross_fraction(de_nodes),
        cnic_bps=cnic_bps * cp.ep_comm_efficiency,
        nvlink_bps=gpu.nvlink_gbps / 8 * 1e9 * cp.ep_comm_efficiency,
        a2a_latency_s=cp.ep_alltoall_latency_us * 1e-6,
        prefill_nodes_per_group=max(pe_nodes, 1),
        decode_nodes_per_group=max(de_nodes, 1),
        prefill_ep_overlap=cp.prefill_ep_overlap,
        decode_ep_overlap=cp.decode_ep_overlap,
        ep_comm_sm_share=cp.ep_comm_sm_share,
        layer_overhead_s=cp.layer_overhead_us * 1e-6,
        step_overhead_s=cp.step_overhead_ms / 1000.0,
        weights_prefill_gpu_bytes=w_p,
        weights_decode_gpu_bytes=w_d,
        hbm_kv_prefill_bytes=max(hbm - w_p - reserved, 0.0) * tp_p,  # an engine's KV room: its T GPUs' free HBM
        hbm_kv_decode_bytes=max(hbm - w_d - reserved, 0.0) * tp_d,
        ep_bytes_per_token=float(m.ep_alltoall_bytes_per_token()) if moe else 0.0,
        model=m,
        decode_extra_flops_per_token=float(m.lm_head_flops_per_token()),
        indexer_weight=(gpu.peak_flops(False) / gpu.peak_flops(True)) if cp.indexer_fp8 and m.has_indexer else 1.0,
        prefill_sync_s=(cp.prefill_ep_sync_us if pe_nodes > 1 else cp.prefill_ep_sync_intranode_us) * 1e-6 if moe else 0.0,
        prefill_tp=tp_p,
        decode_tp=tp_d,
        tp_ar_bytes_tok=float(m.hidden) * 2.0,
        tp_nvlink_bps=max(gpu.nvlink_gbps, 1e-9) / 8 * 1e9,
        tp_ar_latency_s=cp.tp_allreduce_latency_us * 1e-6,
    )
