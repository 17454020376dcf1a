"""Invariants every run must satisfy (checked in tests and with --check-invariants)."""

from __future__ import annotations

import numpy as np
import polars as pl


def check_run(world, rounds: pl.DataFrame, ts: pl.DataFrame) -> list[str]:
    """Return the violated invariants of a finished run (empty list = all hold)."""
    bad: list[str] = []
    done = rounds.filter(pl.col("done_s").is_not_null())
    kv = world.kv
    if not world.policy.zero_io:
        # every finished round read exactly its hit bytes, on one side
        cached = pl.lit(0.0)
        if getattr(world, "cache_tok", None) is not None:  # DRAM cache tier: the rest came from a node's DRAM
            cached = pl.Series("cached", world.cache_bytes)
        rd = rounds.with_columns(cached.alias("_cached")).filter(pl.col("done_s").is_not_null()).select(
            (pl.col("bytes_read_pe_snic") + pl.col("bytes_read_de_snic") + pl.col("_cached") - pl.col("hit_tokens") * kv).abs().max()
        ).item()
        if rd is not None and rd > 1.0:
            bad.append(f"bytes read differ from hit bytes by up to {rd:.0f} B")
        both = done.filter(
            (pl.col("bytes_read_pe_snic") > 0) & (pl.col("bytes_read_de_snic") > 0) & (pl.col("read_side") != "split")
        ).height
        if both:
            bad.append(f"{both} rounds read on both sides without a split read")
    if world.status == "finished" and done.height != rounds.height:
        bad.append(f"{rounds.height - done.height} rounds lost (status finished)")
    dup = rounds.group_by("agent_id", "round_idx").len().filter(pl.col("len") > 1).height
    if dup:
        bad.append(f"{dup} duplicated rounds")
    # lifecycle order per round
    order = done.filter(
        (pl.col("first_token_s") < pl.col("arrival_s"))
        | (pl.col("done_s") < pl.col("first_token_s"))
        | (pl.col("read_end_s") < pl.col("read_start_s"))
    ).height
    if order:
        bad.append(f"{order} rounds with non-monotone lifecycle times")
    # agents: round r+1 never arrives before round r is done (closed loop)
    if not world.wl.open_loop and done.height:
        s = rounds.sort("agent_id", "round_idx").with_columns(
            pl.col("done_s").shift(1).over("agent_id").alias("prev_done")
        )
        early = s.filter(pl.col("arrival_s") < pl.col("prev_done") - 1e-9).height
        if early:
            bad.append(f"{early} rounds arrived before their predecessor finished")
    # links never above capacity
    over = []
    world.net.sync_links(world.env.now)
    for nd in world.nodes:
        for lk in [nd.snic_rx, nd.snic_tx, nd.dram, *nd.cnic_rx, *nd.cnic_tx]:
            if lk.peak_util > 1 + 1e-6:
                over.append(f"{lk.name} {lk.peak_util:.4f}")
    if over:
        bad.append("links above capacity: " + ", ".join(over[:5]))
    util = ts.filter(pl.col("metric").is_in(["snic_rx_util", "snic_tx_util", "dram_util"]) & (pl.col("value") > 1 + 1e-6))
    if util.height:
        bad.append(f"{util.height} samples with utilisation above line rate")
    # memory occupancy within [0, capacity]
    pools = world.dram_buf + world.pe_hbm + world.de_hbm
    viol = sum(p.violations for p in pools)
    if viol:
        bad.append(f"{viol} memory pool over/underflows")
    neg = ts.filter(pl.col("metric").is_in(["dram_buffer_bytes", "hbm_kv_bytes"]) & (pl.col("value") < -1e-3)).height
    if neg:
        bad.append(f"{neg} negative memory samples")
    t = ts["t_s"].to_numpy()
    if len(t) and np.any(np.diff(t) < 0):
        bad.append("time series not monotone in time")
    return bad
