"""The policy interface: a loading design sees the cluster through a small read-only view.

A policy answers four questions: which prefill engine (PE) gets a waiting request, which decode
engine (DE), on which side the request's hit KV is read, and how the design moves bytes
(layer-wise streaming or not, DE-side reads allowed, zero-time I/O). Policies never import the
simulation; the simulation implements ``ClusterView``.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple, Protocol


class RequestInfo(NamedTuple):
    """What a policy may know about a waiting request (immutable; a NamedTuple is cheap to create)."""

    rid: int
    prompt_tokens: int
    hit_tokens: int
    gen_tokens: int
    hbm_bytes: float  # KV bytes the request needs in decode HBM (prompt + generated)


class ClusterView(Protocol):
    """Read-only scheduler state the simulation exposes to policies."""

    prefill_nodes: int
    decode_nodes: int
    gpus_per_node: int
    prefill_engines_per_node: int  # gpus_per_node / cluster.prefill_tp_gpus (= gpus_per_node without TP)
    decode_engines_per_node: int  # gpus_per_node / cluster.decode_tp_gpus
    alpha_tokens: float  # tokens a node reads from storage in alpha_s seconds
    beta_tokens: float  # tokens one prefill engine (one GPU without TP) prefills in beta_s seconds
    z_factor: float
    block_tokens: int  # tokens per KV block: a split read is cut at a block boundary
    # nodes lost now (fault node_lost; numbering as read_q_tokens: prefill 0..P-1, decode P..P+D-1), empty
    # normally; a policy must not place work on an engine of these nodes (the world never asks a lost
    # node's leader to fetch, and parks arrivals while a whole role is down)
    down_nodes: frozenset[int]

    def pe_tok(self, pe: int) -> float:
        """Total tokens of the PE's unfinished requests."""

    def pe_seq(self, pe: int) -> int:
        """Number of the PE's unfinished requests."""

    def de_tok(self, de: int) -> float:
        """Total tokens of the DE's assigned and running requests."""

    def de_seq(self, de: int) -> int:
        """Number of the DE's assigned and running requests."""

    def de_node_toks(self) -> list[float]:
        """Total tokens over the DEs of each decode node (index 0..decode_nodes-1), kept incrementally; read-only."""

    def de_free_hbm_bytes(self, de: int) -> float:
        """HBM bytes the DE can still promise to new requests."""

    def pe_toks(self, lo: int, hi: int) -> list[float]:
        """``pe_tok`` of the PEs lo..hi-1 (a new list: one call for a node's engines)."""

    def de_toks(self, lo: int, hi: int) -> list[float]:
        """``de_tok`` of the DEs lo..hi-1 (a new list)."""

    def de_seqs(self, lo: int, hi: int) -> list[int]:
        """``de_seq`` of the DEs lo..hi-1 (a new list)."""

    def de_free_hbm(self, lo: int, hi: int) -> list[float]:
        """``de_free_hbm_bytes`` of the DEs lo..hi-1 (a new list)."""

    def read_q_tokens(self, node: int) -> float:
        """Tokens queued or in flight on the node's storage reads (nodes: prefill 0..P-1, decode P..P+D-1)."""

    def snic_read_bps(self, node: int) -> float:
        """The node's storage NIC read capacity now, bytes/s (lower while degraded, ~0 while down)."""


class Policy:
    """Base class: subclass, set the flags, override the decisions, and ``register`` it."""

    name: str = "base"
    layerwise: bool = True  # stream KV layer by layer, overlapped with compute
    de_side_reads: bool = False  # may read hit KV through the decode node's SNIC
    zero_io: bool = False  # storage reads, H2D/D2H and PD transfers take no time (Oracle)
    fetch_based: bool = False  # PE group leaders fetch from the global queue periodically
    split_reads: bool = False  # one request's hit KV may be read partly on each side (choose_read_split)
    description: str = ""

    def __init__(self) -> None:
        self._rr_pe = 0
        self._rr_de = 0

    # ---------------------------------------------------------------- decisions
    def assign_prefill(self, view: ClusterView, queue: deque[RequestInfo], pe_node: int | None) -> list[tuple[RequestInfo, int]]:
        """Pop requests from the head of ``queue`` and return (request, PE) pairs.

        ``pe_node`` is the fetching PE group leader's node for fetch-based policies, None when
        called on arrival. The default is global round-robin in FIFO order.
        """
        out = []
        g = view.prefill_engines_per_node
        n = view.prefill_nodes * g
        while queue:
            pe, self._rr_pe = _next_up(self._rr_pe, n, g, 0, view.down_nodes)
            out.append((queue.popleft(), pe))
        return out

    def choose_decode(self, view: ClusterView, req: RequestInfo) -> int:
        """Pick the DE for a request (default: round-robin over the DEs of nodes that are up)."""
        g = view.decode_engines_per_node
        de, self._rr_de = _next_up(self._rr_de, view.decode_nodes * g, g,
                                   view.prefill_nodes, view.down_nodes)
        return de

    def choose_read_side(self, view: ClusterView, req: RequestInfo, pe_node: int, de_node: int) -> str:
        """'pe' or 'de': where the request's hit KV is read from storage (default: PE side)."""
        return "pe"

    def choose_read_split(self, view: ClusterView, req: RequestInfo, pe_node: int, de_node: int) -> int:
        """Hit tokens read through the PE's SNIC (the rest through the DE's); only asked when ``split_reads``.

        Return ``req.hit_tokens`` for a whole PE-side read, 0 for a whole DE-side read, anything
        in between (a multiple of ``view.block_tokens``) for a split read.
        """
        return req.hit_tokens if self.choose_read_side(view, req, pe_node, de_node) == "pe" else 0


def _next_up(counter: int, n: int, g: int, node_offset: int, down: frozenset[int]) -> tuple[int, int]:
    """Round-robin over ``n`` engines (``g`` per node, nodes numbered from ``node_offset``), skipping lost nodes.

    Returns (engine, the advanced counter); with every node down it returns the next engine anyway.
    """
    e = counter % n
    counter += 1
    if down:
        for _ in range(n):
            if node_offset + e // g not in down:
                break
            e = counter % n
            counter += 1
    return e, counter


_REGISTRY: dict[str, type[Policy]] = {}


def register(cls: type[Policy]) -> type[Policy]:
    """Class decorator adding a policy to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def get_policy(name: str) -> Policy:
    """Instantiate a registered policy by name."""
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"policy.name = {name!r}: unknown policy{hint} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]()


def policy_names() -> list[str]:
    """Names of all registered policies."""
    return sorted(_REGISTRY)
