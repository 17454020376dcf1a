"""The World's placement: the global queue fetch of PE group leaders and PE/DE/read-side choice.

A mixin of ``sim.world.World``. Fetch-based policies (DualPath) queue arrivals globally and each
PE group leader fetches from the queue every ``fetch_period_ms`` (idle leaders are woken by an
arrival); ``_assigned`` then asks the policy for the decode engine and the read side and queues
the storage read (or marks the request ready when it has no hit).
"""

from __future__ import annotations

from dualpath_twin.sim.calls import call_later
from dualpath_twin.sim.request import Req


class PlacementMixin:
    """Global-queue fetching and request placement of ``World``."""

    def _fetcher(self, node: int):
        """A PE group leader: its first fetch, staggered; then ``_fetch`` runs as timed callbacks."""
        period = self.sc.policy.fetch_period_ms / 1000.0
        # stagger leaders deterministically so they do not all fetch at the same instant
        yield self.env.timeout(period * node / max(self.P, 1))
        self._fetch(node)

    def _fetch(self, node: int) -> None:
        """One fetch from the global queue for this leader's node, then the next one a period later.

        With an empty queue the leader goes idle until an arrival wakes it (``_kick_fetcher``). A leader
        on a lost node stops until the repair; while no decode engine is up, leaders idle.
        """
        if self.down_nodes and (node in self.down_nodes or not self.can_place()):
            if node in self.down_nodes:
                self.stopped_fetchers.add(node)
                if self.global_q and self.idle_fetchers and not self.fetch_kicked:
                    self._kick_fetcher()  # pass on a wake-up meant for this leader
            else:
                self.idle_fetchers.append(node)
            return
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
        req.pe_node = pe // self.gp
        self.col["sched_s"][req.rid] = now
        self.col_pe[req.rid] = pe
        self.pe_tok_v[pe] += req.prompt
        self.pe_seq_v[pe] += 1
        de = self.policy.choose_decode(self, req.info)
        req.de = de
        req.de_node = self.P + de // self.gd
        self.col_de[req.rid] = de
        self.de_tok_v[de] += req.prompt + req.gen
        self.de_node_tok_v[de // self.gd] += req.prompt + req.gen
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
