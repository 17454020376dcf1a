"""Layer-wise prefill: Basic's placement and PE-side reads, with KV streamed one layer at a time."""

from __future__ import annotations

from dualpath_twin.policies.base import Policy, register


@register
class LayerwisePolicy(Policy):
    """KV streamed into HBM layer by layer, overlapped with compute; batches no longer HBM-capped."""

    name = "layerwise"
    layerwise = True
    de_side_reads = False
    description = "PE-side reads, layer-wise streaming overlapped with compute, round-robin placement"
