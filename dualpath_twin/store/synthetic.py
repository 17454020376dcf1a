"""Synthetic RunResults that follow the results.py column contract (tests, benchmarks, UI demos).

Not a simulation: plausible shapes only (deterministic for a given seed), so that the store,
the figures and the report can be exercised without running the SimPy core.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from dualpath_twin.results import Bound, Percentiles, RunResult, RunSummary

_POLICY_SPEED = {"basic": 0.55, "layerwise": 0.7, "dualpath": 0.95, "oracle": 1.0}


def synthetic_timeseries(
    n_samples: int, prefill_nodes: int = 2, decode_nodes: int = 4, cnics_per_node: int = 8, seed: int = 0,
    interval_s: float = 1.0, speed: float = 1.0,
) -> pl.DataFrame:  # fmt: skip
    """Long-form time series (t_s, metric, entity, role, value) for an xPyD cluster."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples, dtype=np.float64) * interval_s
    parts: list[pl.DataFrame] = []

    def add(metric: str, entity: str, role: str, values: np.ndarray) -> None:
        parts.append(
            pl.DataFrame(
                {
                    "t_s": t,
                    "metric": metric,
                    "entity": entity,
                    "role": role,
                    "value": values.astype(np.float64),
                }
            )
        )

    ramp = np.minimum(1.0, (t + 1) / max(1.0, n_samples * interval_s * 0.1))
    nodes = [(f"P{i}", "prefill") for i in range(prefill_nodes)] + [
        (f"D{i}", "decode") for i in range(decode_nodes)
    ]
    for node, role in nodes:
        pe = role == "prefill"
        base_rx = (0.85 if pe else 0.4 * speed) * ramp
        add("snic_rx_util", f"{node}.snic", role, np.clip(base_rx + rng.normal(0, 0.04, n_samples), 0, 1))
        add(
            "snic_tx_util",
            f"{node}.snic",
            role,
            np.clip((0.02 if pe else 0.08) + rng.normal(0, 0.01, n_samples), 0, 1),
        )
        for c in range(cnics_per_node):
            cn = f"{node}.cnic{c}"
            add("cnic_rx_util", cn, role, np.clip(0.3 * ramp + rng.normal(0, 0.05, n_samples), 0, 1))
            add("cnic_tx_util", cn, role, np.clip(0.25 * ramp + rng.normal(0, 0.05, n_samples), 0, 1))
        add("dram_util", node, role, np.clip(0.2 * ramp + rng.normal(0, 0.02, n_samples), 0, 1))
        add("dram_buffer_bytes", node, role, np.clip(40e9 * ramp + rng.normal(0, 2e9, n_samples), 0, 80e9))
        add("hbm_kv_bytes", node, role, np.clip(300e9 * ramp + rng.normal(0, 1e10, n_samples), 0, 640e9))
        add("gpu_busy", node, role, np.clip(0.6 * speed * ramp + rng.normal(0, 0.05, n_samples), 0, 1))
    n_nodes = prefill_nodes + decode_nodes
    add(
        "storage_read_gbps",
        "cluster",
        "cluster",
        340.0 * n_nodes * 0.5 * speed * ramp + rng.normal(0, 5, n_samples),
    )
    add("storage_write_gbps", "cluster", "cluster", 8.0 * n_nodes * ramp + rng.normal(0, 0.5, n_samples))
    add("prompt_tokens_per_s", "cluster", "cluster", 60000.0 * speed * ramp + rng.normal(0, 2000, n_samples))
    add("gen_tokens_per_s", "cluster", "cluster", 20000.0 * speed * ramp + rng.normal(0, 800, n_samples))
    add("queue_len", "cluster", "cluster", np.abs(rng.normal(20, 5, n_samples)).round())
    add("running_agents", "cluster", "cluster", np.full(n_samples, 64.0))
    add("rounds_done", "cluster", "cluster", np.cumsum(np.abs(rng.normal(3, 1, n_samples))).round())
    return pl.concat(parts)


def synthetic_rounds(n_rounds: int, seed: int = 0, speed: float = 1.0, gpus: int = 48) -> pl.DataFrame:
    """Per-round frame with every contract column and plausible latencies."""
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.uniform(0, max(1.0, n_rounds / 10), n_rounds))
    queue = rng.exponential(0.4 / speed, n_rounds)
    alloc = rng.exponential(0.05, n_rounds)
    read = rng.exponential(0.8 / speed, n_rounds)
    prefill = rng.exponential(0.3, n_rounds)
    sched = arrival + queue
    read_start = sched + alloc
    read_end = read_start + read
    pf_end = read_end + prefill
    gen = rng.integers(50, 300, n_rounds)
    tpot = rng.normal(0.03, 0.008, n_rounds).clip(0.01)
    prompt = rng.integers(4000, 60000, n_rounds)
    hit = (prompt * 0.95 // 64 * 64).astype(np.int64)
    side = rng.choice(["pe", "de"], n_rounds)
    kv = hit.astype(np.float64) * 40016
    return pl.DataFrame(
        {
            "agent_id": np.arange(n_rounds) % 64,
            "round_idx": np.arange(n_rounds) // 64,
            "prompt_tokens": prompt,
            "hit_tokens": hit,
            "gen_tokens": gen,
            "arrival_s": arrival,
            "sched_s": sched,
            "read_start_s": read_start,
            "read_end_s": read_end,
            "read_side": side,
            "prefill_start_s": read_end,
            "prefill_end_s": pf_end,
            "first_token_s": pf_end,
            "second_token_s": pf_end + tpot,
            "decode_admit_s": pf_end,
            "done_s": pf_end + tpot * gen,
            "pe": rng.integers(0, gpus // 3, n_rounds),
            "de": rng.integers(gpus // 3, gpus, n_rounds),
            "pe_node": rng.integers(0, 2, n_rounds),
            "de_node": rng.integers(0, 4, n_rounds),
            "bytes_read_pe_snic": np.where(side == "pe", kv, 0.0),
            "bytes_read_de_snic": np.where(side == "de", kv, 0.0),
            "bytes_pe_h2d": np.where(side == "pe", kv, 0.0),
            "bytes_de_to_pe": np.where(side == "de", kv, 0.0),
            "bytes_pe_to_de": prompt.astype(np.float64) * 40016,
            "bytes_written": gen.astype(np.float64) * 40016,
            "ttft_s": pf_end - arrival,
            "ttst_s": pf_end + tpot - arrival,
            "tpot_s": tpot,
        }
    )


def synthetic_result(
    policy: str = "dualpath", seed: int = 0, n_rounds: int = 200, n_samples: int = 120, scenario_name: str = "synthetic",
    prefill_nodes: int = 2, decode_nodes: int = 4, cnics_per_node: int = 8, status: str = "finished",
) -> RunResult:  # fmt: skip
    """A complete RunResult (summary, rounds, timeseries, scenario TOML) for a policy."""
    speed = _POLICY_SPEED.get(policy, 0.8)
    rounds = synthetic_rounds(n_rounds, seed, speed)
    ts = synthetic_timeseries(n_samples, prefill_nodes, decode_nodes, cnics_per_node, seed, speed=speed)

    def pct(col: str) -> Percentiles:
        s = rounds[col]
        return Percentiles(
            p50=float(s.quantile(0.5)),
            p90=float(s.quantile(0.9)),
            p99=float(s.quantile(0.99)),
            mean=float(s.mean()),
        )

    slo = float(((rounds["ttft_s"] <= 4.0) & (rounds["tpot_s"] <= 0.05)).mean())
    bound = Bound(
        policy=policy,
        rounds_per_s_by_resource={
            "snic_read": 40.0 * speed + 5,
            "cnic": 90.0,
            "gpu_prefill": 60.0,
            "dram": 120.0,
        },
        max_rounds_per_s=40.0 * speed + 5,
        binding_resource="snic_read",
        second_resource="gpu_prefill",
        binding_margin=60.0 / (40.0 * speed + 5),
        explanation="storage NIC reads bind",
    )
    sim_time = float(rounds["done_s"].max())
    summary = RunSummary(
        policy=policy,
        seed=seed,
        scenario_name=scenario_name,
        status=status,
        mode="offline",
        jct_s=sim_time,
        sim_time_s=sim_time,
        rounds=n_rounds,
        rounds_total=n_rounds,
        agents=64,
        prompt_tokens_per_s=float(rounds["prompt_tokens"].sum()) / sim_time,
        generated_tokens_per_s=float(rounds["gen_tokens"].sum()) / sim_time,
        rounds_per_s=n_rounds / sim_time,
        ttft_s=pct("ttft_s"),
        ttst_s=pct("ttst_s"),
        tpot_s=pct("tpot_s"),
        slo_attainment=slo,
        ttft_breakdown_s={"queue": 0.4 / speed, "alloc": 0.05, "read": 0.8 / speed, "prefill": 0.3},
        snic_read_utilization={"prefill": 0.85, "decode": 0.4 * speed},
        bytes_read_by_side={
            "pe": float(rounds["bytes_read_pe_snic"].sum()),
            "de": float(rounds["bytes_read_de_snic"].sum()),
        },
        bottleneck="snic_read",
        bottleneck_sentence="The prefill nodes' storage NICs bind: they read at 85% of line rate while decode SNICs idle.",
        bound=bound,
    )
    toml = (
        f'name = "{scenario_name}"\n\n[cluster]\nprefill_nodes = {prefill_nodes}\ndecode_nodes = {decode_nodes}\n\n'
        f'[policy]\nname = "{policy}"\n\n[run]\nseed = {seed}\n'
    )
    return RunResult(summary=summary, rounds=rounds, timeseries=ts, scenario_toml=toml)
