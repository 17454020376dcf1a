"""The run loop makes young garbage collections rare and gives the process its setting back."""

from __future__ import annotations

import gc
import threading

import pytest

from dualpath_twin import api
from dualpath_twin.sim.gcpolicy import RUN_YOUNG_THRESHOLD, rare_young_collections
from tests.test_sim_core import ds27b, small_workload


def test_a_run_raises_the_young_threshold_and_restores_it() -> None:
    before = gc.get_threshold()
    seen: list[int] = []
    api.simulate(ds27b(), "dualpath", workload=small_workload(), progress=lambda p: seen.append(gc.get_threshold()[0]),
                 progress_interval_s=0.0)
    assert seen and all(t == max(RUN_YOUNG_THRESHOLD, before[0]) for t in seen)
    assert gc.get_threshold() == before


def test_nested_and_failing_runs_restore_the_setting() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError):
        with rare_young_collections():
            with rare_young_collections():
                assert gc.get_threshold()[0] == RUN_YOUNG_THRESHOLD
            assert gc.get_threshold()[0] == RUN_YOUNG_THRESHOLD  # the outer run is still going
            raise RuntimeError("run failed")
    assert gc.get_threshold() == before


def test_a_disabled_collector_stays_as_the_user_set_it() -> None:
    before = gc.get_threshold()
    gc.set_threshold(0)
    try:
        with rare_young_collections():
            assert gc.get_threshold()[0] == 0
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)


def test_overlapping_runs_in_threads_restore_once_the_last_ends() -> None:
    before = gc.get_threshold()
    inside, release = threading.Event(), threading.Event()

    def long_run() -> None:
        with rare_young_collections():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=long_run)
    t.start()
    inside.wait(5)
    with rare_young_collections():
        pass
    assert gc.get_threshold()[0] == RUN_YOUNG_THRESHOLD  # the thread's run has not ended
    release.set()
    t.join()
    assert gc.get_threshold() == before
