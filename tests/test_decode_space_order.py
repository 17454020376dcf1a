"""policy.decode_space_order: FIFO claims on the decode-side space prevent starving large requests."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import simpy

from dualpath_twin import api
from dualpath_twin.scenario import ScenarioError, apply_overrides, load
from dualpath_twin.sim.memory import BytePool

QUICK = Path(__file__).resolve().parents[1] / "scenarios" / "examples" / "quick.toml"


def test_pool_cancel_withdraws_a_waiter_and_grants_the_next() -> None:
    env = simpy.Environment()
    pool = BytePool(env, "dram", 10.0)
    assert pool.try_reserve(8.0)
    big, small = pool.reserve(6.0), pool.reserve(2.0)
    assert not big.triggered and not small.triggered
    assert not pool.try_reserve(1.0)  # FIFO: someone is waiting ahead
    assert pool.cancel(big)  # the big claim is withdrawn: the small one fits now
    assert small.triggered and pool.used == 10.0
    assert not pool.cancel(big)  # already gone


def _run(order: str) -> pl.DataFrame:
    # a 2 GB DE DRAM buffer with 32K contexts: the buffer, not the SNICs, bounds the DE side
    sc = apply_overrides(load(QUICK), {
        "policy.decode_space_order": order, "cluster.dram_buffer_gb": 2.0,
        "workload.agents": 256, "workload.max_context_tokens": 32768})
    r = api.simulate(sc, "dualpath")
    assert r.summary.status == "finished"
    return r.rounds


def test_fifo_order_bounds_the_wait_that_first_fit_lets_grow() -> None:
    ff, fifo = _run("first_fit"), _run("fifo")
    assert ff.height == fifo.height
    # first fit: a large request waits minutes for DE buffer space while smaller ones pass it
    assert ff["ttft_s"].max() > 60.0
    # FIFO: the longest TTFT is a few prefill batches, and the tail shrinks by far more than the median grows
    assert fifo["ttft_s"].max() < ff["ttft_s"].max() / 5
    assert fifo["ttft_s"].quantile(0.99) < ff["ttft_s"].quantile(0.99) / 2
    # the same work gets done in about the same time (fairness moves waits, it does not add work)
    jct_ff, jct_fifo = ff["done_s"].max(), fifo["done_s"].max()
    assert abs(jct_fifo - jct_ff) / jct_ff < 0.05


def test_unknown_order_is_refused_by_name() -> None:
    with pytest.raises(ScenarioError, match="policy.decode_space_order"):
        apply_overrides(load(QUICK), {"policy.decode_space_order": "lifo"})
