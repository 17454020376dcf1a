"""benchmarks/capacity_headline.py: its BENCHMARKS.md section replaces only its own markers' content."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dualpath_twin.planning.capacity import CapacityPoint, CapacityResult, SloCriterion

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("capacity_headline", ROOT / "benchmarks" / "capacity_headline.py")
assert _spec is not None and _spec.loader is not None
headline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(headline)


def _result(policy: str, cap: float) -> CapacityResult:
    curve = [CapacityPoint(aps=cap, meets=True, reason="meets SLO", ttft_p90_s=1.0, tpot_p90_s=0.03, slo_attainment=0.99),
             CapacityPoint(aps=cap * 1.04, meets=False, reason="TTFT p90 4.2 s > 4 s", ttft_p90_s=4.2)]
    return CapacityResult(policy=policy, capacity_aps=cap, lo_aps=cap, hi_aps=cap * 1.04, tolerance=0.05, converged=True,
                          evaluations=2, curve=curve, window_s=300.0, ttft_limit_s=4.0, tpot_limit_ms=50.0)


def _section(caps: tuple[float, float]) -> str:
    return headline.section([_result("basic", caps[0]), _result("dualpath", caps[1])],
                            scenario="scenarios/examples/online-serving.toml", sets=["workload.max_context_tokens=16384"],
                            window_s=300.0, tolerance=0.05, criterion=SloCriterion(), search_id="cap-x", db="t.duckdb",
                            wall_s=1.0, workers=1)


def test_section_content() -> None:
    text = _section((2.0, 3.5))
    assert text.startswith(headline.OPEN) and text.endswith(headline.CLOSE)
    assert "| basic | 2 | 2.08 | yes | 2 | 1 | 30 | 0.99 |" in text
    assert "DualPath / Basic capacity: 1.75x." in text
    assert "--set workload.max_context_tokens=16384 --window-s 300 --tolerance 0.05`" in text
    assert "| dualpath | 3.64 | no | 4.2 | - | - | TTFT p90 4.2 s > 4 s |" in text


def test_write_section_appends_then_replaces_only_its_own_section(tmp_path: Path) -> None:
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n<!-- bench_sim -->\nsim\n<!-- bench_sim -->\n", encoding="utf-8")
    headline.write_section(_section((2.0, 3.5)), md, headline.OPEN, headline.CLOSE)
    first = md.read_text(encoding="utf-8")
    assert first.startswith("# Benchmarks\n\n<!-- bench_sim -->\nsim\n<!-- bench_sim -->\n\n" + headline.OPEN)
    md.write_text(first + "\n## later section\n", encoding="utf-8")
    headline.write_section(_section((1.0, 4.0)), md, headline.OPEN, headline.CLOSE)
    second = md.read_text(encoding="utf-8")
    assert second.count(headline.OPEN) == 1 and second.count(headline.CLOSE) == 1
    assert "DualPath / Basic capacity: 4.00x." in second and "1.75x" not in second
    assert second.startswith("# Benchmarks\n\n<!-- bench_sim -->\nsim\n<!-- bench_sim -->\n")
    assert second.endswith(headline.CLOSE + "\n\n## later section\n")
