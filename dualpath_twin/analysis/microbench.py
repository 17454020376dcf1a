"""What a microbenchmark on the modelled cluster would measure, straight from the cost model.

These are the quantities a planner can measure on a real cluster (prefill throughput at a batch
size and context, decode step time at a batch size, storage read bandwidth per client), predicted
by the twin's cost model without running a simulation. ``benchmarks/calibration.py`` prints them
against published figures and ``dualpath-twin calibrate`` fits the scenario's efficiency fields
to a user's own measurements of the same quantities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dualpath_twin.scenario import Scenario
from dualpath_twin.sim.cost import CostModel, build_cost_model


@dataclass(frozen=True)
class PrefillPoint:
    """One prefill forward step of ``batch_per_gpu`` equal requests on every GPU of an EP group."""

    batch_per_gpu: int
    context_tokens: int
    new_tokens: int
    step_s: float
    new_tokens_per_s_node: float
    input_tokens_per_s_node: float
    breakdown_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DecodePoint:
    """One decode step of ``batch_per_gpu`` requests of ``context_tokens`` on every GPU."""

    batch_per_gpu: int
    context_tokens: int
    step_s: float
    tokens_per_s_user: float
    tokens_per_s_node: float
    breakdown_s: dict[str, float] = field(default_factory=dict)


def prefill_point(
    sc: Scenario, batch_per_gpu: int, context_tokens: int, new_tokens: int, cost: CostModel | None = None
) -> PrefillPoint:
    """Predicted prefill step for requests of ``context_tokens`` of which ``new_tokens`` are computed."""
    cost = cost or build_cost_model(sc)
    hit = max(context_tokens - new_tokens, 0)
    step, parts = cost.prefill_uniform_step_s(batch_per_gpu, new_tokens, hit)
    g = sc.cluster.engines_per_node("prefill")  # engines per node (GPUs without TP)
    new_s = batch_per_gpu * new_tokens * g / step if step > 0 else 0.0
    inp_s = batch_per_gpu * context_tokens * g / step if step > 0 else 0.0
    return PrefillPoint(batch_per_gpu, context_tokens, new_tokens, step, new_s, inp_s, parts)


def decode_point(sc: Scenario, batch_per_gpu: int, context_tokens: int, cost: CostModel | None = None) -> DecodePoint:
    """Predicted decode step of ``batch_per_gpu`` requests at ``context_tokens`` each."""
    cost = cost or build_cost_model(sc)
    step, parts = cost.decode_uniform_step_s(batch_per_gpu, context_tokens)
    g = sc.cluster.engines_per_node("decode")
    per_user = cost.tokens_per_decode_step / step if step > 0 else 0.0
    return DecodePoint(batch_per_gpu, context_tokens, step, per_user, per_user * batch_per_gpu * g, parts)


def storage_read_gbytes_per_s_per_client(sc: Scenario) -> float:
    """Effective storage read bandwidth of one node (all its storage NICs), GB/s."""
    n = sc.network
    return n.snic_gbps / 8 * n.snics_per_node * n.snic_efficiency
