"""One in-flight round (request) of the simulation: its sizes, placement and progress."""

from __future__ import annotations

from dualpath_twin.policies.base import RequestInfo


class Req:
    """An in-flight round."""

    __slots__ = (
        "rid", "traj", "prompt", "hit", "gen", "miss", "computed", "pe", "de", "pe_node", "de_node",
        "side", "info", "loaded", "dram_pe_bytes", "dram_de_bytes", "tokens_left", "ctx", "hbm_bytes",
        "de_hbm_reserved", "pd_reserved", "j0", "pd_state", "hit_pe", "hit_de", "parts_left", "lost", "at_de",
        "pd_claim",
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
        # node loss (faults): this attempt was abandoned (its callbacks drop it), it reached the decode side
        self.lost = False
        self.at_de = False
        # decode-space FIFO (policy.decode_space_order = "fifo"): the pending reservation of its PD destination
        self.pd_claim = None
