"""Bit-identity check for refactors: hash ~20 short runs' result frames and compare against a baseline.

Run: .venv/bin/python benchmarks/identity.py --write benchmarks/results/identity_baseline.json
     .venv/bin/python benchmarks/identity.py --check benchmarks/results/identity_baseline.json
Each run (scenario x design) goes through dualpath_twin.api.simulate; its per-round frame, its
time-series frame and its summary (minus wall-clock fields) are hashed (SHA-256 of the frame's
uncompressed Arrow IPC bytes plus column names and dtypes). --check exits 1 listing differing runs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
DESIGNS = ["basic", "layerwise", "dualpath", "oracle"]

# name -> (scenario file relative to ROOT, overrides): small agent counts so each run takes seconds
SCENARIOS: dict[str, tuple[str, dict]] = {
    "quick": ("scenarios/examples/quick.toml", {"workload.agents": 192}),
    "paper-ds27b-1p1d-32k": ("scenarios/paper/ds27b-1p1d-32k.toml", {"workload.agents": 256, "workload.max_context_tokens": 16384}),
    "whatif-faults": ("scenarios/examples/whatif-faults.toml", {"workload.agents": 128}),
    "whatif-cache": ("scenarios/examples/whatif-cache.toml", {"workload.agents": 192, "workload.max_context_tokens": 24576}),
    "mooncake-replay": ("scenarios/examples/mooncake-replay.toml", {"run.max_sim_time_s": 900.0}),
}

# summary fields that depend on the wall clock, not on the simulation
_WALL_FIELDS = {"wall_s", "wall_time_s", "sim_speed", "rounds_per_wall_s", "sim_events_per_s"}
# and the scenario's hash, which changes with every new scenario field (its default changes no result)
_SCHEMA_FIELDS = {"scenario_hash"}


def frame_hash(df: pl.DataFrame) -> str:
    """SHA-256 of a frame's column names, dtypes and uncompressed Arrow IPC bytes."""
    h = hashlib.sha256()
    h.update(json.dumps([[c, str(t)] for c, t in zip(df.columns, df.dtypes, strict=True)]).encode())
    buf = io.BytesIO()
    df.write_ipc(buf, compression="uncompressed")
    h.update(buf.getvalue())
    h.update(str(df.height).encode())
    return h.hexdigest()


def summary_hash(summary) -> str:
    """SHA-256 of the run summary's JSON without wall-clock fields."""
    d = summary.model_dump(mode="json") if hasattr(summary, "model_dump") else dict(vars(summary))
    d = {k: v for k, v in d.items() if k not in _WALL_FIELDS and k not in _SCHEMA_FIELDS and "wall" not in k}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def run_all(only: list[str] | None = None) -> dict[str, dict]:
    """Run every scenario x design and return {run name: hashes and sizes}."""
    from dualpath_twin import api
    from dualpath_twin.scenario import apply_overrides, load

    out: dict[str, dict] = {}
    for sname, (path, ov) in SCENARIOS.items():
        sc = apply_overrides(load(ROOT / path), ov)
        wl = api.load_workload(sc, (ROOT / path).parent)
        for design in DESIGNS:
            name = f"{sname}/{design}"
            if only and not any(o in name for o in only):
                continue
            t0 = time.perf_counter()
            r = api.simulate(sc, design, workload=wl)
            wall_s = time.perf_counter() - t0
            out[name] = {
                "rounds": frame_hash(r.rounds),
                "timeseries": frame_hash(r.timeseries),
                "summary": summary_hash(r.summary),
                "n_rounds": r.rounds.height,
                "n_samples": r.timeseries.height,
                "status": r.summary.status,
            }
            print(f"{name:40s} {r.rounds.height:7d} rounds {r.timeseries.height:5d} samples {wall_s:6.2f} s", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point: --write PATH or --check PATH."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", type=Path, help="write the hashes to this JSON file")
    g.add_argument("--check", type=Path, help="compare against this JSON file; exit 1 if any run differs")
    ap.add_argument("--only", default="", help="comma-separated substrings of run names to run (default: all)")
    args = ap.parse_args(argv)
    only = [s for s in args.only.split(",") if s] or None
    t0 = time.perf_counter()
    got = run_all(only)
    print(f"{len(got)} runs in {time.perf_counter() - t0:.1f} s")
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.write}")
        return 0
    want = json.loads(args.check.read_text())
    bad = []
    for name, h in got.items():
        if name not in want:
            bad.append(f"{name}: not in baseline")
            continue
        diff = [k for k in ("rounds", "timeseries", "summary", "n_rounds", "n_samples", "status") if want[name].get(k) != h[k]]
        if diff:
            bad.append(f"{name}: differs in {', '.join(diff)}")
    if not only:
        bad += [f"{name}: missing from this run" for name in want if name not in got]
    if bad:
        print("DIFFERENT:\n  " + "\n  ".join(bad))
        return 1
    print(f"identical: all {len(got)} runs match {args.check}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
