"""Analytic bounds with a DRAM cache tier ([cache]): storage carries only the uncached hit KV, cached reads cross CNICs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dualpath_twin import api
from dualpath_twin.analysis import bounds as B
from dualpath_twin.analysis.bounds import cache_share, compute_bound
from dualpath_twin.scenario import Scenario, apply_overrides, from_dict, load
from dualpath_twin.sim.cache import plan_cache
from dualpath_twin.sim.cost import build_cost_model

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "scenarios/examples/whatif-cache.toml"


def _example(**sets: object) -> Scenario:
    return apply_overrides(load(EXAMPLE), dict(sets)) if sets else load(EXAMPLE)


def _no_cache(sc: Scenario) -> Scenario:
    return sc.model_copy(update={"cache": None})


def _kv(sc: Scenario) -> float:
    return build_cost_model(sc).kv_bytes_per_token


@pytest.mark.parametrize("path", ["whatif-cache.toml", "claude-code.toml", "online-serving.toml"])
@pytest.mark.parametrize("n_lru", [1, 2, 6])
def test_closed_form_lru_is_the_sims_cache_replay(path: str, n_lru: int) -> None:
    """The bound's cache share per round equals sim.cache.plan_cache's (claude-code has context resets)."""
    sc = apply_overrides(load(ROOT / "scenarios/examples" / path), {"workload.agents": 12})
    wl = api.load_workload(sc)
    kv, bt = _kv(sc), sc.storage.block_tokens
    shares = []
    for cap_gb in (1000.0, 5.0, 1.0, 0.3):
        plan = plan_cache(wl, cap_gb, "per_node" if n_lru > 1 else "pooled", n_lru, kv, bt)
        fast = B._lockstep_cached(wl, int(cap_gb * 1e9 // (bt * kv)), bt, n_lru)
        assert fast is not None
        np.testing.assert_array_equal(fast, plan.cached_tokens)
        got = (B._first_keys(wl, bt) % n_lru)[plan.cached_tokens > 0]
        np.testing.assert_array_equal(got, plan.holder[plan.cached_tokens > 0])  # where the blocks live
        shares.append(plan.cached_tokens.sum() / wl.hit_tokens.sum())
    assert shares[0] > shares[-1]  # the capacities tried do matter


@pytest.mark.parametrize("policy", ["basic", "dualpath"])
def test_storage_bound_rises_as_one_over_the_uncached_share(policy: str) -> None:
    """(a) storage NIC and backend bounds = no-cache bound / (1 - cached share); the share is the sim's."""
    sc = _example(**{"workload.agents": 32, "cache.capacity_gb": 12.0, "storage.read_gbps_total": 150.0})
    wl = api.load_workload(sc)
    cs = cache_share(sc, wl, _kv(sc))
    plan = plan_cache(wl, 12.0, "pooled", 2, _kv(sc), sc.storage.block_tokens)
    assert cs is not None and not cs.optimistic
    assert cs.share == pytest.approx(plan.cached_tokens.sum() / wl.hit_tokens.sum(), rel=1e-12)
    assert 0.2 < cs.share < 0.9
    with_cache = compute_bound(sc, wl, policy).rounds_per_s_by_resource
    without = compute_bound(_no_cache(sc), wl, policy).rounds_per_s_by_resource
    for res in ("snic_read", "storage_read"):
        assert with_cache[res] == pytest.approx(without[res] / (1 - cs.share), rel=1e-9), res
    # an unbounded cache serves every hit: storage no longer bounds reads at all
    unb = apply_overrides(sc, {"cache.capacity_gb": None})
    b = compute_bound(unb, wl, policy)
    assert "snic_read" not in b.rounds_per_s_by_resource and "storage_read" not in b.rounds_per_s_by_resource
    assert b.binding_resource not in ("snic_read", "storage_read")
    assert "the DRAM cache serves 100% of the hit KV" in b.explanation


def test_cached_reads_load_the_holders_cnic_and_dram() -> None:
    """1P1D, unbounded cache: blocks sit on both nodes; the holder's DRAM and the CNICs carry the cached bytes."""
    sc = _example(**{"workload.agents": 32})
    wl = api.load_workload(sc)
    cs = cache_share(sc, wl, _kv(sc))
    assert cs is not None and cs.share == 1.0
    q0, q1 = cs.holder_share.tolist()
    assert q0 + q1 == pytest.approx(1.0) and min(q0, q1) > 0.3  # synthetic keys spread over a power-of-two node count
    cached, plain = compute_bound(sc, wl, "dualpath"), compute_bound(_no_cache(sc), wl, "dualpath")
    c, p = cached.rounds_per_s_by_resource, plain.rounds_per_s_by_resource
    n = sc.network
    cnic_node = n.cnic_gbps / 8 * 1e9 * n.cnic_efficiency * n.cnics_per_node
    dram = n.dram_gbps / 8 * 1e9
    hb = float(np.mean(wl.hit_tokens)) * _kv(sc)
    f = 0.5  # DualPath reads half of the hits on the decode side at storage-NIC balance (1P1D)
    # P0 sends the blocks it holds that D0 reads (out of its DRAM), D0 those P0 reads
    assert dram / c["pe_dram"] == pytest.approx(dram / p["pe_dram"] + hb * q0 * f, rel=1e-9)
    assert dram / c["de_dram"] == pytest.approx(dram / p["de_dram"] + hb * q1 * (1 - f), rel=1e-9)
    rx1, tx1 = hb * f * (1 - q1), hb * q1 * (1 - f)  # D0's CNIC: rx of what P0 holds, tx of what it holds
    load = cnic_node / c["de_cnic"] - cnic_node / p["de_cnic"]
    assert min(rx1, tx1) - 1e-6 <= load <= max(rx1, tx1) + 1e-6
    assert c["de_cnic"] < p["de_cnic"] and c["pe_cnic"] < p["pe_cnic"]
    assert plain.binding_resource == "snic_read" and cached.binding_resource not in ("snic_read", "storage_read")
    # Basic reads every hit on P0: the blocks D0 holds come out of D0's DRAM and over both CNICs
    cb, pb = compute_bound(sc, wl, "basic").rounds_per_s_by_resource, compute_bound(_no_cache(sc), wl, "basic").rounds_per_s_by_resource
    assert dram / cb["de_dram"] == pytest.approx(dram / pb["de_dram"] + hb * q1, rel=1e-9)
    assert cb["pe_cnic"] < pb["pe_cnic"] and cb["pe_dram"] == pytest.approx(pb["pe_dram"], rel=1e-12)


def test_holders_spread_over_nodes_load_each_nodes_cnic() -> None:
    """2P1D: holders are spread over all three nodes, so Basic's PE reads also pull blocks from peers' DRAM."""
    sc = _example(**{"workload.agents": 32, "cluster.prefill_nodes": 2})
    wl = api.load_workload(sc)
    cs = cache_share(sc, wl, _kv(sc))
    assert cs is not None and (cs.holder_share > 0.2).all()
    c = compute_bound(sc, wl, "basic").rounds_per_s_by_resource
    p = compute_bound(_no_cache(sc), wl, "basic").rounds_per_s_by_resource
    # P0, P1 pull the blocks D0 and the other P hold (CNIC rx); D0 reads them out of its DRAM for them
    assert c["pe_cnic"] < p["pe_cnic"] and c["de_dram"] < p["de_dram"]


@pytest.fixture(scope="module")
def example_runs() -> dict:
    out = {}
    for cap in (None, 20.0):  # the example's 200 GB holds every hit at this size; 20 GB leaves storage binding
        sc = _example(**{"workload.agents": 64, **({"cache.capacity_gb": cap} if cap else {})})
        wl = api.load_workload(sc)
        out[cap] = (sc, wl, api.simulate(sc, "basic", workload=wl))
    return out


@pytest.mark.parametrize("cap", [None, 20.0])
def test_the_bound_bounds_the_whatif_cache_run(example_runs, cap) -> None:
    """(b) the run achieves at most ~the bound (before: several times the bound that ignored the cache)."""
    sc, wl, run = example_runs[cap]
    s = run.summary
    bound = compute_bound(sc, wl, "basic")
    assert s.bound.max_rounds_per_s == pytest.approx(bound.max_rounds_per_s, rel=1e-12)  # what the summary reports
    assert s.rounds_per_s <= 1.05 * bound.max_rounds_per_s
    assert s.rounds_per_s > 1.05 * compute_bound(_no_cache(sc), wl, "basic").max_rounds_per_s  # the old bound did not bound
    assert s.cache.share_of_hits == pytest.approx(cache_share(sc, wl, _kv(sc)).share, rel=1e-9)
    if cap is not None:  # storage still binds: the bound is tight, not merely large
        assert bound.binding_resource == "snic_read" and s.rounds_per_s > 0.5 * bound.max_rounds_per_s


def test_no_cache_bound_is_unchanged() -> None:
    """(c) without [cache] (or with one that serves nothing) the bound is the one computed before the cache existed."""
    sc = _no_cache(_example())
    wl = api.load_workload(sc)
    before = {"basic": 16.900566411827597, "dualpath": 33.801132823655195}  # bounds.py before the cache terms (re-taken on the block-drawn workload: same formula, new sample)
    for pol, val in before.items():
        b = compute_bound(sc, wl, pol)
        assert b.max_rounds_per_s == pytest.approx(val, rel=1e-12) and b.binding_resource == "snic_read"
        assert "cache" not in b.explanation
    tiny = _example(**{"workload.agents": 32, "cache.capacity_gb": 1e-4})
    wl = api.load_workload(tiny)
    assert cache_share(tiny, wl, _kv(tiny)).share == 0.0
    for pol in ("basic", "dualpath", "dualpath-split", "oracle"):
        assert compute_bound(tiny, wl, pol).rounds_per_s_by_resource == compute_bound(_no_cache(tiny), wl, pol).rounds_per_s_by_resource


def test_too_big_to_replay_gives_an_optimistic_labelled_bound(monkeypatch) -> None:
    """Past the replay budget without a closed form the share is an upper bound, and the bound says so."""
    sc = _example(**{"workload.agents": 32, "cache.capacity_gb": 12.0})
    wl = api.load_workload(sc)
    exact = cache_share(sc, wl, _kv(sc))
    monkeypatch.setattr(B, "EXACT_CACHE_LOOKUPS", 100_000)
    monkeypatch.setattr(B, "_lockstep_cached", lambda *a, **k: None)
    B._SHARE_MEMO.clear()
    up = cache_share(sc, wl, _kv(sc))
    assert up.optimistic and "trajectories" in up.method and up.share > exact.share  # fewer agents compete for it
    assert "this bound is optimistic" in compute_bound(sc, wl, "basic").explanation
    # a trace (blocks shared across conversations) past the budget: the unbounded share
    base = load(ROOT / "scenarios/examples/mooncake-replay.toml").model_dump(mode="json", exclude_none=True)
    base["cache"] = {"capacity_gb": 10.0}
    tr = from_dict(base)
    twl = api.load_workload(tr)
    monkeypatch.setattr(B, "EXACT_CACHE_LOOKUPS", 10)
    got = cache_share(tr, twl, _kv(tr))
    assert got.optimistic and got.share == 1.0
    B._SHARE_MEMO.clear()


def test_sampled_bounds_scale_the_cache_with_the_sample() -> None:
    """api.bounds on a sample of agents scales a bounded cache with it: about the full workload's bound."""
    sc = _example(**{"cache.capacity_gb": 20.0, "workload.agents": 3072})  # the sample: one block of 1,024 agents
    full = api.bounds(sc, "basic", max_rounds=None)
    sample = api.bounds(sc, "basic", max_rounds=10_000)
    assert "cache capacity scaled" in sample.explanation
    assert sample.max_rounds_per_s == pytest.approx(full.max_rounds_per_s, rel=0.02)
