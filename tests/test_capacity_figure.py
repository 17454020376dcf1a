"""The capacity curve figure marks where rates were refused above the analytic ceiling."""

from __future__ import annotations

from dualpath_twin.planning.figures import capacity_curve
from dualpath_twin.planning.types import STOPPED_CEILING, CapacityPoint, CapacityResult


def _result(refused: bool) -> CapacityResult:
    curve = [
        CapacityPoint(aps=0.2, meets=True, reason="meets SLO", ttft_p90_s=1.0, tpot_p90_s=0.02, slo_attainment=1.0),
        CapacityPoint(aps=0.4, meets=True, reason="meets SLO", ttft_p90_s=2.0, tpot_p90_s=0.03, slo_attainment=1.0),
    ]
    if refused:
        curve += [CapacityPoint(aps=a, meets=False, reason="above the analytic ceiling", stopped_early=STOPPED_CEILING)
                  for a in (0.8, 0.44)]
    else:
        curve.append(CapacityPoint(aps=0.44, meets=False, reason="TTFT p90 over", ttft_p90_s=5.0, tpot_p90_s=0.03,
                                   slo_attainment=0.5))
    return CapacityResult(policy="basic", capacity_aps=0.4, lo_aps=0.4, hi_aps=0.44, tolerance=0.1, converged=True,
                          evaluations=len(curve), curve=sorted(curve, key=lambda p: p.aps))


def _dashed_x(fig) -> list[float]:
    return [s.x0 for s in fig.layout.shapes if s.line.dash == "longdash"]


def test_refused_rates_get_a_ceiling_line_in_every_panel() -> None:
    """The lowest refused rate gets a long-dashed line in the three panels and one label."""
    fig = capacity_curve([_result(refused=True)])
    assert _dashed_x(fig) == [0.44, 0.44, 0.44]
    titles = {"TTFT p90 (s)", "TPOT p90 (ms)", "SLO attainment"}
    assert [a.text for a in fig.layout.annotations if a.text not in titles] == ["basic: ceiling"]


def test_designs_refused_at_the_same_rate_share_one_label() -> None:
    """Two designs whose lowest refused rate is the same get one label naming both, not two labels on top of each other."""
    other = _result(refused=True).model_copy(update={"policy": "dualpath"})
    fig = capacity_curve([_result(refused=True), other])
    assert len(_dashed_x(fig)) == 6
    assert [a.text for a in fig.layout.annotations if "ceiling" in (a.text or "")] == ["basic, dualpath: ceiling"]


def test_no_ceiling_line_when_every_rate_was_simulated() -> None:
    """A search that simulated all its rates draws no ceiling line."""
    fig = capacity_curve([_result(refused=False)])
    assert _dashed_x(fig) == []
    assert not [a for a in fig.layout.annotations if "ceiling" in (a.text or "")]
