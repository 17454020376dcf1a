"""Oracle: DualPath's scheduler with zero-time storage reads, H2D/D2H and PD transfers (upper bound)."""

from __future__ import annotations

from dualpath_twin.policies.base import register
from dualpath_twin.policies.dualpath import DualPathPolicy


@register
class OraclePolicy(DualPathPolicy):
    """I/O-free upper bound: only compute and memory capacity limit throughput."""

    name = "oracle"
    zero_io = True
    description = "DualPath scheduling with zero-time storage reads, H2D/D2H and PD transfers"
