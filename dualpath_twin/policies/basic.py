"""Basic: conventional PD disaggregation. PE-side reads only, whole KV in HBM before prefill."""

from __future__ import annotations

from dualpath_twin.policies.base import Policy, register


@register
class BasicPolicy(Policy):
    """Round-robin placement; the PE loads every layer of a batch's KV into HBM, then computes."""

    name = "basic"
    layerwise = False
    de_side_reads = False
    description = "PE reads hit KV via its own SNIC; whole batch KV in HBM before compute; round-robin placement"
