"""Time-series sampling, live progress, cancellation and run budgets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import polars as pl
import simpy

from dualpath_twin.results import Progress

_SCHEMA = {"t_s": pl.Float64, "metric": pl.Utf8, "entity": pl.Utf8, "role": pl.Utf8, "value": pl.Float64}


class Sampler:
    """Samples every link, pool and counter every ``interval_s`` of simulated time into columns."""

    def __init__(
        self,
        interval_s: float,
        progress: Callable[[Progress], None] | None = None,
        progress_interval_s: float = 0.5,
        per_cnic: bool = True,
    ) -> None:
        self.interval_s = interval_s
        self.progress = progress
        self.progress_interval_s = progress_interval_s
        self.per_cnic = per_cnic
        self._ticks: list[float] = []
        self._vals: list[np.ndarray] = []
        self._metric = np.array([], dtype=str)
        self._entity = np.array([], dtype=str)
        self._role = np.array([], dtype=str)
        self._cnic_prev: dict[int, float] = {}
        self._cached: pl.DataFrame | None = None
        self._cached_ticks = 0
        self.stop_event: simpy.Event | None = None
        self.stop_status = ""
        self.stop_reason = ""
        self._emitted = 0

    def _frame_rows(self, since_tick: int = 0) -> pl.DataFrame:
        if not self._ticks or since_tick >= len(self._ticks):
            return pl.DataFrame(schema=_SCHEMA)
        n = len(self._metric)
        ticks = self._ticks[since_tick:]
        vals = np.concatenate(self._vals[since_tick:])
        t = np.repeat(np.array(ticks), n)
        k = len(ticks)
        return pl.DataFrame(
            {
                "t_s": t,
                "metric": np.tile(self._metric, k),
                "entity": np.tile(self._entity, k),
                "role": np.tile(self._role, k),
                "value": vals,
            },
            schema=_SCHEMA,
        )

    def frame(self, since: int = 0) -> pl.DataFrame:
        """The samples recorded so far (from tick ``since``) as a long-form Polars frame."""
        return self._frame_rows(since)

    def frame_so_far(self) -> pl.DataFrame:
        """All samples so far, built incrementally (only new ticks are converted on each call)."""
        n = len(self._ticks)
        if n > self._cached_ticks:
            new = self._frame_rows(self._cached_ticks)
            self._cached = new if self._cached is None else pl.concat([self._cached, new], rechunk=False)
            self._cached_ticks = n
        return self._cached if self._cached is not None else self._frame_rows(0)

    def process(self, world, t0: float, wall_budget_s: float, cancel: threading.Event | None):
        """SimPy process: sample, report progress, honour cancel and the wall budget."""
        env = world.env
        if self.stop_event is None:
            self.stop_event = env.event()
        dt = self.interval_s
        g = world.g
        metric: list[str] = []
        entity: list[str] = []
        role: list[str] = []

        def col(m: str, e: str, r: str) -> None:
            metric.append(m)
            entity.append(e)
            role.append(r)

        util_links: list = []  # (link, line rate, extra comm index or -1)
        for nd_i, nd in enumerate(world.nodes):
            col("snic_rx_util", f"{nd.name}.snic", nd.role)
            util_links.append((nd.snic_rx, world.snic_line_bps, -1))
            col("snic_tx_util", f"{nd.name}.snic", nd.role)
            util_links.append((nd.snic_tx, world.snic_line_bps, -1))
            col("dram_util", nd.name, nd.role)
            util_links.append((nd.dram, nd.dram.capacity_bps, -1))
            if self.per_cnic:
                for k, lk in enumerate(nd.cnic_rx):
                    col("cnic_rx_util", f"{nd.name}.cnic{k}", nd.role)
                    util_links.append((lk, world.cnic_line_bps * world.cnic_width[nd.name], nd_i))
                for k, lk in enumerate(nd.cnic_tx):
                    col("cnic_tx_util", f"{nd.name}.cnic{k}", nd.role)
                    util_links.append((lk, world.cnic_line_bps * world.cnic_width[nd.name], nd_i))
        n_util = len(util_links)
        for nd in world.nodes:
            for m in ("cnic_rx_util", "cnic_tx_util"):
                col(m, f"{nd.name}.cnic", nd.role)
        for nd in world.nodes:
            for m in ("dram_buffer_bytes", "hbm_kv_bytes", "gpu_busy", "queue_len"):
                col(m, nd.name, nd.role)
        for m in ("storage_read_gbps", "storage_write_gbps", "prompt_tokens_per_s", "gen_tokens_per_s", "queue_len",
                  "running_agents", "rounds_done"):
            col(m, "cluster", "cluster")
        self._metric = np.array(metric)
        self._entity = np.array(entity)
        self._role = np.array(role)
        links = [u[0] for u in util_links]
        line = np.array([u[1] for u in util_links])
        comm_idx = np.array([u[2] for u in util_links])
        n_cnic = np.array([max(len(nd.cnic_rx), 1) for nd in world.nodes], dtype=float)
        prev = np.zeros(n_util)
        snic_rx = [nd.snic_rx for nd in world.nodes]
        snic_tx = [nd.snic_tx for nd in world.nodes]
        busy_prev = list(world.gpu_busy_s)
        comm_prev = np.array(world.comm_bytes)
        prompt_prev = gen_prev = rd_prev = wr_prev = 0.0
        last_progress = time.monotonic()
        while True:
            yield env.timeout(dt)
            now = env.now
            cur = world.net.bytes_of(links, now)
            comm_now = np.array(world.comm_bytes)
            comm = (comm_now - comm_prev) / n_cnic
            comm_prev = comm_now
            delta = cur - prev
            prev = cur
            extra = np.where(comm_idx >= 0, comm[np.maximum(comm_idx, 0)], 0.0)
            util = (delta + extra) / (line * dt)
            # per-node CNIC means (over the node's CNICs, both directions separately)
            cn = [0.0] * (2 * len(world.nodes))
            if self.per_cnic:
                j = 0
                k = 0
                for nd in world.nodes:
                    j += 3
                    c = len(nd.cnic_rx)
                    cn[k] = float(util[j:j + c].mean())
                    cn[k + 1] = float(util[j + c:j + 2 * c].mean())
                    j += 2 * c
                    k += 2
            else:
                k = 0
                for nd_i, nd in enumerate(world.nodes):
                    for lks in (nd.cnic_rx, nd.cnic_tx):
                        key = id(lks)
                        b = float(world.net.bytes_of(lks, now).sum())
                        pb = self._cnic_prev.get(key, 0.0)
                        self._cnic_prev[key] = b
                        tot = (b - pb + comm[nd_i] * len(lks)) / (world.cnic_line_bps * world.cnic_width[nd.name] * dt * len(lks))
                        cn[k] = tot
                        k += 1
            per_node = []
            for nd_i, nd in enumerate(world.nodes):
                if nd.role == "prefill":
                    gp = world.gp
                    hbm = sum(world.pe_hbm[e].used for e in range(nd_i * gp, (nd_i + 1) * gp))
                else:
                    jn = nd_i - world.P
                    gd = world.gd
                    hbm = sum(world.de_hbm[e].used for e in range(jn * gd, (jn + 1) * gd))
                per_node.extend((
                    world.dram_buf[nd_i].used,
                    hbm,
                    min((world.gpu_busy_s[nd_i] - busy_prev[nd_i]) / (g * dt), 1.0),
                    len(world.read_queue[nd_i]),
                ))
            busy_prev = list(world.gpu_busy_s)
            rd = float(world.net.bytes_of(snic_rx, now).sum())
            wr = float(world.net.bytes_of(snic_tx, now).sum())
            cluster = [
                (rd - rd_prev) * 8 / 1e9 / dt,
                (wr - wr_prev) * 8 / 1e9 / dt,
                (world.prompt_tokens_done - prompt_prev) / dt,
                (world.gen_tokens_done - gen_prev) / dt,
                len(world.global_q),
                world.running_agents,
                world.rounds_done,
            ]
            rd_prev, wr_prev = rd, wr
            prompt_prev, gen_prev = world.prompt_tokens_done, world.gen_tokens_done
            self._ticks.append(now)
            self._vals.append(np.concatenate([util, np.array(cn), np.array(per_node, dtype=float), np.array(cluster, dtype=float)]))
            # ---- budgets, cancel, progress
            wall = time.monotonic()
            if cancel is not None and cancel.is_set():
                self.stop_status = "cancelled"
                self.stop_reason = "cancelled by the user"
                self.stop_event.succeed()
                return
            if wall - t0 > wall_budget_s:
                self.stop_status = "truncated"
                self.stop_reason = f"run.wall_budget_s={wall_budget_s:g} exceeded at simulated t={now:.1f} s"
                self.stop_event.succeed()
                return
            if self.progress is not None and wall - last_progress >= self.progress_interval_s:
                last_progress = wall
                self.progress(Progress(now, world.rounds_done, world.rounds_total, wall - t0, self.frame_so_far(),
                                       slo_attainment_so_far(world)))
            if world.online_overload_check():
                self.stop_status = "truncated"
                self.stop_reason = "online: mean TTFT over the last window exceeded 3x its SLO (overloaded); stopped early"
                self.stop_event.succeed()
                return


def slo_attainment_so_far(world) -> float | None:
    """Share of the finished rounds meeting both SLOs (TTFT, and TPOT for rounds of 2+ tokens), as the summary counts it."""
    c = world.col
    done = ~np.isnan(c["done_s"])
    n = int(done.sum())
    if n == 0:
        return None
    first = c["first_token_s"][done]
    ttft = first - c["arrival_s"][done]
    gen = world.wl.gen_tokens[done].astype(np.float64)
    multi = gen > 1
    tpot = np.where(multi, (c["done_s"][done] - first) / np.maximum(gen - 1, 1), 0.0)
    ok = (ttft <= world.sc.slo.ttft_s) & (~multi | (tpot <= world.sc.slo.tpot_ms / 1000.0))
    return float(ok.sum()) / n
