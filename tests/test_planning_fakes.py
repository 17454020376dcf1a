"""A deterministic stand-in for api.simulate used by the planning tests (plus a check of its own shape)."""

from __future__ import annotations

import polars as pl
import pytest

from dualpath_twin import api
from dualpath_twin.results import Percentiles, RunResult, RunSummary
from dualpath_twin.scenario import Scenario


def fake_capacity_aps(sc: Scenario) -> float:
    """The 'true' saturation rate of the fake cluster: grows with nodes and SNIC speed, DualPath x1.5."""
    c, n = sc.cluster, sc.network
    base = 0.5 * min(c.prefill_nodes * 2.0, c.decode_nodes * 1.0) * (n.snic_gbps / 400.0) ** 0.5
    return base * (1.5 if sc.policy.name == "dualpath" else 1.0)


def fake_simulate(scenario: Scenario, policy: str | None = None, **_: object) -> RunResult:
    """M/M/1-like latency: TTFT p90 = 0.5 / (1 - rho); meets TTFT<=4 s up to rho = 0.875."""
    sc = scenario.with_policy(policy) if policy else scenario
    cap = fake_capacity_aps(sc)
    rho = sc.workload.arrival_rate_aps / cap
    ttft = 0.5 / (1 - rho) if rho < 1 else 1e3
    summary = RunSummary(
        policy=sc.policy.name,
        seed=sc.run.seed,
        scenario_name=sc.name,
        scenario_hash=sc.content_hash(),
        mode=sc.workload.mode,
        jct_s=100.0 / cap,
        rounds=10,
        prompt_tokens_per_s=1000.0 * min(rho, 1.0) * cap,
        ttft_s=Percentiles(p50=ttft / 2, p90=ttft, p99=ttft * 1.5, mean=ttft / 2),
        tpot_s=Percentiles(p50=0.02, p90=0.03, p99=0.04, mean=0.02),
        slo_attainment=1.0 if ttft <= 4 else 0.5,
        steady_state=rho < 1,
    )
    ts = pl.DataFrame({"t_s": [0.0], "metric": ["rounds_done"], "entity": ["cluster"], "role": ["cluster"], "value": [10.0]})
    return RunResult(summary=summary, rounds=pl.DataFrame(), timeseries=ts, scenario_toml=sc.to_toml())


@pytest.fixture
def fake_sim(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace api.simulate by the deterministic fake (whose cluster has its own capacity, not the analytic ceiling)."""
    monkeypatch.setattr(api, "simulate", fake_simulate)
    no_ceiling(monkeypatch)


def no_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn off the capacity runs' analytic-ceiling check: a fake simulator's capacity is not the real bound's."""
    from dualpath_twin.planning import capacity

    monkeypatch.setattr(capacity, "above_ceiling", lambda *_a, **_k: None)


def test_fake_is_monotone() -> None:
    sc = Scenario(workload={"agents": 8, "mode": "online", "arrival_rate_aps": 0.1})
    t = [fake_simulate(sc.model_copy(update={"workload": sc.workload.model_copy(update={"arrival_rate_aps": a})})).summary.ttft_s.p90
         for a in (0.1, 0.5, 1.0)]
    assert t == sorted(t)
