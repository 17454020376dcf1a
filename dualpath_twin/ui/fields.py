"""Scenario fields shown in the builder: which dotted paths, grouped in tabs, with labels from the schema."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

# LABELS and humanize are re-exported: they live in dualpath_twin.labels (planning's figures use them too)
from dualpath_twin.labels import LABELS as LABELS
from dualpath_twin.labels import humanize as humanize
from dualpath_twin.scenario import Scenario, table_model

TABS: dict[str, list[str]] = {
    "Topology": [
        "name", "cluster.prefill_nodes", "cluster.decode_nodes", "cluster.gpus_per_node", "cluster.gpu",
        "cluster.prefill_tp_gpus", "cluster.decode_tp_gpus", "cluster.dram_buffer_gb", "cluster.hbm_reserved_gb",
        "cluster.prefill_ep_nodes", "cluster.decode_ep_nodes",
    ],
    "NICs & DRAM": [
        "network.snic_gbps", "network.snics_per_node", "network.snic_efficiency", "network.cnic_gbps",
        "network.cnics_per_node", "network.cnic_efficiency", "network.dram_gbps", "network.pcie_gbps",
        "network.kv_lane_share", "network.fabric_oversubscription", "network.rdma_submit_us",
    ],
    "Storage": [
        "storage.read_gbps_total", "storage.write_gbps_total", "storage.io_latency_us", "storage.block_tokens",
        "storage.max_inflight_reads_per_node",
    ],
    "Model": ["model.name", "model.kv_format"],
    "Workload": [
        "workload.kind", "workload.dataset", "workload.trace_format", "workload.trace_path", "workload.agents",
        "workload.mode", "workload.arrival_rate_aps", "workload.append_scale", "workload.gen_scale",
        "workload.tool_latency_s.kind", "workload.tool_latency_s.mean", "workload.tool_latency_s.sigma",
        "workload.tool_latency_s.low", "workload.tool_latency_s.high", "workload.max_context_tokens",
        "workload.trace_time_scale",
    ],
    "Scheduler & SLO": [
        "slo.ttft_s", "slo.tpot_ms", "policy.alpha_s", "policy.beta_s", "policy.compute_quota_ms",
        "policy.fetch_period_ms", "policy.z_factor", "policy.max_prefill_batch", "policy.decode_space_order",
    ],
    "Compute & run": [
        "compute.gemm_mfu", "compute.attention_mfu", "compute.hbm_efficiency", "compute.weight_hbm_efficiency", "compute.layer_overhead_us",
        "compute.step_overhead_ms", "compute.ep_alltoall_latency_us", "compute.prefill_ep_overlap",
        "compute.decode_ep_overlap", "compute.ep_comm_sm_share", "compute.ep_comm_efficiency", "compute.use_fp8", "run.seed", "run.max_sim_time_s",
        "run.sample_interval_s", "run.wall_budget_s", "run.online_window_s", "run.online_max_agents",
    ],
}

# Fields whose widgets appear in the main column; the rest go in an "advanced" expander.
PRIMARY: set[str] = {
    "name", "cluster.prefill_nodes", "cluster.decode_nodes", "cluster.gpus_per_node", "cluster.gpu",
    "cluster.prefill_tp_gpus", "cluster.decode_tp_gpus", "cluster.dram_buffer_gb", "network.snic_gbps", "network.snics_per_node", "network.cnic_gbps",
    "network.cnics_per_node", "network.dram_gbps", "storage.read_gbps_total", "storage.write_gbps_total",
    "model.name", "model.kv_format", "workload.kind", "workload.dataset", "workload.trace_format",
    "workload.trace_path", "workload.agents", "workload.mode", "workload.arrival_rate_aps",
    "workload.append_scale", "workload.gen_scale", "workload.tool_latency_s.kind",
    "workload.tool_latency_s.mean", "slo.ttft_s", "slo.tpot_ms", "run.seed", "run.max_sim_time_s",
}


@dataclass(frozen=True)
class FieldSpec:
    """How one scenario path is edited: widget kind, label, help, choices."""

    path: str
    kind: Literal["int", "float", "bool", "choice", "text"]
    label: str
    help: str
    optional: bool
    choices: tuple[str, ...] = ()


_TP_HELP = (
    "Tensor parallelism: how many GPUs of one node form one {role} engine (1 = one engine per GPU). "
    "Must divide GPUs per node and the model's attention and KV heads; dense (non-MLA) models only, "
    "e.g. Qwen2.5-32B (a mixture-of-experts model runs expert-parallel instead). "
    "Weights and KV split over the engine's GPUs; each layer adds two all-reduces (docs/model.md, Tensor parallelism)."
)
HELP: dict[str, str] = {
    "cluster.prefill_tp_gpus": _TP_HELP.format(role="prefill"),
    "cluster.decode_tp_gpus": _TP_HELP.format(role="decode"),
}
"""Help texts that say more than the schema's field description."""


def _field(path: str) -> Any:
    model: type[BaseModel] = Scenario
    parts = path.split(".")
    info = None
    for i, part in enumerate(parts):
        info = model.model_fields[part]
        if i < len(parts) - 1:
            sub = table_model(info.annotation)
            assert sub is not None, path
            model = sub
    return info


def spec(path: str) -> FieldSpec:
    """The widget spec of a scenario path, derived from its pydantic field."""
    info = _field(path)
    ann = info.annotation
    optional = False
    args = typing.get_args(ann)
    if typing.get_origin(ann) in (typing.Union, types.UnionType) and type(None) in args:
        optional = True
        ann = next(a for a in args if a is not type(None))
    label = humanize(path)
    help_text = HELP.get(path) or info.description or ""
    if typing.get_origin(ann) is Literal:
        return FieldSpec(path, "choice", label, help_text, optional, tuple(str(a) for a in typing.get_args(ann)))
    if ann is bool:
        return FieldSpec(path, "bool", label, help_text, optional)
    if ann is int:
        return FieldSpec(path, "int", label, help_text, optional)
    if ann is float:
        return FieldSpec(path, "float", label, help_text, optional)
    return FieldSpec(path, "text", label, help_text, optional)


def get_value(sc: Scenario, path: str) -> Any:
    """Read a dotted path from a scenario."""
    obj: Any = sc
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj
