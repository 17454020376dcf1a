"""Planning-page helpers without Streamlit: axis catalogue and presets, human column names, point text, best point, decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from dualpath_twin.analysis.verdict import resource_label

# AXES and axis_label are re-exported: the catalogue lives in dualpath_twin.labels (planning's figures use it too)
from dualpath_twin.labels import AXES as AXES
from dualpath_twin.labels import axis_label as axis_label
from dualpath_twin.scenario import Scenario
from dualpath_twin.ui.fields import get_value

CHOICES: dict[str, list[Any]] = {"model.kv_format": ["fp8", "bf16"]}

COLUMNS: dict[str, str] = {
    "policy": "design",
    "status": "status",
    "reason": "note",
    "prompt_tokens_per_s": "prompt tokens/s",
    "generated_tokens_per_s": "generated tokens/s",
    "jct_s": "JCT (s)",
    "ttft_p90_s": "TTFT p90 (s)",
    "ttft_p99_s": "TTFT p99 (s)",
    "tpot_p90_ms": "TPOT p90 (ms)",
    "slo_attainment_pct": "SLO attainment (%)",
    "steady_state": "steady",
    "bottleneck": "binding resource",
    "capacity_aps": "capacity (agents/s)",
    "cost_per_hour": "$/hour",
    "usd_per_hour": "$/hour",
    "pareto": "Pareto",
    "meets_slo": "meets SLO",
    "path": "parameter",
    "label": "parameter",
    "base_value": "base value",
    "low_value": "low value",
    "high_value": "high value",
    "metric_low": "metric at low",
    "metric_high": "metric at high",
    "swing": "swing",
    "fails_at_aps": "fails at (agents/s)",
    "converged": "converged",
    "tolerance": "tolerance",
    "evaluations": "runs",
    "window_s": "arrival window (s)",
    "ttft_limit_s": "TTFT limit (s)",
    "tpot_limit_ms": "TPOT limit (ms)",
    "aps": "rate (agents/s)",
    "meets": "meets SLO",
    "capacity": "capacity point",
    "ttft_prev_window_s": "TTFT previous window (s)",
    "ttft_last_window_s": "TTFT last window (s)",
    "summary_steady_state": "steady",
    "rounds": "rounds",
    "stopped_early": "stopped early",
    "population": "rounds counted",
    "window_rounds": "rounds in the measurement window",
    "population_growth": "active-agent growth, last window",
    "population_noise": "growth by chance alone",
    "ttft_rise_noise_s": "TTFT rise by chance alone (s)",
    "window_end_s": "windows ended at (s, measured warm-up)",
    "horizon_window_s": "horizon check window (s)",
}


def presets(sc: Scenario, path: str) -> list[Any]:
    """Values offered for an axis around the scenario's current value (node counts 1..8, bandwidths 0.5x/1x/2x...)."""
    if path in CHOICES:
        return list(CHOICES[path])
    cur = get_value(sc, path)
    if isinstance(cur, bool) or cur is None:
        return [cur]
    if path.endswith("_tp_gpus"):  # tensor parallelism: the divisors of the GPUs per node
        g = sc.cluster.gpus_per_node
        return sorted({d for d in range(1, g + 1) if g % d == 0} | {int(cur)})
    if path.endswith("_nodes") or path.endswith("_per_node"):
        return sorted({*range(1, 9), int(cur)})
    if isinstance(cur, int):
        return sorted({max(1, int(round(cur * f))) for f in (0.25, 0.5, 1, 2, 4)})
    return sorted({round(cur * f, 6) for f in (0.25, 0.5, 1.0, 2.0, 4.0)})


def default_values(sc: Scenario, path: str) -> list[Any]:
    """The preset values selected when an axis is picked: the current value and its neighbours."""
    if path in CHOICES:
        return list(CHOICES[path])
    cur = get_value(sc, path)
    if path.endswith("_nodes") or path.endswith("_per_node"):
        return sorted({max(1, int(cur) - 1), int(cur), int(cur) + 1})
    if isinstance(cur, int | float) and not isinstance(cur, bool):
        vals = presets(sc, path)
        i = vals.index(cur if isinstance(cur, int) else round(cur, 6))
        return vals[max(0, i - 1): i + 2]
    return [cur]


def parse_value(path: str, text: str, sc: Scenario) -> Any:
    """A typed axis value as the field's type (int for int fields, else float, strings for choices)."""
    if path in CHOICES:
        return text.strip()
    cur = get_value(sc, path)
    v = float(text)
    return int(v) if isinstance(cur, int) and v.is_integer() else v


def describe_point(point: dict[str, Any], policy: str | None = None) -> str:
    """'2P4D, SNIC 400 Gb/s (dualpath)' style text of a grid point."""
    p = dict(point)
    parts = []
    if "cluster.prefill_nodes" in p or "cluster.decode_nodes" in p:
        pn, dn = p.pop("cluster.prefill_nodes", None), p.pop("cluster.decode_nodes", None)
        parts.append(f"{pn if pn is not None else '?'}P{dn if dn is not None else '?'}D" if pn is not None and dn is not None
                     else (_count(pn, "prefill node") if pn is not None else _count(dn, "decode node")))
    for k, v in p.items():
        if k == "policy.name":
            policy = policy or v
            continue
        lab = axis_label(k)
        if "(" in lab:
            name, unit = lab.split(" (", 1)
            parts.append(f"{name} {_num(v)} {unit.rstrip(')')}")
        else:
            parts.append(f"{lab} {_num(v)}")
    text = ", ".join(parts) or "the scenario as is"
    return f"{text} ({policy})" if policy else text


def _count(n: Any, noun: str) -> str:
    """'1 decode node', '2 decode nodes'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def human_frame(df: pl.DataFrame, axes: list[str] | None = None, drop_empty: bool = True) -> pl.DataFrame:
    """The frame with TPOT in ms, attainment in %, and human headings (axes and metrics); empty columns dropped."""
    if "tpot_p90_s" in df.columns:
        df = df.with_columns((pl.col("tpot_p90_s") * 1000).alias("tpot_p90_ms")).drop("tpot_p90_s")
    if "slo_attainment" in df.columns:
        df = df.with_columns((pl.col("slo_attainment") * 100).alias("slo_attainment_pct")).drop("slo_attainment")
    if "bottleneck" in df.columns and df["bottleneck"].dtype == pl.String:
        df = df.with_columns(pl.col("bottleneck").map_elements(resource_label, return_dtype=pl.String))
    if drop_empty:
        df = df.select([c for c in df.columns if df[c].null_count() < df.height or c in (axes or [])])
    ren = {c: axis_label(c) if c in (axes or []) or "." in c else COLUMNS.get(c, c.replace("_", " ")) for c in df.columns}
    seen: set[str] = set()
    keep = []
    for c in df.columns:
        if ren[c] not in seen:
            seen.add(ren[c])
            keep.append(c)
    return df.select(keep).rename({c: ren[c] for c in keep})


def grid_points(grid: dict[str, list[Any]]) -> int:
    """Number of points of a grid (the product of its axes' value counts), without expanding it."""
    n = 1
    for vals in grid.values():
        n *= len(vals)
    return n


def sizing_scenarios(sc: Scenario, grid: dict[str, list[Any]], policy: str, target_aps: float,
                     criterion: Any = None) -> list[Scenario]:
    """The scenario of every valid sizing point online at the target rate, as ``planning.sizing.size`` runs them."""
    from dualpath_twin.planning.sizing import sizing_points

    return [p.online for p in sizing_points(sc, target_aps, grid, policy, criterion) if p.online is not None]


def meets_slo(summary: Any, sc: Scenario, min_attainment: float | None = None) -> tuple[bool, str]:
    """Whether a run meets the scenario's SLO (TTFT/TPOT p90 limits, optional attainment), and why not."""
    if summary is None:
        return False, "no result"
    why = []
    if summary.ttft_s.p90 > sc.slo.ttft_s:
        why.append(f"TTFT p90 {summary.ttft_s.p90:.3g} s > {sc.slo.ttft_s:g} s")
    if summary.tpot_s.p90 * 1000 > sc.slo.tpot_ms:
        why.append(f"TPOT p90 {summary.tpot_s.p90 * 1000:.3g} ms > {sc.slo.tpot_ms:g} ms")
    if min_attainment and summary.slo_attainment is not None and summary.slo_attainment < min_attainment:
        why.append(f"SLO attainment {summary.slo_attainment:.0%} < {min_attainment:.0%}")
    return not why, "; ".join(why)


@dataclass
class Choice:
    """One configuration put forward by the decision view."""

    design: str
    source: str  # sweep | sizing
    usd_per_hour: float | None
    meets: bool
    why: str
    run_id: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def point_cost(sc: Scenario, point: dict[str, Any], policy: str, summary: Any = None) -> float | None:
    """$/hour of the point's cluster (economics.point_economics over the cost table), None when it has no price."""
    from dualpath_twin.economics import point_economics

    e = point_economics(sc, {**point, "policy.name": policy}, summary)
    return e.usd_per_hour if e is not None else None


RANKS: dict[str, str] = {
    "value": "most per dollar (prompt tokens/s or capacity per $/hour)",
    "throughput": "highest prompt tokens/s (capacity sweeps: capacity)",
}
"""How the points that meet the SLO are ordered: value for money (the default a buyer wants) or raw throughput."""


def sweep_choices(res: Any, sc: Scenario, min_attainment: float | None = None, rank: str = "value") -> list[Choice]:
    """Every finished sweep point as a Choice, best first: those meeting the SLO, then by ``rank`` (see RANKS).

    ``value`` orders by prompt tokens per dollar (capacity sweeps: agents/s per $/hour); points without a
    price come after the priced ones, by throughput.
    """
    out = []
    for p in res.points:
        s = p.summary
        if res.objective == "capacity":
            if p.capacity is None:
                continue
            cap = p.capacity.capacity_aps
            ok, why = cap > 0, (f"capacity {cap:.4g} agents/s" if cap > 0 else "no rate meets the SLO")
            metrics = {"capacity (agents/s)": cap}
        else:
            if s is None:
                continue
            ok, why_not = meets_slo(s, sc, min_attainment)
            why = (f"{s.prompt_tokens_per_s:,.0f} prompt tokens/s, TTFT p90 {s.ttft_s.p90:.3g} s, "
                   f"TPOT p90 {s.tpot_s.p90 * 1000:.3g} ms") + ("" if ok else f"; misses: {why_not}")
            metrics = {"prompt tokens/s": s.prompt_tokens_per_s, "TTFT p90 (s)": s.ttft_s.p90,
                       "TPOT p90 (ms)": s.tpot_s.p90 * 1000}
        if s is not None and s.bottleneck:
            why += f"; binding resource: {resource_label(s.bottleneck)}"
        usd = point_cost(sc, p.point, p.policy, s)
        main = next(iter(metrics.values())) or 0.0
        if usd:
            if res.objective == "capacity":
                metrics["agents/s per $/hour"] = main / usd
            else:
                metrics["prompt tokens per $"] = main * 3600.0 / usd
        out.append(Choice(describe_point(p.point, p.policy), "sweep", usd, ok, why, p.run_id, metrics))

    def order(c: Choice) -> tuple:
        main = next(iter(c.metrics.values()), 0.0) or 0.0
        if rank == "value":
            per_usd = c.metrics.get("prompt tokens per $", c.metrics.get("agents/s per $/hour"))
            return (not c.meets, per_usd is None, -(per_usd or 0.0), -main)
        return (not c.meets, -main)

    out.sort(key=order)
    return out


def sizing_choices(res: Any) -> list[Choice]:
    """Sizing candidates that were evaluated as Choices, cheapest meeting the target first."""
    out = []
    for c in res.candidates:
        if c.status not in ("meets", "fails"):
            continue
        why = c.reason or c.status
        m: dict[str, Any] = {}
        if c.at_target is not None:
            m = {"TTFT p90 (s)": c.at_target.ttft_p90_s,
                 "TPOT p90 (ms)": None if c.at_target.tpot_p90_s is None else c.at_target.tpot_p90_s * 1000}
        if c.capacity_aps is not None:
            m["capacity (agents/s)"] = c.capacity_aps
        out.append(Choice(describe_point(c.point, res.policy), "sizing", c.cost_per_hour, c.status == "meets",
                          f"{why} at {res.target_aps:g} agents/s", None, m))
    out.sort(key=lambda c: (not c.meets, c.usd_per_hour if c.usd_per_hour is not None else float("inf")))
    return out


def decide(choices: list[Choice], budget_usd_h: float | None) -> tuple[Choice | None, list[Choice], str]:
    """The best choice meeting the SLO within the budget, the runners-up, and a one-line verdict (or what came closest)."""
    def within(c: Choice) -> bool:
        return budget_usd_h is None or (c.usd_per_hour is not None and c.usd_per_hour <= budget_usd_h)

    ok = [c for c in choices if c.meets and within(c)]
    if ok:
        b = ok[0]
        cost = f" at ${b.usd_per_hour:,.2f}/hour" if b.usd_per_hour is not None else ""
        budget = f" within ${budget_usd_h:,.2f}/hour" if budget_usd_h is not None else ""
        return b, ok[1:3], f"Best configuration meeting the SLO{budget}: {b.design}{cost} ({b.source}); {b.why}."
    if not choices:
        return None, [], "No sweep or sizing result yet: run one on the Sweep or Sizing tab."
    meeting = [c for c in choices if c.meets]
    if meeting:
        cheapest = min(meeting, key=lambda c: c.usd_per_hour if c.usd_per_hour is not None else float("inf"))
        cost = f"${cheapest.usd_per_hour:,.2f}/hour" if cheapest.usd_per_hour is not None else "an unknown cost"
        return None, [cheapest], (f"Nothing meets the SLO within ${budget_usd_h:,.2f}/hour; the cheapest that meets it is "
                                  f"{cheapest.design} at {cost}.")
    closest = choices[0]
    return None, [closest], f"No configuration meets the SLO; closest: {closest.design} ({closest.why})."
