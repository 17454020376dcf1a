"""call_later: bare queue entries run in exactly the order equivalent Timeouts would."""

from __future__ import annotations

import random

import simpy

from dualpath_twin.sim.calls import call_later


def _trace(use_calls: bool, seed: int) -> list[tuple[float, int]]:
    rng = random.Random(seed)
    env = simpy.Environment()
    out: list[tuple[float, int]] = []

    def schedule(i: int, delay: float) -> None:
        def fire(_e: object, i: int = i) -> None:
            out.append((env.now, i))
            if i < 300:  # callbacks schedule more work, some at the same instant
                schedule(i + 1000, rng.choice([0.0, 0.5, rng.random()]))

        if use_calls and i % 2 == 0:
            call_later(env, delay, fire)
        else:
            env.timeout(delay).callbacks.append(fire)

    for i in range(300):
        schedule(i, rng.choice([0.0, 1.0, 2.0, rng.random() * 3]))

    def proc():
        for _ in range(50):
            yield env.timeout(0.25)
            out.append((env.now, -1))

    env.process(proc())
    env.run()
    return out


def test_call_later_keeps_timeout_order() -> None:
    for seed in range(5):
        ref = _trace(False, seed)
        got = _trace(True, seed)
        assert len(ref) == len(got) > 600
        assert got == ref


def test_call_later_returns_its_entry_and_runs_once() -> None:
    env = simpy.Environment()
    seen: list[object] = []
    entry = call_later(env, 1.5, seen.append)
    env.run()
    assert seen == [entry]
    assert env.now == 1.5
