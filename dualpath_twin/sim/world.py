"""The SimPy world: nodes, links, engines and the request lifecycle.

One round (request) goes: arrival -> global prefill queue -> PE placement (policy) -> DE and
read-side choice (policy) -> node read queue -> DRAM buffer reservation -> storage read flow
(storage -> SNIC rx -> DRAM) -> PE ready queue -> prefill forward batch of its EP group
(layer-wise: load flows overlapped with compute, closed form per batch; Basic: load, then
compute) -> PD transfer flow -> decode admission (HBM) -> decode (continuous batching,
event-driven per batch-membership change) -> block write-back flows -> next round of the agent.

``World`` holds the state, the view policies read, arrivals, decode admission, completion and
the run loop (``run_world``); its other steps are mixins: ``sim.placement`` (global-queue fetch,
PE/DE/read-side choice), ``sim.transfers`` (routes, storage reads, PD transfer, write-backs) and
``sim.prefill`` (batching and the EP-group step process). ``Req`` lives in ``sim.request``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from heapq import heappop

import numpy as np
import simpy
from simpy.core import EmptySchedule, StopSimulation

from dualpath_twin.policies.base import Policy, RequestInfo
from dualpath_twin.scenario import Scenario
from dualpath_twin.sim.cache import plan_cache
from dualpath_twin.sim.calls import TimedCall, call_later
from dualpath_twin.sim.cost import CostModel, ep_group_nodes
from dualpath_twin.sim.decoder import DecodeEngine
from dualpath_twin.sim.faults import FaultInjector
from dualpath_twin.sim.gcpolicy import rare_young_collections
from dualpath_twin.sim.memory import BytePool
from dualpath_twin.sim.network import FlowNetwork, Link, Path
from dualpath_twin.sim.nodeloss import NodeLossMixin
from dualpath_twin.sim.placement import PlacementMixin
from dualpath_twin.sim.prefill import PrefillMixin
from dualpath_twin.sim.request import Req
from dualpath_twin.sim.transfers import TransfersMixin
from dualpath_twin.workload.types import Workload

__all__ = ["NAN", "NodeLinks", "Req", "World", "run_world"]  # Req: re-exported from sim.request

NAN = float("nan")


@dataclass
class NodeLinks:
    """The links of one node."""

    name: str
    role: str
    snic_rx: Link
    snic_tx: Link
    dram: Link
    cnic_rx: list[Link]
    cnic_tx: list[Link]
    pcie_in: list[Link] | None
    pcie_out: list[Link] | None


class World(PlacementMixin, TransfersMixin, PrefillMixin, NodeLossMixin):
    """Everything that exists during one simulation run."""

    def __init__(self, sc: Scenario, wl: Workload, policy: Policy, cost: CostModel) -> None:
        self.sc = sc
        self.wl = wl
        self.policy = policy
        self.cost = cost
        self.env = simpy.Environment()
        self.reference = sc.run.fidelity == "reference"
        if self.reference:
            self.net = FlowNetwork(self.env)
        else:
            from dualpath_twin.sim.netjit import JitFlowNetwork

            self.net = JitFlowNetwork(self.env)
        c, n, s = sc.cluster, sc.network, sc.storage
        self.P, self.D, self.g = c.prefill_nodes, c.decode_nodes, c.gpus_per_node
        # tensor parallelism: an engine is tp GPUs; gp / gd engines per prefill / decode node (g without TP)
        self.tp_p, self.tp_d = c.prefill_tp_gpus, c.decode_tp_gpus
        self.gp, self.gd = self.g // self.tp_p, self.g // self.tp_d
        self.kv = cost.kv_bytes_per_token
        self.block = s.block_tokens
        self.layers = cost.layers
        self.zero_io = policy.zero_io
        self.layerwise = policy.layerwise
        self.gpus_per_cnic = max(1, math.ceil(self.g / n.cnics_per_node))
        self._gpu_paths: dict[tuple[int, int, bool], list[Link]] = {}
        self._routes: dict[tuple, Path] = {}

        # ---------------- links
        snic_bps = n.snic_gbps / 8 * 1e9 * n.snics_per_node * n.snic_efficiency
        self.snic_line_bps = n.snic_gbps / 8 * 1e9 * n.snics_per_node
        cnic_bps = n.cnic_gbps / 8 * 1e9 * n.cnic_efficiency
        self.cnic_kv_bps = cnic_bps
        self.cnic_line_bps = n.cnic_gbps / 8 * 1e9
        dram_bps = n.dram_gbps / 8 * 1e9
        pcie_bps = n.pcie_gbps / 8 * 1e9
        use_pcie = pcie_bps < cnic_bps / self.gpus_per_cnic
        self.nodes: list[NodeLinks] = []
        # a TP engine's transfers are split evenly over its GPUs (KV is split by heads) and its GPUs'
        # links serve that engine only: its CNICs (and PCIe links) are modelled as one link of their
        # summed bandwidth, which is exact for evenly split flows (docs/model.md, Tensor parallelism)
        self.cnic_width: dict[str, int] = {}  # node -> physical CNICs per modelled CNIC link
        for i in range(self.P + self.D):
            role = "prefill" if i < self.P else "decode"
            nm = f"P{i}" if i < self.P else f"D{i - self.P}"
            tp = self.tp_p if i < self.P else self.tp_d
            width = self.cnic_width[nm] = max(tp // self.gpus_per_cnic, 1)
            n_cnic = n.cnics_per_node // width
            n_eng = self.g // tp
            self.nodes.append(
                NodeLinks(
                    name=nm,
                    role=role,
                    snic_rx=Link(f"{nm}.snic.rx", snic_bps, "snic_rx", nm, role),
                    snic_tx=Link(f"{nm}.snic.tx", snic_bps, "snic_tx", nm, role),
                    dram=Link(f"{nm}.dram", dram_bps, "dram", nm, role),
                    cnic_rx=[Link(f"{nm}.cnic{k}.rx", cnic_bps * width, "cnic_rx", nm, role) for k in range(n_cnic)],
                    cnic_tx=[Link(f"{nm}.cnic{k}.tx", cnic_bps * width, "cnic_tx", nm, role) for k in range(n_cnic)],
                    pcie_in=[Link(f"{nm}.pcie{k}.in", pcie_bps * tp, "pcie", nm, role) for k in range(n_eng)] if use_pcie else None,
                    pcie_out=[Link(f"{nm}.pcie{k}.out", pcie_bps * tp, "pcie", nm, role) for k in range(n_eng)] if use_pcie else None,
                )
            )
        self.storage_read = Link("storage.read", s.read_gbps_total / 8 * 1e9, "storage", "storage", "cluster") if s.read_gbps_total else None
        self.storage_write = Link("storage.write", s.write_gbps_total / 8 * 1e9, "storage", "storage", "cluster") if s.write_gbps_total else None
        total_cnic = (self.P + self.D) * n.cnics_per_node * cnic_bps
        self.fabric = Link("fabric", total_cnic / n.fabric_oversubscription, "fabric", "fabric", "cluster") if n.fabric_oversubscription > 1 else None
        self.io_latency_s = s.io_latency_us * 1e-6

        # ---------------- memory
        self.dram_buf = [BytePool(self.env, f"{nd.name}.dram_buf", c.dram_buffer_gb * 1e9) for nd in self.nodes]
        self.pe_hbm = [BytePool(self.env, f"PE{e}.hbm", cost.hbm_kv_prefill_bytes) for e in range(self.P * self.gp)]
        self.de_hbm = [BytePool(self.env, f"DE{e}.hbm", cost.hbm_kv_decode_bytes) for e in range(self.D * self.gd)]

        # ---------------- scheduler state
        self.global_q: deque[Req] = deque()
        self.global_q_info: deque[RequestInfo] = deque()
        self.by_rid: dict[int, Req] = {}
        # per-engine scheduler counters as Python lists: policies read them one scalar at a time,
        # and a list item is several times cheaper to read and update than a NumPy element
        self.pe_tok_v = [0.0] * (self.P * self.gp)
        self.pe_seq_v = [0] * (self.P * self.gp)
        self.de_tok_v = [0.0] * (self.D * self.gd)
        self.de_node_tok_v = [0] * self.D  # exact integer token sums per decode node
        self.de_seq_v = [0] * (self.D * self.gd)
        self.de_promised = [0.0] * (self.D * self.gd)
        self.de_hbm_cap = [p.capacity for p in self.de_hbm]
        self.read_q = [0.0] * (self.P + self.D)
        self.read_queue: list[deque[Req]] = [deque() for _ in self.nodes]
        self.read_inflight = [0] * len(self.nodes)
        self.max_inflight = s.max_inflight_reads_per_node
        self.pe_ready: list[deque[Req]] = [deque() for _ in range(self.P * self.gp)]
        pe_grp, de_grp = ep_group_nodes(sc)
        self.pe_group_nodes = pe_grp
        self.pe_groups = [list(range(i, min(i + pe_grp, self.P))) for i in range(0, self.P, pe_grp)]
        self.node_group = {}
        for gi, grp in enumerate(self.pe_groups):
            for nd in grp:
                self.node_group[nd] = gi
        self.group_wake: list[simpy.Event] = [self.env.event() for _ in self.pe_groups]
        self.de_pending: list[deque[Req]] = [deque() for _ in range(self.D * self.gd)]
        # idle PE group leaders, in the order they went idle; an arrival wakes only the first
        # (waking all of them would cost O(prefill nodes) per request for the same outcome)
        self.idle_fetchers: deque[int] = deque()  # their prefill nodes
        self.fetch_kicked = False  # a woken leader has not looked at the queue yet
        self.fetch_period_s = sc.policy.fetch_period_ms / 1000.0
        # policy thresholds
        self.alpha_tokens = sc.policy.alpha_s * snic_bps / max(self.kv, 1.0)
        self.beta_tokens = sc.policy.beta_s * self._prefill_tokens_per_gpu_s()
        self.z_factor = sc.policy.z_factor
        self.prefill_nodes, self.decode_nodes, self.gpus_per_node = self.P, self.D, self.g
        self.prefill_engines_per_node, self.decode_engines_per_node = self.gp, self.gd
        self.block_tokens = self.block
        self.split_reads = policy.split_reads

        # ---------------- metrics
        nr = wl.n_rounds
        # one row per round, its 16 values side by side: a round's updates touch two cache lines
        # instead of sixteen arrays (millions of rounds do not fit any cache); ``col`` are views
        times = ("arrival_s", "sched_s", "read_start_s", "read_end_s", "prefill_start_s", "prefill_end_s",
                 "first_token_s", "second_token_s", "decode_admit_s", "done_s")
        byte_cols = ("bytes_read_pe_snic", "bytes_read_de_snic", "bytes_pe_h2d", "bytes_de_to_pe", "bytes_pe_to_de",
                     "bytes_written")
        # placement (PE, DE, read side: 0 none, 1 PE, 2 DE) rides in the same row as exact floats
        places = ("pe", "de", "side")
        self._round_rows = np.zeros((nr, len(times) + len(byte_cols) + len(places)))
        self._round_rows[:, : len(times)] = NAN
        self._round_rows[:, len(times) + len(byte_cols):][:, :2] = -1.0
        self.col = {k: self._round_rows[:, i] for i, k in enumerate(times + byte_cols + places)}
        self.col_pe, self.col_de, self.col_side = self.col.pop("pe"), self.col.pop("de"), self.col.pop("side")
        self.rounds_done = 0
        self.rounds_total = nr
        self.gpu_busy_s = [0.0] * (self.P + self.D)  # per node; lists: updated one item at a time
        self.comm_bytes = [0.0] * (self.P + self.D)
        self.prompt_tokens_done = 0.0
        self.gen_tokens_done = 0.0
        self.written_bytes = 0.0
        self.running_agents = 0
        self.done_event = self.env.event()
        self.online = sc.workload.mode == "online"
        self.ttft_log: deque[tuple[float, float]] = deque()  # (first token time, TTFT) of the last online window
        self.ttft_log_sum_s = 0.0  # running sum of the log's TTFTs (the overload check's fast path)
        self.stop_reason = ""
        self.status = "finished"
        # faults ([[faults]]): with none configured nothing is scheduled and every hook is skipped
        self.slow_reads: dict[int, tuple[float, float]] = {}  # node -> (extra latency s, share of reads)
        self.pe_slow: dict[int, float] = {}  # straggling prefill engine -> step time factor
        # node loss (sim.nodeloss): nodes down now, per-node count of active losses, rounds re-queued
        self.down_nodes: frozenset[int] = frozenset()
        self.down_count: dict[int, int] = {}
        self.pe_nodes_up, self.de_nodes_up = self.P, self.D
        self.de_group_nodes = de_grp
        self.parked: deque[Req] = deque()  # arrivals waiting while a whole role is down
        self.stopped_fetchers: set[int] = set()
        self.requeued = 0
        self.faults = FaultInjector(self, sc.faults) if sc.faults else None
        # DRAM cache tier ([cache]): per round, hit tokens read from a node's DRAM instead of storage
        self.cache_tok: list[int] | None = None
        if sc.cache is not None:
            plan = plan_cache(wl, sc.cache.capacity_gb, sc.cache.scope, self.P + self.D, self.kv, self.block)
            self.cache_tok = plan.cached_tokens.tolist()
            self.cache_holder = plan.holder.tolist()
            self.cache_bytes = np.zeros(nr)  # bytes each round read from the cache

    # ================================================================ view for policies
    def pe_tok(self, pe: int) -> float:
        """Tokens of the PE's unfinished requests."""
        return self.pe_tok_v[pe]

    def pe_seq(self, pe: int) -> int:
        """Number of the PE's unfinished requests."""
        return self.pe_seq_v[pe]

    def de_tok(self, de: int) -> float:
        """Tokens of the DE's requests."""
        return self.de_tok_v[de]

    def de_seq(self, de: int) -> int:
        """Number of the DE's requests."""
        return self.de_seq_v[de]

    def de_node_toks(self) -> list[float]:
        """Tokens over the DEs of each decode node (the live list: do not modify)."""
        return self.de_node_tok_v

    def de_free_hbm_bytes(self, de: int) -> float:
        """DE HBM not yet promised to assigned requests."""
        return self.de_hbm_cap[de] - self.de_promised[de]

    def pe_toks(self, lo: int, hi: int) -> list[float]:
        """Tokens of the unfinished requests of PEs lo..hi-1."""
        return self.pe_tok_v[lo:hi]

    def de_toks(self, lo: int, hi: int) -> list[float]:
        """Tokens of the requests of DEs lo..hi-1."""
        return self.de_tok_v[lo:hi]

    def de_seqs(self, lo: int, hi: int) -> list[int]:
        """Number of requests of DEs lo..hi-1."""
        return self.de_seq_v[lo:hi]

    def de_free_hbm(self, lo: int, hi: int) -> list[float]:
        """DE HBM not yet promised, for DEs lo..hi-1."""
        return [c - p for c, p in zip(self.de_hbm_cap[lo:hi], self.de_promised[lo:hi], strict=True)]

    def read_q_tokens(self, node: int) -> float:
        """Tokens queued or in flight on a node's storage reads."""
        return self.read_q[node]

    def snic_read_bps(self, node: int) -> float:
        """A node's storage NIC read capacity now, bytes/s."""
        return self.nodes[node].snic_rx.capacity_bps

    # ================================================================ helpers
    def online_overload_check(self) -> bool:
        """Online mode: True when the mean TTFT over the last window exceeds 3x the SLO."""
        if not self.online:
            return False
        now = self.env.now
        win = self.sc.run.online_window_s
        log = self.ttft_log
        while log and log[0][0] < now - win:
            self.ttft_log_sum_s -= log.popleft()[1]
        if not log:
            self.ttft_log_sum_s = 0.0
        if len(log) < 20 or now < win:
            return False
        limit = 3.0 * self.sc.slo.ttft_s
        mean = self.ttft_log_sum_s / len(log)
        if abs(mean - limit) > 1e-3 * limit:  # far beyond the running sum's rounding
            return mean > limit
        self.ttft_log_sum_s = sum(x for _, x in log)  # near the edge: the exact sum, in the log's order
        return self.ttft_log_sum_s / len(log) > limit

    def log_ttft(self, now: float, ttft_s: float) -> None:
        """Online mode: record a round's TTFT at its first token for the overload check."""
        self.ttft_log.append((now, ttft_s))
        self.ttft_log_sum_s += ttft_s

    def _prefill_tokens_per_gpu_s(self) -> float:
        """Estimated prompt tokens one prefill engine (one GPU without TP) prefills per second for the mean round."""
        wl = self.wl
        if wl.n_rounds == 0:
            return 1.0
        p = float(np.mean(wl.prompt_tokens))
        h = float(np.mean(wl.hit_tokens))
        miss = max(p - h, 1.0)
        # one GPU's share of a group step of 16 such requests per GPU (a moderate batch)
        step, _ = self.cost.prefill_uniform_step_s(16, int(miss), int(h))
        return p / max(step / 16, 1e-9)

    def pe_loc(self, pe: int) -> tuple[int, int]:
        """(node, engine slot on the node) of a prefill engine (the slot is the GPU without TP)."""
        return pe // self.gp, pe % self.gp

    def de_loc(self, de: int) -> tuple[int, int]:
        """(node index in self.nodes, engine slot on the node) of a decode engine."""
        return self.P + de // self.gd, de % self.gd

    def cnic_index(self, node: int, gpu: int) -> int:
        """The modelled CNIC link that carries GPU ``gpu`` of ``node`` (one per physical CNIC without TP)."""
        return gpu // self.gpus_per_cnic // self.cnic_width[self.nodes[node].name]

    def engine_of_gpu(self, node: int, gpu: int) -> int:
        """The prefill or decode engine GPU ``gpu`` of ``node`` belongs to."""
        if node < self.P:
            return node * self.gp + gpu // self.tp_p
        return (node - self.P) * self.gd + gpu // self.tp_d

    # ================================================================ arrivals
    def start(self) -> None:
        """Schedule the workload's arrivals and start the long-lived processes."""
        wl = self.wl
        env = self.env
        if wl.open_loop:
            offs = wl.offset_s if wl.offset_s is not None else np.zeros(wl.n_rounds)
            traj_of_round = np.repeat(np.arange(wl.n_trajectories), np.diff(wl.round_offsets))
            times = wl.arrival_s[traj_of_round] + offs
            order = np.argsort(times, kind="stable")
            env.process(self._arrival_stream(times, order, traj_of_round))
        else:
            order = np.argsort(wl.arrival_s, kind="stable")
            if len(order) and wl.arrival_s[order[-1]] == 0.0:
                for t in order:
                    self._start_traj(int(t))
            else:
                env.process(self._traj_arrivals(order))
        if self.policy.fetch_based:
            for nd in range(self.P):
                env.process(self._fetcher(nd))
        for gi in range(len(self.pe_groups)):
            env.process(self._pe_group(gi))
        self.decoders = [DecodeEngine(self, de) for de in range(self.D * self.gd)]
        if self.faults is not None:
            self.faults.start()
        if wl.n_rounds == 0:
            self.done_event.succeed()

    def _traj_arrivals(self, order: np.ndarray):
        env = self.env
        for t in order:
            at = float(self.wl.arrival_s[t])
            if at > env.now:
                yield env.timeout(at - env.now)
            self._start_traj(int(t))

    def _arrival_stream(self, times: np.ndarray, order: np.ndarray, traj_of_round: np.ndarray):
        env = self.env
        for r in order:
            at = float(times[r])
            if at > env.now:
                yield env.timeout(at - env.now)
            self.running_agents += 1
            self._arrive(int(r), int(traj_of_round[r]))

    def _start_traj(self, t: int) -> None:
        r0 = int(self.wl.round_offsets[t])
        if r0 < int(self.wl.round_offsets[t + 1]):
            self.running_agents += 1
            self._arrive(r0, t)

    def _arrive(self, rid: int, traj: int) -> None:
        wl = self.wl
        req = Req(rid, traj, int(wl.prompt_tokens[rid]), int(wl.hit_tokens[rid]), int(wl.gen_tokens[rid]), self.kv)
        self.col["arrival_s"][rid] = self.env.now
        self.by_rid[rid] = req
        self._dispatch(req)

    def _dispatch(self, req: Req) -> None:
        """Into the global queue (fetch-based policies) or straight to the policy's PE; parked while nothing can run it."""
        if self.policy.fetch_based:
            self.global_q.append(req)
            self.global_q_info.append(req.info)
            if not self.fetch_kicked and self.idle_fetchers:
                self._kick_fetcher()
        elif self.down_nodes and not self.can_place():
            self.parked.append(req)
        else:
            q = deque([req.info])
            for info, pe in self.policy.assign_prefill(self, q, None):
                self._assigned(self.by_rid[info.rid], pe)

    # ================================================================ decode
    def _to_decode(self, req: Req) -> None:
        """Admission: DE HBM (waits FIFO if full), then the DE DRAM -> HBM load, then the batch."""
        if req.lost:  # abandoned (node loss) while its KV was on the way
            return
        req.at_de = True
        if req.de_hbm_reserved or self.de_hbm[req.de].try_reserve(req.hbm_bytes):
            req.de_hbm_reserved = True
            self._admit_load(req)
        else:
            ev = self.de_hbm[req.de].reserve(req.hbm_bytes)
            ev.callbacks.append(lambda _e: self._admit_load(req, reserved=True))

    def _admit_load(self, req: Req, reserved: bool = False) -> None:
        if req.lost:  # abandoned while it waited for DE HBM: give the space back
            if reserved:
                self.de_hbm[req.de].release(req.hbm_bytes)
            return
        if reserved:
            req.de_hbm_reserved = True
        if self.layerwise and req.dram_de_bytes > 0:
            if not self.zero_io:
                dnode, dgpu = self.de_loc(req.de)
                key = ("h2d", dnode, dgpu)
                links = self._routes.get(key) or self._add_route(key, [self.nodes[dnode].dram, *self._into_gpu(dnode, dgpu)])
                self.net.transfer(req.prompt * self.kv, links, "de_h2d", on_done=lambda: self._admit_loaded(req))
                return
            self._admit_loaded(req)
            return
        self._admit_done(req)

    def _admit_loaded(self, req: Req) -> None:
        if req.lost:
            return
        self.dram_buf[req.de_node].release(req.dram_de_bytes)
        req.dram_de_bytes = 0.0
        self._admit_done(req)

    def _admit_done(self, req: Req) -> None:
        now = self.env.now
        self.col["decode_admit_s"][req.rid] = now
        # persist the prompt's newly filled blocks
        new_blocks = req.prompt // self.block - req.hit // self.block
        if new_blocks > 0:
            self._write_back(req.de, new_blocks * self.block * self.kv, req.rid)
        if req.tokens_left <= 0:
            self._complete(req, now)
            return
        self.decoders[req.de].admit(req)

    def _complete(self, req: Req, now: float) -> None:
        rid = req.rid
        self.col["done_s"][rid] = now
        if req.de_hbm_reserved:
            self.de_hbm[req.de].release(req.hbm_bytes)
        self.de_tok_v[req.de] -= req.prompt + req.gen
        self.de_node_tok_v[req.de // self.gd] -= req.prompt + req.gen
        self.de_seq_v[req.de] -= 1
        self.de_promised[req.de] -= req.hbm_bytes
        self.gen_tokens_done += 1  # the first token, produced by prefill
        del self.by_rid[rid]
        self.rounds_done += 1
        wl = self.wl
        nxt = rid + 1
        if not wl.open_loop and nxt < int(wl.round_offsets[req.traj + 1]):
            delay = float(wl.delay_s[nxt])
            if delay > 0:
                call_later(self.env, delay, lambda _e, nxt=nxt, t=req.traj: self._arrive(nxt, t))
            else:
                self._arrive(nxt, req.traj)
        else:
            self.running_agents -= 1
        if self.rounds_done >= self.rounds_total and not self.done_event.triggered:
            self.done_event.succeed()


def run_world(world: World, max_sim_time_s: float, sampler, wall_budget_s: float, cancel=None) -> None:
    """Run until every round is done, the time limit, a cancel request or the wall budget.

    Besides the sampler's checks (once per sampled interval of simulated time), the wall budget
    and cancel are checked every ``_CHECK_EVERY`` events, so a run whose simulated clock stalls
    is still cut short.
    """
    env = world.env
    net = world.net
    # the compiled network is driven by this loop: its completions are not SimPy events
    driven = hasattr(net, "run_due")
    if driven:
        net.driven = True
    world.start()
    limit = env.timeout(max_sim_time_s)
    t0 = time.monotonic()
    sampler.stop_event = env.event()
    env.process(sampler.process(world, t0, wall_budget_s, cancel))
    until = simpy.AnyOf(env, [world.done_event, limit, sampler.stop_event])
    until.callbacks.append(StopSimulation.callback)
    with rare_young_collections():
        cut_short = _loop(world, env, net, driven, cancel, t0, wall_budget_s)
    if not cut_short and not world.done_event.triggered:
        if sampler.stop_event.triggered:
            world.status = sampler.stop_status
            world.stop_reason = sampler.stop_reason
        else:
            world.status = "truncated"
            world.stop_reason = f"run.max_sim_time_s={max_sim_time_s:g} reached with {world.rounds_done}/{world.rounds_total} rounds done"


def _loop(world: World, env: simpy.Environment, net, driven: bool, cancel, t0: float, wall_budget_s: float) -> bool:
    """Step SimPy and the driven network in time order; True if cancel or the wall budget cut the run short."""
    step = env.step
    queue = env._queue  # type: ignore[attr-defined]
    inf = math.inf
    try:
        while True:
            if driven:
                for _ in range(_CHECK_EVERY):
                    due = net._wake_t
                    if queue and queue[0][0] <= due:  # SimPy's events at the same instant go first
                        top = queue[0]
                        entry = top[3]
                        if type(entry) is TimedCall:  # a timed callback: what env.step would do, inline
                            heappop(queue)
                            env._now = top[0]  # type: ignore[attr-defined]
                            entry.callbacks[0](entry)
                        else:
                            step()
                    elif due == inf:
                        step()  # EmptySchedule when all is done
                    else:
                        env._now = due  # type: ignore[attr-defined]
                        net.run_due()
            else:
                for _ in range(_CHECK_EVERY):
                    step()
            if cancel is not None and cancel.is_set():
                world.status, world.stop_reason = "cancelled", "cancelled by the user"
                return True
            if time.monotonic() - t0 > wall_budget_s:
                world.status = "truncated"
                world.stop_reason = f"run.wall_budget_s={wall_budget_s:g} exceeded at simulated t={env.now:.1f} s"
                return True
    except (StopSimulation, EmptySchedule):
        pass
    return False


_CHECK_EVERY = 20_000
