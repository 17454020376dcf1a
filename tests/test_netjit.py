"""The compiled network engine gives the same answers as the readable reference engine."""

from __future__ import annotations

import random

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from dualpath_twin.sim.netjit import JitFlowNetwork
from dualpath_twin.sim.network import FlowNetwork, Link


def _run(engine, seed: int, n_flows: int, lane_changes: int):
    """Random traffic over random links (with capacity changes); completion times and link bytes."""
    rng = random.Random(seed)
    env = simpy.Environment()
    net = engine(env)
    caps = [rng.choice([10.0, 25.0, 40.0, 100.0, 500.0]) for _ in range(rng.randint(2, 9))]
    links = [Link(f"l{i}", c) for i, c in enumerate(caps)]
    done: dict[int, float] = {}

    def starter(i: int, mask: int, size: float, delay: float):
        yield env.timeout(delay)
        chosen = [lk for j, lk in enumerate(links) if mask >> j & 1] or [links[mask % len(links)]]
        yield net.transfer(size, chosen)
        done[i] = env.now

    def lane():
        for _ in range(lane_changes):
            yield env.timeout(rng.uniform(0, 2))
            net.set_capacities(links[:2], rng.choice([5.0, 50.0, 200.0]))

    for i in range(n_flows):
        # some flows start at the same instant (delay 0 or 1) to exercise simultaneous events
        delay = rng.choice([0.0, 1.0, rng.uniform(0, 3)])
        env.process(starter(i, rng.randint(0, 2**16), rng.uniform(1, 500), delay))
    env.process(lane())
    env.run()
    net.sync_links(env.now)
    return done, [lk.bytes_total for lk in links], [lk.peak_util for lk in links], net.active


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31), n_flows=st.integers(1, 40), lane_changes=st.integers(0, 4))
def test_compiled_engine_matches_the_reference_engine(seed, n_flows, lane_changes):
    """Every flow completes at the same instant and every link carries the same bytes."""
    ref_done, ref_bytes, ref_peak, ref_active = _run(FlowNetwork, seed, n_flows, lane_changes)
    jit_done, jit_bytes, jit_peak, jit_active = _run(JitFlowNetwork, seed, n_flows, lane_changes)
    assert ref_active == jit_active == 0
    assert jit_done.keys() == ref_done.keys()
    for k, t in ref_done.items():
        assert jit_done[k] == pytest.approx(t, rel=1e-9, abs=1e-9)
    assert jit_bytes == pytest.approx(ref_bytes, rel=1e-9, abs=1e-6)
    assert jit_peak == pytest.approx(ref_peak, rel=1e-9)
    assert max(jit_peak) <= 1 + 1e-9


def test_compiled_engine_grows_past_its_initial_sizes():
    """More concurrent flows than slots, more flows on one link than its list, longer paths."""
    env = simpy.Environment()
    net = JitFlowNetwork(env, max_links_per_flow=2)
    shared = Link("shared", 1000.0)
    chain = [Link(f"c{i}", 1e6) for i in range(5)]
    evs = [net.transfer(10.0, [shared, *chain]) for _ in range(600)]
    env.run(until=simpy.AllOf(env, evs))
    assert env.now == pytest.approx(600 * 10.0 / 1000.0)
    assert net.active == 0


def test_tiny_tail_at_a_large_clock_completes_in_the_compiled_engine():
    """At t = 1e9 s a 1e-8 s transfer does not advance the float clock; it must still finish."""
    env = simpy.Environment(initial_time=1e9)
    net = JitFlowNetwork(env)
    done = net.transfer(1e3, [Link("l", 1e11)])
    env.run(until=simpy.AnyOf(env, [done, env.timeout(1.0)]))
    assert done.triggered
    assert net.active == 0


@pytest.mark.parametrize("engine", [FlowNetwork, JitFlowNetwork])
def test_on_done_callbacks_fire_at_completion_and_never_re_enter_the_caller(engine):
    """``on_done`` runs when the last byte arrives; for an empty flow only after transfer() returns."""
    env = simpy.Environment()
    net = engine(env)
    link = Link("l", 100.0)
    seen: list[tuple[str, float]] = []
    net.transfer(200.0, [link], on_done=lambda: seen.append(("a", env.now)))
    net.transfer(0.0, [link], on_done=lambda: seen.append(("empty", env.now)))
    assert seen == []  # not called from inside transfer()
    env.run()
    assert seen[0] == ("empty", 0.0)
    assert seen[1][0] == "a" and seen[1][1] == pytest.approx(2.0)
