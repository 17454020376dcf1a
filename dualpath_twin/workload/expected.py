"""How many rounds a scenario's workload will hold, without building it (for run-size estimates)."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

from dualpath_twin.scenario import Scenario

TRACE_COUNT_EXACT_BYTES = 32_000_000  # trace files up to this size have their lines counted exactly




@lru_cache(maxsize=64)
def _dataset_rounds_per_trajectory(dataset: str, append_scale: float, cap_tokens: int | None) -> tuple[float, str]:
    """Expected rounds per trajectory of a synthetic dataset (published target or the generator's parameters)."""
    from dualpath_twin.workload.datasets import get_dataset

    spec = get_dataset(dataset)
    target = getattr(spec, "target", None)
    rounds = getattr(target, "rounds", None) if target is not None else None
    if rounds:
        mal = getattr(spec, "mal_tokens", None)
        r = float(rounds)
        src = f"{r:g} rounds per trajectory ({dataset}'s published mean)"
        if append_scale != 1.0:
            # more appended tokens per round reach the context cap in fewer rounds
            r = r / append_scale
            src += f" / workload.append_scale={append_scale:g}"
        if cap_tokens and mal and cap_tokens < mal:
            # rounds to reach a lower cap: the context grows ~linearly with rounds
            r = max(1.0, r * cap_tokens / mal)
            src += f" x max_context_tokens {cap_tokens:,}/{mal:,}"
        return r, src
    calls = getattr(spec, "calls", None)
    if calls is not None:
        mean = float(calls.mean_value)
        cap = getattr(spec, "max_calls", None)
        r = min(mean, float(cap)) if cap else mean
        return r, f"{r:.3g} calls per session ({dataset}'s mean)"
    return 100.0, f"100 rounds per trajectory (assumed: {dataset} publishes no mean)"


@lru_cache(maxsize=32)
def _trace_lines(path: str, size: int, mtime: float) -> tuple[int, bool]:
    """(lines, exact) of a trace file: counted up to TRACE_COUNT_EXACT_BYTES, else extrapolated from 1 MB."""
    with open(path, "rb") as fh:
        if size <= TRACE_COUNT_EXACT_BYTES:
            n = 0
            while chunk := fh.read(1 << 20):
                n += chunk.count(b"\n")
            return max(n, 1), True
        head = fh.read(1 << 20)
    per_line = len(head) / max(head.count(b"\n"), 1)
    return max(1, int(size / per_line)), False


def trace_rounds(sc: Scenario, base_dir: Path | None = None) -> tuple[int | None, str]:
    """(rounds, how) of a trace-driven scenario from the file's lines, or (None, why) when it cannot be read."""
    from dualpath_twin.workload.build import resolve_trace_path

    try:
        p = resolve_trace_path(sc, base_dir)
        st = p.stat()
    except Exception as err:  # noqa: BLE001 - the run itself reports a missing trace in detail
        return None, f"trace not readable ({err})"
    n, exact = _trace_lines(str(p), st.st_size, st.st_mtime)
    return n, f"{'' if exact else '~'}{n:,} trace lines in {p.name}"


def expected_rounds(sc: Scenario, base_dir: Path | None = None) -> tuple[int, str]:
    """Rounds a run of ``sc`` will simulate, and how that number was obtained (no workload is built)."""
    w = sc.workload
    if w.kind == "trace":
        n, how = trace_rounds(sc, base_dir)
        return (n if n is not None else 0), how
    agents = w.agents
    if w.mode == "online" and sc.run.online_max_agents:
        agents = min(agents, sc.run.online_max_agents)
    per, how = _dataset_rounds_per_trajectory(w.dataset, float(w.append_scale), w.max_context_tokens)
    return int(math.ceil(per * agents)), f"{agents:,} agents x {how}"


