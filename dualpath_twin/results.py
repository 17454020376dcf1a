"""Plain result types returned by the simulation (no Streamlit, DuckDB or Plotly here).

``RunResult.rounds`` has one row per round (request) with these columns (times in seconds
of simulated time, ``null`` when the round never reached that stage):

    agent_id, round_idx, prompt_tokens, hit_tokens, gen_tokens,
    arrival_s, sched_s (PE chosen), read_start_s, read_end_s, read_side ("pe"|"de"|"split"|"none"),
    prefill_start_s, prefill_end_s, first_token_s, second_token_s, decode_admit_s, done_s,
    pe (global engine id), de (global engine id), pe_node, de_node,
    bytes_read_pe_snic, bytes_read_de_snic, bytes_pe_h2d, bytes_de_to_pe, bytes_pe_to_de,
    bytes_written, ttft_s, ttst_s, tpot_s

``RunResult.timeseries`` is long-form: ``t_s, metric, entity, role, value`` where metric is one
of TIMESERIES_METRICS, entity a node ("P0", "D3"), a NIC ("P0.snic", "P0.cnic3"), or "cluster",
role "prefill" | "decode" | "cluster", and value a utilisation in [0, 1], a rate or a count as
the metric's unit says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
from pydantic import BaseModel, Field

TIMESERIES_METRICS: dict[str, str] = {
    "snic_rx_util": "storage NIC read (rx) utilisation, 0-1 of line rate",
    "snic_tx_util": "storage NIC write (tx) utilisation, 0-1 of line rate",
    "cnic_rx_util": "compute NIC rx utilisation, 0-1 of line rate (KV + model comm)",
    "cnic_tx_util": "compute NIC tx utilisation, 0-1 of line rate (KV + model comm)",
    "dram_util": "host DRAM bandwidth utilisation, 0-1",
    "dram_buffer_bytes": "bytes held in the node's KV DRAM buffer",
    "hbm_kv_bytes": "bytes of KV held in the node's HBM (all GPUs)",
    "gpu_busy": "fraction of the node's GPU time spent computing, 0-1",
    "storage_read_gbps": "aggregate storage read throughput, Gbit/s",
    "storage_write_gbps": "aggregate storage write throughput, Gbit/s",
    "prompt_tokens_per_s": "prompt tokens completing prefill per second",
    "gen_tokens_per_s": "generated tokens per second",
    "queue_len": "requests waiting (global prefill queue; per node: read queue)",
    "running_agents": "agents with a round in flight",
    "rounds_done": "rounds completed so far",
}


class Percentiles(BaseModel):
    """p50/p90/p99 and mean of a latency, seconds."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    mean: float | None = None


class Bound(BaseModel):
    """Closed-form per-resource capacity of a scenario under one policy."""

    policy: str
    # maximum sustainable rounds per second each resource allows
    rounds_per_s_by_resource: dict[str, float] = Field(default_factory=dict)
    max_rounds_per_s: float = 0.0
    max_prompt_tokens_per_s: float = 0.0
    max_generated_tokens_per_s: float = 0.0
    min_jct_s: float | None = None
    binding_resource: str = ""
    second_resource: str = ""
    binding_margin: float = 1.0  # second / first rate: >= 2 means a single bottleneck
    explanation: str = ""


class FaultEffect(BaseModel):
    """One configured fault and what it did to prefill throughput (prompt tokens/s)."""

    kind: str
    node: str
    gpu: int | None = None
    start_s: float = 0.0
    end_s: float | None = None  # None: never repaired
    prompt_tokens_per_s_before: float | None = None  # the window before start_s
    prompt_tokens_per_s_during: float | None = None  # [start_s, end_s)
    degradation: float | None = None  # 1 - during / before (0 = no loss)
    recovery_s: float | None = None  # after end_s until a 10 s window is back at >= 90% of before
    rounds_requeued: int | None = None  # node_lost: rounds abandoned on the lost EP group and re-queued


class CacheEffect(BaseModel):
    """What the DRAM cache tier ([cache]) did: hits served from DRAM and the storage-NIC relief."""

    capacity_gb: float | None = None  # None: unbounded
    scope: str = "pooled"
    hit_ratio_tokens: float = 0.0  # prompt tokens served from the cache / prompt tokens (finished rounds)
    share_of_hits: float = 0.0  # cached / hit tokens
    bytes_from_cache: float = 0.0  # KV bytes read from a node's DRAM instead of storage (the bytes saved)
    snic_read_bytes: float = 0.0  # KV bytes still read through storage NICs
    snic_relief: float = 0.0  # bytes_from_cache / (bytes_from_cache + snic_read_bytes)


class RunSummary(BaseModel):
    """Headline figures of one run (the CLI's --json run object)."""

    policy: str
    seed: int
    scenario_name: str = ""
    scenario_hash: str = ""
    status: str = "finished"  # finished | truncated | cancelled
    status_reason: str = ""
    mode: str = "offline"
    jct_s: float | None = None
    sim_time_s: float = 0.0
    rounds: int = 0
    rounds_total: int = 0
    agents: int = 0
    prompt_tokens_per_s: float = 0.0
    generated_tokens_per_s: float = 0.0
    rounds_per_s: float = 0.0
    ttft_s: Percentiles = Field(default_factory=Percentiles)
    ttst_s: Percentiles = Field(default_factory=Percentiles)
    tpot_s: Percentiles = Field(default_factory=Percentiles)
    slo_attainment: float | None = None
    ttft_breakdown_s: dict[str, float] = Field(default_factory=dict)  # queue, alloc, read, prefill (means)
    snic_read_utilization: dict[str, float] = Field(default_factory=dict)  # prefill, decode
    snic_write_utilization: dict[str, float] = Field(default_factory=dict)
    cnic_utilization: dict[str, float] = Field(default_factory=dict)
    snic_imbalance: float | None = None  # max/avg SNIC read load over short windows
    bytes_read_by_side: dict[str, float] = Field(default_factory=dict)  # pe, de
    bottleneck: str = ""
    bottleneck_sentence: str = ""
    bound: Bound | None = None
    steady_state: bool | None = None
    faults: list[FaultEffect] = Field(default_factory=list)  # the scenario's [[faults]] and their effect
    cache: CacheEffect | None = None  # the DRAM cache tier, when configured
    sim_events: int = 0
    wall_s: float = 0.0

    def flat(self) -> dict[str, Any]:
        """Flatten nested figures to dotted keys (``ttft_s.p99``) for checks and tables."""
        out: dict[str, Any] = {}

        def walk(prefix: str, v: Any) -> None:
            if isinstance(v, dict):
                for k, x in v.items():
                    walk(f"{prefix}.{k}" if prefix else k, x)
            elif isinstance(v, list):  # faults.0.degradation, ...; an empty list adds no key
                for i, x in enumerate(v):
                    walk(f"{prefix}.{i}", x)
            else:
                out[prefix] = v

        walk("", self.model_dump(mode="json"))
        return out


@dataclass
class RunResult:
    """Everything one simulation produced."""

    summary: RunSummary
    rounds: pl.DataFrame
    timeseries: pl.DataFrame
    scenario_toml: str = ""
    invariants: list[str] = field(default_factory=list)  # violations found (empty = all held)


@dataclass
class Progress:
    """Live progress of a running simulation, passed to callbacks."""

    sim_time_s: float
    rounds_done: int
    rounds_total: int
    wall_s: float
    # partial time series since the start (same columns as RunResult.timeseries); may be None
    timeseries: pl.DataFrame | None = None
    # share of the rounds finished so far that met both the TTFT and the TPOT SLO; None before the first
    slo_attainment: float | None = None
