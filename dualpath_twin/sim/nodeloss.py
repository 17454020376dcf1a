"""A lost node (fault ``node_lost``): its EP group's engines stop, the rounds they held start over elsewhere.

A mixin of ``sim.world.World``. What happens, as a real EP deployment behaves:

- Losing a node takes down every engine of its EP group (an EP group steps together: without one
  node's experts the others cannot run), prefill or decode. ``_lose_nodes`` marks the group's nodes
  down; policies see them in ``ClusterView.down_nodes`` and place nothing there.
- Every round that depended on a downed node is abandoned and re-queued from the start of its
  lifecycle (a fresh attempt, the same round id and original arrival time, so the loss shows in its
  TTFT): a round placed on a downed PE that had not reached the decode side yet, a round whose DE is
  on a downed node, and a round whose cached blocks were being read from a downed node's DRAM.
  The KV the agent had written before is still in storage, so the new attempt reads the same hit.
- The abandoned attempt's memory reservations are released at once and its counters undone; its
  transfers already in flight drain (their bytes still cross the links, a fraction of a second of
  traffic) and every later callback of the attempt drops it (``Req.lost``).
- While every engine of a role is down, arrivals wait (``parked``; fetch-based policies keep them in
  the global queue) and start when the group is back (``_restore_nodes`` at the fault's ``end_s``).
- A round's row (times, bytes) describes the attempt that finished; the abandoned attempt's bytes stay
  in the links' utilisation (they did cross them).
- Prompt tokens of an abandoned attempt that had finished prefill are taken back out of the
  prefilled total (prefill throughput counts each round once); its decode tokens already generated
  on a lost DE stay counted (the engine did produce them).
"""

from __future__ import annotations

from dualpath_twin.sim.calls import call_later
from dualpath_twin.sim.request import Req

NAN = float("nan")

_RESET_COLS = ("sched_s", "read_start_s", "read_end_s", "prefill_start_s", "prefill_end_s", "first_token_s",
               "second_token_s", "decode_admit_s")
_BYTE_COLS = ("bytes_read_pe_snic", "bytes_read_de_snic", "bytes_pe_h2d", "bytes_de_to_pe", "bytes_pe_to_de",
              "bytes_written")


class NodeLossMixin:
    """Node loss and repair for ``World``: abandon and re-queue the rounds of a lost EP group."""

    def group_of(self, node: int) -> list[int]:
        """The nodes of the EP group a node belongs to (prefill groups, or decode groups of ``decode_ep_nodes``)."""
        if node < self.P:
            return list(self.pe_groups[self.node_group[node]])
        i = node - self.P
        lo = (i // self.de_group_nodes) * self.de_group_nodes
        return [self.P + k for k in range(lo, min(lo + self.de_group_nodes, self.D))]

    def can_place(self) -> bool:
        """Whether some prefill engine and some decode engine are up (else arrivals wait)."""
        return self.pe_nodes_up > 0 and self.de_nodes_up > 0

    def _lose_nodes(self, nodes: list[int]) -> int:
        """Take the nodes down (counted per fault: overlapping losses stack); returns the rounds re-queued."""
        newly = []
        for nd in nodes:
            self.down_count[nd] = self.down_count.get(nd, 0) + 1
            if self.down_count[nd] == 1:
                newly.append(nd)
        if not newly:
            return 0
        self.down_nodes = frozenset(n for n, c in self.down_count.items() if c > 0)
        self._count_up()
        dead = set(newly)
        hit: list[Req] = []
        for req in list(self.by_rid.values()):
            if req.pe < 0:
                continue  # still in the global queue: nothing placed yet
            if (req.pe_node in dead and not req.at_de) or req.de_node in dead:
                hit.append(req)
            elif self.cache_tok is not None and self.cache_holder[req.rid] in dead \
                    and self.col["read_start_s"][req.rid] == self.col["read_start_s"][req.rid] \
                    and self.col["read_end_s"][req.rid] != self.col["read_end_s"][req.rid]:
                hit.append(req)  # its cached blocks were being read from the lost node's DRAM
        for req in hit:
            self._abandon(req)
        for nd in newly:
            if nd >= self.P:
                g = self.gd
                for de in range((nd - self.P) * g, (nd - self.P + 1) * g):
                    self.decoders[de].lose()
            self.read_queue[nd].clear()
            if nd in self.idle_fetchers:  # a lost leader is not woken by arrivals; it restarts at the repair
                self.idle_fetchers.remove(nd)
                self.stopped_fetchers.add(nd)
        for req in hit:
            self._requeue(req)
        return len(hit)

    def _restore_nodes(self, nodes: list[int]) -> None:
        """The repair: the nodes' engines are back, empty; waiting arrivals start."""
        for nd in nodes:
            self.down_count[nd] -= 1
        self.down_nodes = frozenset(n for n, c in self.down_count.items() if c > 0)
        self._count_up()
        for nd in sorted(self.stopped_fetchers - self.down_nodes):  # leaders back: fetch again now
            self.stopped_fetchers.discard(nd)
            call_later(self.env, 0.0, lambda _e, nd=nd: self._fetch(nd))
        while self.parked and self.can_place():
            self._dispatch(self.parked.popleft())
        if self.can_place() and self.global_q and self.idle_fetchers and not self.fetch_kicked:
            self._kick_fetcher()

    def _count_up(self) -> None:
        self.pe_nodes_up = sum(1 for n in range(self.P) if n not in self.down_nodes)
        self.de_nodes_up = sum(1 for n in range(self.P, self.P + self.D) if n not in self.down_nodes)

    def _abandon(self, req: Req) -> None:
        """Drop one attempt: out of the queues, counters undone, memory released; later callbacks ignore it."""
        req.lost = True
        rid = req.rid
        # queued (not yet started) reads; a read in flight is accounted when it lands (``_read_done``)
        for nd in {req.pe_node, req.de_node}:
            q = self.read_queue[nd]
            if req in q:
                q.remove(req)
                self.read_q[nd] -= (req.hit_pe if nd == req.pe_node else req.hit_de) if req.side == "split" else req.hit
        ready = self.pe_ready[req.pe]
        if req in ready:
            ready.remove(req)
        if req.pd_claim is not None:  # queued for decode-side space: withdraw the claim
            if self._pd_pool(req).cancel(req.pd_claim):
                req.pd_claim = None
        if self.col["prefill_end_s"][rid] != self.col["prefill_end_s"][rid]:  # NaN: prefill not finished
            self.pe_tok_v[req.pe] -= req.prompt
            self.pe_seq_v[req.pe] -= 1
        else:
            self.prompt_tokens_done -= req.prompt
        de = req.de
        self.de_tok_v[de] -= req.prompt + req.gen
        self.de_node_tok_v[de // self.gd] -= req.prompt + req.gen
        self.de_seq_v[de] -= 1
        self.de_promised[de] -= req.hbm_bytes
        if req.dram_pe_bytes > 0:
            self.dram_buf[req.pe_node].release(req.dram_pe_bytes)
            req.dram_pe_bytes = 0.0
        if req.dram_de_bytes > 0:
            self.dram_buf[req.de_node].release(req.dram_de_bytes)
            req.dram_de_bytes = 0.0
        if req.de_hbm_reserved:
            req.de_hbm_reserved = False
            self.de_hbm[de].release(req.hbm_bytes)

    def _requeue(self, old: Req) -> None:
        """A fresh attempt of the abandoned round, from the queue, keeping its arrival time."""
        rid = old.rid
        for k in _RESET_COLS:  # a round's row describes its attempt that finished
            self.col[k][rid] = NAN
        for k in _BYTE_COLS:  # (the abandoned attempt's bytes did cross the links: they stay in link utilisation)
            self.col[k][rid] = 0.0
        if self.cache_tok is not None:
            self.cache_bytes[rid] = 0.0
        self.col_pe[rid] = -1.0
        self.col_de[rid] = -1.0
        self.col_side[rid] = 0.0
        self.requeued += 1
        req = Req(rid, old.traj, old.prompt, old.hit, old.gen, self.kv)
        self.by_rid[rid] = req
        self._dispatch(req)
