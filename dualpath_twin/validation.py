"""The derived numbers a user wants to see for a scenario (KV sizes, weights and free HBM per GPU, KV per round).

The semantic checks themselves take plain values and live below the scenario, in
``dualpath_twin.semantic``; ``scenario.semantic_problems`` runs them (``scenario.from_dict`` does
after the schema check). Both are re-exported here, as before.
"""

from __future__ import annotations

from dualpath_twin import semantic
from dualpath_twin.catalog import get_gpu, get_model
from dualpath_twin.scenario import Scenario, ep_group_nodes, semantic_problems
from dualpath_twin.semantic import DATASETS, GB, DatasetStats, dataset_stats

__all__ = ["DATASETS", "DatasetStats", "dataset_stats", "derived_values", "max_context_tokens", "semantic_problems"]


def max_context_tokens(sc: Scenario) -> int | None:
    """Longest context a request can have: workload.max_context_tokens, else the dataset's MAL; None for traces."""
    w = sc.workload
    return semantic.max_context_tokens(w.kind, w.dataset, w.max_context_tokens)


def derived_values(sc: Scenario) -> dict[str, float | int | str | None]:
    """Numbers derived from the scenario and catalog (KV sizes, weights and free HBM per GPU, KV per round).

    Raises CatalogError if the model or GPU is unknown (``semantic_problems`` reports that nicely).
    """
    c = sc.cluster
    model = get_model(sc.model.name, sc.model.kv_format, dict(sc.model.overrides))
    gpu = get_gpu(c.gpu)
    out: dict[str, float | int | str | None] = {
        "model": model.name,
        "kv_format": model.kv_format,
        "gpu": gpu.name,
        "kv_bytes_per_token": model.kv_bytes_per_token,
        "kv_bytes_per_token_per_layer": model.kv_bytes_per_token_per_layer,
        "total_params": model.total_params,
        "active_params": model.active_params,
        "weight_bytes_total": model.weight_bytes_total(),
        "linear_flops_per_token": model.linear_flops_per_token(),
        "ep_alltoall_bytes_per_token": model.ep_alltoall_bytes_per_token(),
        "peak_flops_per_gpu": gpu.peak_flops(sc.compute.use_fp8),
    }
    reserved = c.hbm_reserved_gb * GB
    for role, group_nodes in zip(("prefill", "decode"), ep_group_nodes(sc), strict=True):
        ep_gpus = group_nodes * c.gpus_per_node
        tp = c.tp(role)
        w = model.weight_bytes_per_gpu(ep_gpus, tp)
        out[f"{role}_ep_gpus"] = ep_gpus
        out[f"weight_bytes_per_gpu_{role}"] = w
        out[f"free_hbm_per_gpu_bytes_{role}"] = gpu.hbm_bytes - reserved - w
        if tp > 1:  # tensor parallelism: an engine of tp GPUs, each holding 1/tp of the KV heads
            out[f"{role}_tp_gpus"] = tp
            out[f"kv_bytes_per_token_per_gpu_{role}"] = model.kv_bytes_per_token / tp
            out[f"free_hbm_per_engine_bytes_{role}"] = (gpu.hbm_bytes - reserved - w) * tp
    ctx_max = max_context_tokens(sc)
    out["max_context_tokens"] = ctx_max
    out["kv_bytes_per_request_max"] = model.kv_bytes_for_context(ctx_max) if ctx_max else None
    stats = dataset_stats().get(sc.workload.dataset) if sc.workload.kind == "synthetic" else None
    ctx_mean = stats.context_tokens_mean if stats else None
    append_mean = stats.append_tokens_mean if stats else None
    if ctx_mean is not None and ctx_max is not None:
        ctx_mean = min(ctx_mean, ctx_max)
    out["context_tokens_mean"] = ctx_mean
    out["append_tokens_mean"] = append_mean * sc.workload.append_scale if append_mean else None
    out["kv_bytes_per_round_mean"] = model.kv_bytes_for_context(int(ctx_mean)) if ctx_mean else None
    out["cache_to_compute_gb_per_pflop"] = (
        model.cache_to_compute_gb_per_pflop(int(ctx_mean), max(1, round(append_mean * sc.workload.append_scale)))
        if ctx_mean and append_mean
        else None
    )
    return out
