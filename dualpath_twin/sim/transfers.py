"""The World's data movement: routes through the links, storage reads, PD transfers and write-backs.

A mixin of ``sim.world.World`` (it uses the world's links, pools, counters and network); kept
separate so each module is one idea. Reads: node read queue -> DRAM buffer reservation ->
storage -> SNIC rx -> DRAM (cached blocks from the holder's DRAM over the CNICs); PD transfer:
PE HBM -> CNICs -> fabric -> DE HBM (layer-wise: DE DRAM); write-back: DE HBM -> DRAM -> SNIC tx.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

from dualpath_twin.sim.calls import call_later
from dualpath_twin.sim.faults import is_slow_read
from dualpath_twin.sim.network import Link, Path
from dualpath_twin.sim.request import Req


class TransfersMixin:
    """Routes, storage reads, the PD transfer and block write-backs of ``World``."""

    # ================================================================ routes
    def _gpu_cnic(self, node: int, slot: int) -> tuple[Link, Link]:
        """The CNIC link (rx, tx) of an engine slot: its first GPU's (a TP engine's links are merged into one)."""
        nd = self.nodes[node]
        tp = self.tp_p if node < self.P else self.tp_d
        k = self.cnic_index(node, slot * tp) if tp > 1 else slot // self.gpus_per_cnic
        return nd.cnic_rx[k], nd.cnic_tx[k]

    def _gpu_path(self, node: int, gpu: int, into: bool) -> list[Link]:
        """Links into (or out of) an engine's HBM (its GPU's, or its TP GPUs' merged): CNIC rx (tx), and PCIe when that is narrower; cached, do not mutate."""
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
        if self.cache_tok is not None and req.parts_left == 0 and self.cache_tok[req.rid] > 0 \
                and not (self.down_nodes and self.cache_holder[req.rid] in self.down_nodes):  # a lost node's DRAM serves nothing
            self._cached_read(req, node, nbytes)
            return
        col = self.col["read_start_s"]
        if req.parts_left == 0 or col[req.rid] != col[req.rid]:  # a split read starts with its first part
            col[req.rid] = env.now
        lat = self._read_latency_s(req, node)
        if lat > 0:
            call_later(env, lat, lambda _e: self._read_flow(req, node, nbytes))
        else:
            self._read_flow(req, node, nbytes)

    def _read_latency_s(self, req: Req, node: int) -> float:
        """Storage I/O latency before a read's bytes flow, plus a slow shard's extra when it serves this read."""
        lat = self.io_latency_s
        if self.slow_reads and node in self.slow_reads:
            extra, share = self.slow_reads[node]
            if is_slow_read(req.rid, share):
                lat += extra
        return lat

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
        kh = rid % len(self.nodes[holder].cnic_tx)  # = k unless TP merges the two nodes' CNIC links differently
        key = ("cache", holder, node, k, kh)
        links = self._routes.get(key)
        if links is None:
            nd, hd = self.nodes[node], self.nodes[holder]
            path = [nd.dram] if holder == node else [hd.dram, hd.cnic_tx[kh], *self._fab(), nd.cnic_rx[k], nd.dram]
            links = self._add_route(key, path)
        self.net.transfer(cbytes, links, "cache", on_done=one)
        if sbytes > 0:  # the blocks not cached come from storage (a slow shard delays them; DRAM hits are not)
            lat = self._read_latency_s(req, node)
            if lat > 0:
                call_later(env, lat, lambda _e: self._read_flow_part(node, sbytes, one))
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
            if req.lost:  # abandoned (node loss): the bytes landed for nothing
                self._pump_reads(node)
                return
            self.col["bytes_read_pe_snic" if on_pe else "bytes_read_de_snic"][req.rid] += nbytes
            req.parts_left -= 1
            self._pump_reads(node)
            if req.parts_left == 0:
                self.col["read_end_s"][req.rid] = self.env.now
                self._ready(req)
            return
        self.read_q[node] -= req.hit
        if req.lost:
            self._pump_reads(node)
            return
        self.col["read_end_s"][req.rid] = self.env.now
        self.col["bytes_read_pe_snic" if req.side == "pe" else "bytes_read_de_snic"][req.rid] += nbytes
        self._pump_reads(node)
        self._ready(req)

    # ================================================================ PD transfer and write-back
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
