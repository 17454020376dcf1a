"""DRAM cache tier ([cache]): hit lookup by block, LRU eviction, reads from a peer's DRAM over the CNICs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dualpath_twin import api
from dualpath_twin.scenario import ScenarioError, from_dict, load
from dualpath_twin.sim.cache import plan_cache
from dualpath_twin.sim.cost import build_cost_model
from dualpath_twin.workload.stats import workload_stats

ROOT = Path(__file__).resolve().parents[1]
TRACES = {
    "mooncake": ROOT / "data/traces/mooncake/conversation_trace.jsonl",
    "claude-code": ROOT / "data/traces/weka_claude_code/requests.jsonl",
}
CAPS_GB = [None, 3000.0, 1000.0, 300.0, 100.0, 30.0, 10.0, 3.0, 1.0]


def _trace_scenario(fmt: str):
    base = load(ROOT / "scenarios/examples/mooncake-replay.toml").model_dump(mode="json", exclude_none=True)
    base["workload"].update(trace_format=fmt, trace_path=str(TRACES[fmt]))
    base["cache"] = {}  # the readers keep block ids only when a [cache] is configured
    return from_dict(base)


@pytest.mark.parametrize(
    ("fmt", "scope", "caps_gb"),
    [
        ("mooncake", "pooled", CAPS_GB),
        ("mooncake", "per_node", CAPS_GB),
        # 14M block lookups per pass (every call re-sends its whole context): fewer capacities
        ("claude-code", "pooled", [None, 10.0, 1.0, 0.1]),
    ],
)
def test_unbounded_cache_hits_what_workload_stats_says_and_shrinks_with_capacity(fmt: str, scope: str, caps_gb: list) -> None:
    sc = _trace_scenario(fmt)
    wl = api.load_workload(sc)
    stats = workload_stats(wl, block_tokens=sc.storage.block_tokens)
    kv = build_cost_model(sc).kv_bytes_per_token
    nodes = sc.cluster.prefill_nodes + sc.cluster.decode_nodes
    ratios = []
    for cap in caps_gb:
        plan = plan_cache(wl, cap, scope, nodes, kv, sc.storage.block_tokens)
        assert (plan.cached_tokens <= wl.hit_tokens).all() and (plan.cached_tokens % sc.storage.block_tokens == 0).all()
        assert ((plan.holder >= 0) == (plan.cached_tokens > 0)).all()
        ratios.append(float(plan.cached_tokens.sum()) / float(wl.prompt_tokens.sum()))
    assert ratios[0] == pytest.approx(stats.hit_ratio_tokens, rel=1e-12)
    assert all(a >= b for a, b in zip(ratios, ratios[1:], strict=False)), ratios  # monotone in capacity
    assert ratios[-1] < ratios[0]  # a small cache misses


def _quick_with_cache(cache: dict | None):
    d = load(ROOT / "scenarios/examples/quick.toml").model_dump(mode="json", exclude_none=True)
    d["workload"]["agents"] = 16
    if cache is not None:
        d["cache"] = cache
    return from_dict(d)


@pytest.fixture(scope="module")
def runs():
    return {
        name: api.simulate(_quick_with_cache(c), "basic", check_invariants=True)
        for name, c in (("none", None), ("unbounded", {}), ("small", {"capacity_gb": 5.0}))
    }


def test_cached_hits_bypass_the_storage_nic(runs) -> None:
    none, unb, small = runs["none"], runs["unbounded"], runs["small"]
    for r in runs.values():
        assert r.invariants == [] and r.rounds["done_s"].null_count() == 0
    assert none.summary.cache is None
    hit_bytes = none.summary.bytes_read_by_side["pe"]
    assert hit_bytes > 0
    cu, cs = unb.summary.cache, small.summary.cache
    # unbounded: every hit comes from DRAM, nothing through a storage NIC
    assert cu.share_of_hits == 1.0 and cu.snic_relief == 1.0 and unb.summary.bytes_read_by_side["pe"] == 0
    assert cu.bytes_from_cache == pytest.approx(hit_bytes, rel=1e-9)
    # a small cache: the bytes it serves plus those read from storage are the hit bytes
    assert 0 < cs.bytes_from_cache < cu.bytes_from_cache
    assert cs.bytes_from_cache + small.summary.bytes_read_by_side["pe"] == pytest.approx(hit_bytes, rel=1e-9)
    assert cs.hit_ratio_tokens < cu.hit_ratio_tokens
    # the storage NIC carries less
    assert unb.summary.snic_read_utilization["prefill"] < 1e-9 < none.summary.snic_read_utilization["prefill"]
    # the cached bytes cross compute NICs instead (peer DRAM -> CNIC): CNIC tx on some node rises
    tx = lambda r: sum(v for k, v in r.summary.cnic_utilization.items() if k.endswith("_tx"))  # noqa: E731
    assert tx(unb) > tx(none)


def test_cache_summary_survives_the_store_round_trip(runs, tmp_path) -> None:
    from dualpath_twin.store import open_store

    store = open_store(tmp_path / "t.duckdb")
    rid = store.save_run(runs["small"])
    back = store.get_summary(rid)
    assert back == runs["small"].summary and back.cache.capacity_gb == 5.0
    assert runs["small"].summary.flat()["cache.snic_relief"] == back.cache.snic_relief


def test_cache_schema() -> None:
    assert "cache" not in _quick_with_cache(None).to_toml()
    assert "[cache]" in _quick_with_cache({"capacity_gb": 10}).to_toml()
    with pytest.raises(ScenarioError, match="cache.capacity_gb"):
        _quick_with_cache({"capacity_gb": 0})
    with pytest.raises(ScenarioError, match="cache.scope"):
        _quick_with_cache({"scope": "global"})
    np.testing.assert_array_equal(  # a per-node cache of the same total is never better than pooled here
        plan_cache(api.load_workload(_quick_with_cache(None)), None, "per_node", 6, 1.0, 64).cached_tokens,
        plan_cache(api.load_workload(_quick_with_cache(None)), None, "pooled", 6, 1.0, 64).cached_tokens,
    )


def test_cache_fields_are_settable_paths() -> None:
    """--set cache.capacity_gb works on a scenario with [cache] and adds the table to one without; bad values name the field."""
    from dualpath_twin.scenario import ScenarioError, all_paths, apply_overrides, load

    assert "cache.capacity_gb" in all_paths()
    sc = apply_overrides(load("scenarios/examples/whatif-cache.toml"), {"cache.capacity_gb": 50.0})
    assert sc.cache is not None and sc.cache.capacity_gb == 50.0
    plain = apply_overrides(load("scenarios/examples/quick.toml"), {"cache.scope": "per_node"})
    assert plain.cache is not None and plain.cache.scope == "per_node"
    with pytest.raises(ScenarioError, match="cache.capacity_gb"):
        apply_overrides(load("scenarios/examples/quick.toml"), {"cache.capacity_gb": -1.0})


def test_a_slow_storage_shard_delays_the_storage_part_of_a_cached_read_not_the_dram_hits() -> None:
    d = _quick_with_cache({"capacity_gb": 5.0}).model_dump(mode="json", exclude_none=True)
    d["faults"] = [{"kind": "slow_storage", "node": n, "start_s": 0.0, "extra_latency_us": 300_000, "read_share": 1.0}
                   for n in ("P0", "P1")]
    r = api.simulate(from_dict(d), "basic", check_invariants=True)
    hits = r.rounds.filter(pl.col("hit_tokens") > 0).with_columns((pl.col("read_end_s") - pl.col("read_start_s")).alias("d"))
    from_storage = hits.filter(pl.col("bytes_read_pe_snic") > 0)
    from_dram = hits.filter(pl.col("bytes_read_pe_snic") == 0)
    assert from_storage.height > 0 and from_dram.height > 0
    assert from_storage["d"].min() >= 0.3  # every read with a storage part waited for the slow shard
    assert from_dram["d"].max() < 0.3  # reads served wholly from DRAM did not


def test_the_report_lists_the_cache_effect(runs, tmp_path) -> None:
    from dualpath_twin.report import build_report_from_results

    html = build_report_from_results([runs["small"]], tmp_path / "c.html").read_text()
    assert 'id="cache"' in html and "SNIC relief" in html and "5 GB" in html
    plain = build_report_from_results([runs["none"]], tmp_path / "n.html").read_text()
    assert 'id="cache"' not in plain


@pytest.mark.parametrize("nodes", [2, 4, 6, 8])
def test_synthetic_blocks_spread_over_any_node_count(nodes: int) -> None:
    """Trajectories' cached blocks land on every node (keys t << 32 put them all on node 0 for powers of two)."""
    sc = _quick_with_cache({})
    wl = api.load_workload(sc)
    kv = build_cost_model(sc).kv_bytes_per_token
    plan = plan_cache(wl, None, "pooled", nodes, kv, sc.storage.block_tokens)
    held = np.bincount(plan.holder[plan.holder >= 0], minlength=nodes)
    assert (held > 0).all() and held.max() < 3 * held.mean()
