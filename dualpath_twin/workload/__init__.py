"""Workloads: synthetic generators, trace readers and statistics, all producing the columnar Workload.

``build_workload(scenario)`` (in ``workload/build.py``) is the one entry point the simulation uses;
see docs/workloads.md.
"""

from __future__ import annotations

from dualpath_twin.workload.build import build_workload, resolve_trace_path
from dualpath_twin.workload.datasets import AgenticSpec, get_dataset, load_datasets
from dualpath_twin.workload.errors import WorkloadError
from dualpath_twin.workload.readers import (
    detect_format,
    read_azure,
    read_claude_code,
    read_mooncake,
    read_trace,
)
from dualpath_twin.workload.stats import WorkloadStats, format_stats_table, workload_stats
from dualpath_twin.workload.synthetic import generate_agentic, generate_claude_code
from dualpath_twin.workload.types import Workload

__all__ = [
    "AgenticSpec",
    "Workload",
    "WorkloadError",
    "WorkloadStats",
    "build_workload",
    "detect_format",
    "format_stats_table",
    "generate_agentic",
    "generate_claude_code",
    "get_dataset",
    "load_datasets",
    "read_azure",
    "read_claude_code",
    "read_mooncake",
    "read_trace",
    "resolve_trace_path",
    "workload_stats",
]
