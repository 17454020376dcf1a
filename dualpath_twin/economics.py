"""Cost of a run: $/hour of the cluster, $ per million generated and prompt tokens, tokens per $.

Prices come from the sizing cost table (``planning.sizing.CostTable``, default ``data/costs.toml``:
GPU-hours by GPU type, NIC ports per Gbit/s-hour, a node base price); pass a path, a dict or a
``CostTable`` to override it. The cluster's hourly cost is ``CostTable.cluster_cost_per_hour``
(the same number the sizing search ranks configurations by), so a run's $/M tokens and a sizing
answer always agree.

For a run at throughput T (tokens/s of the cluster, averaged over the simulated time):
``usd_per_m_tokens = usd_per_hour / (T x 3600) x 1e6`` and ``tokens_per_usd = T x 3600 / usd_per_hour``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dualpath_twin.results import RunSummary
from dualpath_twin.scenario import Scenario, from_toml

ECONOMICS_KEYS = (
    "usd_per_hour",
    "usd_per_m_generated_tokens",
    "usd_per_m_prompt_tokens",
    "generated_tokens_per_usd",
    "prompt_tokens_per_usd",
)
"""The keys of :meth:`RunEconomics.as_dict` (and of ``economics.*`` in the CLI's --json)."""

LABELS = {
    "usd_per_hour": "cost ($/hour)",
    "usd_per_m_generated_tokens": "$ per M generated tokens",
    "usd_per_m_prompt_tokens": "$ per M prompt tokens",
    "generated_tokens_per_usd": "generated tokens per $",
    "prompt_tokens_per_usd": "prompt tokens per $",
}
"""Human labels for tables (CLI, dashboard, reports)."""


@dataclass
class RunEconomics:
    """A run's cost figures (None where the throughput is zero)."""

    usd_per_hour: float
    usd_per_m_generated_tokens: float | None
    usd_per_m_prompt_tokens: float | None
    generated_tokens_per_usd: float | None
    prompt_tokens_per_usd: float | None
    currency: str = "USD"
    cost_source: str = ""  # the cost table file (or "dict"/"defaults")

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def cost_table(costs: Any = None) -> Any:
    """A ``CostTable`` from None (data/costs.toml), a path, a dict (same keys as the TOML) or a CostTable.

    Raises ``PlanningError`` naming the file or key and the fix.
    """
    from pydantic import ValidationError

    from dualpath_twin.planning.grid import PlanningError
    from dualpath_twin.planning.sizing import CostTable, load_costs

    if costs is None:
        return load_costs()
    if isinstance(costs, CostTable):
        return costs
    if isinstance(costs, str | Path):
        return load_costs(costs)
    if isinstance(costs, dict):
        try:
            return CostTable.model_validate({"source": "dict", **costs})
        except ValidationError as err:
            probs = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors())
            raise PlanningError(f"cost override: {probs}; see data/costs.toml for the expected keys") from None
    raise PlanningError(f"costs = {costs!r}: pass a cost file path, a dict like data/costs.toml or a CostTable")


def _per_m(usd_per_hour: float, tokens_per_s: float) -> float | None:
    if not tokens_per_s or tokens_per_s <= 0 or not math.isfinite(tokens_per_s):
        return None
    return usd_per_hour / (tokens_per_s * 3600.0) * 1e6


def _per_usd(usd_per_hour: float, tokens_per_s: float) -> float | None:
    if usd_per_hour <= 0 or not tokens_per_s or tokens_per_s <= 0:
        return None
    return tokens_per_s * 3600.0 / usd_per_hour


def economics_from_rates(
    scenario: Scenario, prompt_tokens_per_s: float, generated_tokens_per_s: float, costs: Any = None
) -> RunEconomics:
    """Cost figures of ``scenario``'s cluster at the given throughputs (tokens/s)."""
    table = cost_table(costs)
    usd_h = float(table.cluster_cost_per_hour(scenario))
    return RunEconomics(
        usd_per_hour=usd_h,
        usd_per_m_generated_tokens=_per_m(usd_h, generated_tokens_per_s),
        usd_per_m_prompt_tokens=_per_m(usd_h, prompt_tokens_per_s),
        generated_tokens_per_usd=_per_usd(usd_h, generated_tokens_per_s),
        prompt_tokens_per_usd=_per_usd(usd_h, prompt_tokens_per_s),
        currency=table.currency,
        cost_source=table.source or "defaults",
    )


def point_economics(scenario: Scenario, overrides: dict[str, Any], summary: RunSummary | None = None,
                    costs: Any = None) -> RunEconomics | None:
    """Cost figures of a planning point (the scenario with ``overrides``) at its run's throughput; None when it
    cannot be priced (no price for the GPU, an invalid point). Without a summary only $/hour is meaningful."""
    from dualpath_twin.scenario import apply_overrides

    try:
        sc = apply_overrides(scenario, overrides, check_catalog=False) if overrides else scenario
        pt = summary.prompt_tokens_per_s if summary else 0.0
        gt = (summary.generated_tokens_per_s or 0.0) if summary else 0.0
        return economics_from_rates(sc, pt, gt, costs)
    except Exception:  # noqa: BLE001 - an unpriced or invalid point has no cost, it is not an error here
        return None


def run_economics(summary: RunSummary, scenario: Scenario | str, costs: Any = None) -> RunEconomics:
    """Cost figures of one run: its summary's throughput on its scenario's cluster (a Scenario or its TOML)."""
    sc = from_toml(scenario, check_catalog=False) if isinstance(scenario, str) else scenario
    return economics_from_rates(sc, summary.prompt_tokens_per_s, summary.generated_tokens_per_s, costs)


def try_run_economics(summary: RunSummary, scenario: Scenario | str, costs: Any = None) -> RunEconomics | str:
    """``run_economics`` or the reason it is unavailable (e.g. no price for the GPU): for display code."""
    try:
        return run_economics(summary, scenario, costs)
    except Exception as err:  # noqa: BLE001 - shown to the user instead of the figures
        return f"cost unavailable: {err}"


def format_economics(e: RunEconomics) -> dict[str, str]:
    """Human strings keyed by :data:`LABELS` ('$82.6/h', '$1.64', '610,000')."""

    def money(v: float | None) -> str:
        return "-" if v is None else (f"${v:,.2f}" if v >= 0.1 else f"${v:.3g}")

    def count(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    return {
        LABELS["usd_per_hour"]: f"${e.usd_per_hour:,.2f}/h",
        LABELS["usd_per_m_generated_tokens"]: money(e.usd_per_m_generated_tokens),
        LABELS["usd_per_m_prompt_tokens"]: money(e.usd_per_m_prompt_tokens),
        LABELS["generated_tokens_per_usd"]: count(e.generated_tokens_per_usd),
        LABELS["prompt_tokens_per_usd"]: count(e.prompt_tokens_per_usd),
    }
