"""P/D ratio advice: which prefill/decode split keeps both sides busy, from a run, checked by runs.

One run of the scenario's own split says how busy each side is (GPU busy time, storage-NIC
reads). Each side's capacity is what it achieved over how busy it was, and scales with its node
count; a closed-loop workload also caps throughput at agents / (round latency + think time). Every
candidate split (P prefill, D decode nodes) is estimated so, and the one with the most rounds/s
per node is advised (it keeps the sides busy in proportion: neither idles while the other binds).
The advised split and its neighbours (one node moved between the roles) are then simulated and
ranked by measured rounds/s per node. The closed-form bound per split (``compute_bound``; prefill
side = prefill compute, CNICs, DRAM and SNIC reads, decode side = decode, CNICs, DRAM, SNIC
writes) is reported alongside.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from dualpath_twin.planning.grid import PlanningError
from dualpath_twin.scenario import Scenario, ScenarioError, apply_overrides

PREFILL_SIDE = ("prefill_compute", "pe_cnic", "pe_dram", "snic_read", "storage_read")
DECODE_SIDE = ("decode", "de_cnic", "de_dram", "snic_write", "storage_write")


class PdCandidate(BaseModel):
    """One P/D split: its bound per side and, if simulated, what it achieved."""

    prefill_nodes: int
    decode_nodes: int
    bound_rounds_per_s: float
    prefill_side_rounds_per_s: float
    decode_side_rounds_per_s: float
    binding_resource: str
    balance: float = Field(description="smaller side rate / larger side rate (1 = both sides equally busy)")
    bound_per_node: float
    estimated_rounds_per_s: float | None = None  # scaled from the run of the scenario's own split
    estimated_per_node: float | None = None
    estimated_balance: float | None = None  # smaller side capacity / larger, as estimated
    measured_rounds_per_s: float | None = None
    measured_per_node: float | None = None
    measured_gpu_busy_prefill: float | None = None
    measured_gpu_busy_decode: float | None = None
    jct_s: float | None = None
    status: str = "not simulated"
    run_id: str | None = None  # the simulated run in the result store (when advise_pd was given a store)

    @property
    def label(self) -> str:
        """``2P1D``-style name."""
        return f"{self.prefill_nodes}P{self.decode_nodes}D"


class PdAdvice(BaseModel):
    """The advised split, every candidate's bounds and the measured neighbours."""

    policy: str
    advised: str
    measured_best: str | None = None
    matches: bool | None = None
    candidates: list[PdCandidate]
    text: str = ""


def parse_splits(text: str) -> list[tuple[int, int]]:
    """``"1:1,2:1,1:2"`` (or ``1P1D,2P1D``) -> [(1, 1), (2, 1), (1, 2)]; PlanningError names the bad item."""
    out = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        norm = item.upper().replace("P", ":").replace("D", "")
        try:
            p, d = (int(x) for x in norm.split(":"))
        except ValueError:
            raise PlanningError(f"--pd {text!r}: {item!r} is not a split; write P:D (e.g. 2:1) or 2P1D") from None
        if p < 1 or d < 1:
            raise PlanningError(f"--pd {text!r}: {item!r} needs at least one prefill and one decode node")
        out.append((p, d))
    if not out:
        raise PlanningError(f"--pd {text!r}: list at least one split, e.g. 1:1,2:1,1:2")
    return out


def _bound_candidate(sc: Scenario, p: int, d: int, policy: str, wl: Any) -> PdCandidate:
    from dualpath_twin.analysis.bounds import compute_bound

    sc_pd = apply_overrides(sc, {"cluster.prefill_nodes": p, "cluster.decode_nodes": d, "policy.name": policy})
    b = compute_bound(sc_pd, wl, policy)
    r = b.rounds_per_s_by_resource
    pre = min((r[k] for k in PREFILL_SIDE if k in r), default=float("inf"))
    dec = min((r[k] for k in DECODE_SIDE if k in r), default=float("inf"))
    bal = min(pre, dec) / max(pre, dec) if max(pre, dec) > 0 else 0.0
    return PdCandidate(
        prefill_nodes=p, decode_nodes=d, bound_rounds_per_s=b.max_rounds_per_s, prefill_side_rounds_per_s=pre,
        decode_side_rounds_per_s=dec, binding_resource=b.binding_resource, balance=bal,
        bound_per_node=b.max_rounds_per_s / (p + d),
    )


def neighbours(p: int, d: int) -> list[tuple[int, int]]:
    """The split itself and the two with one node moved between the roles (same node count)."""
    out = [(p, d)]
    if d > 1:
        out.append((p + 1, d - 1))
    if p > 1:
        out.append((p - 1, d + 1))
    return out


def _side_busy(summary: Any, role: str, snic_eff: float) -> float:
    """How busy a role's nodes were in a run: the larger of GPU busy time and storage-NIC reads."""
    gpu = summary.cnic_utilization.get(f"gpu_busy_{role}", 0.0) or 0.0
    snic = (summary.snic_read_utilization.get(role, 0.0) or 0.0) / max(snic_eff, 1e-9)
    return max(gpu, snic, 1e-9)


def estimate_from_run(result: Any, sc: Scenario, p: int, d: int) -> tuple[float, float, float, float]:
    """Rounds/s a split (p, d) would sustain, scaled from one run of ``sc``'s split.

    Each side's capacity is what it achieved divided by how busy it was, scaled by its node
    count; the agents cap it too (closed loop: each agent has one round in flight, so at most
    agents / (round latency + think time), both as measured). Returns (estimate, prefill side,
    decode side, agents cap) in rounds/s.
    """
    import polars as pl

    s = result.summary
    x = s.rounds_per_s
    c = sc.cluster
    eff = sc.network.snic_efficiency
    cap_p = x / _side_busy(s, "prefill", eff) * p / c.prefill_nodes
    cap_d = x / _side_busy(s, "decode", eff) * d / c.decode_nodes
    cap_a = float("inf")
    rounds = result.rounds.filter(pl.col("done_s").is_not_null())
    if sc.workload.mode == "offline" and rounds.height and s.agents:
        lat = float(rounds.select((pl.col("done_s") - pl.col("arrival_s")).mean()).item())
        cycle = lat + max(s.agents / x - lat, 0.0) if x > 0 else lat  # measured cycle: latency + think time
        cap_a = s.agents / max(cycle, 1e-9)
    elif sc.workload.mode == "online":
        cap_a = x  # the offered load does not grow with the cluster
    return min(cap_p, cap_d, cap_a), cap_p, cap_d, cap_a


def advise_pd(
    sc: Scenario,
    splits: list[tuple[int, int]] | None = None,
    *,
    policy: str | None = None,
    measure: str = "neighbours",
    simulate: Callable[[Scenario, str], Any] | None = None,
    store: Any = None,
) -> PdAdvice:
    """Advise a P/D split for ``sc``'s workload and hardware.

    One run of the scenario's own split measures how busy each side is; every candidate split
    is estimated from it (``estimate_from_run``) and the one with the most rounds/s per node is
    advised (ties: the better balanced sides). ``splits``: the candidates (default: every split
    of the scenario's node count). ``measure``: ``neighbours`` also simulates the advised split
    and its neighbours among the candidates (one node moved between roles), ``all`` every
    candidate, ``none`` nothing more. The closed-form bound of each split is reported alongside.
    ``store``: a result store; every simulated split is saved there and its run id kept on its candidate.
    """
    from dualpath_twin import api

    if measure not in ("neighbours", "all", "none"):
        raise PlanningError(f"--pd-measure {measure!r}: use neighbours, all or none")
    pol = policy or sc.policy.name
    sc = apply_overrides(sc, {"policy.name": pol})
    n = sc.cluster.prefill_nodes + sc.cluster.decode_nodes
    cand_splits = list(dict.fromkeys(splits or [(p, n - p) for p in range(1, n)]))
    if not cand_splits:
        raise PlanningError("P/D advice needs a cluster of at least 2 nodes (one prefill, one decode)")
    wl = api.load_workload(sc)
    run_sim = simulate or (lambda s, p: api.simulate(s, p))
    run_ids: dict[tuple[int, int], str] = {}

    def sim(s: Scenario, p: str) -> Any:
        res = run_sim(s, p)
        if store is not None:
            run_ids[(s.cluster.prefill_nodes, s.cluster.decode_nodes)] = store.save_run(res)
        return res

    base = sim(sc, pol)
    base_split = (sc.cluster.prefill_nodes, sc.cluster.decode_nodes)
    cands: list[PdCandidate] = []
    for p, d in cand_splits:
        try:
            c = _bound_candidate(sc, p, d, pol, wl)
        except ScenarioError as err:
            raise PlanningError(f"split {p}P{d}D: " + "; ".join(err.problems)) from None
        est, cap_p, cap_d, _ = estimate_from_run(base, sc, p, d)
        c.estimated_rounds_per_s, c.estimated_per_node = est, est / (p + d)
        c.estimated_balance = min(cap_p, cap_d) / max(cap_p, cap_d)
        if (p, d) == base_split:
            _record(c, base)
        cands.append(c)
    best = max(cands, key=lambda c: (round(c.estimated_per_node or 0.0, 9), c.estimated_balance or 0.0))
    if measure == "all":
        to_run = cands
    elif measure == "neighbours":
        near = set(neighbours(best.prefill_nodes, best.decode_nodes))
        to_run = [c for c in cands if (c.prefill_nodes, c.decode_nodes) in near]
        if len(to_run) == 1:  # no same-size neighbour among the candidates: the closest ratios instead
            ratio = best.prefill_nodes / best.decode_nodes
            others = sorted((c for c in cands if c is not best), key=lambda c: abs(c.prefill_nodes / c.decode_nodes - ratio))
            to_run += others[:2]
    else:
        to_run = []
    for c in to_run:
        if c.measured_per_node is not None:
            continue
        sc_pd = apply_overrides(sc, {"cluster.prefill_nodes": c.prefill_nodes, "cluster.decode_nodes": c.decode_nodes})
        try:
            _record(c, sim(sc_pd, pol))
        except (ValueError, ScenarioError) as err:
            c.status = f"error: {err}"
    for c in cands:
        c.run_id = run_ids.get((c.prefill_nodes, c.decode_nodes))
    ran = [c for c in cands if c.measured_per_node is not None and c in to_run]
    mbest = max(ran, key=lambda c: c.measured_per_node or 0.0) if ran else None
    text = (
        f"{best.label} is advised under {pol}: estimated {best.estimated_rounds_per_s:.2f} rounds/s "
        f"({best.estimated_per_node:.2f} per node) from the {base_split[0]}P{base_split[1]}D run "
        f"(prefill side {_busy(base, 'prefill', sc):.0%} busy, decode side {_busy(base, 'decode', sc):.0%})."
    )
    if mbest is not None:
        text += (
            f" Measured: {mbest.label} is best at {mbest.measured_per_node:.3f} rounds/s per node"
            + (" (the advice)." if mbest is best else f"; the advice {best.label} measured {best.measured_per_node or 0:.3f}.")
        )
    return PdAdvice(
        policy=pol, advised=best.label, measured_best=mbest.label if mbest else None,
        matches=(mbest is best) if mbest is not None else None, candidates=cands, text=text,
    )


def _busy(result: Any, role: str, sc: Scenario) -> float:
    return _side_busy(result.summary, role, sc.network.snic_efficiency)


def _record(c: PdCandidate, result: Any) -> None:
    s = result.summary
    c.status = s.status
    c.measured_rounds_per_s = s.rounds_per_s
    c.measured_per_node = s.rounds_per_s / (c.prefill_nodes + c.decode_nodes)
    c.measured_gpu_busy_prefill = s.cnic_utilization.get("gpu_busy_prefill")
    c.measured_gpu_busy_decode = s.cnic_utilization.get("gpu_busy_decode")
    c.jct_s = s.jct_s
