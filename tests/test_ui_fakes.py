"""A stand-in simulation core for dashboard tests: small, deterministic RunResults with progress and cancel."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import polars as pl

from dualpath_twin.results import Percentiles, Progress, RunResult, RunSummary
from dualpath_twin.scenario import Scenario

SPEED = {"basic": 1.0, "layerwise": 1.2, "dualpath": 1.8, "oracle": 2.5}


def timeseries(policy: str, n_samples: int, nodes: tuple[str, ...] = ("P0", "D0")) -> pl.DataFrame:
    """A long timeseries frame with the results.py columns for a few metrics."""
    k = SPEED.get(policy, 1.0)
    rows = []
    for i in range(n_samples):
        t = float(i)
        rows.append((t, "gen_tokens_per_s", "cluster", "cluster", 1000.0 * k))
        rows.append((t, "prompt_tokens_per_s", "cluster", "cluster", 9000.0 * k))
        rows.append((t, "storage_read_gbps", "cluster", "cluster", 300.0 * k))
        rows.append((t, "storage_write_gbps", "cluster", "cluster", 20.0 * k))
        for node in nodes:
            role = "prefill" if node.startswith("P") else "decode"
            rows.append((t, "snic_rx_util", f"{node}.snic", role, min(1.0, 0.5 * k if role == "prefill" else 0.2 * k)))
            rows.append((t, "snic_tx_util", f"{node}.snic", role, 0.05))
            rows.append((t, "cnic_rx_util", f"{node}.cnic0", role, 0.1 * k))
            rows.append((t, "cnic_tx_util", f"{node}.cnic0", role, 0.1 * k))
            rows.append((t, "dram_buffer_bytes", node, role, 1e9 * k))
            rows.append((t, "hbm_kv_bytes", node, role, 5e9 * k))
            rows.append((t, "gpu_busy", node, role, 0.3 * k))
    return pl.DataFrame(rows, schema=["t_s", "metric", "entity", "role", "value"], orient="row")


def rounds(policy: str, n: int) -> pl.DataFrame:
    """A per-round frame with the results.py columns."""
    rng = np.random.default_rng(0)
    k = SPEED.get(policy, 1.0)
    arrival = np.sort(rng.uniform(0, 10, n))
    ttft = rng.uniform(0.5, 3.0, n) / k
    tpot = rng.uniform(0.02, 0.06, n)
    gen = rng.integers(50, 200, n)
    first = arrival + ttft
    return pl.DataFrame({
        "agent_id": np.arange(n) % 4, "round_idx": np.arange(n) // 4, "prompt_tokens": rng.integers(1000, 9000, n),
        "hit_tokens": np.full(n, 640), "gen_tokens": gen, "arrival_s": arrival, "sched_s": arrival + 0.01,
        "read_start_s": arrival + 0.02, "read_end_s": arrival + 0.2, "read_side": ["pe", "de"] * (n // 2) + ["pe"] * (n % 2),
        "prefill_start_s": arrival + 0.3, "prefill_end_s": first - 0.01, "first_token_s": first,
        "second_token_s": first + tpot, "decode_admit_s": first, "done_s": first + gen * tpot,
        "pe": np.zeros(n, dtype=np.int64), "de": np.ones(n, dtype=np.int64), "pe_node": np.zeros(n, dtype=np.int64),
        "de_node": np.ones(n, dtype=np.int64), "bytes_read_pe_snic": np.full(n, 1e8), "bytes_read_de_snic": np.full(n, 1e8),
        "bytes_pe_h2d": np.full(n, 1e8), "bytes_de_to_pe": np.full(n, 1e8), "bytes_pe_to_de": np.full(n, 1e8),
        "bytes_written": np.full(n, 1e6), "ttft_s": ttft, "ttst_s": tpot, "tpot_s": tpot,
    })


def result(scenario: Scenario, policy: str, status: str = "finished", n_rounds: int = 40) -> RunResult:
    """A complete fake RunResult for ``policy``."""
    k = SPEED.get(policy, 1.0)
    summary = RunSummary(
        policy=policy, seed=scenario.run.seed, scenario_name=scenario.name, scenario_hash=scenario.content_hash(),
        status=status, jct_s=100.0 / k, sim_time_s=100.0 / k, rounds=n_rounds, rounds_total=n_rounds,
        agents=scenario.workload.agents, prompt_tokens_per_s=9000.0 * k, generated_tokens_per_s=1000.0 * k,
        rounds_per_s=4.0 * k, ttft_s=Percentiles(p50=1.0 / k, p90=2.0 / k, p99=3.0 / k, mean=1.2 / k),
        tpot_s=Percentiles(p50=0.03, p90=0.04, p99=0.05, mean=0.03), slo_attainment=min(1.0, 0.5 * k),
        ttft_breakdown_s={"queue": 0.2, "alloc": 0.01, "read": 0.6 / k, "prefill": 0.3},
        bottleneck="prefill SNIC read" if policy == "basic" else "GPU compute",
        bottleneck_sentence=f"{policy}: bound by the prefill nodes' storage NICs (fake core)",
        wall_s=0.1,
    )
    return RunResult(summary=summary, rounds=rounds(policy, n_rounds), timeseries=timeseries(policy, 20),
                     scenario_toml=scenario.to_toml())


def make_simulate(block: bool = False, steps: int = 3, step_s: float = 0.01) -> Callable[..., RunResult]:
    """A fake api.simulate: ``steps`` progress reports ``step_s`` apart; with ``block`` it then waits for cancel."""

    def simulate(scenario: Scenario, policy: str | None = None, *, progress: Callable[[Progress], None] | None = None,
                 cancel: threading.Event | None = None, **_: object) -> RunResult:
        pol = policy or scenario.policy.name
        for i in range(steps):
            if progress is not None:
                progress(Progress(sim_time_s=float(i), rounds_done=(40 * i) // steps, rounds_total=40,
                                  wall_s=step_s * i, timeseries=timeseries(pol, i + 1)))
            if cancel is not None and cancel.wait(step_s):
                break
        if block and cancel is not None:
            cancel.wait(20)
        if cancel is not None and cancel.is_set():
            return result(scenario, pol, status="cancelled", n_rounds=10)
        return result(scenario, pol)

    return simulate
