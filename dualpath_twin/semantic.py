"""Semantic scenario checks on plain values: catalog names, fit in HBM and DRAM, EP groups, NICs, datasets.

Below ``scenario.py``: the checks take names and numbers (never a Scenario), and
``scenario.semantic_problems`` passes them the scenario's fields (``scenario.from_dict`` runs it
after the pydantic schema check). Each check appends one message per problem to ``problems``,
starting with the dotted path, then the value, then the fix. ``validation.py`` (above the
scenario) adds the derived numbers a user wants to see.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path

from dualpath_twin.catalog import CatalogError, GpuSpec, ModelSpec, get_gpu, get_model, list_gpus, list_models

GB = 1e9
ROLES = ("prefill", "decode")


@dataclass(frozen=True)
class DatasetStats:
    """Published per-dataset averages (the DualPath paper's datasets, arXiv 2602.21548); None where not published."""

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
"""Fallback dataset table (the paper's published averages) used when the workload registry cannot be loaded."""


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


def _gb(nbytes: float) -> str:
    return f"{nbytes / GB:.1f} GB"


def _catalog_path(err: CatalogError) -> str:
    """Map a CatalogError's field to the scenario's dotted path."""
    if err.field == "kv_format":
        return "model.kv_format"
    if err.field.startswith("overrides"):
        return f"model.{err.field}"
    return "model.name"


def resolve_model(name: str, kv_format: str, overrides: dict, problems: list[str]) -> ModelSpec | None:
    """The catalog model for model.name/kv_format/overrides, or None with the problem appended."""
    try:
        return get_model(name, kv_format, dict(overrides))
    except CatalogError as err:
        path = _catalog_path(err)
        if path == "model.name":
            hint = f"did you mean {', '.join(err.suggestions)}?" if err.suggestions else f"known: {', '.join(list_models())}"
            problems.append(f"model.name = {name!r}: unknown model; {hint} (or add it to catalog/data/models.toml)")
        elif path == "model.kv_format":
            problems.append(f"model.kv_format = {kv_format!r}: {err}")
        else:
            key = err.field.partition(".")[2]
            shown = repr(overrides.get(key)) if key in overrides else "{...}"
            problems.append(f"{path} = {shown}: {err.detail} (architecture fields: docs/catalog.md)")
        return None


def resolve_gpu(name: str, problems: list[str]) -> GpuSpec | None:
    """The catalog GPU for cluster.gpu, or None with the problem appended."""
    try:
        return get_gpu(name)
    except CatalogError as err:
        hint = f"did you mean {', '.join(err.suggestions)}?" if err.suggestions else f"known: {', '.join(list_gpus())}"
        problems.append(f"cluster.gpu = {name!r}: unknown GPU; {hint} (or add it to catalog/data/gpus.toml)")
        return None


def check_ep_group(role: str, nodes: int, ep_nodes: int, problems: list[str]) -> None:
    """cluster.<role>_ep_nodes (0 = all nodes) must divide cluster.<role>_nodes."""
    if ep_nodes > nodes:
        problems.append(
            f"cluster.{role}_ep_nodes = {ep_nodes}: an EP group cannot span more than the {nodes} {role} nodes "
            f"(cluster.{role}_nodes); set it to at most {nodes} (0 = all {role} nodes)"
        )
    elif ep_nodes and nodes % ep_nodes:
        problems.append(
            f"cluster.{role}_ep_nodes = {ep_nodes}: cluster.{role}_nodes = {nodes} is not a whole number of EP groups; "
            f"use a divisor of {nodes} or change cluster.{role}_nodes to a multiple of {ep_nodes}"
        )


def check_hbm_reserved(hbm_reserved_gb: float, gpu: GpuSpec, problems: list[str]) -> bool:
    """cluster.hbm_reserved_gb must be below the GPU's HBM; False (problem appended) if not."""
    if hbm_reserved_gb * GB >= gpu.hbm_bytes:
        problems.append(
            f"cluster.hbm_reserved_gb = {hbm_reserved_gb:g}: not below the {gpu.hbm_gb:g} GB HBM of {gpu.name}; "
            "lower it (default 6 GB)"
        )
        return False
    return True


def check_weights(
    role: str,
    ep_field: int,
    ep_group_nodes: int,
    gpus_per_node: int,
    hbm_reserved_gb: float,
    gpu_field: str,
    model: ModelSpec,
    gpu: GpuSpec,
    problems: list[str],
    tp: int = 1,
) -> None:
    """A role's GPUs must hold the model's weights (experts over an EP group of ``ep_group_nodes``, the rest split by ``tp``) + reserve."""
    reserved = hbm_reserved_gb * GB
    need = model.weight_bytes_per_gpu(ep_group_nodes * gpus_per_node, tp) + reserved
    if need <= gpu.hbm_bytes:
        return
    where = (
        f"cluster.{role}_ep_nodes = {ep_field} (EP group of {ep_group_nodes} node(s) x {gpus_per_node} GPUs)"
        if model.is_moe
        else f"cluster.gpu = {gpu_field!r} ({role} GPUs, cluster.{role}_tp_gpus = {tp})"
    )
    head = (
        f"{where}: {model.name} weights need {_gb(need - reserved)} per GPU + {hbm_reserved_gb:g} GB reserved "
        f"> {gpu.hbm_gb:g} GB HBM of {gpu.name}"
    )
    room = gpu.hbm_bytes - reserved - model.dense_params * model.weight_bytes_per_param / tp
    if not model.is_moe:
        wanted = model.dense_params * model.weight_bytes_per_param / max(gpu.hbm_bytes - reserved, 1.0)
        fits = [t for t in range(tp + 1, gpus_per_node + 1) if gpus_per_node % t == 0 and t >= wanted]
        tp_fix = f"split the weights over more GPUs (cluster.{role}_tp_gpus = {fits[0]}); " if fits else ""
        fix = f"{tp_fix}try FP8 weights (model.overrides.weight_bytes_per_param = 1)"
    elif room > 0:
        min_gpus = math.ceil(model.expert_params * model.expert_weight_bytes_per_param / room)
        min_nodes = math.ceil(min_gpus / gpus_per_node)
        fix = (
            f"an EP group of >= {min_nodes} node(s) ({min_nodes * gpus_per_node} GPUs) fits: set "
            f"cluster.{role}_nodes >= {min_nodes} and cluster.{role}_ep_nodes = 0 or a divisor of it >= {min_nodes}"
        )
    else:
        fix = "no EP group size fits (the non-expert weights alone are too big)"
    bigger = [g for g in list_gpus() if get_gpu(g).hbm_bytes >= need]
    alt = f"; or use a GPU with more HBM ({', '.join(bigger)})" if bigger else ""
    problems.append(f"{head}; {fix}{alt}, a smaller model, or lower cluster.hbm_reserved_gb")


def check_tp(role: str, tp: int, gpus_per_node: int, cnics_per_node: int, model: ModelSpec | None, problems: list[str]) -> None:
    """cluster.<role>_tp_gpus: dense models only, dividing the attention and KV heads; GPUs sharing a CNIC stay in one engine."""
    if tp <= 1:
        return
    path = f"cluster.{role}_tp_gpus = {tp}"
    if model is not None:
        if model.is_moe:
            problems.append(
                f"{path}: tensor parallelism is modelled for dense models only; {model.name} is a mixture of experts, "
                f"which the twin runs expert-parallel (cluster.{role}_ep_nodes); set cluster.{role}_tp_gpus = 1"
            )
            return
        if model.attention != "gqa":
            problems.append(
                f"{path}: tensor parallelism is modelled for GQA attention only; {model.name}'s {model.attention.upper()} "
                f"latent KV is shared by all heads (each GPU of a TP engine would hold all of it); set cluster.{role}_tp_gpus = 1"
            )
            return
        kv_heads = model.kv_heads
        bad = [f"{n} = {v}" for n, v in (("heads", model.heads), ("kv_heads", kv_heads)) if v % tp]
        if bad:
            ok = [t for t in range(1, gpus_per_node + 1) if gpus_per_node % t == 0 and model.heads % t == 0 and kv_heads % t == 0]
            problems.append(
                f"{path}: does not divide the {model.name} attention heads ({', '.join(bad)}); each GPU of a TP engine "
                f"holds a whole number of heads; use one of {ok}"
            )
    per_cnic = max(1, gpus_per_node // max(cnics_per_node, 1))
    if tp % per_cnic and per_cnic % tp:
        problems.append(
            f"{path}: with network.cnics_per_node = {cnics_per_node} ({per_cnic} GPUs per compute NIC) a TP engine would "
            f"share a compute NIC with part of another; use a multiple or a divisor of {per_cnic}"
        )


def check_nics(gpus_per_node: int, cnics_per_node: int, snics_per_node: int, problems: list[str]) -> None:
    """Compute NICs must divide the GPUs of a node; at most one storage NIC per GPU."""
    g, cn, sn = gpus_per_node, cnics_per_node, snics_per_node
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


def check_workload(kind: str, trace_path: str | None, dataset: str, problems: list[str]) -> None:
    """A trace workload needs an existing trace file; a synthetic one a known dataset."""
    if kind == "trace":
        if not trace_path:
            problems.append(
                "workload.trace_path: required when workload.kind = 'trace'; set it to a trace file "
                "(e.g. a Mooncake JSONL file) or use workload.kind = 'synthetic'"
            )
        elif not Path(trace_path).is_file():
            problems.append(
                f"workload.trace_path = {trace_path!r}: file not found; give an existing trace file "
                "(relative paths resolve against the scenario file's folder)"
            )
    elif dataset not in (known := dataset_stats()):
        close = difflib.get_close_matches(dataset, list(known), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"use one of {', '.join(known)}"
        problems.append(f"workload.dataset = {dataset!r}: unknown synthetic dataset; {hint}")


def max_context_tokens(kind: str, dataset: str, max_context_tokens: int | None) -> int | None:
    """Longest context a request can have: workload.max_context_tokens, else the dataset's MAL; None for traces."""
    if max_context_tokens is not None:
        return max_context_tokens
    stats = dataset_stats().get(dataset)
    if kind == "trace" or stats is None:
        return None
    return stats.max_context_tokens


def check_dram(model: ModelSpec, ctx_tokens: int | None, ctx_source: str, dram_buffer_gb: float, problems: list[str]) -> None:
    """cluster.dram_buffer_gb must hold one request's KV at the longest context (``ctx_source`` says where it comes from)."""
    if ctx_tokens is None:
        return
    need = model.kv_bytes_for_context(ctx_tokens)
    if need > dram_buffer_gb * GB:
        problems.append(
            f"cluster.dram_buffer_gb = {dram_buffer_gb:g}: smaller than one request's KV at {ctx_tokens} tokens "
            f"({ctx_source}): {_gb(need)} for {model.name} ({model.kv_format}); set it to at least "
            f"{math.ceil(need / GB)} (several requests are usually buffered at once)"
        )
