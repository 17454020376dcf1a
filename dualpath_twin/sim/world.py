"""The SimPy world: nodes, links, engines, the scheduler loop and the request lifecycle.

One round (request) goes: arrival -> global prefill queue -> PE placement (policy) -> DE and
read-side choice (policy) -> node read queue -> DRAM buffer reservation -> storage read flow
(storage -> SNIC rx -> DRAM) -> PE ready queue -> prefill forward batch of its EP group
(layer-wise: load flows overlapped with compute, closed form per batch; Basic: load, then
compute) -> PD transfer flow -> decode admission (HBM) -> decode (continuous batching,
event-driven per batch-membership change) -> block write-back flows -> next round of the agent.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
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
from dualpath_twin.sim.faults import FaultInjector, is_slow_read
from dualpath_twin.sim.gcpolicy import rare_young_collections
from dualpath_twin.sim.memory import BytePool
from dualpath_twin.sim.network import FlowNetwork, Link, Path
from dualpath_twin.workload.types import Workload

NAN = float("nan")


class Req:
    """An in-flight round."""

    __slots__ = (
        "rid", "traj", "prompt", "hit", "gen", "miss", "computed", "pe", "de", "pe_node", "de_node",
        "side", "info", "loaded", "dram_pe_bytes", "dram_de_bytes", "tokens_left", "ctx", "hbm_bytes",
        "de_hbm_reserved", "pd_reserved", "j0", "pd_state", "hit_pe", "hit_de", "parts_left",
    )

    def __init__(self, rid: int, traj: int, prompt: int, hit: int, gen: int, kv: float) -> None:
        self.rid = rid
        self.traj = traj
        self.prompt = prompt
        self.hit = hit
        self.gen = gen
        self.miss = prompt - hit
        self.computed = 0
        self.pe = -1
        self.de = -1
        self.pe_node = -1
        self.de_node = -1
        self.side = "none"
        self.loaded = False
        self.dram_pe_bytes = 0.0
        self.dram_de_bytes = 0.0
        self.tokens_left = gen - 1
        self.ctx = prompt + 1
        self.hbm_bytes = (prompt + gen) * kv
        self.de_hbm_reserved = False
        self.j0 = 0  # the decode engine's step count when this request joined its batch
        self.pd_reserved = False
        self.pd_state = 0  # layer-wise PD transfer: 0 in flight, 1 prefill done first, 2 landed first
        self.info = RequestInfo(rid, prompt, hit, gen, self.hbm_bytes)
        # split reads (side "split"): hit tokens read through the PE's and the DE's SNIC, parts not landed yet
        self.hit_pe = 0
        self.hit_de = 0
        self.parts_left = 0


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


class World:
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
        for i in range(self.P + self.D):
            role = "prefill" if i < self.P else "decode"
            nm = f"P{i}" if i < self.P else f"D{i - self.P}"
            self.nodes.append(
                NodeLinks(
                    name=nm,
                    role=role,
                    snic_rx=Link(f"{nm}.snic.rx", snic_bps, "snic_rx", nm, role),
                    snic_tx=Link(f"{nm}.snic.tx", snic_bps, "snic_tx", nm, role),
                    dram=Link(f"{nm}.dram", dram_bps, "dram", nm, role),
                    cnic_rx=[Link(f"{nm}.cnic{k}.rx", cnic_bps, "cnic_rx", nm, role) for k in range(n.cnics_per_node)],
                    cnic_tx=[Link(f"{nm}.cnic{k}.tx", cnic_bps, "cnic_tx", nm, role) for k in range(n.cnics_per_node)],
                    pcie_in=[Link(f"{nm}.pcie{k}.in", pcie_bps, "pcie", nm, role) for k in range(self.g)] if use_pcie else None,
                    pcie_out=[Link(f"{nm}.pcie{k}.out", pcie_bps, "pcie", nm, role) for k in range(self.g)] if use_pcie else None,
                )
            )
        self.storage_read = Link("storage.read", s.read_gbps_total / 8 * 1e9, "storage", "storage", "cluster") if s.read_gbps_total else None
        self.storage_write = Link("storage.write", s.write_gbps_total / 8 * 1e9, "storage", "storage", "cluster") if s.write_gbps_total else None
        total_cnic = (self.P + self.D) * n.cnics_per_node * cnic_bps
        self.fabric = Link("fabric", total_cnic / n.fabric_oversubscription, "fabric", "fabric", "cluster") if n.fabric_oversubscription > 1 else None
        self.io_latency_s = s.io_latency_us * 1e-6

        # ---------------- memory
        self.dram_buf = [BytePool(self.env, f"{nd.name}.dram_buf", c.dram_buffer_gb * 1e9) for nd in self.nodes]
        self.pe_hbm = [BytePool(self.env, f"PE{e}.hbm", cost.hbm_kv_prefill_bytes) for e in range(self.P * self.g)]
        self.de_hbm = [BytePool(self.env, f"DE{e}.hbm", cost.hbm_kv_decode_bytes) for e in range(self.D * self.g)]

        # ---------------- scheduler state
        self.global_q: deque[Req] = deque()
        self.global_q_info: deque[RequestInfo] = deque()
        self.by_rid: dict[int, Req] = {}
        # per-engine scheduler counters as Python lists: policies read them one scalar at a time,
        # and a list item is several times cheaper to read and update than a NumPy element
        self.pe_tok_v = [0.0] * (self.P * self.g)
        self.pe_seq_v = [0] * (self.P * self.g)
        self.de_tok_v = [0.0] * (self.D * self.g)
        self.de_node_tok_v = [0] * self.D  # exact integer token sums per decode node
        self.de_seq_v = [0] * (self.D * self.g)
        self.de_promised = [0.0] * (self.D * self.g)
        self.de_hbm_cap = [p.capacity for p in self.de_hbm]
        self.read_q = [0.0] * (self.P + self.D)
        self.read_queue: list[deque[Req]] = [deque() for _ in self.nodes]
        self.read_inflight = [0] * len(self.nodes)
        self.max_inflight = s.max_inflight_reads_per_node
        self.pe_ready: list[deque[Req]] = [deque() for _ in range(self.P * self.g)]
        pe_grp, de_grp = ep_group_nodes(sc)
        self.pe_group_nodes = pe_grp
        self.pe_groups = [list(range(i, min(i + pe_grp, self.P))) for i in range(0, self.P, pe_grp)]
        self.node_group = {}
        for gi, grp in enumerate(self.pe_groups):
            for nd in grp:
                self.node_group[nd] = gi
        self.group_wake: list[simpy.Event] = [self.env.event() for _ in self.pe_groups]
        self.de_pending: list[deque[Req]] = [deque() for _ in range(self.D * self.g)]
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
        self.ttft_log: deque[tuple[float, float]] = deque()
        self.stop_reason = ""
        self.status = "finished"
        # faults ([[faults]]): with none configured nothing is scheduled and every hook is skipped
        self.slow_reads: dict[int, tuple[float, float]] = {}  # node -> (extra latency s, share of reads)
        self.pe_slow: dict[int, float] = {}  # straggling prefill engine -> step time factor
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
            log.popleft()
        if len(log) < 20 or now < win:
            return False
        mean = sum(x for _, x in log) / len(log)
        return mean > 3.0 * self.sc.slo.ttft_s

    def _prefill_tokens_per_gpu_s(self) -> float:
        """Estimated prompt tokens one GPU prefills per second for the workload's mean round."""
        wl = self.wl
        if wl.n_rounds == 0:
            return 1.0
        p = float(np.mean(wl.prompt_tokens))
        h = float(np.mean(wl.hit_tokens))
        miss = max(p - h, 1.0)
        # one GPU's share of a group step of 16 such requests per GPU (a moderate batch)
        step, _ = self.cost.prefill_uniform_step_s(16, int(miss), int(h))
        return p / max(step / 16, 1e-9)

    def _gpu_cnic(self, node: int, gpu: int) -> tuple[Link, Link]:
        nd = self.nodes[node]
        k = gpu // self.gpus_per_cnic
        return nd.cnic_rx[k], nd.cnic_tx[k]

    def _gpu_path(self, node: int, gpu: int, into: bool) -> list[Link]:
        """Links into (or out of) a GPU's HBM: its CNIC rx (tx), and PCIe when that is narrower; cached, do not mutate."""
        key = (node, gpu, into)
        got = self._gpu_paths.get(key)
        if got is None:
            rx, tx = self._gpu_cnic(node, gpu)
            nd = self.nodes[node]
            pcie = nd.pcie_in if into else nd.pcie_out
            got = self._gpu_paths[key] = [rx if into else tx] + ([pcie[gpu]] if pcie else [])
        return got

    @staticmethod
    def _storage(link: Link | None) -> list[Link]:
        return [link] if link else []

    def _add_route(self, key: tuple, links: list[Link]) -> Path:
        """Remember the route of a transfer kind between two places, resolved once by the network."""
        got = self._routes[key] = self.net.path(links)
        return got

    def _into_gpu(self, node: int, gpu: int) -> list[Link]:
        return self._gpu_path(node, gpu, True)

    def _out_of_gpu(self, node: int, gpu: int) -> list[Link]:
        return self._gpu_path(node, gpu, False)

    def _fab(self) -> list[Link]:
        return [self.fabric] if self.fabric else []

    def pe_loc(self, pe: int) -> tuple[int, int]:
        """(node, gpu) of a prefill engine."""
        return pe // self.g, pe % self.g

    def de_loc(self, de: int) -> tuple[int, int]:
        """(node index in self.nodes, gpu) of a decode engine."""
        return self.P + de // self.g, de % self.g

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
        self.decoders = [DecodeEngine(self, de) for de in range(self.D * self.g)]
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
        if self.policy.fetch_based:
            self.global_q.append(req)
            self.global_q_info.append(req.info)
            if not self.fetch_kicked and self.idle_fetchers:
                self._kick_fetcher()
        else:
            q = deque([req.info])
            for info, pe in self.policy.assign_prefill(self, q, None):
                self._assigned(self.by_rid[info.rid], pe)

    # ================================================================ placement
    def _fetcher(self, node: int):
        """A PE group leader: its first fetch, staggered; then ``_fetch`` runs as timed callbacks."""
        period = self.sc.policy.fetch_period_ms / 1000.0
        # stagger leaders deterministically so they do not all fetch at the same instant
        yield self.env.timeout(period * node / max(self.P, 1))
        self._fetch(node)

    def _fetch(self, node: int) -> None:
        """One fetch from the global queue for this leader's node, then the next one a period later.

        With an empty queue the leader goes idle until an arrival wakes it (``_kick_fetcher``).
        """
        if not self.global_q:
            self.idle_fetchers.append(node)
            return
        assigned = self.policy.assign_prefill(self, self.global_q_info, node)
        for info, pe in assigned:
            req = self.global_q.popleft()
            assert req.rid == info.rid
            self._assigned(req, pe)
        if self.global_q and self.idle_fetchers and not self.fetch_kicked:
            # what this leader could not take is offered to the next idle one, now
            self._kick_fetcher()
        call_later(self.env, self.fetch_period_s, lambda _e: self._fetch(node))

    def _kick_fetcher(self) -> None:
        """Wake the leader idle the longest: it looks at the queue at this instant."""
        self.fetch_kicked = True
        node = self.idle_fetchers.popleft()

        def woken(_e: object) -> None:
            self.fetch_kicked = False
            self._fetch(node)

        call_later(self.env, 0.0, woken)

    def _assigned(self, req: Req, pe: int) -> None:
        now = self.env.now
        req.pe = pe
        req.pe_node = pe // self.g
        self.col["sched_s"][req.rid] = now
        self.col_pe[req.rid] = pe
        self.pe_tok_v[pe] += req.prompt
        self.pe_seq_v[pe] += 1
        de = self.policy.choose_decode(self, req.info)
        req.de = de
        req.de_node = self.P + de // self.g
        self.col_de[req.rid] = de
        self.de_tok_v[de] += req.prompt + req.gen
        self.de_node_tok_v[de // self.g] += req.prompt + req.gen
        self.de_seq_v[de] += 1
        self.de_promised[de] += req.hbm_bytes
        if req.hit <= 0:
            req.side = "none"
            self.col["read_start_s"][req.rid] = now
            self.col["read_end_s"][req.rid] = now
            self._ready(req)
            return
        if self.split_reads:
            hit_pe = self.policy.choose_read_split(self, req.info, req.pe_node, req.de_node)
            side = "pe" if hit_pe >= req.hit else "de" if hit_pe <= 0 else "split"
        else:
            side = self.policy.choose_read_side(self, req.info, req.pe_node, req.de_node) if self.policy.de_side_reads else "pe"
        if side == "split":
            self._split_read(req, hit_pe)
            return
        req.side = side
        self.col_side[req.rid] = 1 if side == "pe" else 2
        node = req.pe_node if side == "pe" else req.de_node
        if self.zero_io:
            self.col["read_start_s"][req.rid] = now
            self.col["read_end_s"][req.rid] = now
            self._ready(req)
            return
        self.read_q[node] += req.hit
        self.read_queue[node].append(req)
        self._pump_reads(node)

    # ================================================================ storage reads
    def _split_read(self, req: Req, hit_pe: int) -> None:
        """Queue a split read: ``hit_pe`` hit tokens through the PE's SNIC, the rest through the DE's.

        Both parts must land before the request is ready; the DE part reserves the whole prompt's
        KV in the DE DRAM buffer (as a DE-side read), the PE part its own bytes in the PE's.
        """
        req.side = "split"
        req.hit_pe = hit_pe
        req.hit_de = req.hit - hit_pe
        req.parts_left = 2
        self.col_side[req.rid] = 3
        pn, dn = req.pe_node, req.de_node
        self.read_q[pn] += hit_pe
        self.read_q[dn] += req.hit_de
        self.read_queue[pn].append(req)
        self.read_queue[dn].append(req)
        self._pump_reads(pn)
        self._pump_reads(dn)

    def _pump_reads(self, node: int) -> None:
        q = self.read_queue[node]
        pool = self.dram_buf[node]
        while q and self.read_inflight[node] < self.max_inflight:
            req = q[0]
            side = req.side
            if side == "split":  # this node's part of a split read
                side = "pe" if node == req.pe_node else "de"
                nbytes = (req.hit_pe if side == "pe" else req.hit_de) * self.kv
            else:
                nbytes = req.hit * self.kv
            # a DE-side read also reserves room for the missed tokens' KV coming back from the PE
            resv = nbytes if side == "pe" else req.prompt * self.kv
            if not pool.try_reserve(resv):
                if not pool.listeners:
                    pool.listeners.append(lambda node=node: self._pump_reads(node))
                break
            q.popleft()
            if side == "pe":
                req.dram_pe_bytes += resv
            else:
                req.dram_de_bytes += resv
                req.pd_reserved = True
            self.read_inflight[node] += 1
            self._read(req, node, nbytes)

    def _read(self, req: Req, node: int, nbytes: float) -> None:
        """Storage -> SNIC rx -> DRAM after the I/O latency (event callbacks, no process)."""
        env = self.env
        if self.cache_tok is not None and req.parts_left == 0 and self.cache_tok[req.rid] > 0:
            self._cached_read(req, node, nbytes)
            return
        col = self.col["read_start_s"]
        if req.parts_left == 0 or col[req.rid] != col[req.rid]:  # a split read starts with its first part
            col[req.rid] = env.now
        lat = self.io_latency_s
        if self.slow_reads and node in self.slow_reads:  # a slow storage shard serves this read
            extra, share = self.slow_reads[node]
            if is_slow_read(req.rid, share):
                lat += extra
        if lat > 0:
            call_later(env, lat, lambda _e: self._read_flow(req, node, nbytes))
        else:
            self._read_flow(req, node, nbytes)

    def _cached_read(self, req: Req, node: int, nbytes: float) -> None:
        """A read with cached blocks: those from the holder's DRAM (over the CNICs), the rest from storage, in parallel."""
        env = self.env
        rid = req.rid
        self.col["read_start_s"][rid] = env.now
        cbytes = self.cache_tok[rid] * self.kv  # type: ignore[index]
        sbytes = max(nbytes - cbytes, 0.0)
        self.cache_bytes[rid] += cbytes
        left = [2 if sbytes > 0 else 1]

        def one() -> None:
            left[0] -= 1
            if left[0] == 0:
                self._read_done(req, node, sbytes)

        holder = self.cache_holder[rid]
        k = rid % len(self.nodes[node].cnic_rx)
        key = ("cache", holder, node, k)
        links = self._routes.get(key)
        if links is None:
            nd, hd = self.nodes[node], self.nodes[holder]
            path = [nd.dram] if holder == node else [hd.dram, hd.cnic_tx[k], *self._fab(), nd.cnic_rx[k], nd.dram]
            links = self._add_route(key, path)
        self.net.transfer(cbytes, links, "cache", on_done=one)
        if sbytes > 0:
            if self.io_latency_s > 0:
                call_later(env, self.io_latency_s, lambda _e: self._read_flow_part(node, sbytes, one))
            else:
                self._read_flow_part(node, sbytes, one)

    def _read_flow_part(self, node: int, nbytes: float, on_done: Callable[[], None]) -> None:
        """Storage -> the node's SNIC rx -> DRAM, calling ``on_done`` when the bytes have landed."""
        nd = self.nodes[node]
        key = ("read", node)
        links = self._routes.get(key) or self._add_route(key, [*self._storage(self.storage_read), nd.snic_rx, nd.dram])
        self.net.transfer(nbytes, links, "read", on_done=on_done)

    def _read_flow(self, req: Req, node: int, nbytes: float) -> None:
        self._read_flow_part(node, nbytes, lambda: self._read_done(req, node, nbytes))

    def _read_done(self, req: Req, node: int, nbytes: float) -> None:
        self.read_inflight[node] -= 1
        if req.parts_left:  # one part of a split read
            on_pe = node == req.pe_node
            self.read_q[node] -= req.hit_pe if on_pe else req.hit_de
            self.col["bytes_read_pe_snic" if on_pe else "bytes_read_de_snic"][req.rid] += nbytes
            req.parts_left -= 1
            self._pump_reads(node)
            if req.parts_left == 0:
                self.col["read_end_s"][req.rid] = self.env.now
                self._ready(req)
            return
        self.read_q[node] -= req.hit
        self.col["read_end_s"][req.rid] = self.env.now
        self.col["bytes_read_pe_snic" if req.side == "pe" else "bytes_read_de_snic"][req.rid] += nbytes
        self._pump_reads(node)
        self._ready(req)

    def _ready(self, req: Req) -> None:
        self.pe_ready[req.pe].append(req)
        gi = self.node_group[req.pe_node]
        if not self.group_wake[gi].triggered:
            self.group_wake[gi].succeed()

    # ================================================================ prefill
    def _form_batch(self, pe: int) -> list[tuple[Req, int, float]]:
        """Pick (request, new tokens this step, attention seconds) for one PE's forward batch."""
        q = self.pe_ready[pe]
        if not q:
            return []
        quota = self.sc.policy.compute_quota_ms / 1000.0
        cap = self.sc.policy.max_prefill_batch
        cost = self.cost
        pool = self.pe_hbm[pe]
        batch: list[tuple[Req, int, float]] = []
        used_attn = 0.0
        hbm_need = 0.0
        skipped: list[Req] = []
        while q and len(batch) < cap:
            req = q[0]
            remaining = req.miss - req.computed
            ctx0 = req.hit + req.computed
            # the request's KV must fit in PE HBM when layers are not streamed
            need = 0.0 if self.layerwise else req.prompt * self.kv
            if not self.layerwise and hbm_need + need > pool.capacity:
                if not batch and need > pool.capacity:
                    need = pool.capacity  # cannot ever fit: run it alone (documented)
                else:
                    break
            # reserve the destination of the PD transfer before committing the request
            if not self._reserve_pd_dest(req):
                skipped.append(q.popleft())
                continue
            attn = cost.attention_time_s(remaining, ctx0)
            if used_attn + attn <= quota or not batch:
                if used_attn + attn > quota and not batch:
                    # chunk: largest chunk whose attention fits the quota (at least one block)
                    chunk = self._largest_chunk(min(self.block, remaining), remaining, ctx0, quota)
                    attn = cost.attention_time_s(chunk, ctx0)
                    batch.append((req, chunk, attn))
                    used_attn += attn
                    hbm_need += need
                    if chunk >= remaining:
                        q.popleft()
                    break
                q.popleft()
                batch.append((req, remaining, attn))
                used_attn += attn
                hbm_need += need
                continue
            # overflowing request: chunk it into what is left of the quota, carry the rest
            lo = self._largest_chunk(0, remaining, ctx0, quota - used_attn)
            if lo >= self.block:
                a2 = cost.attention_time_s(lo, ctx0)
                batch.append((req, lo, a2))
                used_attn += a2
                hbm_need += need
            break
        for r in reversed(skipped):
            q.appendleft(r)
        return batch

    def _largest_chunk(self, lo: int, hi: int, ctx0: int, budget_s: float) -> int:
        """Binary search: the most new tokens (>= lo) whose predicted attention fits ``budget_s``."""
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.cost.attention_time_s(mid, ctx0) <= budget_s:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _reserve_pd_dest(self, req: Req) -> bool:
        """Reserve where the prompt KV will land on the decode side; False if it must wait."""
        if req.pd_reserved:
            return True
        if self.zero_io:
            req.pd_reserved = True
            return True
        if not self.layerwise:
            # Basic: the PD transfer goes straight into DE HBM
            if self.de_hbm[req.de].try_reserve(req.hbm_bytes):
                req.de_hbm_reserved = True
                req.pd_reserved = True
                return True
            return False
        nbytes = req.prompt * self.kv
        if self.dram_buf[req.de_node].try_reserve(nbytes):
            req.dram_de_bytes += nbytes
            req.pd_reserved = True
            return True
        return False

    def _pe_group(self, gi: int):
        env = self.env
        nodes = self.pe_groups[gi]
        engines = [n * self.g + k for n in nodes for k in range(self.g)]
        group_lanes = [lk for nd in nodes for lk in (*self.nodes[nd].cnic_rx, *self.nodes[nd].cnic_tx)]
        cost = self.cost
        nl = self.layers
        while True:
            ready = self.pe_ready
            batches = {pe: b for pe in engines if ready[pe] and (b := self._form_batch(pe))}
            if not batches:
                if self.group_wake[gi].triggered:
                    self.group_wake[gi] = env.event()
                # re-check periodically when requests are waiting on decode-side space
                if any(self.pe_ready[pe] for pe in engines):
                    yield env.timeout(0.01) | self.group_wake[gi]
                else:
                    yield self.group_wake[gi]
                continue
            start = env.now
            # compute per GPU; the EP group steps at its slowest GPU
            work = [(float(sum(c for _, c, _ in b)), sum(a for _, _, a in b)) for b in batches.values()]
            tot_tokens = sum(t for t, _ in work)
            n_gpu = len(engines)
            c_group, busy, comm_s = cost.prefill_group_step_s(work, n_gpu)
            if self.pe_slow:  # straggler GPUs (faults)
                c_group, busy = self._straggle(list(batches), c_group, busy)
            comp = dict(zip(batches, busy, strict=True))
            col_start = self.col["prefill_start_s"]
            for pe, b in batches.items():
                self.gpu_busy_s[pe // self.g] += comp[pe]
                for req, _, _ in b:
                    if col_start[req.rid] != col_start[req.rid]:  # NaN: its first chunk
                        col_start[req.rid] = start
            # model communication claims its lane on the group's CNICs during the step
            lane_links: list[Link] = []
            if comm_s > 0 and c_group > 0:
                duty = min(comm_s / c_group, 1.0)
                share = 1.0 - duty * (1.0 - self.sc.network.kv_lane_share)
                comm_bytes = cost.prefill_comm_bytes(tot_tokens / n_gpu) * self.g
                for nd in nodes:
                    self.comm_bytes[nd] += comm_bytes
                lane_links = group_lanes
                self.net.set_capacities(lane_links, self.cnic_kv_bps * share)
                if self.faults is not None:
                    self.faults.reapply(lane_links, self.cnic_kv_bps * share)
            # KV loads into HBM (first chunk of each request with a hit)
            load_specs: list[tuple[float, Path]] = []
            col_h2d, col_de2pe = self.col["bytes_pe_h2d"], self.col["bytes_de_to_pe"]
            for pe, b in batches.items():
                pnode, pgpu = self.pe_loc(pe)
                per_src: dict[int, float] = {}
                for req, _, _ in b:
                    if req.loaded or req.hit <= 0:
                        continue
                    req.loaded = True
                    hit_bytes = req.hit * self.kv
                    if req.side == "pe":
                        per_src[req.pe_node] = per_src.get(req.pe_node, 0.0) + hit_bytes
                        col_h2d[req.rid] += hit_bytes
                    elif req.side == "split":  # each part loads from the DRAM it landed in
                        pe_b, de_b = req.hit_pe * self.kv, req.hit_de * self.kv
                        per_src[req.pe_node] = per_src.get(req.pe_node, 0.0) + pe_b
                        per_src[req.de_node] = per_src.get(req.de_node, 0.0) + de_b
                        col_h2d[req.rid] += pe_b
                        col_de2pe[req.rid] += de_b
                    else:
                        per_src[req.de_node] = per_src.get(req.de_node, 0.0) + hit_bytes
                        col_de2pe[req.rid] += hit_bytes
                if self.zero_io:
                    continue
                for src, nbytes in per_src.items():
                    if src == pnode:
                        key = ("h2d", pnode, pgpu)
                        links = self._routes.get(key) or self._add_route(key, [self.nodes[pnode].dram, *self._into_gpu(pnode, pgpu)])
                    else:
                        # DE DRAM -> DE CNIC tx -> fabric -> PE CNIC rx -> PE HBM (CNIC of the request's DE GPU)
                        dgpu = pgpu % self.g
                        key = ("de2pe", src, dgpu, pnode, pgpu)
                        links = self._routes.get(key) or self._add_route(key, [
                            self.nodes[src].dram, *self._out_of_gpu(src, dgpu), *self._fab(), *self._into_gpu(pnode, pgpu)])
                    load_specs.append((nbytes, links))
            # PD transfers for requests whose prefill completes in this step (layer-wise: overlapped)
            finishing = []
            for b in batches.values():
                for req, chunk, _ in b:
                    if req.computed + chunk >= req.miss:
                        finishing.append(req)
            pd_events = {}
            if self.reference and self.layerwise:
                # detailed: one load per layer in sequence, layer i computed once it is loaded and
                # layer i-1 is done, its KV sent to the decode side right after (SYSTEM.md §3)
                for req in finishing:
                    pd_events[req.rid] = env.event()
                yield env.process(self._layer_pipeline(load_specs, c_group, finishing, pd_events))
            else:
                if self.layerwise:
                    for req in finishing:
                        req.pd_state = 0
                        self._pd_transfer(req, on_done=lambda req=req: self._pd_landed(req))
                if load_specs:
                    # one event when the last load lands (no event per load, no AllOf condition)
                    loads_done = env.event()
                    left = [len(load_specs)]

                    def _one_loaded(left=left, ev=loads_done) -> None:
                        left[0] -= 1
                        if left[0] == 0:
                            ev.succeed()

                    for nbytes, links in load_specs:
                        self.net.transfer(nbytes, links, "load", on_done=_one_loaded)
                    yield loads_done
                load_end = env.now
                if self.layerwise:
                    # closed form of the per-layer pipeline above at the loads' mean bandwidth
                    load_s = load_end - start
                    end = max(start + c_group + load_s / nl, load_end + c_group / nl)
                else:
                    end = load_end + c_group
                if end > env.now:
                    yield env.timeout(end - env.now)
            if lane_links:
                self.net.set_capacities(lane_links, self.cnic_kv_bps)
                if self.faults is not None:
                    self.faults.reapply(lane_links, self.cnic_kv_bps)
            now = env.now
            for b in batches.values():
                for req, chunk, _ in b:
                    req.computed += chunk
                    if req.dram_pe_bytes > 0:
                        self.dram_buf[req.pe_node].release(req.dram_pe_bytes)
                        req.dram_pe_bytes = 0.0
            for req in finishing:
                rid = req.rid
                self.col["prefill_end_s"][rid] = now
                self.col["first_token_s"][rid] = now
                if self.online:
                    self.ttft_log.append((now, now - self.col["arrival_s"][rid]))
                self.pe_tok_v[req.pe] -= req.prompt
                self.pe_seq_v[req.pe] -= 1
                self.prompt_tokens_done += req.prompt
                if not self.layerwise:
                    self._pd_transfer(req, on_done=lambda req=req: self._to_decode(req))
                elif self.reference:
                    ev = pd_events[rid]
                    if ev.triggered:
                        self._to_decode(req)
                    else:
                        ev.callbacks.append(lambda _e, req=req: self._to_decode(req))
                elif req.pd_state == 2:  # its KV already landed on the decode side
                    self._to_decode(req)
                else:
                    req.pd_state = 1  # prefill done: the PD transfer's landing admits it

    def _straggle(self, pes: list[int], c_group: float, busy: list[float]) -> tuple[float, list[float]]:
        """A prefill step with straggler engines: their busy time times the factor; the group waits for the slowest."""
        slow = self.pe_slow
        busy = [b * slow.get(pe, 1.0) for pe, b in zip(pes, busy, strict=True)]
        return max(c_group, max(busy, default=0.0)), busy

    def _pd_landed(self, req: Req) -> None:
        """Layer-wise PD transfer finished: admit now if the prefill step is over, else when it ends."""
        if req.pd_state == 1:
            self._to_decode(req)
        else:
            req.pd_state = 2

    def _layer_pipeline(self, load_specs: list[tuple[float, Path]], c_group: float, finishing: list[Req],
                        pd_events: dict[int, simpy.Event]):
        """Reference mode: the layer-wise prefill step with one load, compute and PD send per layer."""
        env = self.env
        nl = self.layers
        loaded = [env.event() for _ in range(nl)]

        def loader():
            for i in range(nl):
                if load_specs:
                    yield simpy.AllOf(env, [self.net.transfer(nb / nl, links, "load") for nb, links in load_specs])
                loaded[i].succeed()

        env.process(loader())
        sends: dict[int, list[simpy.Event]] = {req.rid: [] for req in finishing}
        for i in range(nl):
            yield loaded[i]
            yield env.timeout(c_group / nl)
            for req in finishing:
                sends[req.rid].append(self._pd_transfer(req, 1.0 / nl, account=i == 0))
        for req in finishing:
            ev = pd_events[req.rid]
            done = simpy.AllOf(env, sends[req.rid])
            done.callbacks.append(lambda _e, ev=ev: ev.succeed())

    def _pd_transfer(self, req: Req, fraction: float = 1.0, account: bool = True,
                     on_done: Callable[[], None] | None = None) -> simpy.Event | None:
        """Move (a fraction of) the request's prompt KV from the PE to the decode side.

        Returns its completion event, or None when ``on_done`` is given (called when it lands).
        """
        side = req.side
        nbytes = (req.miss if side == "de" else req.prompt - req.hit_de if side == "split" else req.prompt) * self.kv
        if account:
            self.col["bytes_pe_to_de"][req.rid] += nbytes
        if self.zero_io:
            if on_done is not None:
                call_later(self.env, 0.0, lambda _e: on_done())
                return None
            ev = self.env.event()
            ev.succeed()
            return ev
        pnode, pgpu = self.pe_loc(req.pe)
        dnode, dgpu = self.de_loc(req.de)
        key = ("pd", req.pe, req.de)
        links = self._routes.get(key) or self._add_route(key, [
            *self._out_of_gpu(pnode, pgpu), *self._fab(), *self._into_gpu(dnode, dgpu),
            *([self.nodes[dnode].dram] if self.layerwise else [])])  # layer-wise: lands in the DE DRAM buffer
        return self.net.transfer(nbytes * fraction, links, "pd", on_done=on_done)

    # ================================================================ decode
    def _to_decode(self, req: Req) -> None:
        """Admission: DE HBM (waits FIFO if full), then the DE DRAM -> HBM load, then the batch."""
        if req.de_hbm_reserved or self.de_hbm[req.de].try_reserve(req.hbm_bytes):
            req.de_hbm_reserved = True
            self._admit_load(req)
        else:
            ev = self.de_hbm[req.de].reserve(req.hbm_bytes)
            ev.callbacks.append(lambda _e: self._admit_load(req, reserved=True))

    def _admit_load(self, req: Req, reserved: bool = False) -> None:
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

    def _write_back(self, de: int, nbytes: float, rid: int | None) -> None:
        if nbytes <= 0:
            return
        self.written_bytes += nbytes
        if rid is not None:
            self.col["bytes_written"][rid] += nbytes
        if self.zero_io:
            return
        dnode, dgpu = self.de_loc(de)
        nd = self.nodes[dnode]
        key = ("write", de)
        links = self._routes.get(key) or self._add_route(key, [
            *self._out_of_gpu(dnode, dgpu), nd.dram, nd.snic_tx, *self._storage(self.storage_write)])
        self.net.transfer(nbytes, links, "write", notify=False)

    def _complete(self, req: Req, now: float) -> None:
        rid = req.rid
        self.col["done_s"][rid] = now
        if req.de_hbm_reserved:
            self.de_hbm[req.de].release(req.hbm_bytes)
        self.de_tok_v[req.de] -= req.prompt + req.gen
        self.de_node_tok_v[req.de // self.g] -= req.prompt + req.gen
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
