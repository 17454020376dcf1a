"""Headline capacity: how many agents/s the DS 660B 2P4D testbed serves within SLO, Basic vs DualPath.

Runs the capacity search of docs/planning.md on scenarios/examples/online-serving.toml (the paper's 2P4D
H800 testbed, paper-64k agents arriving online) at its full 64K contexts with the steady-state rule and
the automatic arrival window (tolerance 5%, early stop and the analytic start on), saves the search in the
store (the dashboard's Planning > Capacity tab shows it) and writes the "Capacity headline" section of
BENCHMARKS.md between ``<!-- capacity_headline -->`` and ``<!-- /capacity_headline -->`` (appended if
the markers are missing; other sections are left alone).

    .venv/bin/python benchmarks/capacity_headline.py [--workers N] [--window-s 0] [--context 0]
        [--exhaustive] [--set path=value ...] [--db PATH] [--no-save] [--no-write] [--out BENCHMARKS.md]

Same as ``dualpath-twin capacity scenarios/examples/online-serving.toml --policy basic,dualpath
--tolerance 0.05`` (``--exhaustive``: plus ``--no-early-stop --no-from-bound``) plus the markdown section.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from dualpath_twin import scenario as scn
from dualpath_twin.planning.capacity import CapacityPoint, CapacityResult, SloCriterion, capacity_search_many
from dualpath_twin.planning.executors import default_workers, open_executor
from dualpath_twin.planning.storeio import capacity_spec, open_sweep_store, save_capacity

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling helper module
from _sections import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "examples" / "online-serving.toml"
OPEN = "<!-- capacity_headline -->"
CLOSE = "<!-- /capacity_headline -->"


def _f(v: float | None, scale: float = 1.0) -> str:
    return "-" if v is None else f"{v * scale:.3g}"


def _at_capacity(r: CapacityResult) -> CapacityPoint | None:
    return next((p for p in r.curve if p.meets and p.aps == r.capacity_aps), None)


def section(
    results: list[CapacityResult], *, scenario: str, sets: list[str], window_s: float | None, tolerance: float,
    criterion: SloCriterion, search_id: str | None, db: str, wall_s: float, workers: int, exhaustive: bool = False,
    confirm: bool = True,
) -> str:
    """The markdown section for BENCHMARKS.md (between the capacity_headline markers)."""
    r0 = results[0]
    cmd = ["dualpath-twin", "capacity", scenario, "--policy", ",".join(r.policy for r in results)]
    cmd += [a for s in sets for a in ("--set", s)]
    if window_s is not None:
        cmd += ["--window-s", f"{window_s:g}"]
    cmd += ["--tolerance", f"{tolerance:g}"]
    if exhaustive:
        cmd += ["--no-early-stop", "--no-from-bound"]
    if not confirm:
        cmd += ["--no-confirm"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    stored = (f"capacity search `{search_id}` in `{db}` (dashboard: Planning > Capacity, or `/planning?capacity={search_id}`)"
              if search_id else "not saved (--no-save)")
    lines = [
        OPEN,
        "## Capacity headline: agents/s within SLO, Basic vs DualPath (`benchmarks/capacity_headline.py`)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; wall time {wall_s:.0f} s with {workers} worker(s);"
        f" {'exhaustive search' if exhaustive else 'fast search (early stop, analytic start)'}"
        f"{'' if confirm else ', no confirmation step'}",
        f"- machine: {platform.platform()}, {os.cpu_count()} cores, load avg at end {load:.1f}, Python {platform.python_version()}",
        f"- scenario: `{scenario}` with {', '.join(f'`{s}`' for s in sets) or 'no overrides'}; arrival window "
        f"{_f(r0.window_s)} s per rate (agents = rate x window); tolerance {tolerance:g}",
        f"- SLO: TTFT {criterion.percentile} <= {_f(r0.ttft_limit_s)} s and TPOT {criterion.percentile} <= "
        f"{_f(r0.tpot_limit_ms)} ms" + (f", attainment >= {criterion.min_attainment:g}" if criterion.min_attainment else "")
        + ("; TTFT not rising between the last two windows before the last arrival" if criterion.require_steady else "")
        + ("; windows end at the measured warm-up (--warmup-from measured)" if criterion.warmup_from == "measured" else ""),
        f"- stored: {stored}",
        f"- reproduce: `{shlex.join(cmd)}`",
        "",
        "| policy | capacity (agents/s) | fails at | converged | runs | TTFT p90 at capacity (s) | TPOT p90 (ms) | SLO attainment |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        p = _at_capacity(r)
        lines.append(
            f"| {r.policy} | {r.capacity_aps:.4g} | {_f(r.hi_aps)} | {'yes' if r.converged else 'NO'} | {r.evaluations} |"
            f" {_f(p.ttft_p90_s if p else None)} | {_f(p.tpot_p90_s if p else None, 1000)} | {_f(p.slo_attainment if p else None)} |"
        )
    caps = {r.policy: r.capacity_aps for r in results}
    if caps.get("basic") and "dualpath" in caps:
        lines += ["", f"DualPath / Basic capacity: {caps['dualpath'] / caps['basic']:.2f}x."]
    lines += ["", "Measured curve (every rate the search ran):", "",
              "| policy | agents/s | meets | TTFT p90 (s) | TPOT p90 (ms) | SLO attainment | why |", "|---|---|---|---|---|---|---|"]
    for r in results:
        for p in r.curve:
            lines.append(f"| {r.policy} | {p.aps:.4g} | {'yes' if p.meets else 'no'} | {_f(p.ttft_p90_s)} |"
                         f" {_f(p.tpot_p90_s, 1000)} | {_f(p.slo_attainment)} | {p.reason} |")
    notes = [f"{r.policy}: {n}" for r in results for n in r.notes]
    if notes:
        lines += ["", *[f"- note: {n}" for n in notes]]
    lines.append(CLOSE)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", type=Path, default=SCENARIO, help="online scenario TOML (default: online-serving)")
    ap.add_argument("--policies", default="basic,dualpath")
    ap.add_argument("--context", type=int, default=0,
                    help="workload.max_context_tokens (0 = the scenario's: 64K for online-serving)")
    ap.add_argument("--window-s", type=float, default=0.0,
                    help="arrival window per rate, s (0 = automatic: long enough for the steady state)")
    ap.add_argument("--exhaustive", action="store_true",
                    help="no early stop, no analytic start: the reference search the fast one must agree with")
    ap.add_argument("--no-confirm", action="store_true",
                    help="no confirmation step (one seed's verdict per rate, as --no-confirm on the CLI)")
    ap.add_argument("--warmup-from", choices=("slo_limits", "measured"), default="slo_limits",
                    help="when each run's measured windows end (SloCriterion.warmup_from; 'measured' is the quick look)")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--start-aps", type=float, default=None)
    ap.add_argument("--max-evaluations", type=int, default=40)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra scenario override path=value")
    ap.add_argument("--workers", type=int, default=None, help="parallel workers (default: available cores)")
    ap.add_argument("--db", type=Path, default=None, help="result store (default: DUALPATH_TWIN_DB or data/twin.duckdb)")
    ap.add_argument("--no-save", action="store_true", help="do not save the search in the store")
    ap.add_argument("--no-write", action="store_true", help="print the section only; do not touch --out")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    a = ap.parse_args(argv)

    sets = ([f"workload.max_context_tokens={a.context}"] if a.context else []) + list(a.sets)
    sc = scn.load(a.scenario)
    if sets:
        sc = scn.apply_overrides(sc, scn.parse_assignments(sets))
    policies = [p.strip() for p in a.policies.split(",") if p.strip()]
    window = a.window_s or None
    crit = SloCriterion(warmup_from=a.warmup_from)
    workers = a.workers or default_workers()

    def on_point(p: CapacityPoint) -> None:
        print(f"  {p.aps:.4g} APS: {'meets' if p.meets else 'fails'} ({p.reason})", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    with open_executor("local", workers) as ex:
        results = capacity_search_many(sc, policies, criterion=crit, tolerance=a.tolerance, start_aps=a.start_aps,
                                       max_evaluations=a.max_evaluations, executor=ex, workers=workers,
                                       on_point=on_point, window_s=window,
                                       early_stop=not a.exhaustive, from_bound=not a.exhaustive,
                                       confirm=not a.no_confirm)
    wall = time.perf_counter() - t0
    try:
        scenario_label = str(a.scenario.resolve().relative_to(ROOT))
    except ValueError:
        scenario_label = str(a.scenario)
    search_id, db = None, ""
    if not a.no_save:
        store = open_sweep_store(a.db)
        spec = capacity_spec(policies, tolerance=a.tolerance, criterion=crit, start_aps=a.start_aps, window_s=window,
                             max_evaluations=a.max_evaluations, overrides=sets, scenario_path=scenario_label,
                             source="benchmarks/capacity_headline.py")
        spec.update(early_stop=not a.exhaustive, from_bound=not a.exhaustive and a.start_aps is None, confirm=not a.no_confirm)
        search_id = save_capacity(store, sc, results, spec, name=f"capacity headline {sc.name}")
        db_path = Path(store.store.path).resolve()
        db = str(db_path.relative_to(ROOT)) if db_path.is_relative_to(ROOT) else str(db_path)
        print(f"saved capacity search {search_id} in {db}", file=sys.stderr)
    text = section(results, scenario=scenario_label, sets=sets, window_s=window, tolerance=a.tolerance, criterion=crit,
                   search_id=search_id, db=db, wall_s=wall, workers=workers, exhaustive=a.exhaustive,
                   confirm=not a.no_confirm)
    print(text)
    if not a.no_write:
        write_section(text, a.out, OPEN, CLOSE)
        print(f"wrote {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
