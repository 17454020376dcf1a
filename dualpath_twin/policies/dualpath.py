"""DualPath: both read paths and the two-level scheduler of the DualPath paper (arXiv 2602.21548)."""

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
        """Give FIFO heads to this group's engines: each to the engine with the smallest tok_e, skipping overloaded ones.

        The paper orders engines by (short-read-queue class, tok_e). The class is a property of the
        node (its read queue), the same for every engine of the fetching node, so inside one fetch
        the order is by tok_e alone (ties: the lowest engine index).
        """
        if pe_node is None:
            return []
        g = view.prefill_engines_per_node
        lo = pe_node * g
        beta = view.beta_tokens
        toks = view.pe_toks(lo, lo + g)
        out: list[tuple[RequestInfo, int]] = []
        while queue:
            best = -1
            best_tok = 0.0
            for i, tok in enumerate(toks):
                if tok <= beta and (best < 0 or tok < best_tok):
                    best, best_tok = i, tok
            if best < 0:
                break  # every engine is overloaded
            req = queue.popleft()
            toks[best] += req.prompt_tokens
            out.append((req, lo + best))
        return out

    def choose_decode(self, view: ClusterView, req: RequestInfo) -> int:
        """DE group with the smallest total tok_e; inside it, stay under Z (fewest requests), else smallest tok_e."""
        g = view.decode_engines_per_node
        toks = view.de_node_toks()
        if view.down_nodes:  # lost decode nodes take nothing
            p = view.prefill_nodes
            up = [i for i in range(len(toks)) if p + i not in view.down_nodes]
            best_tok = min(toks[i] for i in up)
            lo = next(i for i in up if toks[i] == best_tok) * g
        else:
            best_tok = min(toks)
            lo = toks.index(best_tok) * g  # the first node with the smallest total, as a scan would pick
        need = req.prompt_tokens + req.gen_tokens
        z = view.z_factor * (need + (best_tok or 0.0)) / g
        free = view.de_free_hbm(lo, lo + g)
        etoks = view.de_toks(lo, lo + g)
        seqs = view.de_seqs(lo, lo + g)
        cands = [i for i in range(g) if free[i] >= req.hbm_bytes] or range(g)
        best = -1
        best_key: tuple = ()
        for i in cands:  # under Z: fewest requests, then fewest tokens, then lowest index
            tok = etoks[i]
            if tok + need <= z:
                key = (seqs[i], tok)
                if best < 0 or key < best_key:
                    best, best_key = i, key
        if best >= 0:
            return lo + best
        for i in cands:  # nobody under Z: fewest tokens, then lowest index
            tok = etoks[i]
            if best < 0 or tok < best_key[0]:
                best, best_key = i, (tok,)
        return lo + best

    def choose_read_side(self, view: ClusterView, req: RequestInfo, pe_node: int, de_node: int) -> str:
        """The side whose node has the shorter read queue; ties go to the PE.

        When the two SNICs run at different rates (a degraded or downed SNIC, see faults), the
        side whose queue plus this read finishes first, at its SNIC's rate: a dead SNIC gets nothing.
        """
        q_pe, q_de = view.read_q_tokens(pe_node), view.read_q_tokens(de_node)
        r_pe, r_de = view.snic_read_bps(pe_node), view.snic_read_bps(de_node)
        if r_pe == r_de:
            return "de" if q_de < q_pe else "pe"
        h = req.hit_tokens
        return "de" if (q_de + h) * r_pe < (q_pe + h) * r_de else "pe"
