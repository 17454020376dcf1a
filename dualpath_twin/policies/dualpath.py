"""DualPath: both read paths and the two-level scheduler of SYSTEM.md §5."""

from __future__ import annotations

from collections import deque

from dualpath_twin.policies.base import ClusterView, Policy, RequestInfo, register


@register
class DualPathPolicy(Policy):
    """Token-balanced PE/DE placement, read on the side with the shorter storage read queue."""

    name = "dualpath"
    layerwise = True
    de_side_reads = True
    fetch_based = True
    description = "PE- or DE-side reads (shorter read queue), layer-wise, token-balanced two-level scheduler"

    def assign_prefill(self, view: ClusterView, queue: deque[RequestInfo], pe_node: int | None) -> list[tuple[RequestInfo, int]]:
        """Give FIFO heads to this group's engines: short-read-queue class first, then smallest tok_e."""
        if pe_node is None:
            return []
        g = view.gpus_per_node
        engines = range(pe_node * g, (pe_node + 1) * g)
        short = view.read_q_tokens(pe_node) <= view.alpha_tokens
        added = {e: 0.0 for e in engines}
        out: list[tuple[RequestInfo, int]] = []
        while queue:
            best = None
            best_key = None
            for e in engines:
                tok = view.pe_tok(e) + added[e]
                if tok > view.beta_tokens:
                    continue  # overloaded
                key = (0 if short else 1, tok, e)
                if best_key is None or key < best_key:
                    best_key, best = key, e
            if best is None:
                break
            req = queue.popleft()
            added[best] += req.prompt_tokens
            out.append((req, best))
        return out

    def choose_decode(self, view: ClusterView, req: RequestInfo) -> int:
        """DE group with the smallest total tok_e; inside it, stay under Z (fewest requests), else smallest tok_e."""
        g = view.gpus_per_node
        toks = view.de_node_toks()
        best_tok = min(toks)
        best_node = toks.index(best_tok)  # the first node with the smallest total, as a scan would pick
        engines = list(range(best_node * g, (best_node + 1) * g))
        z = view.z_factor * (req.prompt_tokens + req.gen_tokens + (best_tok or 0.0)) / len(engines)
        room = [e for e in engines if view.de_free_hbm_bytes(e) >= req.hbm_bytes]
        cands = room or engines
        under = [e for e in cands if view.de_tok(e) + req.prompt_tokens + req.gen_tokens <= z]
        if under:
            return min(under, key=lambda e: (view.de_seq(e), view.de_tok(e), e))
        return min(cands, key=lambda e: (view.de_tok(e), e))

    def choose_read_side(self, view: ClusterView, req: RequestInfo, pe_node: int, de_node: int) -> str:
        """The side whose node has the shorter read queue; ties go to the PE."""
        return "de" if view.read_q_tokens(de_node) < view.read_q_tokens(pe_node) else "pe"
