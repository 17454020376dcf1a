"""The library's one face: simulate(), compare(), bounds(), derived(). UI, CLI and planning use only this."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from dualpath_twin.results import Bound, Progress, RunResult
from dualpath_twin.scenario import Scenario


@dataclass
class CompareResult:
    """Several policies run on the same scenario and seed."""

    runs: list[RunResult]
    ratios: dict[str, float] = field(default_factory=dict)  # e.g. dualpath_vs_basic (throughput ratio)


def simulate(
    scenario: Scenario,
    policy: str | None = None,
    *,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    progress_interval_s: float = 0.5,
    check_invariants: bool = False,
) -> RunResult:
    """Run one simulation of ``scenario`` (policy overrides ``scenario.policy.name``)."""
    raise NotImplementedError("simulation core is being written")


def compare(
    scenario: Scenario,
    policies: list[str],
    *,
    workers: int | None = None,
    progress: Callable[[str, Progress], None] | None = None,
    cancel: threading.Event | None = None,
) -> CompareResult:
    """Run several policies on the same scenario and seed; ratios are throughput ratios vs each other."""
    raise NotImplementedError("simulation core is being written")


def bounds(scenario: Scenario, policy: str | None = None) -> Bound:
    """Closed-form per-resource bounds of the scenario under one policy."""
    raise NotImplementedError("analysis is being written")
