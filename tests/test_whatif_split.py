"""Split reads (the ``dualpath-split`` policy): one request's hit KV read through both SNICs."""

from __future__ import annotations

import polars as pl
import pytest

from dualpath_twin import api
from dualpath_twin.policies.dualpath_split import equal_finish_split
from tests.test_sim_core import ds27b, small_workload


def test_equal_finish_split_balances_the_two_queues() -> None:
    # equal queues and rates: half each, at a block boundary
    assert equal_finish_split(0, 0, 6400, 1.0, 1.0, 64) == 3200
    # a long PE queue: everything on the DE side; a long DE queue: everything on the PE side
    assert equal_finish_split(1e6, 0, 6400, 1.0, 1.0, 64) == 0
    assert equal_finish_split(0, 1e6, 6400, 1.0, 1.0, 64) == 6400
    # twice the rate on the PE side: two thirds there (both queues then drain together)
    x = equal_finish_split(0, 0, 6400, 2.0, 1.0, 64)
    assert x % 64 == 0 and abs(x / 2.0 - (6400 - x) / 1.0) <= 64
    # a dead SNIC gets nothing
    assert equal_finish_split(0, 0, 6400, 0.0, 1.0, 64) == 0
    assert equal_finish_split(0, 0, 6400, 1.0, 0.0, 64) == 6400


@pytest.fixture(scope="module")
def split_run():
    wl = small_workload(n_traj=48, rounds=8, first=3000)
    sc = ds27b(network__snic_gbps=25.0)  # storage-bound: both read queues are long
    return api.simulate(sc, "dualpath-split", workload=wl, check_invariants=True), sc


def test_split_reads_happen_and_conserve_bytes(split_run) -> None:
    r, sc = split_run
    assert r.invariants == []
    df = r.rounds
    assert df.filter(pl.col("done_s").is_null()).height == 0
    split = df.filter(pl.col("read_side") == "split")
    assert split.height > 0, "no request was read through both SNICs"
    kv = (df["bytes_read_pe_snic"] + df["bytes_read_de_snic"]).sum() / df["hit_tokens"].sum()
    # every split round reads its hit bytes, a non-empty part on each side
    assert (split["bytes_read_pe_snic"] > 0).all() and (split["bytes_read_de_snic"] > 0).all()
    tot = split["bytes_read_pe_snic"] + split["bytes_read_de_snic"]
    assert ((tot - split["hit_tokens"] * kv).abs() < 1.0).all()
    # each part is loaded into the PE from where it landed
    assert ((split["bytes_pe_h2d"] - split["bytes_read_pe_snic"]).abs() < 1.0).all()
    assert ((split["bytes_de_to_pe"] - split["bytes_read_de_snic"]).abs() < 1.0).all()
    # the decode side already holds its part: the PD transfer carries the rest of the prompt
    pd = split["prompt_tokens"] * kv - split["bytes_read_de_snic"]
    assert ((split["bytes_pe_to_de"] - pd).abs() < 1.0).all()
    # the request is ready only when both parts landed
    assert (split["prefill_start_s"] >= split["read_end_s"]).all()
    assert r.summary.bytes_read_by_side["pe"] > 0 and r.summary.bytes_read_by_side["de"] > 0


def test_split_policy_without_splits_is_dualpath() -> None:
    """With a split that always picks one side, dualpath-split makes DualPath's decisions."""
    from dualpath_twin.policies import get_policy
    from dualpath_twin.policies.dualpath import DualPathPolicy

    wl = small_workload(n_traj=16, rounds=4, first=3000)
    sc = ds27b(network__snic_gbps=25.0)
    dp = api.simulate(sc, "dualpath", workload=wl)
    pol = get_policy("dualpath-split")
    orig = type(pol).choose_read_split
    try:
        type(pol).choose_read_split = DualPathPolicy.choose_read_split  # whole reads, side by the queue rule
        sp = api.simulate(sc, "dualpath-split", workload=wl)
    finally:
        type(pol).choose_read_split = orig
    assert sp.summary.jct_s == dp.summary.jct_s
    assert sp.rounds["read_side"].to_list() == dp.rounds["read_side"].to_list()
