"""Flow network: max-min sharing and completion at any clock magnitude."""

from __future__ import annotations

import pytest
import simpy

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
