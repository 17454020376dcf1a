"""Semantic scenario validation against the catalog, and the derived numbers a user wants to see.

``semantic_problems`` runs after the pydantic schema check (scenario.from_dict) and returns one
message per problem, each starting with the dotted path, then the value, then the fix.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path

from dualpath_twin.catalog import CatalogError, GpuSpec, ModelSpec, get_gpu, get_model, list_gpus, list_models
from dualpath_twin.scenario import Scenario


@dataclass(frozen=True)
class DatasetStats:
    """Published per-dataset averages (SYSTEM.md section 6); None where not published."""

    max_context_tokens: int  # MAL: trajectories are truncated here
    context_tokens_mean: float | None
    append_tokens_mean: float | None
    gen_tokens_mean: float | None
    rounds_mean: float | None


DATASETS: dict[str, DatasetStats] = {
    "paper-32k": DatasetStats(32768, 17183, 608, 148, 60),
    "paper-48k": DatasetStats(49152, 25120, 474, 172, 106),
    "paper-64k": DatasetStats(65536, 32721, 429, 176, 157),
    "claude-code": DatasetStats(200_000, None, None, None, None),
}
"""Fallback dataset table (SYSTEM.md section 6) used when the workload registry cannot be loaded."""


def dataset_stats() -> dict[str, DatasetStats]:
    """Synthetic datasets by name: from the workload registry (workload/datasets.toml), else ``DATASETS``."""
    try:
        from dualpath_twin.workload.datasets import load_datasets

        specs = load_datasets()
    except Exception:  # noqa: BLE001 - registry missing or broken: its own loader reports that
        return dict(DATASETS)
    out: dict[str, DatasetStats] = {}
    for name, spec in specs.items():
        target = getattr(spec, "target", None)
        mal = getattr(spec, "mal_tokens", None) or getattr(spec, "context_cap_tokens", None)
        if not isinstance(mal, int):
            continue
        out[name] = DatasetStats(
            mal,
            getattr(target, "context_tokens", None),
            getattr(target, "append_tokens", None),
            getattr(target, "gen_tokens", None),
            getattr(target, "rounds", None),
        )
    return out or dict(DATASETS)

GB = 1e9


def _gb(nbytes: float) -> str:
    return f"{nbytes / GB:.1f} GB"


def _catalog_path(err: CatalogError) -> str:
    """Map a CatalogError's field to the scenario's dotted path."""
    if err.field == "kv_format":
        return "model.kv_format"
    if err.field.startswith("overrides"):
        return f"model.{err.field}"
    return "model.name"


def _resolve_model(sc: Scenario, problems: list[str]) -> ModelSpec | None:
    m = sc.model
    try:
        return get_model(m.name, m.kv_format, dict(m.overrides))
    except CatalogError as err:
        path = _catalog_path(err)
        if path == "model.name":
            hint = f"did you mean {', '.join(err.suggestions)}?" if err.suggestions else f"known: {', '.join(list_models())}"
            problems.append(f"model.name = {m.name!r}: unknown model; {hint} (or add it to catalog/data/models.toml)")
        elif path == "model.kv_format":
            problems.append(f"model.kv_format = {m.kv_format!r}: {err}")
        else:
            key = err.field.partition(".")[2]
            shown = repr(m.overrides.get(key)) if key in m.overrides else "{...}"
            problems.append(f"{path} = {shown}: {err.detail} (architecture fields: docs/catalog.md)")
        return None


def _resolve_gpu(sc: Scenario, problems: list[str]) -> GpuSpec | None:
    try:
        return get_gpu(sc.cluster.gpu)
    except CatalogError as err:
        hint = f"did you mean {', '.join(err.suggestions)}?" if err.suggestions else f"known: {', '.join(list_gpus())}"
        problems.append(f"cluster.gpu = {sc.cluster.gpu!r}: unknown GPU; {hint} (or add it to catalog/data/gpus.toml)")
        return None


def ep_group_nodes(sc: Scenario, role: str) -> int:
    """Nodes per expert-parallel group of a role ("prefill" or "decode"); 0 in the scenario means all its nodes."""
    c = sc.cluster
    nodes = c.prefill_nodes if role == "prefill" else c.decode_nodes
    ep = c.prefill_ep_nodes if role == "prefill" else c.decode_ep_nodes
    return ep or nodes


def _check_ep_groups(sc: Scenario, problems: list[str]) -> None:
    c = sc.cluster
    for role in ("prefill", "decode"):
        nodes = getattr(c, f"{role}_nodes")
        ep = getattr(c, f"{role}_ep_nodes")
        if ep > nodes:
            problems.append(
                f"cluster.{role}_ep_nodes = {ep}: an EP group cannot span more than the {nodes} {role} nodes "
                f"(cluster.{role}_nodes); set it to at most {nodes} (0 = all {role} nodes)"
            )
        elif ep and nodes % ep:
            problems.append(
                f"cluster.{role}_ep_nodes = {ep}: cluster.{role}_nodes = {nodes} is not a whole number of EP groups; "
                f"use a divisor of {nodes} or change cluster.{role}_nodes to a multiple of {ep}"
            )


def _check_weights(sc: Scenario, model: ModelSpec, gpu: GpuSpec, problems: list[str]) -> None:
    c = sc.cluster
    reserved = c.hbm_reserved_gb * GB
    if reserved >= gpu.hbm_bytes:
        problems.append(
            f"cluster.hbm_reserved_gb = {c.hbm_reserved_gb:g}: not below the {gpu.hbm_gb:g} GB HBM of {gpu.name}; "
            "lower it (default 6 GB)"
        )
        return
    for role in ("prefill", "decode"):
        nodes = getattr(c, f"{role}_nodes")
        ep_nodes = ep_group_nodes(sc, role)
        if ep_nodes > nodes:
            continue  # reported by _check_ep_groups
        need = model.weight_bytes_per_gpu(ep_nodes * c.gpus_per_node) + reserved
        if need <= gpu.hbm_bytes:
            continue
        ep_field = getattr(c, f"{role}_ep_nodes")
        where = (
            f"cluster.{role}_ep_nodes = {ep_field} (EP group of {ep_nodes} node(s) x {c.gpus_per_node} GPUs)"
            if model.is_moe
            else f"cluster.gpu = {c.gpu!r} ({role} GPUs)"
        )
        head = (
            f"{where}: {model.name} weights need {_gb(need - reserved)} per GPU + {c.hbm_reserved_gb:g} GB reserved "
            f"> {gpu.hbm_gb:g} GB HBM of {gpu.name}"
        )
        room = gpu.hbm_bytes - reserved - model.dense_params * model.weight_bytes_per_param
        if not model.is_moe:
            fix = (
                "a dense model is replicated on every GPU (tensor parallelism is not modelled); try FP8 weights "
                "(model.overrides.weight_bytes_per_param = 1)"
            )
        elif room > 0:
            min_gpus = math.ceil(model.expert_params * model.expert_weight_bytes_per_param / room)
            min_nodes = math.ceil(min_gpus / c.gpus_per_node)
            fix = (
                f"an EP group of >= {min_nodes} node(s) ({min_nodes * c.gpus_per_node} GPUs) fits: set "
                f"cluster.{role}_nodes >= {min_nodes} and cluster.{role}_ep_nodes = 0 or a divisor of it >= {min_nodes}"
            )
        else:
            fix = "no EP group size fits (the non-expert weights alone are too big)"
        bigger = [g for g in list_gpus() if get_gpu(g).hbm_bytes >= need]
        alt = f"; or use a GPU with more HBM ({', '.join(bigger)})" if bigger else ""
        problems.append(f"{head}; {fix}{alt}, a smaller model, or lower cluster.hbm_reserved_gb")


def _check_nics(sc: Scenario, problems: list[str]) -> None:
    g = sc.cluster.gpus_per_node
    cn, sn = sc.network.cnics_per_node, sc.network.snics_per_node
    if cn > g or g % cn:
        divisors = [d for d in range(1, g + 1) if g % d == 0]
        problems.append(
            f"network.cnics_per_node = {cn}: must divide cluster.gpus_per_node = {g} (each GPU uses exactly one "
            f"compute NIC; GPUs may share one); use one of {divisors}"
        )
    if sn > g:
        problems.append(
            f"network.snics_per_node = {sn}: more storage NICs than GPUs per node ({g}) is not modelled; "
            f"use at most {g} (or raise network.snic_gbps instead)"
        )


def _check_workload(sc: Scenario, problems: list[str]) -> None:
    w = sc.workload
    if w.kind == "trace":
        if not w.trace_path:
            problems.append(
                "workload.trace_path: required when workload.kind = 'trace'; set it to a trace file "
                "(e.g. a Mooncake JSONL file) or use workload.kind = 'synthetic'"
            )
        elif not Path(w.trace_path).is_file():
            problems.append(
                f"workload.trace_path = {w.trace_path!r}: file not found; give an existing trace file "
                "(relative paths resolve against the scenario file's folder)"
            )
    elif w.dataset not in (known := dataset_stats()):
        close = difflib.get_close_matches(w.dataset, list(known), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"use one of {', '.join(known)}"
        problems.append(f"workload.dataset = {w.dataset!r}: unknown synthetic dataset; {hint}")


def max_context_tokens(sc: Scenario) -> int | None:
    """Longest context a request can have: workload.max_context_tokens, else the dataset's MAL; None for traces."""
    w = sc.workload
    if w.max_context_tokens is not None:
        return w.max_context_tokens
    stats = dataset_stats().get(w.dataset)
    if w.kind == "trace" or stats is None:
        return None
    return stats.max_context_tokens


def _check_dram(sc: Scenario, model: ModelSpec, problems: list[str]) -> None:
    ctx = max_context_tokens(sc)
    if ctx is None:
        return
    need = model.kv_bytes_for_context(ctx)
    have = sc.cluster.dram_buffer_gb * GB
    if need > have:
        src = "workload.max_context_tokens" if sc.workload.max_context_tokens else f"dataset {sc.workload.dataset} MAL"
        problems.append(
            f"cluster.dram_buffer_gb = {sc.cluster.dram_buffer_gb:g}: smaller than one request's KV at {ctx} tokens "
            f"({src}): {_gb(need)} for {model.name} ({model.kv_format}); set it to at least "
            f"{math.ceil(need / GB)} (several requests are usually buffered at once)"
        )


def semantic_problems(sc: Scenario) -> list[str]:
    """Problems the schema cannot see (catalog names, fit in HBM/DRAM, NIC counts, trace files); [] if none."""
    problems: list[str] = []
    model = _resolve_model(sc, problems)
    gpu = _resolve_gpu(sc, problems)
    _check_ep_groups(sc, problems)
    _check_nics(sc, problems)
    _check_workload(sc, problems)
    if model is not None and gpu is not None:
        _check_weights(sc, model, gpu, problems)
    if model is not None:
        _check_dram(sc, model, problems)
    return problems


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
    for role in ("prefill", "decode"):
        ep_gpus = ep_group_nodes(sc, role) * c.gpus_per_node
        w = model.weight_bytes_per_gpu(ep_gpus)
        out[f"{role}_ep_gpus"] = ep_gpus
        out[f"weight_bytes_per_gpu_{role}"] = w
        out[f"free_hbm_per_gpu_bytes_{role}"] = gpu.hbm_bytes - reserved - w
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
