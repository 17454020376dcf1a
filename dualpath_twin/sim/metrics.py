"""Turn the world's preallocated columns into the rounds frame and the run summary."""

from __future__ import annotations

import numpy as np
import polars as pl

from dualpath_twin.analysis.verdict import BufferState, measured_utilisation, offered_load_text, verdict
from dualpath_twin.results import Bound, CacheEffect, Percentiles, RunSummary
from dualpath_twin.scenario import Scenario
from dualpath_twin.sim.faults import fault_effects

SIDE_NAMES = np.array(["none", "pe", "de", "split"])


def rounds_frame(world) -> pl.DataFrame:
    """One row per round of the workload, with the lifecycle times and bytes per path."""
    wl = world.wl
    n_per = np.diff(wl.round_offsets)
    agent = np.repeat(np.arange(wl.n_trajectories), n_per)
    round_idx = np.arange(wl.n_rounds) - np.repeat(wl.round_offsets[:-1], n_per)
    c = world.col
    pe = world.col_pe.astype(np.int64)  # kept as exact floats in the world's per-round rows
    de = world.col_de.astype(np.int64)
    data = {
        "agent_id": agent.astype(np.int64),
        "round_idx": round_idx.astype(np.int64),
        "prompt_tokens": wl.prompt_tokens.astype(np.int64),
        "hit_tokens": wl.hit_tokens.astype(np.int64),
        "gen_tokens": wl.gen_tokens.astype(np.int64),
    }
    for k in ("arrival_s", "sched_s", "read_start_s", "read_end_s"):
        data[k] = np.ascontiguousarray(c[k])  # the world keeps rows; a frame wants columns
    data["read_side"] = SIDE_NAMES[world.col_side.astype(np.int64)]
    for k in ("prefill_start_s", "prefill_end_s", "first_token_s", "second_token_s", "decode_admit_s", "done_s"):
        data[k] = np.ascontiguousarray(c[k])
    data["pe"] = pe
    data["de"] = de
    data["pe_node"] = np.where(pe >= 0, pe // world.gp, -1)
    data["de_node"] = np.where(de >= 0, de // world.gd, -1)
    for k in ("bytes_read_pe_snic", "bytes_read_de_snic", "bytes_pe_h2d", "bytes_de_to_pe", "bytes_pe_to_de", "bytes_written"):
        data[k] = np.ascontiguousarray(c[k])
    df = pl.DataFrame(data).with_columns(pl.col(pl.Float64).fill_nan(None))
    gen = pl.col("gen_tokens")
    return df.with_columns(
        (pl.col("first_token_s") - pl.col("arrival_s")).alias("ttft_s"),
        (pl.col("second_token_s") - pl.col("first_token_s")).alias("ttst_s"),
        pl.when(gen > 1).then((pl.col("done_s") - pl.col("first_token_s")) / (gen - 1)).otherwise(None).alias("tpot_s"),
    )


def _pct(s: pl.Series) -> Percentiles:
    s = s.drop_nulls()
    if s.len() == 0:
        return Percentiles()
    return Percentiles(
        p50=float(s.quantile(0.5, "linear")),
        p90=float(s.quantile(0.9, "linear")),
        p99=float(s.quantile(0.99, "linear")),
        mean=float(s.mean()),
    )


def _cache_effect(sc: Scenario, world, rounds: pl.DataFrame, side_bytes: dict[str, float]) -> CacheEffect:
    """Hit ratio, bytes served from DRAM and the storage-NIC relief of the DRAM cache tier (finished rounds)."""
    done = rounds["done_s"].is_not_null().to_numpy()
    ctok = float(np.asarray(world.cache_tok, dtype=np.float64)[done].sum())
    prompt = float(rounds["prompt_tokens"].to_numpy()[done].sum())
    hit = float(rounds["hit_tokens"].to_numpy()[done].sum())
    cb = float(world.cache_bytes[done].sum())
    snic = side_bytes["pe"] + side_bytes["de"]
    return CacheEffect(
        capacity_gb=sc.cache.capacity_gb, scope=sc.cache.scope,
        hit_ratio_tokens=ctok / prompt if prompt else 0.0, share_of_hits=ctok / hit if hit else 0.0,
        bytes_from_cache=cb, snic_read_bytes=snic, snic_relief=cb / (cb + snic) if cb + snic > 0 else 0.0,
    )


def _utilisations(ts: pl.DataFrame) -> tuple[dict[str, float], dict[str, float], dict[str, float], dict[str, float]]:
    """Mean SNIC read, SNIC write, CNIC and GPU-busy shares per role over a time-series frame."""

    def mean_util(metric: str, role: str, entity_suffix: str) -> float:
        x = ts.filter((pl.col("metric") == metric) & (pl.col("role") == role) & pl.col("entity").str.ends_with(entity_suffix))
        return float(x["value"].mean()) if x.height else 0.0

    snic_read = {r: mean_util("snic_rx_util", r, ".snic") for r in ("prefill", "decode")}
    snic_write = {r: mean_util("snic_tx_util", r, ".snic") for r in ("prefill", "decode")}
    cnic = {f"{r}_{d}": mean_util(f"cnic_{d}_util", r, ".cnic") for r in ("prefill", "decode") for d in ("rx", "tx")}
    gpu = {r: mean_util("gpu_busy", r, "") for r in ("prefill", "decode")}
    return snic_read, snic_write, cnic, gpu


def last_agent_arrival_s(rounds: pl.DataFrame) -> float | None:
    """When the last agent arrived (its first round), from a rounds frame; None if no round has arrived."""
    firsts = rounds.filter(pl.col("round_idx") == 0)["arrival_s"] if "round_idx" in rounds.columns else rounds["arrival_s"]
    return float(firsts.max()) if firsts.drop_nulls().len() else None


def _loaded_window(sc: Scenario, t_last: float | None, start_s: float, done: pl.DataFrame) -> tuple[float, float] | None:
    """An online run's loaded part: the two run.online_window_s before its last agent's arrival ``t_last``, or None.

    None when the run is shorter than that (its ramp-up is all there is) or fewer than 10 rounds
    finished in the window: the whole run is judged then.
    """
    if t_last is None:
        return None
    t1 = t_last
    t0 = t1 - 2 * sc.run.online_window_s
    if t0 <= start_s:
        return None
    if done.filter((pl.col("done_s") >= t0) & (pl.col("done_s") <= t1)).height < 10:
        return None
    return t0, t1


def _buffer_state(sc: Scenario, ts: pl.DataFrame, rounds: pl.DataFrame, done: pl.DataFrame, wait_s: float,
                  kv_bytes_per_token: float) -> BufferState:
    """The DRAM KV buffers for the verdict: how full each role's were while reads waited in its nodes' read queues."""
    per_node = ts.filter(pl.col("metric").is_in(["dram_buffer_bytes", "queue_len"]) & (pl.col("role") != "cluster"))
    wide = per_node.pivot("metric", index=["t_s", "entity", "role"], values="value")
    cap = sc.cluster.dram_buffer_gb * 1e9
    occupancy: dict[str, float] = {}
    if {"queue_len", "dram_buffer_bytes"} <= set(wide.columns):
        held = wide.filter(pl.col("queue_len") > 0).group_by("role").agg(pl.col("dram_buffer_bytes").mean())
        occupancy = {r: float(v) / cap for r, v in held.iter_rows()}
    largest = float(rounds["prompt_tokens"].max() or 0) * kv_bytes_per_token / cap
    return BufferState(occupancy, wait_s, float(done["ttft_s"].mean() or 0.0), sc.cluster.dram_buffer_gb,
                       largest_share=largest)


def summarize(
    sc: Scenario, world, rounds: pl.DataFrame, ts: pl.DataFrame, bound: Bound, wall_s: float, sim_events: int
) -> RunSummary:
    """Headline figures of a run (JCT, throughput, latency percentiles, SLO, NIC use, bottleneck)."""
    done = rounds.filter(pl.col("done_s").is_not_null())
    n_done = done.height
    end_t = float(done["done_s"].max()) if n_done else float(world.env.now)
    start_t = float(rounds["arrival_s"].min()) if rounds.height and rounds["arrival_s"].drop_nulls().len() else 0.0
    span = max(end_t - (start_t or 0.0), 1e-9)
    prompt_tps = float(done["prompt_tokens"].sum()) / span if n_done else 0.0
    gen_tps = float(done["gen_tokens"].sum()) / span if n_done else 0.0
    slo_ttft = sc.slo.ttft_s
    slo_tpot = sc.slo.tpot_ms / 1000.0
    if n_done:
        ok = done.select(
            ((pl.col("ttft_s") <= slo_ttft) & (pl.col("tpot_s").is_null() | (pl.col("tpot_s") <= slo_tpot))).mean()
        ).item()
        slo = float(ok)
    else:
        slo = None
    br = {}
    if n_done:
        m = done.select(
            (pl.col("sched_s") - pl.col("arrival_s")).mean().alias("queue"),
            (pl.col("read_start_s") - pl.col("sched_s")).mean().alias("alloc"),
            (pl.col("read_end_s") - pl.col("read_start_s")).mean().alias("read"),
            (pl.col("first_token_s") - pl.col("read_end_s")).mean().alias("prefill"),
        ).row(0, named=True)
        br = {k: float(v) for k, v in m.items() if v is not None}
    # NIC utilisation over the busy span
    busy = ts.filter(pl.col("t_s") <= end_t + sc.run.sample_interval_s)
    snic_read, snic_write, cnic, gpu = _utilisations(busy)
    # SNIC imbalance: max/avg of per-node SNIC read load over each short window, averaged
    snic = busy.filter((pl.col("metric") == "snic_rx_util") & pl.col("entity").str.ends_with(".snic"))
    imb = None
    if snic.height:
        per_t = snic.group_by("t_s", maintain_order=True).agg(
            pl.col("value").max().alias("mx"), pl.col("value").mean().alias("avg")
        ).sort("t_s")
        per_t = per_t.filter(pl.col("avg") > 0.01)
        if per_t.height:
            imb = float((per_t["mx"] / per_t["avg"]).mean())
    side_bytes = {
        "pe": float(rounds["bytes_read_pe_snic"].sum()),
        "de": float(rounds["bytes_read_de_snic"].sum()),
    }
    # the verdict: only resources that are busy AND near their bound bind (dualpath_twin.analysis.verdict);
    # an online run is judged over its loaded window, not its ramp-up and drain
    v_ts, v_done, v_rate, where = busy, done, n_done / span, ""
    t_last = last_agent_arrival_s(rounds) if sc.workload.mode == "online" else None
    loaded = _loaded_window(sc, t_last, start_t, done)
    if loaded is not None:
        t0, t1 = loaded
        v_ts = ts.filter((pl.col("t_s") >= t0) & (pl.col("t_s") <= t1))
        v_done = done.filter((pl.col("arrival_s") >= t0) & (pl.col("arrival_s") <= t1))
        v_rate = done.filter((pl.col("done_s") >= t0) & (pl.col("done_s") <= t1)).height / (t1 - t0)
        where = (f" in its loaded window ({t0:,.0f}-{t1:,.0f} s: the last two {sc.run.online_window_s:g} s windows, "
                 "run.online_window_s, before the last agent arrived)")
    v_util = _utilisations(v_ts) if loaded is not None else (snic_read, snic_write, cnic, gpu)
    util = measured_utilisation(
        v_util[0], v_util[1], v_util[2] | {f"gpu_busy_{k}": v for k, v in v_util[3].items()},
        prefill_nodes=sc.cluster.prefill_nodes, decode_nodes=sc.cluster.decode_nodes,
        de_side_reads=world.policy.de_side_reads, snic_efficiency=sc.network.snic_efficiency,
        cnic_efficiency=sc.network.cnic_efficiency,
    )
    delays = np.asarray(world.wl.delay_s, dtype=np.float64)
    load = offered_load_text(sc.workload.mode, world.wl.n_trajectories, sc.workload.arrival_rate_aps,
                             float(delays.mean()) if delays.size else 0.0)
    wait_s = float(v_done.select((pl.col("read_start_s") - pl.col("sched_s")).mean()).item() or 0.0) if v_done.height else 0.0
    buffer = _buffer_state(sc, v_ts, rounds, v_done, wait_s, world.kv) if v_done.height else None
    v = verdict(world.policy.name, v_rate, bound, util, offered_load=load, de_side_reads=world.policy.de_side_reads,
                zero_io=world.policy.zero_io, buffer=buffer, where=where)
    obs, sentence = v.bottleneck, v.sentence
    steady = None
    if sc.workload.mode == "online" and n_done:
        # compare the two windows before the last agent arrives: after it the load drains, and
        # later rounds of the agents already in keep arriving for minutes (not steady state)
        win = sc.run.online_window_s
        if t_last is None:
            t_last = float(rounds["arrival_s"].max())
        last = done.filter((pl.col("arrival_s") >= t_last - win) & (pl.col("arrival_s") <= t_last))["ttft_s"]
        prev = done.filter((pl.col("arrival_s") >= t_last - 2 * win) & (pl.col("arrival_s") < t_last - win))["ttft_s"]
        if last.len() >= 10 and prev.len() >= 10:
            a, b = float(prev.mean()), float(last.mean())
            steady = abs(b - a) <= 0.05 * max(a, 1e-9)
        # else: too few rounds in a window to judge; None = unknown
    return RunSummary(
        policy=world.policy.name,
        seed=sc.run.seed,
        scenario_name=sc.name,
        scenario_hash=sc.content_hash(),
        status=world.status,
        status_reason=world.stop_reason,
        mode=sc.workload.mode,
        jct_s=end_t if sc.workload.mode == "offline" and n_done == world.rounds_total else (end_t if n_done else None),
        sim_time_s=float(world.env.now),
        rounds=n_done,
        rounds_total=world.rounds_total,
        agents=world.wl.n_trajectories,
        prompt_tokens_per_s=prompt_tps,
        generated_tokens_per_s=gen_tps,
        rounds_per_s=n_done / span,
        ttft_s=_pct(done["ttft_s"]) if n_done else Percentiles(),
        ttst_s=_pct(done["ttst_s"]) if n_done else Percentiles(),
        tpot_s=_pct(done["tpot_s"]) if n_done else Percentiles(),
        slo_attainment=slo,
        ttft_breakdown_s=br,
        snic_read_utilization=snic_read,
        snic_write_utilization=snic_write,
        cnic_utilization=cnic | {f"gpu_busy_{k}": v for k, v in gpu.items()},
        snic_imbalance=imb,
        bytes_read_by_side=side_bytes,
        bottleneck=obs,
        bottleneck_sentence=sentence,
        bound=bound,
        steady_state=steady,
        faults=fault_effects(sc.faults, rounds, end_t, requeued=world.faults.requeued if world.faults else None)
        if sc.faults else [],
        cache=_cache_effect(sc, world, rounds, side_bytes) if sc.cache is not None else None,
        sim_events=sim_events,
        wall_s=wall_s,
    )
