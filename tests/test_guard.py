"""Guard rails before and during a run: refusal from the scenario alone, the dashboard job's force, the memory watchdog."""

from __future__ import annotations

import threading
import time

import pytest

from dualpath_twin import guard
from dualpath_twin.scenario import apply_overrides, load
from dualpath_twin.ui.jobs import JobRegistry

QUICK = "scenarios/examples/quick.toml"


def _quick(agents: int):  # noqa: ANN202
    return apply_overrides(load(QUICK), {"workload.agents": agents})


def test_estimate_grows_with_agents() -> None:
    """The estimate's memory and wall time rise with the agents count."""
    small, big = guard.estimate_run(_quick(64), 2), guard.estimate_run(_quick(6400), 2)
    assert big.memory_bytes > small.memory_bytes
    assert big.wall_s > small.wall_s


def test_dashboard_job_refuses_huge_run_before_any_work() -> None:
    """REGISTRY.start refuses 10M agents naming workload.agents and the fix; no job thread is started."""
    reg = JobRegistry()
    before = threading.active_count()
    with pytest.raises(guard.RunTooLarge) as err:
        reg.start(_quick(10_000_000), ["basic", "dualpath"])
    text = " ".join(err.value.problems)
    assert "workload.agents" in text and "Fix:" in text
    assert threading.active_count() == before


def test_dashboard_job_accepts_small_run_and_force() -> None:
    """A small run passes the guard; force skips it (the 'Run anyway' box)."""
    guard.guard_run(_quick(64), ["basic"], workers=1)  # no exception
    guard.guard_run(_quick(10_000_000), ["basic"], workers=1, force=True)


def test_memory_watchdog_sets_its_event_over_budget() -> None:
    """A budget below the process's resident memory trips the soft event and names the reason."""
    pytest.importorskip("psutil")
    with guard.MemoryWatchdog(1e6, interval_s=0.05) as dog:
        deadline = time.monotonic() + 5
        while not dog.event.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert dog.event.is_set()
    assert "workload.agents" in dog.exceeded and "budget" in dog.exceeded
    cancel = threading.Event()
    assert guard.EitherEvent(cancel, dog.event).is_set()
    assert not guard.EitherEvent(cancel).is_set()
