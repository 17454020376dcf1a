"""Every bundled paper scenario, both KV formats, all four designs: the tables in README and docs/calibration.md.

Run: .venv/bin/python benchmarks/paper_tables.py [--formats fp8,bf16] [--jobs 2] [--out FILE.md]

Each (scenario, KV format, design) is one offline run at the scenario's own size (1,024 agents);
the runs go to a process pool, nothing is saved to the store. Prints a Markdown table: JCT per
design, the DualPath/Basic and Oracle/Basic JCT speed-ups, DualPath's TTFT and TPOT medians, SLO
attainment and the binding resource of the analytic bound.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGNS = ("basic", "layerwise", "dualpath", "oracle")


def _one(path: str, kv: str, design: str) -> tuple[str, str, str, dict[str, float | str]]:
    """Run one design of one scenario at one KV format and keep the table's numbers."""
    from dualpath_twin import api
    from dualpath_twin.scenario import ScenarioError, apply_overrides, load

    try:
        sc = apply_overrides(load(path), {"model.kv_format": kv})
        s = api.simulate(sc, design).summary
    except ScenarioError as err:  # e.g. a request's KV no longer fits a decode GPU at this format
        lines = [ln.strip(" -") for ln in str(err).splitlines()[1:] if ln.strip()]
        return path, kv, design, {"error": lines[0] if lines else str(err)}
    tpot = getattr(s, "tpot_ms", None)
    tpot_ms = tpot.p50 if tpot is not None else s.tpot_s.p50 * 1000.0
    return path, kv, design, {
        "jct_s": float(s.jct_s or float("nan")),
        "ttft_p50_s": float(s.ttft_s.p50),
        "tpot_p50_ms": float(tpot_ms),
        "slo": float(s.slo_attainment),
        "binding": s.bound.binding_resource if s.bound else "",
        "status": s.status,
    }


def main() -> None:
    """Run the grid and print the Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", default="fp8,bf16", help="KV formats to run (catalog names)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--scenarios", default=str(ROOT / "scenarios/paper/*.toml"), help="glob of scenario files")
    ap.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = ap.parse_args()
    paths = sorted(str(p) for p in Path("/").glob(args.scenarios.lstrip("/")))
    kvs = [k.strip() for k in args.formats.split(",") if k.strip()]
    t0 = time.perf_counter()
    res: dict[tuple[str, str], dict[str, dict[str, float | str]]] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        futs = [ex.submit(_one, p, k, d) for p in paths for k in kvs for d in DESIGNS]
        for f in futs:
            p, k, d, row = f.result()
            res.setdefault((p, k), {})[d] = row
            done = f"JCT {row['jct_s']:.0f} s" if "error" not in row else f"refused: {row['error']}"
            print(f"  {Path(p).stem} {k} {d}: {done}", file=sys.stderr, flush=True)
    lines = [
        "| scenario | KV | JCT basic (s) | layerwise | DualPath | Oracle | DualPath / Basic | Oracle / Basic |"
        " DualPath TTFT p50 (s) | TPOT p50 (ms) | SLO | bound binds (DualPath) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    refused: list[str] = []
    for p in paths:
        for k in kvs:
            r = res[(p, k)]
            errs = {d: r[d]["error"] for d in DESIGNS if "error" in r[d]}
            if errs:
                lines.append(f"| {Path(p).stem} | {k} | refused before the run (see below) |" + " |" * 9)
                refused.append(f"- {Path(p).stem} at {k}: {next(iter(errs.values()))}")
                continue
            b, lw, dp, orc = (r[d]["jct_s"] for d in DESIGNS)
            lines.append(
                f"| {Path(p).stem} | {k} | {b:,.0f} | {lw:,.0f} | {dp:,.0f} | {orc:,.0f} | {b / dp:.2f}x | {b / orc:.2f}x |"
                f" {r['dualpath']['ttft_p50_s']:.2f} | {r['dualpath']['tpot_p50_ms']:.1f} | {r['dualpath']['slo']:.3f} |"
                f" {r['dualpath']['binding']} |"
            )
    if refused:
        lines += ["", "Refused scenarios (the twin checks memory before it runs):", *refused]
    table = "\n".join(lines)
    print(table)
    print(f"\n{len(paths) * len(kvs) * len(DESIGNS)} runs in {time.perf_counter() - t0:.0f} s wall, {args.jobs} processes",
          file=sys.stderr)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
