"""What differs between runs: a scenario diff for run listings, and whether a ratio between runs is like-for-like.

Pure functions over scenario TOML texts (the store keeps each run's scenario), used by
``dualpath-twin runs``, the dashboard's history and Compare, and reports:

- :func:`scenario_diff` turns N runs' scenarios into the columns that tell them apart (topology
  xPyD, NICs, model, KV format, workload, agents, seed, any other field that varies; the design
  always), so the 12 rows of a 12-point sweep are distinguishable;
- :func:`comparison_verdict` says whether runs share one scenario apart from the design (then
  "dualpath vs basic" throughput ratios mean what they say) or lists the fields that differ.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Any

IGNORED = ("name", "description", "policy.name")
"""Paths that never make two runs' scenarios different (labels; the design is its own column)."""

DESIGN_PATH = "policy.name"

GROUPS: dict[str, tuple[str, ...]] = {
    "topology": (
        "cluster.prefill_nodes", "cluster.decode_nodes", "cluster.gpus_per_node", "cluster.gpu", "cluster.prefill_tp_gpus",
        "cluster.decode_tp_gpus",
    ),
    "NICs": ("network.snic_gbps", "network.snics_per_node", "network.cnic_gbps", "network.cnics_per_node"),
    "model": ("model.name", "model.overrides"),
    "kv format": ("model.kv_format",),
    "workload": (
        "workload.kind", "workload.dataset", "workload.mode", "workload.trace_path", "workload.max_context_tokens",
        "workload.arrival_rate_aps",
    ),
    "agents": ("workload.agents",),
    "seed": ("run.seed",),
}  # fmt: skip
"""Diff columns and the scenario paths each one summarises, in display order."""


def flatten_toml(text: str) -> dict[str, Any]:
    """A scenario TOML as {dotted.path: value} (tables walked, lists and inline dicts kept whole)."""
    try:
        data = tomllib.loads(text or "")
    except tomllib.TOMLDecodeError:
        return {}
    out: dict[str, Any] = {}

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, dict) and prefix not in ("model.overrides",):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else k, x)
        else:
            out[prefix] = v

    walk("", data)
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict):
        return ",".join(f"{k}={_fmt(x)}" for k, x in sorted(v.items())) or "-"
    return str(v)


def _group_text(name: str, flat: dict[str, Any]) -> str:
    """One cell: '2P4D x8 H800', '400G SNIC x1, 400G CNIC x8', 'paper-64k offline (ctx<=16384)', ..."""
    g = flat.get
    if name == "topology":
        text = f"{g('cluster.prefill_nodes', '?')}P{g('cluster.decode_nodes', '?')}D x{g('cluster.gpus_per_node', '?')} {g('cluster.gpu', '?')}"
        tp_p, tp_d = g("cluster.prefill_tp_gpus", 1), g("cluster.decode_tp_gpus", 1)
        return text + (f" TP {tp_p}/{tp_d}" if (tp_p, tp_d) != (1, 1) else "")  # tensor parallelism, prefill/decode
    if name == "NICs":
        return (
            f"SNIC {_fmt(g('network.snic_gbps'))}G x{_fmt(g('network.snics_per_node'))},"
            f" CNIC {_fmt(g('network.cnic_gbps'))}G x{_fmt(g('network.cnics_per_node'))}"
        )
    if name == "model":
        ov = g("model.overrides")
        return f"{_fmt(g('model.name'))}" + (f" ({_fmt(ov)})" if ov else "")
    if name == "kv format":
        return _fmt(g("model.kv_format")) if g("model.kv_format") is not None else "default"
    if name == "workload":
        if g("workload.kind") == "trace":
            src = str(g("workload.trace_path") or "trace").rsplit("/", 1)[-1]
        else:
            src = _fmt(g("workload.dataset"))
        mode = _fmt(g("workload.mode"))
        extra = []
        if g("workload.max_context_tokens") is not None:
            extra.append(f"ctx<={_fmt(g('workload.max_context_tokens'))}")
        if mode == "online" and g("workload.arrival_rate_aps") is not None:
            extra.append(f"{_fmt(g('workload.arrival_rate_aps'))} agents/s")
        return f"{src} {mode}" + (f" ({', '.join(extra)})" if extra else "")
    if name == "agents":
        v = g("workload.agents")
        return f"{v:,}" if isinstance(v, int) else _fmt(v)
    if name == "seed":
        return _fmt(g("run.seed"))
    raise KeyError(name)


def _normalised(flats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill paths missing from some TOMLs with the schema default, so an omitted field equals its default."""
    keys = set().union(*flats) if flats else set()
    missing = [k for k in keys if any(k not in f for f in flats)]
    if not missing:
        return flats
    try:
        from dualpath_twin.scenario import Scenario

        defaults = flatten_toml(Scenario().to_toml())
    except Exception:  # noqa: BLE001 - fall back to the raw texts
        defaults = {}
    return [{**{k: defaults.get(k) for k in missing}, **f} for f in flats]


def differing_paths(tomls: list[str]) -> list[str]:
    """Dotted scenario paths whose value differs among ``tomls`` (labels and the design excluded), sorted."""
    flats = _normalised([flatten_toml(t) for t in tomls])
    keys = sorted(set().union(*flats)) if flats else []
    return [k for k in keys if k not in IGNORED and len({repr(f.get(k)) for f in flats}) > 1]


@dataclass
class ScenarioDiff:
    """The columns that tell a set of runs apart, one dict of cells per run (in input order)."""

    columns: list[str]
    rows: list[dict[str, str]]
    differing: list[str] = field(default_factory=list)  # dotted paths that vary


def scenario_diff(tomls: list[str], designs: list[str] | None = None) -> ScenarioDiff:
    """Diff columns for runs with these scenario TOMLs: the varying groups, 'other' for the rest, 'design' always.

    ``designs`` (one per TOML) fills the design column; by default it is read from ``policy.name``.
    A single run (nothing to compare with) gets only the design column.
    """
    flats = _normalised([flatten_toml(t) for t in tomls])
    diff = differing_paths(tomls)
    grouped = {p for paths in GROUPS.values() for p in paths}
    cols = [name for name, paths in GROUPS.items() if any(p in diff for p in paths)]
    other = [p for p in diff if p not in grouped]
    rows: list[dict[str, str]] = []
    for i, f in enumerate(flats):
        row = {"design": designs[i] if designs else _fmt(f.get(DESIGN_PATH))}
        for c in cols:
            row[c] = _group_text(c, f)
        if other:
            row["other"] = " ".join(f"{p}={_fmt(f.get(p))}" for p in other)
        rows.append(row)
    columns = ["design", *cols] + (["other"] if other else [])
    return ScenarioDiff(columns=columns, rows=rows, differing=diff)


# ---------------------------------------------------------------- ratios across runs


NOT_LIKE_FOR_LIKE = "different scenarios: ratio not like-for-like"


@dataclass
class ComparisonVerdict:
    """Whether runs can be compared design against design."""

    like_for_like: bool
    differing: list[str]  # dotted paths that differ (empty when like-for-like)
    label: str  # '' when like-for-like, else NOT_LIKE_FOR_LIKE plus what differs

    def ratio_text(self, ratio: float, a: str, b: str) -> str:
        """'dualpath vs basic 2.19x', or the same with the warning appended when not like-for-like."""
        base = f"{a} vs {b} {ratio:.3g}x"
        return base if self.like_for_like else f"{base} ({self.label})"


def comparison_verdict(tomls: list[str]) -> ComparisonVerdict:
    """Like-for-like when every run's scenario is the same apart from name, description and design."""
    diff = differing_paths(tomls)
    if not diff:
        return ComparisonVerdict(True, [], "")
    shown = ", ".join(diff[:6]) + (f" and {len(diff) - 6} more" if len(diff) > 6 else "")
    return ComparisonVerdict(False, diff, f"{NOT_LIKE_FOR_LIKE} ({shown} differ)")


def like_for_like_ratios(summaries: list[Any], tomls: list[str]) -> tuple[dict[str, float], ComparisonVerdict]:
    """Throughput and JCT ratios between runs' designs (``a_vs_b``, ``a_vs_b_jct``) and the verdict.

    The ratios are empty when the scenarios differ (apart from the design): a ratio across
    different clusters or workloads says nothing about the designs. Use the verdict's label instead.
    """
    verdict = comparison_verdict(tomls)
    if not verdict.like_for_like:
        return {}, verdict
    by = {s.policy: s for s in summaries}
    out: dict[str, float] = {}
    for a, sa in by.items():
        for b, sb in by.items():
            if a == b:
                continue
            if sb.prompt_tokens_per_s > 0:
                out[f"{a}_vs_{b}"] = sa.prompt_tokens_per_s / sb.prompt_tokens_per_s
            if sa.jct_s and sb.jct_s:
                out[f"{a}_vs_{b}_jct"] = sa.jct_s / sb.jct_s
    return out, verdict


def runs_with_diff(store: Any, limit: int | None = None, costs: Any = None, **filters: Any) -> Any:
    """``store.list_runs(**filters)`` (newest first, at most ``limit``) with the scenario-diff and cost columns added.

    The rows gain ``design`` and whichever of topology / NICs / model / kv format / workload /
    agents / seed / other vary among them, and the :data:`COST_COLUMNS` from ``costs`` (a cost
    table, a path, or None for data/costs.toml). This is the table ``dualpath-twin runs`` prints and the
    dashboard's history shows. Returns a Polars frame.
    """
    import polars as pl

    df = store.list_runs(**filters)
    if limit is not None:
        df = df.head(limit)
    if df.height == 0:
        return df.with_columns(pl.lit(None, pl.Utf8).alias("design"), *[pl.lit(None, pl.Float64).alias(c) for c in COST_COLUMNS],
                              pl.lit(None, pl.Boolean).alias("meets_slo"))
    toml_by_hash: dict[str, str] = {}
    tomls: list[str] = []
    for rid, h in zip(df["run_id"].to_list(), df["scenario_hash"].to_list(), strict=True):
        if h not in toml_by_hash:
            try:
                toml_by_hash[h] = store.get_scenario_toml(rid)
            except Exception:  # noqa: BLE001 - a run without its scenario shows blanks
                toml_by_hash[h] = ""
        tomls.append(toml_by_hash[h])
    sd = scenario_diff(tomls, designs=[str(p) for p in df["policy"].to_list()])
    cols = {c: [r.get(c, "") for r in sd.rows] for c in sd.columns}
    out = df.with_columns([pl.Series(c, v, dtype=pl.Utf8) for c, v in cols.items()])
    scenarios = _parsed(tomls)
    return out.with_columns(*_cost_columns(out, tomls, costs, scenarios), _meets_slo_column(out, tomls, scenarios))


def _parsed(tomls: list[str]) -> dict[str, Any]:
    """Each distinct scenario TOML parsed once (None for an empty or unreadable one)."""
    from dualpath_twin.scenario import from_toml

    out: dict[str, Any] = {}
    for text in tomls:
        if text not in out:
            try:
                out[text] = from_toml(text, check_catalog=False) if text else None
            except Exception:  # noqa: BLE001 - a run without a readable scenario shows blanks
                out[text] = None
    return out


def _meets_slo_column(df: Any, tomls: list[str], scenarios: dict[str, Any]) -> Any:
    """``meets_slo``: TTFT p99 and TPOT p99 within the run's own scenario SLO, as the run's tiles judge it (None if unknown)."""
    import polars as pl

    out: list[bool | None] = []
    for text, ttft, tpot in zip(tomls, df["ttft_p99_s"].to_list(), df["tpot_p99_s"].to_list(), strict=True):
        sc = scenarios.get(text)
        out.append(None if sc is None or ttft is None or tpot is None
                   else bool(ttft <= sc.slo.ttft_s and tpot * 1000.0 <= sc.slo.tpot_ms))
    return pl.Series("meets_slo", out, dtype=pl.Boolean)


COST_COLUMNS = ("usd_per_hour", "usd_per_m_generated_tokens", "usd_per_m_prompt_tokens")
"""The cost columns runs_with_diff adds (from the cost table; None when the cluster has no price)."""


def _cost_columns(df: Any, tomls: list[str], costs: Any, scenarios: dict[str, Any]) -> list[Any]:
    """$/hour of each run's cluster and $ per million tokens at its throughput (economics_from_rates)."""
    import polars as pl

    from dualpath_twin.economics import economics_from_rates

    vals: dict[str, list[float | None]] = {c: [] for c in COST_COLUMNS}
    for text, pt, gt in zip(tomls, df["prompt_tokens_per_s"].to_list(), df["generated_tokens_per_s"].to_list(), strict=True):
        e = None
        try:
            if scenarios.get(text) is not None:
                e = economics_from_rates(scenarios[text], pt or 0.0, gt or 0.0, costs)
        except Exception:  # noqa: BLE001 - a cluster without a price shows blanks
            e = None
        for c in COST_COLUMNS:
            vals[c].append(None if e is None else getattr(e, c))
    return [pl.Series(c, v, dtype=pl.Float64) for c, v in vals.items()]
