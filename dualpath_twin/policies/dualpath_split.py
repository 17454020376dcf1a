"""DualPath with split reads: one request's hit KV read partly through each side's storage NIC.

The paper reads a request's whole hit KV on one side (the node with the shorter read queue) and
names splitting it as future work. This policy keeps DualPath's scheduler and cuts the read at
the block that equalises the expected finish time of the two nodes' read queues.
"""

from __future__ import annotations

from dualpath_twin.policies.base import ClusterView, RequestInfo, register
from dualpath_twin.policies.dualpath import DualPathPolicy


def equal_finish_split(q_pe: float, q_de: float, hit: int, r_pe: float, r_de: float, block: int) -> int:
    """Tokens to read on the PE side so both queues drain at the same time, block-aligned, in [0, hit].

    Queue ``q`` (tokens) drains at rate ``r`` (any unit, the same on both sides):
    ``(q_pe + x) / r_pe = (q_de + hit - x) / r_de`` gives ``x = (r_pe (q_de + hit) - r_de q_pe) / (r_pe + r_de)``.
    A side whose rate is zero (its SNIC down) gets nothing.
    """
    if r_pe <= 0 and r_de <= 0:
        return hit
    if r_de <= 0:
        return hit
    if r_pe <= 0:
        return 0
    x = (r_pe * (q_de + hit) - r_de * q_pe) / (r_pe + r_de)
    if x <= 0:
        return 0
    if x >= hit:
        return hit
    b = max(int(block), 1)
    return min(hit, int(round(x / b)) * b)


@register
class DualPathSplitPolicy(DualPathPolicy):
    """DualPath's placement; each read split between the PE and DE SNICs to equalise queue finish times."""

    name = "dualpath-split"
    split_reads = True
    description = "DualPath with each request's hit KV split between the PE and DE storage NICs (equal queue finish time)"

    def choose_read_split(self, view: ClusterView, req: RequestInfo, pe_node: int, de_node: int) -> int:
        """PE-side tokens from both read queues and both SNIC rates (see ``equal_finish_split``)."""
        return equal_finish_split(
            view.read_q_tokens(pe_node), view.read_q_tokens(de_node), req.hit_tokens,
            view.snic_read_bps(pe_node), view.snic_read_bps(de_node), view.block_tokens,
        )
