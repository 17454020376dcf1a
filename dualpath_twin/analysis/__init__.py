"""Closed-form analysis: per-resource bounds, the P/D range, verdicts."""

from dualpath_twin.analysis.bounds import RESOURCE_LABELS, PdRange, compute_bound, pd_range

__all__ = ["RESOURCE_LABELS", "PdRange", "compute_bound", "pd_range"]
