"""Time-series sampling, live progress, cancellation and run budgets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import polars as pl
import simpy

from dualpath_twin.results import Progress


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
        self.t: list[float] = []
        self.metric: list[str] = []
        self.entity: list[str] = []
        self.role: list[str] = []
        self.value: list[float] = []
        self.stop_event: simpy.Event | None = None
        self.stop_status = ""
        self.stop_reason = ""
        self.link_peak_util: dict[str, float] = {}
        self.violations: list[str] = []
        self._emitted = 0
        self.events_estimate = 0

    def _add(self, t: float, metric: str, entity: str, role: str, value: float) -> None:
        self.t.append(t)
        self.metric.append(metric)
        self.entity.append(entity)
        self.role.append(role)
        self.value.append(float(value))

    def frame(self, since: int = 0) -> pl.DataFrame:
        """The samples recorded so far (from row ``since``) as a long-form Polars frame."""
        return pl.DataFrame(
            {
                "t_s": self.t[since:],
                "metric": self.metric[since:],
                "entity": self.entity[since:],
                "role": self.role[since:],
                "value": self.value[since:],
            },
            schema={"t_s": pl.Float64, "metric": pl.Utf8, "entity": pl.Utf8, "role": pl.Utf8, "value": pl.Float64},
        )

    def process(self, world, t0: float, wall_budget_s: float, cancel: threading.Event | None):
        """SimPy process: sample, report progress, honour cancel and the wall budget."""
        env = world.env
        if self.stop_event is None:
            self.stop_event = env.event()
        dt = self.interval_s
        links_prev: dict[int, float] = {}
        busy_prev = world.gpu_busy_s.copy()
        comm_prev = world.comm_bytes.copy()
        prompt_prev = 0.0
        gen_prev = 0.0
        last_progress = time.monotonic()
        all_links = []
        for nd in world.nodes:
            all_links.append(nd.snic_rx)
            all_links.append(nd.snic_tx)
            all_links.append(nd.dram)
            all_links.extend(nd.cnic_rx)
            all_links.extend(nd.cnic_tx)
        for lk in all_links:
            links_prev[id(lk)] = 0.0
        g = world.g
        while True:
            yield env.timeout(dt)
            now = env.now
            for lk in all_links:
                lk.advance(now)
            for nd_i, nd in enumerate(world.nodes):
                role = nd.role
                for metric, lk in (("snic_rx_util", nd.snic_rx), ("snic_tx_util", nd.snic_tx)):
                    b = lk.bytes_total - links_prev[id(lk)]
                    links_prev[id(lk)] = lk.bytes_total
                    self._add(now, metric, f"{nd.name}.snic", role, b / (world.snic_line_bps * dt))
                lk = nd.dram
                b = lk.bytes_total - links_prev[id(lk)]
                links_prev[id(lk)] = lk.bytes_total
                self._add(now, "dram_util", nd.name, role, b / (lk.capacity_bps * dt))
                comm = (world.comm_bytes[nd_i] - comm_prev[nd_i]) / max(len(nd.cnic_rx), 1)
                for metric, lks in (("cnic_rx_util", nd.cnic_rx), ("cnic_tx_util", nd.cnic_tx)):
                    tot = 0.0
                    for k, lk in enumerate(lks):
                        b = lk.bytes_total - links_prev[id(lk)] + comm
                        links_prev[id(lk)] = lk.bytes_total
                        u = b / (world.cnic_line_bps * dt)
                        tot += u
                        if self.per_cnic:
                            self._add(now, metric, f"{nd.name}.cnic{k}", role, u)
                    self._add(now, metric, f"{nd.name}.cnic", role, tot / max(len(lks), 1))
                self._add(now, "dram_buffer_bytes", nd.name, role, world.dram_buf[nd_i].used)
                if role == "prefill":
                    hbm = sum(world.pe_hbm[e].used for e in range(nd_i * g, (nd_i + 1) * g))
                else:
                    j = nd_i - world.P
                    hbm = sum(world.de_hbm[e].used for e in range(j * g, (j + 1) * g))
                self._add(now, "hbm_kv_bytes", nd.name, role, hbm)
                self._add(now, "gpu_busy", nd.name, role, min((world.gpu_busy_s[nd_i] - busy_prev[nd_i]) / (g * dt), 1.0))
                if world.read_q[nd_i] or role == "decode" or True:
                    self._add(now, "queue_len", nd.name, role, len(world.read_queue[nd_i]))
            comm_prev = world.comm_bytes.copy()
            busy_prev = world.gpu_busy_s.copy()
            rd = sum(nd.snic_rx.bytes_total for nd in world.nodes)
            wr = sum(nd.snic_tx.bytes_total for nd in world.nodes)
            self._add(now, "storage_read_gbps", "cluster", "cluster", (rd - getattr(self, "_rd", 0.0)) * 8 / 1e9 / dt)
            self._add(now, "storage_write_gbps", "cluster", "cluster", (wr - getattr(self, "_wr", 0.0)) * 8 / 1e9 / dt)
            self._rd, self._wr = rd, wr
            self._add(now, "prompt_tokens_per_s", "cluster", "cluster", (world.prompt_tokens_done - prompt_prev) / dt)
            self._add(now, "gen_tokens_per_s", "cluster", "cluster", (world.gen_tokens_done - gen_prev) / dt)
            prompt_prev, gen_prev = world.prompt_tokens_done, world.gen_tokens_done
            self._add(now, "queue_len", "cluster", "cluster", len(world.global_q))
            self._add(now, "running_agents", "cluster", "cluster", world.running_agents)
            self._add(now, "rounds_done", "cluster", "cluster", world.rounds_done)
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
                self.progress(
                    Progress(now, world.rounds_done, world.rounds_total, wall - t0, self.frame(0))
                )
            if world.online_overload_check():
                self.stop_status = "truncated"
                self.stop_reason = "online: TTFT grew past 3x its SLO over the last window (overloaded); stopped early"
                self.stop_event.succeed()
                return


def link_utilisation_ok(frame: pl.DataFrame, tol: float = 1e-6) -> list[str]:
    """Invariant: no sampled NIC or DRAM utilisation above line rate."""
    bad = frame.filter(pl.col("metric").str.ends_with("_util") & (pl.col("value") > 1.0 + tol))
    return [f"{r['entity']} {r['metric']}={r['value']:.4f} at t={r['t_s']:.1f}s" for r in bad.head(5).iter_rows(named=True)]


def np_nanmean(x: np.ndarray) -> float:
    """Mean ignoring NaN; NaN for an all-NaN array."""
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else float("nan")
