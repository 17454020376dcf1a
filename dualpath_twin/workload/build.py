"""``build_workload``: the scenario's workload, generated or read, with arrivals, latency, scaling and the context cap."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dualpath_twin.scenario import Scenario
from dualpath_twin.workload.datasets import AgenticSpec, get_dataset
from dualpath_twin.workload.errors import WorkloadError
from dualpath_twin.workload.readers import read_trace
from dualpath_twin.workload.shaping import (
    apply_tool_latency,
    is_default_distribution,
    poisson_arrivals,
    scale_trace,
    truncate_context,
)
from dualpath_twin.workload.synthetic import generate_agentic, generate_claude_code
from dualpath_twin.workload.types import Workload


def resolve_trace_path(sc: Scenario, base_dir: Path | None = None) -> Path:
    """The scenario's trace file; relative paths resolve against ``base_dir`` (the scenario's folder)."""
    if not sc.workload.trace_path:
        raise WorkloadError(
            "workload.kind = 'trace' needs workload.trace_path (a Mooncake JSONL, Azure CSV or Claude Code JSONL file)"
        )
    p = Path(sc.workload.trace_path)
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return p


def build_workload(sc: Scenario, base_dir: Path | None = None, *, skip_bad_lines: bool = False) -> Workload:
    """Build the scenario's Workload: generate or read, then apply arrivals, latency, scaling and the context cap.

    Synthetic datasets and closed-loop traces (claude-code) get Poisson agent arrivals at
    ``workload.arrival_rate_aps`` in online mode and arrival 0 in offline mode; open-loop traces
    (mooncake, azure) keep their timestamps (divided by ``trace_time_scale``). A non-default
    ``workload.tool_latency_s`` replaces the workload's own idle times. Same seed -> same arrays.
    """
    w = sc.workload
    bt = sc.storage.block_tokens
    seed = sc.run.seed
    if w.kind == "synthetic":
        spec = get_dataset(w.dataset)
        # the two generators differ only in what the context cap is called
        gen, cap = (generate_agentic, "mal_tokens") if isinstance(spec, AgenticSpec) else (generate_claude_code, "cap_tokens")
        wl = gen(
            spec,  # type: ignore[arg-type]
            w.agents,
            seed,
            block_tokens=bt,
            append_scale=w.append_scale,
            gen_scale=w.gen_scale,
            name=w.dataset,
            **{cap: w.max_context_tokens},
        )
    else:
        path = resolve_trace_path(sc, base_dir)
        wl = read_trace(
            path,
            w.trace_format,
            block_tokens=bt,
            time_scale=w.trace_time_scale,
            skip_bad_lines=skip_bad_lines,
            block_keys=sc.cache is not None,  # the DRAM cache tier looks blocks up by id
        )
        scale_trace(wl, w.append_scale, w.gen_scale)
        if w.max_context_tokens is not None:
            wl.meta["truncated_rounds"] = truncate_context(wl, w.max_context_tokens)
            if wl.n_rounds == 0:
                raise WorkloadError(
                    f"every request exceeds workload.max_context_tokens = {w.max_context_tokens}; raise or unset it",
                    str(path),
                )
    if not wl.open_loop:
        start = wl.arrival_s.copy()  # sub-agent spawn offsets (claude-code traces), else 0
        groups = wl.meta.get("trajectory_group")
        if isinstance(groups, list) and len(groups) == wl.n_trajectories:
            group = np.asarray(groups, dtype=np.int64)
        else:
            group = np.arange(wl.n_trajectories)
        if w.mode == "online":
            n_groups = int(group.max()) + 1 if len(group) else 0
            wl.arrival_s = poisson_arrivals(n_groups, w.arrival_rate_aps, seed)[group] + start
        else:
            wl.arrival_s = start
    if not is_default_distribution(w.tool_latency_s):
        apply_tool_latency(wl, w.tool_latency_s, seed)
    wl.meta.update({"mode": w.mode, "seed": seed, "block_tokens": bt})
    problems = wl.validate(bt)
    if problems:
        raise WorkloadError("internal: inconsistent workload: " + "; ".join(problems))
    return wl
