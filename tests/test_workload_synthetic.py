"""Synthetic generators and build_workload: the §6 table within 5%, determinism, scenario knobs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dualpath_twin.scenario import Distribution, Scenario
from dualpath_twin.workload import Workload, WorkloadError, build_workload, get_dataset, load_datasets
from dualpath_twin.workload.calibrate import dataset_metrics
from dualpath_twin.workload.datasets import AgenticSpec
from dualpath_twin.workload.synthetic import AGENTS_PER_BLOCK, generate_agentic, generate_claude_code

TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"


def _scenario(**workload: object) -> Scenario:
    sc = Scenario()
    for k, v in workload.items():
        setattr(sc.workload, k, v)
    return sc


def _same(a: Workload, b: Workload) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f))
        for f in ("arrival_s", "round_offsets", "prompt_tokens", "hit_tokens", "gen_tokens", "delay_s")
    )


@pytest.mark.parametrize("name", ["paper-32k", "paper-48k", "paper-64k"])
def test_paper_datasets_match_published_table_within_5pct(name: str) -> None:
    spec = get_dataset(name)
    assert isinstance(spec, AgenticSpec)
    wl = generate_agentic(spec, AGENTS_PER_BLOCK, seed=0)  # one block: stratified as a whole
    res = dataset_metrics(wl).residuals(spec)
    assert set(res) == {"rounds", "append_tokens", "gen_tokens", "total_tokens", "context_tokens"}
    bad = {k: f"{v:+.1%}" for k, v in res.items() if abs(v) > 0.05}
    assert not bad, f"{name} off by more than 5%: {bad}"


@pytest.mark.parametrize("name", ["paper-32k", "paper-64k", "claude-code"])
def test_trajectory_invariants(name: str) -> None:
    sc = _scenario(dataset=name, agents=300)
    wl = build_workload(sc)
    assert wl.validate(64) == []
    assert wl.n_trajectories == 300
    first = wl.round_offsets[:-1]
    assert (wl.hit_tokens[first] == 0).all()
    if name.startswith("paper"):
        mal = get_dataset(name).mal_tokens
        assert ((wl.prompt_tokens + wl.gen_tokens) <= mal).all()
        # round i's prompt = previous context + append, hit = previous context rounded to blocks
        later = np.ones(wl.n_rounds, bool)
        later[first] = False
        prev = np.concatenate([[0], wl.prompt_tokens[:-1] + wl.gen_tokens[:-1]])
        assert (wl.prompt_tokens[later] > prev[later]).all()
        assert np.array_equal(wl.hit_tokens[later], prev[later] // 64 * 64)
        # unique first rounds: no two trajectories share a prefix
        assert len(np.unique(wl.prompt_tokens[first])) > 0.9 * wl.n_trajectories


def test_same_seed_same_arrays_and_different_seed_differs() -> None:
    sc = _scenario(dataset="paper-48k", agents=200, mode="online", arrival_rate_aps=2.0)
    a, b = build_workload(sc), build_workload(sc)
    assert _same(a, b)
    sc2 = sc.model_copy(deep=True)
    sc2.run.seed = 1
    assert not _same(a, build_workload(sc2))


@pytest.mark.parametrize("name", ["paper-64k", "claude-code"])
def test_first_agents_do_not_depend_on_how_many_are_asked_for(name: str) -> None:
    """Common random numbers: n agents are the first n of any larger request, across block boundaries."""
    gen = generate_agentic if name.startswith("paper") else generate_claude_code
    spec = get_dataset(name)
    big = gen(spec, 2 * AGENTS_PER_BLOCK + 300, 0, name=name)  # type: ignore[arg-type]
    for n in (7, AGENTS_PER_BLOCK, AGENTS_PER_BLOCK + 1, 2 * AGENTS_PER_BLOCK + 11):
        small = gen(spec, n, 0, name=name)  # type: ignore[arg-type]
        r = int(small.round_offsets[-1])
        assert small.n_trajectories == n
        assert np.array_equal(small.round_offsets, big.round_offsets[: n + 1])
        for f in ("prompt_tokens", "hit_tokens", "gen_tokens", "delay_s"):
            assert np.array_equal(getattr(small, f), getattr(big, f)[:r]), (n, f)
    # every block draws from its own stream: the second block is not a copy of the first
    lo, hi = big.round_offsets[AGENTS_PER_BLOCK], big.round_offsets[2 * AGENTS_PER_BLOCK]
    assert not np.array_equal(big.prompt_tokens[:50], big.prompt_tokens[lo:lo + 50])
    assert big.n_rounds > hi > lo


def test_capacity_rates_share_agents() -> None:
    """Online runs at two rates over one window: the lower rate's agents lead the higher one's, arrivals scaled."""
    a = build_workload(_scenario(agents=1200, mode="online", arrival_rate_aps=1.0))
    b = build_workload(_scenario(agents=1500, mode="online", arrival_rate_aps=1.25))
    r = int(a.round_offsets[-1])
    assert np.array_equal(a.prompt_tokens, b.prompt_tokens[:r])
    np.testing.assert_allclose(b.arrival_s[:1200], a.arrival_s / 1.25)


def test_arrival_rate_does_not_change_lengths() -> None:
    a = build_workload(_scenario(agents=100, mode="online", arrival_rate_aps=1.0))
    b = build_workload(_scenario(agents=100, mode="online", arrival_rate_aps=4.0))
    assert np.array_equal(a.prompt_tokens, b.prompt_tokens)
    np.testing.assert_allclose(b.arrival_s, a.arrival_s / 4)


def test_online_poisson_and_offline_zero() -> None:
    off = build_workload(_scenario(agents=2000))
    assert (off.arrival_s == 0).all()
    on = build_workload(_scenario(agents=2000, mode="online", arrival_rate_aps=5.0))
    gaps = np.diff(np.concatenate([[0.0], on.arrival_s]))
    assert (gaps >= 0).all()
    assert gaps.mean() == pytest.approx(0.2, rel=0.08)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.1)  # exponential gaps


@pytest.mark.parametrize(
    ("dist", "mean", "cv"),
    [
        (Distribution(kind="const", mean=2.0), 2.0, 0.0),
        (Distribution(kind="exponential", mean=3.0), 3.0, 1.0),
        (Distribution(kind="lognormal", mean=3.0, sigma=0.5), 3.0, 0.533),
        (Distribution(kind="uniform", low=1.0, high=3.0), 2.0, 0.289),
    ],
)
def test_tool_latency_distribution(dist: Distribution, mean: float, cv: float) -> None:
    wl = build_workload(_scenario(agents=200, tool_latency_s=dist))
    first = wl.round_offsets[:-1]
    assert (wl.delay_s[first] == 0).all()
    later = np.delete(wl.delay_s, first)
    assert later.mean() == pytest.approx(mean, rel=0.05)
    assert later.std() / later.mean() == pytest.approx(cv, abs=0.05)


def test_scales_and_max_context() -> None:
    base = build_workload(_scenario(agents=300, dataset="paper-32k"))
    big = build_workload(_scenario(agents=300, dataset="paper-32k", gen_scale=2.0, append_scale=2.0))
    assert big.gen_tokens.mean() == pytest.approx(2 * base.gen_tokens.mean(), rel=0.1)
    assert big.n_rounds < base.n_rounds  # contexts fill the MAL sooner
    capped = build_workload(_scenario(agents=300, dataset="paper-32k", max_context_tokens=8192))
    assert ((capped.prompt_tokens + capped.gen_tokens) <= 8192).all()


def test_block_tokens_rounding() -> None:
    sc = _scenario(agents=50)
    sc.storage.block_tokens = 256
    wl = build_workload(sc)
    assert (wl.hit_tokens % 256 == 0).all() and wl.validate(256) == []


def test_claude_code_shape() -> None:
    wl = build_workload(_scenario(dataset="claude-code", agents=1000))
    counts = np.diff(wl.round_offsets)
    assert np.median(counts) == pytest.approx(45, rel=0.15)
    assert np.median(wl.gen_tokens) == pytest.approx(216, rel=0.1)
    assert (wl.prompt_tokens <= get_dataset("claude-code").context_cap_tokens).all()
    hit = wl.hit_tokens.sum() / wl.prompt_tokens.sum()
    assert 0.93 < hit < 0.99  # real traces: 96.3%
    first = wl.round_offsets[:-1]
    idle = np.delete(wl.delay_s, first)
    assert 5 < np.median(idle) < 20  # mostly tool steps (p50 8.5 s), some user turns (p50 184 s)
    assert wl.meta["resets"] > 0


def test_trace_scenario_and_unknown_dataset(tmp_path: Path) -> None:
    sc = _scenario(
        kind="trace", trace_path=str(TRACES / "weka_claude_code" / "requests.jsonl"), mode="online"
    )
    wl = build_workload(sc)
    assert not wl.open_loop and wl.n_trajectories == 111
    assert (np.diff(np.sort(wl.arrival_s)) >= 0).all() and wl.arrival_s.max() > 0
    head = (TRACES / "mooncake" / "conversation_trace.jsonl").read_text(encoding="utf-8").splitlines()[:300]
    (tmp_path / "mc.jsonl").write_text("\n".join(head) + "\n", encoding="utf-8")
    sc2 = _scenario(kind="trace", trace_path="mc.jsonl", max_context_tokens=8192)
    wl2 = build_workload(sc2, base_dir=tmp_path)
    assert wl2.open_loop and ((wl2.prompt_tokens + wl2.gen_tokens) <= 8192).all()
    assert wl2.meta["truncated_rounds"] > 0
    with pytest.raises(WorkloadError, match="unknown synthetic dataset 'paper-99k'.*paper-64k"):
        build_workload(_scenario(dataset="paper-99k"))
    with pytest.raises(WorkloadError, match="trace_path"):
        build_workload(_scenario(kind="trace"))


def test_datasets_file_loads() -> None:
    specs = load_datasets()
    assert {"paper-32k", "paper-48k", "paper-64k", "claude-code"} <= set(specs)
