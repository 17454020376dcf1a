"""Flow network: max-min sharing and completion at any clock magnitude."""

from __future__ import annotations

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from dualpath_twin.sim.network import FlowNetwork, Link


def test_two_flows_share_a_link_fairly_and_the_survivor_speeds_up():
    env = simpy.Environment()
    net = FlowNetwork(env)
    link = Link("l", 100.0)
    a = net.transfer(100.0, [link])
    b = net.transfer(300.0, [link])
    env.run(until=a)
    assert env.now == pytest.approx(2.0)  # 50 B/s each
    env.run(until=b)
    assert env.now == pytest.approx(4.0)  # 200 B left at 100 B/s


def test_max_min_gives_the_unbottlenecked_flow_the_leftover():
    env = simpy.Environment()
    net = FlowNetwork(env)
    slow, fast = Link("slow", 10.0), Link("fast", 100.0)
    a = net.transfer(100.0, [slow, fast])  # limited to 10 B/s by `slow`
    b = net.transfer(900.0, [fast])  # gets the remaining 90 B/s
    env.run(until=b)
    assert env.now == pytest.approx(10.0)
    assert a.triggered


def test_tiny_tail_at_a_large_clock_completes_instead_of_looping():
    """At t = 1e9 s a 1e-8 s tail does not advance the float clock; the flow must still finish."""
    env = simpy.Environment(initial_time=1e9)
    net = FlowNetwork(env)
    link = Link("l", 1e11)
    done = net.transfer(1e3, [link])
    env.run(until=simpy.AnyOf(env, [done, env.timeout(1.0)]))
    assert done.triggered
    assert net.active == 0


def _reference_max_min(links: list[Link]) -> dict:
    """Textbook progressive filling over every flow (slow, obviously right): the oracle."""
    flows = {f for lk in links for f in lk.flows}
    cap = {lk: lk.capacity_bps for lk in links}
    rate: dict = {}
    while len(rate) < len(flows):
        shares = {lk: cap[lk] / n for lk in links if (n := sum(1 for f in lk.flows if f not in rate))}
        best = min(shares, key=shares.get)
        for f in best.flows:
            if f not in rate:
                rate[f] = shares[best]
                for lk in f.links:
                    cap[lk] -= shares[best]
    return rate


@settings(max_examples=60, deadline=None)
@given(
    caps=st.lists(st.sampled_from([10.0, 25.0, 40.0, 100.0, 500.0]), min_size=2, max_size=7),
    ops=st.lists(st.tuples(st.integers(0, 2**16), st.floats(1.0, 500.0), st.floats(0.0, 3.0)), min_size=1, max_size=25),
)
def test_incremental_rates_equal_a_global_max_min_recompute(caps, ops):
    """After every start and finish, each flow's rate equals the global max-min allocation."""
    env = simpy.Environment()
    net = FlowNetwork(env)
    links = [Link(f"l{i}", c) for i, c in enumerate(caps)]

    def check() -> None:
        active = {f for lk in links for f in lk.flows}
        allo = dict.fromkeys(links)
        del allo
        ref = _reference_max_min(links)
        for f in active:
            assert f.rate == pytest.approx(ref[f], rel=1e-6, abs=1e-6)
        for lk in links:
            assert lk._rate <= lk.capacity_bps * (1 + 1e-9)

    def starter(mask: int, size: float, delay: float):
        yield env.timeout(delay)
        chosen = [lk for i, lk in enumerate(links) if mask >> i & 1] or [links[mask % len(links)]]
        ev = net.transfer(size, chosen)
        check()
        yield ev
        check()

    for mask, size, delay in ops:
        env.process(starter(mask, size, delay))
    env.run()
    assert net.active == 0


def test_freed_capacity_reaching_a_shared_unsaturated_link_is_reshared_with_flows_beyond_it():
    """h and g share an unsaturated link; when k leaves, h grows until that link binds g too."""
    env = simpy.Environment()
    net = FlowNetwork(env)
    shared, b, x = Link("shared", 110.0), Link("b", 80.0), Link("x", 40.0)
    net.transfer(1e9, [shared, b], tag="g")
    net.transfer(1e9, [shared, x], tag="h")
    k = net.transfer(10.0, [x], tag="k")
    rates = {f.tag: f.rate for f in shared.flows}
    assert rates == pytest.approx({"g": 80.0, "h": 20.0})  # shared carries 100 of 110: unsaturated
    env.run(until=k)
    rates = {f.tag: f.rate for f in shared.flows}
    assert rates == pytest.approx({"g": 70.0, "h": 40.0})  # max-min: h limited by x, g by shared
