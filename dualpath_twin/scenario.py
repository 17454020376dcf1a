"""The scenario schema: one pydantic model, TOML load/save, dotted-path overrides.

Every number that is an assumption lives here as a field with a documented default and
source, so a user can change it from a TOML file, the CLI (``--set path=value``), a sweep
or the dashboard. Units are in the field names: ``_gbps`` is gigabits per second (network
convention, also for DRAM and PCIe), ``_gb`` is gigabytes (1e9 bytes), ``_s``/``_ms``/``_us``
are seconds, milliseconds and microseconds, ``_tokens`` counts tokens.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import tomllib
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import tomli_w
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from dualpath_twin.scenario_compute import LEGACY_COMPUTE_FIELDS, ComputeConfig, _Strict  # noqa: F401 (re-exported)

POLICY_NAMES = ("basic", "layerwise", "dualpath", "oracle", "dualpath-split")


class ScenarioError(ValueError):
    """A scenario could not be loaded or is invalid; ``problems`` holds one line per bad field."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        head = f"invalid scenario{f' {source}' if source else ''}:"
        super().__init__("\n".join([head] + [f"  - {p}" for p in problems]))

    def __reduce__(self) -> tuple[type[ScenarioError], tuple[list[str], str | None]]:
        """Pickle by (problems, source) so the error crosses process boundaries (worker pools) intact."""
        return (type(self), (self.problems, self.source))


class Distribution(_Strict):
    """A non-negative random quantity, e.g. the tool latency between two rounds."""

    kind: Literal["const", "exponential", "lognormal", "uniform"] = Field(
        "const", description="const: always mean; exponential: mean; lognormal: mean and sigma; uniform: [low, high]"
    )
    mean: float = Field(0.0, ge=0, description="mean value (seconds for latencies)")
    sigma: float = Field(1.0, gt=0, description="lognormal shape (std of the underlying normal)")
    low: float = Field(0.0, ge=0, description="uniform lower bound")
    high: float = Field(0.0, ge=0, description="uniform upper bound")

    @model_validator(mode="after")
    def _check_uniform(self) -> Distribution:
        if self.kind == "uniform" and self.high < self.low:
            raise ValueError("uniform distribution needs high >= low")
        return self


class ClusterConfig(_Strict):
    """Topology: xPyD nodes of g GPUs each; an engine is one GPU, or T GPUs with tensor parallelism (docs/model.md)."""

    prefill_nodes: int = Field(2, ge=1, le=4096, description="x in xPyD: nodes whose engines all prefill")
    decode_nodes: int = Field(4, ge=1, le=4096, description="y in xPyD: nodes whose engines all decode")
    gpus_per_node: int = Field(8, ge=1, le=64, description="g: GPUs per node (engines per node = g / TP)")
    gpu: str = Field("H800", description="GPU catalog name (see catalog/gpus.toml)")
    dram_buffer_gb: float = Field(80.0, gt=0, description="host DRAM per node set aside for KV buffers, GB (paper: 80 DS, 320 Qwen)")
    prefill_ep_nodes: int = Field(0, ge=0, description="nodes per prefill expert-parallel group; 0 = all prefill nodes")
    decode_ep_nodes: int = Field(0, ge=0, description="nodes per decode expert-parallel group; 0 = all decode nodes")
    hbm_reserved_gb: float = Field(6.0, ge=0, description="HBM per GPU kept for activations, workspace and CUDA graphs (assumed)")
    prefill_tp_gpus: int = Field(
        1, ge=1, le=64, description="tensor parallelism of a prefill engine: GPUs per engine (dense models; 1 = one engine per GPU)"
    )
    decode_tp_gpus: int = Field(
        1, ge=1, le=64, description="tensor parallelism of a decode engine: GPUs per engine (dense models; 1 = one engine per GPU)"
    )

    @field_validator("prefill_tp_gpus", "decode_tp_gpus")
    @classmethod
    def _tp_divides_node(cls, tp: int, info: Any) -> int:
        g = info.data.get("gpus_per_node")
        if g is not None and g % tp:
            divisors = [d for d in range(1, g + 1) if g % d == 0]
            raise ValueError(f"must divide cluster.gpus_per_node = {g} (a node holds whole TP engines); use one of {divisors}")
        return tp

    def tp(self, role: str) -> int:
        """GPUs per engine of a role ('prefill' or 'decode')."""
        return self.prefill_tp_gpus if role == "prefill" else self.decode_tp_gpus

    def engines_per_node(self, role: str) -> int:
        """Engines per node of a role: gpus_per_node / TP."""
        return self.gpus_per_node // self.tp(role)


class NetworkConfig(_Strict):
    """NICs, fabric and host links. All bandwidths in Gbit/s per direction (full duplex)."""

    snic_gbps: float = Field(400.0, gt=0, description="line rate of one storage NIC (paper: 400 Gbps)")
    snics_per_node: int = Field(1, ge=1, le=64, description="storage NICs per node (paper: 1)")
    snic_efficiency: float = Field(
        0.859, gt=0, le=1, description="achievable share of SNIC line rate for storage reads (40 GiB/s measured of 50 GB/s)"
    )
    cnic_gbps: float = Field(400.0, gt=0, description="line rate of one compute NIC (paper: 400 Gbps InfiniBand)")
    cnics_per_node: int = Field(8, ge=1, le=64, description="compute NICs per node, one per GPU (paper: 8)")
    cnic_efficiency: float = Field(0.95, gt=0, le=1, description="achievable share of CNIC line rate for RDMA (assumed)")
    dram_gbps: float = Field(4000.0, gt=0, description="host DRAM bandwidth per node, reads+writes (paper: ~500 GB/s = 4000 Gbps)")
    pcie_gbps: float = Field(512.0, gt=0, description="GPU<->host PCIe bandwidth per GPU per direction (Gen5 x16 ~64 GB/s)")
    kv_lane_share: float = Field(
        0.01, ge=0, le=1, description="share of a CNIC left to KV traffic while model communication bursts (paper: comm lane ~99%)"
    )
    fabric_oversubscription: float = Field(1.0, ge=1, description="compute fabric core oversubscription (1 = non-blocking)")
    rdma_submit_us: float = Field(1.0, ge=0, description="CPU cost to submit one RDMA write (paper: ~1 us; memcpy 5-7 us)")

    @field_validator("snic_gbps", "cnic_gbps", "dram_gbps", "pcie_gbps")
    @classmethod
    def _finite_bw(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("bandwidth must be a finite positive number of Gbit/s")
        return v


class StorageConfig(_Strict):
    """The shared KV store (3FS-like distributed SSD, no DRAM cache)."""

    read_gbps_total: float | None = Field(None, gt=0, description="aggregate storage read bandwidth, Gbit/s; unset = only NICs limit")
    write_gbps_total: float | None = Field(None, gt=0, description="aggregate storage write bandwidth, Gbit/s; unset = only NICs limit")
    io_latency_us: float = Field(200.0, ge=0, description="per-read-request latency before data flows (assumed, SSD + RPC)")
    block_tokens: int = Field(64, ge=1, le=4096, description="tokens per KV block (paper: 64, assumed)")
    max_inflight_reads_per_node: int = Field(
        8, ge=1, le=4096, description="concurrent storage read requests a node issues; the rest wait in its read queue (assumed)"
    )


class ModelConfig(_Strict):
    """The served model: a catalog entry plus optional overrides of its architecture numbers."""

    name: str = Field("DeepSeek-V3.2", description="model catalog name (see catalog/models.toml)")
    kv_format: str | None = Field(None, description="KV cache layout variant (e.g. fp8, bf16, fp8+indexer); unset = catalog default")
    overrides: dict[str, float | int | str] = Field(default_factory=dict, description="architecture numbers replacing the catalog's")


class WorkloadConfig(_Strict):
    """What the agents send: a synthetic dataset or a replayed trace, offline or online."""

    kind: Literal["synthetic", "trace"] = Field("synthetic", description="synthetic generator or trace replay")
    dataset: str = Field(
        "paper-64k", description="synthetic dataset: paper-32k | paper-48k | paper-64k | claude-code"
    )
    trace_format: Literal["auto", "mooncake", "azure", "claude-code"] = Field("auto", description="trace file format")
    trace_path: str | None = Field(None, description="trace file (kind = trace); relative paths resolve against the scenario file")
    agents: int = Field(1024, ge=1, le=10_000_000, description="trajectories (offline: all start at t=0; online: arrivals)")
    mode: Literal["offline", "online"] = Field("offline", description="offline RL rollout (JCT) or online serving (SLO)")
    arrival_rate_aps: float = Field(1.0, gt=0, description="online: Poisson agent arrival rate, agents per second")
    append_scale: float = Field(1.0, gt=0, description="multiplies every round's appended tokens")
    gen_scale: float = Field(1.0, gt=0, description="multiplies every round's generated tokens")
    tool_latency_s: Distribution = Field(default_factory=Distribution, description="delay between a round's last token and the next round")
    max_context_tokens: int | None = Field(None, ge=128, description="truncate trajectories at this context (default: the dataset's MAL)")
    trace_time_scale: float = Field(1.0, gt=0, description="trace replay: divide inter-arrival times by this (speed-up)")
    skip_bad_lines: bool = Field(
        False, description="trace replay: skip malformed trace lines (counted and reported) instead of stopping at the first"
    )


class PolicyConfig(_Strict):
    """The KV-loading design and its scheduler parameters (docs/model.md, Scheduling)."""

    name: Literal["basic", "layerwise", "dualpath", "oracle", "dualpath-split"] = Field("dualpath", description="loading design")
    alpha_s: float = Field(3.0, gt=0, description="short read queue: tokens a node reads from storage in this many seconds")
    beta_s: float = Field(5.0, gt=0, description="overloaded engine: tokens one prefill engine (one GPU without TP) prefills in this many seconds")
    compute_quota_ms: float = Field(300.0, gt=0, description="predicted attention time allowed per prefill forward batch")
    fetch_period_ms: float = Field(20.0, gt=0, description="period of a PE group leader's fetch from the global queue (10-50 ms, assumed)")
    z_factor: float = Field(1.05, ge=1, description="decode balance threshold factor Z")
    max_prefill_batch: int = Field(64, ge=1, description="hard cap on requests per prefill forward batch")
    decode_space_order: Literal["fifo", "first_fit"] = Field(
        "fifo",
        description="how requests get the decode-side space their prompt KV lands in before prefill (the DE DRAM "
        "buffer for layer-wise designs, DE HBM for Basic): fifo = a request that could not get it is served before "
        "later requests on that node or engine; first_fit = whoever fits takes freed space (large requests can starve)",
    )


class SloConfig(_Strict):
    """Service level objective for online serving."""

    ttft_s: float = Field(4.0, gt=0, description="time to first token limit, seconds")
    tpot_ms: float = Field(50.0, gt=0, description="time per output token limit, milliseconds")


class RunConfig(_Strict):
    """Simulation control."""

    seed: int = Field(0, ge=0, description="root seed; every random stream is derived from it")
    max_sim_time_s: float = Field(36000.0, gt=0, description="stop the simulation at this simulated time")
    sample_interval_s: float = Field(1.0, gt=0, description="time-series sampling period")
    wall_budget_s: float = Field(3600.0, gt=0, description="stop the run after this much wall-clock time")
    online_window_s: float = Field(150.0, gt=0, description="online steady state: window whose TTFT moves < 5%")
    online_max_agents: int | None = Field(None, ge=1, description="online: stop admitting agents after this many (default agents)")
    fidelity: Literal["fast", "reference"] = Field(
        "fast",
        description="fast: layer-wise pipeline in closed form per batch, decode advanced per batch change, compiled "
        "max-min network; reference: one event per layer and per decode step, pure-Python network (slow; validates fast)",
    )


class CacheConfig(_Strict):
    """A DRAM cache tier in front of storage (Mooncake-style): hit blocks served from a node's DRAM over the compute network."""

    capacity_gb: float | None = Field(
        None, gt=0, description="DRAM for cached KV blocks, GB: in total (pooled) or on each node (per_node); unset = unbounded"
    )
    scope: Literal["pooled", "per_node"] = Field(
        "pooled", description="pooled: one cache across the cluster; per_node: each node caches its share of the blocks"
    )
    eviction: Literal["lru"] = Field("lru", description="eviction policy (least recently used, per block)")


FAULT_KINDS = ("snic_down", "snic_degraded", "cnic_down", "cnic_degraded", "node_lost", "slow_storage", "straggler_gpu")


class FaultConfig(_Strict):
    """One fault or degradation, from ``start_s`` to ``end_s`` (unset: until the end of the run)."""

    kind: Literal["snic_down", "snic_degraded", "cnic_down", "cnic_degraded", "node_lost", "slow_storage", "straggler_gpu"] = Field(
        ..., description="what fails: a storage or compute NIC down or slowed, a node lost, slow storage reads, a slow GPU"
    )
    node: str = Field(..., description="the node it hits: P0..P{prefill_nodes-1} or D0..D{decode_nodes-1}")
    gpu: int | None = Field(None, ge=0, description="straggler_gpu: the GPU on the node (its whole engine with TP); cnic_*: the GPU whose CNIC (unset = all)")
    start_s: float = Field(..., ge=0, description="simulated time the fault begins, seconds")
    end_s: float | None = Field(None, gt=0, description="simulated time it is repaired, seconds; unset = never")
    rate_factor: float = Field(0.5, gt=0, lt=1, description="*_degraded: the link keeps this share of its capacity")
    extra_latency_us: float = Field(0.0, ge=0, description="slow_storage: latency added to each affected read, microseconds")
    read_share: float = Field(1.0, gt=0, le=1, description="slow_storage: share of the node's reads that are slow (the shard's share)")
    compute_factor: float = Field(2.0, ge=1, description="straggler_gpu: the engine's prefill and decode step times are multiplied by this")

    @model_validator(mode="after")
    def _interval(self) -> FaultConfig:
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s = {self.end_s:g} must be after start_s = {self.start_s:g} (or leave end_s unset)")
        if self.kind == "straggler_gpu" and self.gpu is None:
            raise ValueError("straggler_gpu needs gpu = the slow engine's GPU index on the node")
        if self.kind == "slow_storage" and self.extra_latency_us <= 0:
            raise ValueError("slow_storage needs extra_latency_us > 0")
        return self


def _check_permanent_losses(faults: list[FaultConfig], c: Any) -> None:
    """Refuse node losses without a repair that leave no prefill or no decode EP group up: nothing could run after."""
    for role, n, ep in (("P", c.prefill_nodes, c.prefill_ep_nodes), ("D", c.decode_nodes, c.decode_ep_nodes)):
        grp = min(ep or n, n)
        lost: set[int] = set()
        first = None
        for i, f in enumerate(faults):
            if f.kind == "node_lost" and f.end_s is None and f.node[:1].upper() == role:
                k = int(f.node[1:])
                lost.update(range((k // grp) * grp, min((k // grp) * grp + grp, n)))
                first = i if first is None else first
        if first is not None and len(lost) >= n:
            name, field = ("prefill", "prefill") if role == "P" else ("decode", "decode")
            raise ValueError(
                f"faults[{first}]: node_lost on {faults[first].node} without end_s takes down its EP group "
                f"({grp} of cluster.{field}_nodes = {n}), leaving no {name} engine for the rest of the run; "
                f"set end_s (when the group is back), add {name} nodes, or use smaller EP groups (cluster.{field}_ep_nodes)"
            )


def fault_node_index(node: str, prefill_nodes: int, decode_nodes: int) -> int:
    """Index of a fault's node in the world's node list (prefill 0..P-1, decode P..P+D-1); ValueError if absent."""
    role, num = node[:1].upper(), node[1:]
    if role not in ("P", "D") or not num.isdigit():
        raise ValueError(f"node = {node!r}: name a node as P<i> (prefill) or D<i> (decode), e.g. P0 or D1")
    i = int(num)
    n = prefill_nodes if role == "P" else decode_nodes
    if i >= n:
        field = "cluster.prefill_nodes" if role == "P" else "cluster.decode_nodes"
        raise ValueError(f"node = {node!r} does not exist ({field} = {n}): use {role}0..{role}{n - 1}")
    return i if role == "P" else prefill_nodes + i


_OMIT_AT_DEFAULT = (("cluster", "prefill_tp_gpus"), ("cluster", "decode_tp_gpus"), ("compute", "tp_allreduce_latency_us"),
                    ("policy", "decode_space_order"))
"""Fields left out of ``Scenario.to_toml`` at their default, so scenarios without them keep their content hash."""


class Scenario(_Strict):
    """A complete, self-contained description of one twin run."""

    name: str = Field("unnamed", description="short name shown in reports")
    description: str = Field("", description="free text")
    calibration: str | None = Field(
        None,
        description="calibration TOML (written by `dualpath-twin calibrate`) whose [compute]/[network] values this "
        "scenario includes; relative to the scenario file; the scenario's own values override it",
    )
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    workload: WorkloadConfig = Field(default_factory=WorkloadConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    slo: SloConfig = Field(default_factory=SloConfig)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    faults: list[FaultConfig] = Field(default_factory=list, description="faults and degradations ([[faults]] tables); empty = none")
    cache: CacheConfig | None = Field(None, description="DRAM cache tier in front of storage ([cache]); unset = none")

    @field_validator("faults")
    @classmethod
    def _fault_targets(cls, faults: list[FaultConfig], info: Any) -> list[FaultConfig]:
        """Every fault names a node (and GPU) that exists in the cluster."""
        c = info.data.get("cluster")
        if c is None:
            return faults
        for i, f in enumerate(faults):
            try:
                fault_node_index(f.node, c.prefill_nodes, c.decode_nodes)
            except ValueError as exc:
                raise ValueError(f"faults[{i}].{exc}") from None
            if f.gpu is not None and f.gpu >= c.gpus_per_node:
                raise ValueError(f"faults[{i}].gpu = {f.gpu} does not exist (cluster.gpus_per_node = {c.gpus_per_node}): use 0..{c.gpus_per_node - 1}")
        _check_permanent_losses(faults, c)
        return faults

    # ----- identity -----
    def to_toml(self) -> str:
        """Serialise to TOML text (lossless: ``from_toml(s.to_toml()) == s``)."""
        data = self.model_dump(mode="json", exclude_none=True)
        if not data.get("faults"):
            data.pop("faults", None)  # no faults: the same text (and content hash) as before faults existed
        # fields added after content hashes were stored: at their defaults, the text (and hash) of before
        for section, key in _OMIT_AT_DEFAULT:
            sec = data.get(section)
            model = type(getattr(self, section))
            if isinstance(sec, dict) and sec.get(key) == model.model_fields[key].default:
                sec.pop(key)
        return tomli_w.dumps(data)

    def content_hash(self) -> str:
        """Stable hash of the scenario content (ignores formatting of the source file)."""
        return hashlib.sha256(self.to_toml().encode()).hexdigest()[:16]

    def with_policy(self, name: str) -> Scenario:
        """A copy of this scenario with another loading design."""
        return apply_overrides(self, {"policy.name": name})


# ---------------------------------------------------------------- errors


def _format_errors(err: ValidationError) -> list[str]:
    """Turn pydantic errors into one actionable line per field."""
    out: list[str] = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        typ = e["type"]
        val = e.get("input")
        if typ == "extra_forbidden":
            parent, _, key = path.rpartition(".")
            known = _known_keys(parent)
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; allowed keys: {', '.join(known)}"
            out.append(f"{path}: unknown key{hint}")
            continue
        shown = repr(val) if not isinstance(val, dict) else "{...}"
        if len(shown) > 60:
            shown = shown[:57] + "..."
        msg = e["msg"]
        ctx = e.get("ctx") or {}
        if typ in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            msg = msg.replace("Input should be", "must be")
        elif typ == "literal_error" and "expected" in ctx:
            msg = f"must be one of {ctx['expected']}"
        elif typ == "finite_number":
            msg = "must be a finite number (not NaN or infinity)"
        elif typ == "value_error":
            msg = msg.removeprefix("Value error, ")
        out.append(f"{path or '<root>'} = {shown}: {msg}")
    return out


def _section_model(path: str) -> type[BaseModel] | None:
    model: type[BaseModel] = Scenario
    if not path:
        return model
    for part in path.split("."):
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return None
    return model


def _known_keys(path: str) -> list[str]:
    m = _section_model(path)
    return sorted(m.model_fields) if m else []


def table_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a field that is a TOML table (``CacheConfig`` for ``CacheConfig | None``), else None."""
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    return next((a for a in members if isinstance(a, type) and issubclass(a, BaseModel)), None)


def all_paths() -> list[str]:
    """Every dotted path a scenario accepts (leaves only)."""
    out: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            p = f"{prefix}{name}"
            sub = table_model(field.annotation)  # an optional table ([cache]) has the paths of its model
            if sub is not None:
                walk(sub, p + ".")
            else:
                out.append(p)

    walk(Scenario, "")
    return out


# ---------------------------------------------------------------- semantic checks


def ep_group_nodes(sc: Scenario) -> tuple[int, int]:
    """Nodes per prefill and decode EP group (0 in the scenario means the whole role, at most the role's nodes)."""
    c = sc.cluster
    p = c.prefill_ep_nodes or c.prefill_nodes
    d = c.decode_ep_nodes or c.decode_nodes
    return min(p, c.prefill_nodes), min(d, c.decode_nodes)


def semantic_problems(sc: Scenario) -> list[str]:
    """Problems the schema cannot see (catalog names, fit in HBM/DRAM, NIC counts, trace files); [] if none.

    The checks live in ``dualpath_twin.semantic`` and take plain values; this passes them the fields.
    """
    from dualpath_twin import semantic as sem

    c, w, m = sc.cluster, sc.workload, sc.model
    problems: list[str] = []
    model = sem.resolve_model(m.name, m.kv_format, m.overrides, problems)
    gpu = sem.resolve_gpu(c.gpu, problems)
    roles = {"prefill": (c.prefill_nodes, c.prefill_ep_nodes), "decode": (c.decode_nodes, c.decode_ep_nodes)}
    for role, (nodes, ep) in roles.items():
        sem.check_ep_group(role, nodes, ep, problems)
    sem.check_nics(c.gpus_per_node, sc.network.cnics_per_node, sc.network.snics_per_node, problems)
    for role in roles:
        sem.check_tp(role, c.tp(role), c.gpus_per_node, sc.network.cnics_per_node, model, problems)
    sem.check_workload(w.kind, w.trace_path, w.dataset, problems)
    if model is not None and gpu is not None and sem.check_hbm_reserved(c.hbm_reserved_gb, gpu, problems):
        for (role, (nodes, ep)), group in zip(roles.items(), ep_group_nodes(sc), strict=True):
            if ep <= nodes:  # else reported by check_ep_group
                sem.check_weights(role, ep, group, c.gpus_per_node, c.hbm_reserved_gb, c.gpu, model, gpu, problems, c.tp(role))
    if model is not None:
        ctx = sem.max_context_tokens(w.kind, w.dataset, w.max_context_tokens)
        src = "workload.max_context_tokens" if w.max_context_tokens else f"dataset {w.dataset} MAL"
        sem.check_dram(model, ctx, src, c.dram_buffer_gb, problems)
    return problems


# ---------------------------------------------------------------- load/save


def from_dict(data: dict[str, Any], source: str | None = None, check_catalog: bool = True) -> Scenario:
    """Validate a plain dict into a Scenario, raising ScenarioError with field-named problems."""
    if not isinstance(data, dict):
        raise ScenarioError(["<root>: a scenario must be a TOML table of sections"], source)
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(_format_errors(err), source) from None
    if check_catalog:
        problems = semantic_problems(sc)
        if problems:
            raise ScenarioError(problems, source)
    return sc


def from_toml(text: str, source: str | None = None, check_catalog: bool = True) -> Scenario:
    """Parse TOML text into a validated Scenario."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError([f"TOML syntax error: {err}; fix the file's syntax"], source) from None
    return from_dict(data, source, check_catalog)


def load(path: str | Path, check_catalog: bool = True) -> Scenario:
    """Load a scenario TOML file; relative ``workload.trace_path`` resolves against its folder."""
    p = Path(path)
    if not p.is_file():
        raise ScenarioError([f"file not found: {p}; give the path of a .toml scenario"], str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as err:
        raise ScenarioError([f"cannot read {p}: {err}; a scenario is a UTF-8 TOML text file"], str(p)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError([f"TOML syntax error: {err}; fix the file's syntax"], str(p)) from None
    wl = data.get("workload") if isinstance(data, dict) else None
    if isinstance(wl, dict) and isinstance(wl.get("trace_path"), str):
        tp = Path(wl["trace_path"])
        if not tp.is_absolute():
            cand = (p.parent / tp).resolve()
            if cand.exists() or not tp.exists():
                wl["trace_path"] = str(cand)
    if isinstance(data, dict) and "calibration" in data:
        data = _include_calibration(data, p)
    return from_dict(data, str(p), check_catalog)


CALIBRATION_SECTIONS = ("compute", "network")
"""Scenario tables a calibration file may hold."""


def _include_calibration(data: dict[str, Any], scenario_path: Path) -> dict[str, Any]:
    """Merge the calibration file a scenario names under the scenario's own [compute]/[network] values."""
    src = str(scenario_path)
    ref = data["calibration"]
    if not isinstance(ref, str) or not ref.strip():
        raise ScenarioError([f"calibration = {ref!r}: give the path of a calibration TOML, e.g. \"calibration.toml\""], src)
    cp = Path(ref).expanduser()
    if not cp.is_absolute():
        cp = (scenario_path.parent / cp).resolve()
    if not cp.is_file():
        raise ScenarioError(
            [f"calibration = {ref!r}: file not found ({cp}); the path is relative to the scenario file;"
             f" write it with `dualpath-twin calibrate MEASUREMENTS.toml -o {ref}`"],
            src,
        )  # fmt: skip
    try:
        cal = tomllib.loads(cp.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, OSError, tomllib.TOMLDecodeError) as err:
        raise ScenarioError([f"calibration = {ref!r}: cannot read {cp}: {err}; fix the calibration file"], src) from None
    problems = []
    for key, val in cal.items():
        if key not in CALIBRATION_SECTIONS or not isinstance(val, dict):
            problems.append(f"calibration file {cp}: {key}: not allowed; a calibration file holds only [compute] and [network] tables")
            continue
        model = Scenario.model_fields[key].annotation
        try:
            model.model_validate(val)  # type: ignore[union-attr]
        except ValidationError as err:
            problems += [f"calibration file {cp}: {key}.{p}" for p in _format_errors(err)]
    if problems:
        raise ScenarioError(problems, src)
    out = dict(data)
    for key, val in cal.items():
        own = data.get(key, {})
        out[key] = {**val, **own} if isinstance(own, dict) else own
    out["calibration"] = str(cp)
    return out


def save(scenario: Scenario, path: str | Path) -> None:
    """Write a scenario as TOML."""
    Path(path).write_text(scenario.to_toml(), encoding="utf-8")


# ---------------------------------------------------------------- overrides


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value: TOML literal if it parses (numbers, booleans, strings, arrays), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """Parse ``path=value`` strings into a dict, raising ScenarioError on malformed items."""
    out: dict[str, Any] = {}
    problems = []
    for it in items:
        if "=" not in it:
            problems.append(f"--set {it!r}: expected path=value, e.g. cluster.prefill_nodes=4")
            continue
        k, v = it.split("=", 1)
        out[k.strip()] = parse_value(v.strip())
    if problems:
        raise ScenarioError(problems)
    return out


def apply_overrides(scenario: Scenario, overrides: dict[str, Any], check_catalog: bool = True) -> Scenario:
    """Return a new Scenario with dotted-path values replaced, validated as a whole."""
    data = scenario.model_dump(mode="json", exclude_none=True)
    problems = []
    valid_prefixes = set(all_paths())
    for path, value in overrides.items():
        parts = path.split(".")
        if not all(parts):
            problems.append(f"{path!r}: empty path component")
            continue
        is_free = parts[0] == "model" and len(parts) >= 3 and parts[1] == "overrides"
        is_dist = parts[0] == "workload" and len(parts) == 3 and parts[1] == "tool_latency_s"
        if path not in valid_prefixes and not is_free and not is_dist:
            close = difflib.get_close_matches(path, sorted(valid_prefixes), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see `dualpath-twin validate --paths`"
            problems.append(f"{path}: unknown scenario path{hint}")
            continue
        node = data
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                node[part] = nxt
            node = nxt
        node[parts[-1]] = value
    if problems:
        raise ScenarioError(problems)
    return from_dict(data, check_catalog=check_catalog)
