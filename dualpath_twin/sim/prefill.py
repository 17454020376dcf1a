"""The World's prefill side: the PE ready queues, forward-batch formation and the EP-group step loop.

A mixin of ``sim.world.World``. ``_pe_group`` is one SimPy process per prefill EP group: it forms
each engine's batch (``_form_batch``, chunked to the compute quota), steps the group at its slowest
GPU (cost model), loads hit KV into HBM, and sends the PD transfer of requests that finish
(layer-wise: overlapped with compute, in closed form; reference fidelity: ``_layer_pipeline``).
"""

from __future__ import annotations

import simpy

from dualpath_twin.sim.memory import BytePool
from dualpath_twin.sim.network import Link, Path
from dualpath_twin.sim.request import Req


class PrefillMixin:
    """Prefill batching and the per-group step process of ``World``."""

    def _ready(self, req: Req) -> None:
        self.pe_ready[req.pe].append(req)
        self._wake_group(req.pe_node)

    def _wake_group(self, pe_node: int) -> None:
        """Wake the step process of the PE group holding ``pe_node`` (it may be waiting for work)."""
        gi = self.node_group[pe_node]
        if not self.group_wake[gi].triggered:
            self.group_wake[gi].succeed()

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
        """Reserve where the prompt KV will land on the decode side; False if it must wait.

        The space is the DE node's DRAM buffer (layer-wise designs) or the DE's HBM (Basic). With
        ``policy.decode_space_order = "fifo"`` a request that finds no room queues a claim on that
        pool: later requests cannot take freed space ahead of it, and its group wakes when granted.
        """
        if req.pd_reserved:
            return True
        if self.zero_io:
            req.pd_reserved = True
            return True
        if req.pd_claim is not None:  # queued on the pool: the grant callback reserves it
            return False
        basic = not self.layerwise
        pool = self._pd_pool(req)
        nbytes = req.hbm_bytes if basic else req.prompt * self.kv
        if pool.try_reserve(nbytes):
            self._pd_reserved(req, basic, nbytes)
            return True
        if self.sc.policy.decode_space_order == "fifo" and pool.fits_ever(nbytes):
            claim = req.pd_claim = pool.reserve(nbytes)
            claim.callbacks.append(lambda _e, req=req: self._pd_claim_granted(req, basic, nbytes, pool))
        return False

    def _pd_pool(self, req: Req) -> BytePool:
        """The pool the request's prompt KV lands in: the DE's HBM (Basic) or its DE node's DRAM buffer."""
        return self.dram_buf[req.de_node] if self.layerwise else self.de_hbm[req.de]

    def _pd_reserved(self, req: Req, basic: bool, nbytes: float) -> None:
        if basic:  # Basic: the PD transfer goes straight into DE HBM
            req.de_hbm_reserved = True
        else:
            req.dram_de_bytes += nbytes
        req.pd_reserved = True

    def _pd_claim_granted(self, req: Req, basic: bool, nbytes: float, pool: BytePool) -> None:
        """A queued decode-space claim got its bytes: mark the request reserved and wake its PE group."""
        req.pd_claim = None
        if req.lost:  # abandoned (node loss) while it waited: give the space back
            pool.release(nbytes)
            return
        self._pd_reserved(req, basic, nbytes)
        self._wake_group(req.pe_node)

    def _pe_group(self, gi: int):
        env = self.env
        nodes = self.pe_groups[gi]
        gp = self.gp
        engines = [n * gp + k for n in nodes for k in range(gp)]
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
                self.gpu_busy_s[pe // gp] += comp[pe] * self.tp_p  # GPU-seconds: a TP engine busies its T GPUs
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
                        dgpu = pgpu % self.gd
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
                # layer i-1 is done, its KV sent to the decode side right after (docs/model.md)
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
                if req.lost:  # abandoned during the step (node loss): re-queued elsewhere
                    continue
                rid = req.rid
                self.col["prefill_end_s"][rid] = now
                self.col["first_token_s"][rid] = now
                if self.online:
                    self.log_ttft(now, now - self.col["arrival_s"][rid])
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
        if req.lost:
            return
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
