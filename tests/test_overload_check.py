"""The online overload stop: mean TTFT over the last window above 3x its SLO, kept as a running sum."""

from __future__ import annotations

import random
from collections import deque
from types import SimpleNamespace

from dualpath_twin.sim.world import World


def _fake(ttft_slo_s: float, window_s: float) -> SimpleNamespace:
    sc = SimpleNamespace(run=SimpleNamespace(online_window_s=window_s), slo=SimpleNamespace(ttft_s=ttft_slo_s))
    return SimpleNamespace(online=True, sc=sc, env=SimpleNamespace(now=0.0), ttft_log=deque(), ttft_log_sum_s=0.0)


def _exact(w: SimpleNamespace) -> bool:
    log = [x for t, x in w.ttft_log if t >= w.env.now - w.sc.run.online_window_s]
    if len(log) < 20 or w.env.now < w.sc.run.online_window_s:
        return False
    return sum(log) / len(log) > 3.0 * w.sc.slo.ttft_s


def test_running_sum_gives_the_exact_verdict_through_bursts_and_quiet_spells() -> None:
    """Huge TTFTs that leave the window must not linger in the sum; the verdict equals a fresh sum at every check."""
    rng = random.Random(7)
    w = _fake(ttft_slo_s=2.0, window_s=10.0)
    flips = 0
    last = None
    for step in range(6000):
        w.env.now += rng.expovariate(20.0)
        phase = (step // 500) % 3  # overloaded (TTFT ~ 1e4 s), near the limit, light
        x = rng.uniform(1e3, 1e4) if phase == 0 else rng.uniform(5.0, 7.0) if phase == 1 else rng.uniform(0.01, 0.1)
        World.log_ttft(w, w.env.now, x)
        if step % 7 == 0:
            want = _exact(w)
            assert World.online_overload_check(w) is want
            flips += last is not None and want != last
            last = want
    assert flips >= 4  # the verdict went both ways several times


def test_mean_exactly_at_the_limit_is_not_overloaded() -> None:
    """At the edge the check sums the log exactly: a mean equal to 3x the SLO does not stop the run."""
    w = _fake(ttft_slo_s=0.125, window_s=1.0)
    w.env.now = 2.0
    for _ in range(30):  # leave the window before the check, and leave rounding in the running sum
        World.log_ttft(w, 0.5, 1e6 + 0.1)
    for _ in range(40):
        World.log_ttft(w, 1.5, 0.375)  # 3 x 0.125, exact in binary: the exact mean equals the limit
    assert w.ttft_log_sum_s != 40 * 0.375  # the fast path alone would be off
    assert World.online_overload_check(w) is _exact(w) is False
    assert len(w.ttft_log) == 40
