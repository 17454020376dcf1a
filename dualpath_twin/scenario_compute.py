"""The scenario's [compute] section: cost-model constants (efficiencies, fixed latencies), each with its source.

Split from ``dualpath_twin.scenario`` (which re-exports ``ComputeConfig`` and ``LEGACY_COMPUTE_FIELDS``);
``_Strict``, the base of every scenario section, lives here so this module does not import the scenario.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    """Base for every section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ComputeConfig(_Strict):
    """Cost-model constants (docs/model.md, docs/calibration.md): efficiencies and fixed latencies, each with its source."""

    gemm_mfu: float = Field(
        0.65, gt=0, le=1,
        description="achieved share of the tensor-core peak in compute-bound linear layers (DeepGEMM FP8 on H800: ~1,290 of 1,979 TFLOPS)",
    )
    attention_mfu: float = Field(
        0.65, gt=0, le=1, description="achieved share of the BF16 peak in the attention core (FlashMLA on H800: ~640-660 of 989 TFLOPS)"
    )
    hbm_efficiency: float = Field(
        0.9, gt=0, le=1, description="achieved share of HBM bandwidth when attention streams KV (FlashMLA on H800: ~3,000 of 3,350 GB/s)"
    )
    weight_hbm_efficiency: float = Field(
        0.7, gt=0, le=1,
        description="achieved share of HBM bandwidth when a small-batch GEMM streams its weights (DeepGEMM FP8 on H800, 64-128 rows: ~1,700-2,700 of 3,350 GB/s)",
    )
    layer_overhead_us: float = Field(
        40.0, ge=0, le=10_000, description="fixed time per layer per step for its small kernels (norms, RoPE, routing, top-k; ~16 x 2.5 us, assumed)"
    )
    step_overhead_ms: float = Field(2.0, ge=0, le=1_000, description="fixed host time per forward step (scheduling, input preparation, sampling; assumed)")
    ep_alltoall_latency_us: float = Field(
        10.0, ge=0, le=10_000, description="fixed latency of one EP dispatch or combine, on top of its bytes (RDMA round trip + signalling; assumed)"
    )
    prefill_ep_overlap: bool = Field(
        False,
        description="prefill all-to-all hidden under compute by two micro-batches; false (conservative) = added (with true the twin exceeds DeepSeek's published prefill figure ~2x)",
    )
    decode_ep_overlap: bool = Field(
        False, description="decode all-to-all hidden under compute; false (conservative) = added, which reproduces DeepSeek's published decode figures"
    )
    ep_comm_sm_share: float = Field(
        20 / 132, ge=0, lt=1, description="share of the GPU's SMs the all-to-all kernels occupy while overlapped (DeepSeek-V3 report: 20 of 132 SMs)"
    )
    ep_comm_efficiency: float = Field(0.8, gt=0, le=1, description="achieved share of CNIC and NVLink bandwidth for EP all-to-all (assumed)")
    use_fp8: bool = Field(True, description="linear layers run in FP8 when the GPU supports it")
    indexer_fp8: bool = Field(
        True,
        description="the sparse-attention indexer (DeepSeek-V3.2's lightning indexer) computes in FP8, at the FP8 peak when the GPU has one (DeepSeek-V3.2-Exp report)",
    )
    prefill_ep_sync_us: float = Field(
        1000.0, ge=0, le=100_000,
        description="fixed time per MoE layer of a prefill step whose EP group spans nodes: DeepEP normal-mode notify barriers and the host's wait for receive counts (notify_dispatch ~1 ms in DeepSeek's published prefill profile, EP32)",
    )
    prefill_ep_sync_intranode_us: float = Field(
        100.0, ge=0, le=100_000,
        description="the same for a one-node prefill EP group (NVLink barrier and the host sync before each dispatch; assumed)",
    )
    tp_allreduce_latency_us: float = Field(
        15.0, ge=0, le=10_000,
        description="fixed latency of one tensor-parallel all-reduce over NVLink, on top of its ring bytes (NCCL small-message all-reduce on NVLink: ~10-20 us; assumed)",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_fields(cls, data: Any) -> Any:
        """Name the replacement of a field of the earlier cost model instead of 'unknown field'."""
        if isinstance(data, dict):
            for old in LEGACY_COMPUTE_FIELDS:
                if old in data:
                    raise ValueError(f"compute.{old} belongs to the earlier cost model: {LEGACY_COMPUTE_FIELDS[old]}")
        return data


LEGACY_COMPUTE_FIELDS: dict[str, str] = {
    "prefill_mfu": "use compute.gemm_mfu (the tensor-core share in compute-bound layers; small batches are bound by weights, not a curve)",
    "prefill_batch_half_tokens": "remove it: small-batch efficiency now follows from weight reads, per-layer overheads and the all-to-all",
    "decode_hbm_efficiency": "use compute.hbm_efficiency (one achieved HBM share for prefill and decode)",
    "decode_mfu": "use compute.gemm_mfu (decode GEMMs share the prefill's efficiency; small batches are weight-bound)",
}
"""Fields of the cost model before December 2026 and what replaces each."""
