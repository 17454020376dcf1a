"""The bottleneck verdict of one run: which resources bind, from numbers the summary already has.

A resource *binds* a run only when both of these hold:

- its measured utilisation is high (``utilisation >= BIND_UTILISATION``), and
- the achieved throughput is close to that resource's analytic bound
  (``achieved rounds/s / bound rounds/s >= BIND_BOUND_FRACTION``).

Utilisation alone is not enough (decode GPUs are "busy" whenever any request decodes, even
at batch 1), and the bound alone is not enough (it is a ceiling the run may be far below).
When no resource binds, the verdict says so and names the offered load (how many agents,
how they arrive) as the limit, instead of recommending hardware that would not help.

Utilisations are shares of the *achievable* rate (line rate x efficiency), the same rate the
analytic bounds use. Resources without a measured utilisation in the summary (host DRAM, the
storage backend) are judged on the bound fraction alone, which is then their utilisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dualpath_twin.analysis.bounds import RESOURCE_LABELS
from dualpath_twin.results import Bound

BIND_UTILISATION = 0.8
"""A resource binds only if it is at least this busy (share of its achievable rate)."""

BIND_BOUND_FRACTION = 0.8
"""...and the run achieves at least this share of the rounds/s that resource's bound allows."""

NEAR_UTILISATION = 0.6
"""Below binding but at least this busy and this close to its bound: 'close to its limit'."""

NEAR_BOUND_FRACTION = 0.6
"""The bound fraction that, with NEAR_UTILISATION, makes a resource 'close to its limit'."""

BUSY_UTILISATION = 0.9
"""Busy at least this much yet far below its bound: it sets each round's latency (small batches)."""

BUFFER_FULL = 0.8
"""Host DRAM KV buffers bind when the fullest role's buffers are at least this full, on average, while reads wait
(or fuller than the room the largest request needs: ``1 - BufferState.largest_share``)..."""

BUFFER_WAIT_SHARE = 0.25
"""...and rounds waited at least this share of their mean TTFT for buffer room before their reads started."""

DRAM_BUFFER = "dram_buffer"
"""The ``bottleneck`` key of a run held back by its host DRAM KV buffers (``cluster.dram_buffer_gb``)."""

OFFERED_LOAD = "offered_load"
"""The ``bottleneck`` value of a run no resource binds: the workload's offered load limits it."""


def resource_label(key: str | None) -> str:
    """A bottleneck key as a planner reads it ('snic_read' -> 'storage NIC reads'); '' for none.

    The one wording of bottleneck / binding-resource keys for every front end: reports, CLI
    tables and the dashboard (``dualpath_twin.ui.decision`` re-exports it).
    """
    if not key:
        return ""
    if key == OFFERED_LOAD:
        return "the offered load (no resource saturated)"
    if key == DRAM_BUFFER:
        return "host DRAM KV buffers"
    return RESOURCE_LABELS.get(key, key.replace("_", " "))

_IO_RESOURCES = ("snic_read", "storage_read", "snic_write", "storage_write", "pe_cnic", "de_cnic", "pe_dram", "de_dram")

_ADVICE = {
    "snic_read": "More or faster storage NICs would raise throughput.",
    "storage_read": "A faster storage backend (more read bandwidth) would raise throughput.",
    "snic_write": "Faster storage NICs on the decode nodes would raise throughput.",
    "storage_write": "A faster storage backend (more write bandwidth) would raise throughput.",
    "prefill_compute": "More prefill GPUs (a higher P/D ratio) would raise throughput.",
    "decode": "More decode GPUs or HBM would raise throughput.",
    "pe_cnic": "Faster compute NICs on the prefill nodes would raise throughput.",
    "de_cnic": "Faster compute NICs on the decode nodes would raise throughput.",
    "pe_dram": "More host DRAM bandwidth on the prefill nodes would raise throughput.",
    "de_dram": "More host DRAM bandwidth on the decode nodes would raise throughput.",
}
_ADVICE_PE_ONLY_READS = (
    "DualPath (which also reads through the decode nodes' storage NICs) or faster storage NICs would raise throughput."
)


@dataclass
class ResourceState:
    """One resource in one run: its utilisation, the share of its bound achieved and the judgement."""

    resource: str
    utilisation: float  # share of the achievable rate (measured, or the bound fraction when unmeasured)
    bound_fraction: float  # achieved rounds/s / this resource's bound rounds/s
    bound_rounds_per_s: float
    measured: bool  # False: no utilisation in the summary; judged on the bound fraction alone
    state: str  # binding | near | busy | idle

    @property
    def label(self) -> str:
        """Human name of the resource."""
        return RESOURCE_LABELS.get(self.resource, self.resource)


@dataclass
class BufferState:
    """The host DRAM KV buffers of one run: how full, and how long rounds waited for room (no analytic bound)."""

    occupancy: dict[str, float]  # role -> mean share of the buffer held while reads waited in the node's read queue
    wait_s: float  # mean wait from scheduling to read start (buffer room or the in-flight read cap)
    ttft_s: float  # mean TTFT, for the share the wait takes
    buffer_gb: float  # cluster.dram_buffer_gb
    largest_share: float = 0.0  # the largest request's KV as a share of one node's buffer

    @property
    def full_at(self) -> float:
        """The occupancy at which a read may not fit: BUFFER_FULL, or lower when one request takes a large share."""
        return min(BUFFER_FULL, 1.0 - self.largest_share)

    @property
    def fullest(self) -> tuple[str, float]:
        """(role, occupancy) of the fullest role."""
        return max(self.occupancy.items(), key=lambda kv: kv[1]) if self.occupancy else ("", 0.0)

    def binds(self) -> bool:
        """Full buffers and a wait for room that is a large part of TTFT."""
        return self.fullest[1] >= self.full_at and self.ttft_s > 0 and self.wait_s >= BUFFER_WAIT_SHARE * self.ttft_s

    def text(self) -> str:
        """The evidence, in words."""
        role, occ = self.fullest
        return (f"host DRAM KV buffers (cluster.dram_buffer_gb = {self.buffer_gb:g} GB per node; the {role} nodes' buffers "
                f"{_pct(occ)} full while reads waited, and rounds waited {self.wait_s:.3g} s on average before their "
                f"reads started, {_pct(self.wait_s / self.ttft_s)} of the mean TTFT)")


BUFFER_ADVICE = "More host DRAM for KV buffers (cluster.dram_buffer_gb) would raise throughput."


@dataclass
class Verdict:
    """The judged resources of a run, the ``bottleneck`` key and the sentence for people."""

    bottleneck: str  # the binding resource with the highest bound fraction, or OFFERED_LOAD
    sentence: str
    binding: list[str] = field(default_factory=list)
    resources: list[ResourceState] = field(default_factory=list)


def measured_utilisation(
    snic_read: dict[str, float],
    snic_write: dict[str, float],
    cnic: dict[str, float],
    *,
    prefill_nodes: int,
    decode_nodes: int,
    de_side_reads: bool,
    snic_efficiency: float = 1.0,
    cnic_efficiency: float = 1.0,
) -> dict[str, float]:
    """Utilisation of each bound resource the summary measures, as a share of its achievable rate.

    ``snic_read``/``snic_write`` are the summary's per-role line-rate shares (``prefill``,
    ``decode``); ``cnic`` its ``cnic_utilization`` (``prefill_rx``, ..., ``gpu_busy_prefill``,
    ``gpu_busy_decode``). Storage-NIC reads are averaged over the nodes that read (prefill nodes,
    plus decode nodes when ``de_side_reads``), as the bound assumes balanced reads.
    """
    se, ce = max(snic_efficiency, 1e-9), max(cnic_efficiency, 1e-9)
    pe_r, de_r = snic_read.get("prefill", 0.0), snic_read.get("decode", 0.0)
    if de_side_reads and prefill_nodes + decode_nodes > 0:
        read = (prefill_nodes * pe_r + decode_nodes * de_r) / (prefill_nodes + decode_nodes)
    else:
        read = pe_r
    return {
        "snic_read": read / se,
        "snic_write": snic_write.get("decode", 0.0) / se,
        "pe_cnic": max(cnic.get("prefill_rx", 0.0), cnic.get("prefill_tx", 0.0)) / ce,
        "de_cnic": max(cnic.get("decode_rx", 0.0), cnic.get("decode_tx", 0.0)) / ce,
        "prefill_compute": cnic.get("gpu_busy_prefill", 0.0),
        "decode": cnic.get("gpu_busy_decode", 0.0),
    }


def judge_resources(achieved_rounds_per_s: float, bound: Bound, utilisation: dict[str, float]) -> list[ResourceState]:
    """Every resource of the bound with its utilisation, bound fraction and state; closest to binding first."""
    out = []
    for res, cap in bound.rounds_per_s_by_resource.items():
        if not (cap > 0 and math.isfinite(cap)):
            continue
        frac = achieved_rounds_per_s / cap
        measured = res in utilisation
        util = utilisation[res] if measured else frac
        if util >= BIND_UTILISATION and frac >= BIND_BOUND_FRACTION:
            state = "binding"
        elif util >= NEAR_UTILISATION and frac >= NEAR_BOUND_FRACTION:
            state = "near"
        elif measured and util >= BUSY_UTILISATION:
            state = "busy"
        else:
            state = "idle"
        out.append(ResourceState(res, float(util), float(frac), float(cap), measured, state))
    out.sort(key=lambda r: (min(r.utilisation, r.bound_fraction), r.bound_fraction), reverse=True)
    return out


def offered_load_text(mode: str, agents: int, arrival_rate_aps: float | None = None, mean_delay_s: float = 0.0) -> str:
    """What the workload offers, in words: the agents and how their rounds arrive."""
    if mode == "online" and arrival_rate_aps:
        return f"{agents} agents arriving at {arrival_rate_aps:g} agents/s"
    wait = f" plus {mean_delay_s:.3g} s of tool time" if mean_delay_s > 0 else ""
    return f"{agents} agents, each sending its next round only after its previous one finishes{wait}"


def _advice(res: str, policy: str, de_side_reads: bool) -> str:
    if res == "snic_read" and not de_side_reads:
        return _ADVICE_PE_ONLY_READS
    return _ADVICE.get(res, "")


def _pct(x: float) -> str:
    return f"{x:.0%}" if x >= 0.01 else f"{x:.1%}"


def verdict(
    policy: str,
    achieved_rounds_per_s: float,
    bound: Bound,
    utilisation: dict[str, float],
    *,
    offered_load: str,
    de_side_reads: bool = False,
    zero_io: bool = False,
    buffer: BufferState | None = None,
    where: str = "",
) -> Verdict:
    """Judge a run: name only the resources that bind; otherwise say the offered load limits it.

    ``buffer`` (the host DRAM KV buffers, which have no analytic bound) binds too when
    ``BufferState.binds``: reads wait for room in full buffers, so the resources downstream starve.
    ``where`` says which part of the run the numbers are from (an online run's loaded window).
    """
    states = judge_resources(achieved_rounds_per_s, bound, utilisation)
    if zero_io:
        states = [s for s in states if s.resource not in _IO_RESOURCES]
    binding = [s for s in states if s.state == "binding"]
    head = f"Under {policy}, the run achieved {achieved_rounds_per_s:.3g} rounds/s{where}"
    buffer_binds = buffer is not None and not zero_io and buffer.binds()
    if buffer_binds and not binding:
        closest = states[0] if states else None
        rest = (f", while the closest bound resource, {closest.label}, ran at {_pct(closest.bound_fraction)} of its "
                f"bound of {closest.bound_rounds_per_s:.3g} rounds/s" if closest is not None else "")
        sentence = f"{head}; the binding resource is the {buffer.text()}{rest}. {BUFFER_ADVICE}"
        return Verdict(DRAM_BUFFER, sentence, [DRAM_BUFFER], states)
    overall = bound.max_rounds_per_s
    top_label = RESOURCE_LABELS.get(bound.binding_resource, bound.binding_resource)
    if binding:
        what = "the binding resource is" if len(binding) == 1 and not buffer_binds else "the binding resources are"
        details = "; ".join(
            f"{s.label} ({_pct(s.bound_fraction)} of its bound of {s.bound_rounds_per_s:.3g} rounds/s, "
            + (f"{_pct(s.utilisation)} busy)" if s.measured else "utilisation not measured)")
            for s in binding
        )
        advice = " ".join(dict.fromkeys(a for a in (_advice(s.resource, policy, de_side_reads) for s in binding) if a))
        keys = [s.resource for s in binding]
        if buffer_binds:  # full buffers as well: named after the bound resources, with their own fix
            details += f"; and the {buffer.text()}"  # type: ignore[union-attr]
            advice = f"{advice} {BUFFER_ADVICE}".strip()
            keys.append(DRAM_BUFFER)
        sentence = f"{head}; {what} {details}. {advice}".rstrip()
        return Verdict(binding[0].resource, sentence, keys, states)
    frac = achieved_rounds_per_s / overall if overall > 0 else 0.0
    bound_txt = f"{_pct(frac)} of the analytic bound ({overall:.3g} rounds/s, set by {top_label})"
    near = [s for s in states if s.state == "near"]
    busy = [s for s in states if s.state == "busy"]
    if near:
        s = near[0]
        sentence = (
            f"{head}, {bound_txt}. No resource is saturated; the closest is {s.label} ({_pct(s.utilisation)} busy, "
            f"{_pct(s.bound_fraction)} of its bound): more load would make it bind, and relieving it now "
            "would raise throughput only somewhat."
        )
    elif busy:
        s = busy[0]
        sentence = (
            f"{head}, {bound_txt}. No resource is saturated: the run is limited by the workload's offered load "
            f"({offered_load}). The busiest resource, {s.label}, is {_pct(s.utilisation)} busy but at only "
            f"{_pct(s.bound_fraction)} of its bound (smaller batches than it could take): it sets each round's "
            "latency, so more agents in flight, or more or faster such hardware, would raise throughput; other hardware would not."
        )
    else:
        sentence = (
            f"{head}, {bound_txt}. No resource is saturated: the run is limited by the workload's offered load "
            f"({offered_load}); more hardware would not raise throughput."
        )
    return Verdict(OFFERED_LOAD, sentence, [], states)
