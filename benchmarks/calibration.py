"""Check the cost model against independent public figures (nothing here is fitted).

Run: .venv/bin/python benchmarks/calibration.py [--markdown]

Prints, from the default [compute] constants (each with its source in docs/model.md):
1. DeepSeek's production prefill throughput per H800 node (V3/R1 inference system overview,
   Feb 2025: ~73.7K input tokens/s per node, cache hits included, 56.3% of input tokens hit);
2. DeepSeek's production decode throughput (~14.8K output tokens/s per node, 20-22 tokens/s per
   user) at the batch where users see 21 tokens/s;
3. the published prefill batch curve (relative token throughput 1.0 / 2.58 / 2.92 / 3.01 at batch
   1 / 5 / 10 / 20, requests of 30K context with ~300 newly computed tokens), with the HBM cap on
   the batch of a non-layer-wise engine applied;
and, where a figure is missed, the size of the term that would be needed to meet it.
"""

from __future__ import annotations

import argparse

from dualpath_twin.analysis.microbench import decode_point, prefill_point
from dualpath_twin.scenario import Scenario
from dualpath_twin.sim.cost import CostModel, build_cost_model

# Public figures
PREFILL_TOK_S_NODE = 73_700  # input tokens/s per H800 node, cache hits included
HIT_RATIO = 0.563
DECODE_TOK_S_NODE = 14_800
USER_TOK_S = (20.0, 22.0)
BATCH_CURVE = {1: 1.0, 5: 2.58, 10: 2.92, 20: 3.01}
CURVE_CONTEXT, CURVE_NEW = 30_000, 300
# Assumptions (not published): production mean prompt, EP group sizes (DeepSeek: prefill EP32, decode EP144)
MEAN_PROMPT = 6_000
PREFILL_EP_NODES = 4
DECODE_EP_NODES = 18


def production_scenario(**compute: object) -> Scenario:
    """DeepSeek-V3 on H800 with the production EP groups (4 prefill nodes, 18 decode nodes)."""
    return Scenario.model_validate({
        "cluster": {"prefill_nodes": PREFILL_EP_NODES, "decode_nodes": DECODE_EP_NODES},
        "model": {"name": "DeepSeek-V3", "kv_format": "bf16"},
        "compute": compute,
    })


def prefill_production(sc: Scenario) -> tuple[int, float, dict[str, float]]:
    """(requests per GPU, input tokens/s per node, breakdown) for a production-mix prefill batch."""
    cost = build_cost_model(sc)
    hit = int(MEAN_PROMPT * HIT_RATIO)
    miss = MEAN_PROMPT - hit
    quota = sc.policy.compute_quota_ms / 1000
    b = max(1, int(quota / cost.attention_time_s(miss, hit)))
    pt = prefill_point(sc, b, MEAN_PROMPT, miss, cost)
    return b, pt.input_tokens_per_s_node, pt.breakdown_s


def decode_at_user_speed(sc: Scenario, user_tok_s: float = 21.0) -> tuple[int, float, float]:
    """Largest batch per GPU whose users still see ``user_tok_s``: (batch, step s, tokens/s per node)."""
    cost = build_cost_model(sc)
    best = (1, *_dec(sc, cost, 1))
    for bs in range(1, 1024):
        step, node = _dec(sc, cost, bs)
        if 1 / step < user_tok_s:
            break
        best = (bs, step, node)
    return best


def _dec(sc: Scenario, cost: CostModel, bs: int) -> tuple[float, float]:
    d = decode_point(sc, bs, MEAN_PROMPT, cost)
    return d.step_s, d.tokens_per_s_node


def hbm_cap_requests(cost: CostModel, context_tokens: int) -> int:
    """Requests whose whole KV fits in one PE GPU's free HBM at once (non-layer-wise engines)."""
    return max(1, int(cost.hbm_kv_prefill_bytes // (context_tokens * cost.kv_bytes_per_token)))


def batch_curve(sc: Scenario, extra_step_s: float = 0.0) -> list[tuple[int, float, float]]:
    """(batch, relative throughput, step s) for the published curve's requests, HBM cap applied."""
    cost = build_cost_model(sc)
    cap = hbm_cap_requests(cost, CURVE_CONTEXT)
    rows = []
    base = None
    for b in BATCH_CURVE:
        t = 0.0
        left = b
        while left > 0:
            n = min(left, cap)
            t += prefill_point(sc, n, CURVE_CONTEXT, CURVE_NEW, cost).step_s + extra_step_s
            left -= n
        thr = b / t
        base = base or thr
        rows.append((b, thr / base, t))
    return rows


def missing_fixed_step_s(sc: Scenario) -> float:
    """Fixed time per step that, added to the twin's, best reproduces the curve (least squares)."""
    lo, hi = 0.0, 5.0

    def err(x: float) -> float:
        return sum((rel / BATCH_CURVE[b] - 1) ** 2 for b, rel, _ in batch_curve(sc, x))

    for _ in range(80):  # golden-section search on a unimodal error
        a = hi - (hi - lo) / 1.618
        c = lo + (hi - lo) / 1.618
        if err(a) < err(c):
            hi = c
        else:
            lo = a
    return (lo + hi) / 2


def _pct(x: float, ref: float) -> str:
    return f"{x / ref - 1:+.1%}"


def main() -> None:
    """Print the three checks (default constants and the all-to-all overlap variants)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables (docs/calibration.md)")
    args = ap.parse_args()
    md = args.markdown

    print("## 1. Production prefill (DeepSeek-V3, EP32, mean prompt 6,000 tokens assumed, 56.3% hits)")
    if md:
        print("| all-to-all | requests/GPU | twin input tok/s/node | published | residual | step breakdown (ms) |")
        print("|---|---|---|---|---|---|")
    for label, ov in (("added (default)", False), ("overlapped", True)):
        b, tok, parts = prefill_production(production_scenario(prefill_ep_overlap=ov))
        br = ", ".join(f"{k} {v * 1e3:.0f}" for k, v in parts.items() if v > 0)
        if md:
            print(f"| {label} | {b} | {tok:,.0f} | {PREFILL_TOK_S_NODE:,} | {_pct(tok, PREFILL_TOK_S_NODE)} | {br} |")
        else:
            print(f"  {label:22s} batch {b}/GPU: {tok:,.0f} input tok/s/node vs {PREFILL_TOK_S_NODE:,} ({_pct(tok, PREFILL_TOK_S_NODE)}); {br}")

    print("\n## 2. Production decode (DeepSeek-V3, EP144, context 6,000) at 21 tokens/s per user")
    if md:
        print("| all-to-all | batch/GPU | step (ms) | twin tok/s/node | published | residual |")
        print("|---|---|---|---|---|---|")
    for label, ov in (("added (default)", False), ("overlapped", True)):
        bs, step, node = decode_at_user_speed(production_scenario(decode_ep_overlap=ov))
        if md:
            print(f"| {label} | {bs} | {step * 1e3:.1f} | {node:,.0f} | {DECODE_TOK_S_NODE:,} | {_pct(node, DECODE_TOK_S_NODE)} |")
        else:
            print(f"  {label:22s} batch {bs}/GPU, step {step * 1e3:.1f} ms: {node:,.0f} tok/s/node vs {DECODE_TOK_S_NODE:,} ({_pct(node, DECODE_TOK_S_NODE)})")

    print("\n## 3. Prefill batch curve (30K context, 300 new tokens per request, HBM cap of a non-layer-wise engine)")
    for name, p, d in (("DeepSeek-V3.2", 2, 4), ("DS 27B", 1, 1)):
        sc = Scenario.model_validate({"cluster": {"prefill_nodes": p, "decode_nodes": d}, "model": {"name": name}})
        cost = build_cost_model(sc)
        cap = hbm_cap_requests(cost, CURVE_CONTEXT)
        rows = batch_curve(sc)
        miss_s = missing_fixed_step_s(sc)
        fitted = batch_curve(sc, miss_s)
        fixed_now = cost.layers * cost.layer_overhead_s + cost.step_overhead_s + cost.moe_layers * cost.prefill_sync_s
        if md:
            print(f"\n{name}, {p}P (EP{p * 8}), HBM holds {cap} such requests per GPU:\n")
            print("| batch | twin | published | residual | step (ms) | with +%.0f ms per step |" % (miss_s * 1e3))
            print("|---|---|---|---|---|---|")
            for (b, rel, t), (_, rel2, _) in zip(rows, fitted, strict=True):
                print(f"| {b} | {rel:.2f} | {BATCH_CURVE[b]:.2f} | {_pct(rel, BATCH_CURVE[b])} | {t * 1e3:.0f} | {rel2:.2f} |")
        else:
            print(f"  {name} {p}P (EP{p * 8}); HBM cap {cap} requests/GPU")
            for (b, rel, t), (_, rel2, _) in zip(rows, fitted, strict=True):
                print(f"    b={b:>2}: twin {rel:.2f} vs {BATCH_CURVE[b]:.2f} ({_pct(rel, BATCH_CURVE[b])}), step {t * 1e3:.0f} ms;"
                      f" with +{miss_s * 1e3:.0f} ms/step: {rel2:.2f}")
        one = prefill_point(sc, 1, CURVE_CONTEXT, CURVE_NEW, cost)
        print(f"  missing: a fixed {miss_s * 1e3:.0f} ms per step (the twin's fixed terms: {fixed_now * 1e3:.1f} ms of overheads and EP sync"
              f" + {one.breakdown_s.get('routed_experts', 0) * 1e3:.1f} ms of expert weights; one request's step {one.step_s * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
