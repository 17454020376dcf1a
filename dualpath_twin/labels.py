"""Human names of scenario fields for tables, figures and the builder (no Streamlit, no plotting: planning and ui both use it)."""

from __future__ import annotations

_ACRONYMS = {
    "snic": "SNIC", "snics": "SNICs", "cnic": "CNIC", "cnics": "CNICs", "dram": "DRAM", "hbm": "HBM",
    "gpu": "GPU", "gpus": "GPUs", "pcie": "PCIe", "kv": "KV", "ep": "EP", "io": "I/O", "slo": "SLO",
    "ttft": "TTFT", "tpot": "TPOT", "mfu": "MFU", "rdma": "RDMA", "fp8": "FP8",
}
_UNITS = {
    "gbps": "Gbit/s", "gb": "GB", "s": "s", "ms": "ms", "us": "µs", "aps": "agents/s", "tokens": "tokens",
}

LABELS: dict[str, str] = {
    "name": "Scenario name",
    "model.name": "Model",
    "cluster.gpu": "GPU type",
    "cluster.prefill_tp_gpus": "GPUs per prefill engine (tensor parallel)",
    "cluster.decode_tp_gpus": "GPUs per decode engine (tensor parallel)",
    "workload.kind": "Workload source",
    "workload.dataset": "Dataset (synthetic)",
    "workload.mode": "Mode (offline rollout / online serving)",
    "storage.read_gbps_total": "Storage read limit, total (Gbit/s)",
    "storage.write_gbps_total": "Storage write limit, total (Gbit/s)",
    "network.snic_gbps": "SNIC speed (Gbit/s)",
    "network.cnic_gbps": "CNIC speed (Gbit/s)",
    "network.dram_gbps": "Host DRAM bandwidth (Gbit/s)",
    "network.pcie_gbps": "PCIe per GPU (Gbit/s)",
    "storage.block_tokens": "KV block size (tokens)",
    "slo.ttft_s": "SLO: TTFT (s)",
    "slo.tpot_ms": "SLO: TPOT (ms)",
}


def humanize(path: str) -> str:
    """Label for a dotted path: 'cluster.dram_buffer_gb' -> 'DRAM buffer (GB)'."""
    if path in LABELS:
        return LABELS[path]
    leaf = path.rsplit(".", 1)[-1]
    unit = ""
    if path.startswith("workload.tool_latency_s."):
        unit = "s" if leaf in ("mean", "low", "high") else ""
        leaf = "tool latency " + leaf
    words = leaf.split("_")
    for i, w in enumerate(words):
        if len(words) > 1 and w in _UNITS and (w != "s" or i == len(words) - 1):
            unit = _UNITS[words.pop(i)]
            break
    text = " ".join(_ACRONYMS.get(w, w) for w in words)
    text = text[:1].upper() + text[1:]
    return f"{text} ({unit})" if unit else text


AXES: dict[str, str] = {
    "cluster.prefill_nodes": "prefill nodes",
    "cluster.decode_nodes": "decode nodes",
    "cluster.gpus_per_node": "GPUs per node",
    "cluster.prefill_tp_gpus": "prefill TP (GPUs per engine)",
    "cluster.decode_tp_gpus": "decode TP (GPUs per engine)",
    "network.snic_gbps": "SNIC (Gb/s)",
    "network.cnic_gbps": "CNIC (Gb/s)",
    "network.snics_per_node": "SNICs per node",
    "network.cnics_per_node": "CNICs per node",
    "network.dram_gbps": "host DRAM (Gb/s)",
    "network.pcie_gbps": "PCIe per GPU (Gb/s)",
    "storage.read_gbps_total": "storage read total (Gb/s)",
    "cluster.dram_buffer_gb": "DRAM KV buffer (GB)",
    "cluster.hbm_reserved_gb": "HBM reserved (GB)",
    "workload.agents": "agents",
    "workload.arrival_rate_aps": "arrival rate (agents/s)",
    "model.kv_format": "KV format",
}
"""Scenario fields offered as sweep/sizing axes, with their column headings."""


def axis_label(path: str) -> str:
    """Column heading of a scenario path: the catalogue's, else the builder's label."""
    return AXES.get(path) or humanize(path)
