"""Benchmark: a 24-point sweep of the paper 2P4D DS 660B scenario (1,024 agents), local pool vs Dask LocalCluster.

Grid: P/D split of the scenario's 6 nodes (2P4D, 3P3D, 4P2D) x ``network.snic_gbps`` (100, 200,
400, 800) x design (basic, dualpath) = 24 points, through the library API (``run_sweep`` on an
``open_executor`` executor, results in a fresh DuckDB store). A sweep grid is a cartesian
product, so the three splits are three ``run_sweep`` calls of 8 points each, started together
from three threads on the same executor and store: all 24 points are queued at once.

Configurations: ``local:2`` (process pool, 2 workers), ``dask:1`` and ``dask:2`` (LocalCluster
with 1 or 2 single-threaded worker processes). Reports each sweep's wall time (executor start-up
shown apart), the serial time (sum of the points' own simulation wall times), Dask's scaling
efficiency T1 / (2 T2), checks that every configuration gives the same summaries, and writes its
section of BENCHMARKS.md between ``<!-- bench_sweep -->`` markers.

    .venv/bin/python benchmarks/bench_sweep.py [--configs local:2,dask:1,dask:2] [--repeat 1] [--snic 100,200,400,800] [--no-write]

With ``--repeat R`` the configurations run R times, interleaved; every run is listed and the
targets use each configuration's fastest run (a shared machine only ever adds time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dualpath_twin import scenario as scn
from dualpath_twin.planning.executors import open_executor
from dualpath_twin.planning.storeio import open_sweep_store
from dualpath_twin.planning.sweep import SweepResult, run_sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling helper module
from _sections import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- bench_sweep -->"
SCENARIO = ROOT / "scenarios/paper/ds660b-2p4d-32k.toml"
SPLITS = [(2, 4), (3, 3), (4, 2)]
POLICIES = ["basic", "dualpath"]
TARGET_LOCAL_S = 120.0
TARGET_SCALING = 1.3  # T2 within 1.3x of the ideal T1 / 2, i.e. efficiency >= 1 / 1.3


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_config(kind: str, workers: int, snic_gbps: list[float], agents: int) -> dict[str, Any]:
    """Run the 24-point sweep on one executor configuration; return timings and results."""
    base = scn.load(SCENARIO)
    base = scn.apply_overrides(base, {"workload.agents": agents})
    scenarios = [scn.apply_overrides(base, {"cluster.prefill_nodes": p, "cluster.decode_nodes": d}) for p, d in SPLITS]
    grid = {"network.snic_gbps": snic_gbps}
    with tempfile.TemporaryDirectory() as tmp:
        store = open_sweep_store(Path(tmp) / "bench.duckdb")
        t_open = time.perf_counter()
        with open_executor(kind, workers) as ex:
            startup_s = time.perf_counter() - t_open
            t0 = time.perf_counter()
            with ThreadPoolExecutor(len(scenarios)) as threads:
                futs = [threads.submit(run_sweep, sc, grid, POLICIES, executor=ex, store=store,
                                       name=f"bench {sc.cluster.prefill_nodes}P{sc.cluster.decode_nodes}D")
                        for sc in scenarios]
                results: list[SweepResult] = [f.result() for f in futs]
            wall_s = time.perf_counter() - t0
        stored = sum(store.store.sweep_runs(r.sweep_id).height for r in results)
        store.close()
    points = [(f"{sc.cluster.prefill_nodes}P{sc.cluster.decode_nodes}D", p) for sc, r in zip(scenarios, results, strict=True)
              for p in r.points]
    return {
        "config": f"{kind}:{workers}",
        "startup_s": startup_s,
        "wall_s": wall_s,
        "points": len(points),
        "done": sum(p.status == "done" for _, p in points),
        "stored": stored,
        "serial_s": sum(p.summary.wall_s for _, p in points if p.summary is not None),
        "summaries": {f"{split} snic={p.point['network.snic_gbps']} {p.policy}":
                      p.summary.model_dump(mode="json", exclude={"wall_s"}) if p.summary else None for split, p in points},
        "jct_s": {f"{split} snic={p.point['network.snic_gbps']} {p.policy}": p.summary.jct_s if p.summary else None
                  for split, p in points},
    }


def section(runs: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The markdown section for BENCHMARKS.md."""
    by: dict[str, dict[str, Any]] = {}
    for r in runs:  # fastest run of each configuration
        if r["config"] not in by or r["wall_s"] < by[r["config"]]["wall_s"]:
            by[r["config"]] = r
    lines = [
        MARK,
        "## Sweep (24 points)",
        "",
        "`benchmarks/bench_sweep.py`: the paper 2P4D DS 660B scenario (`scenarios/paper/ds660b-2p4d-32k.toml`,"
        f" offline, {meta['agents']:,} agents), P/D split of its 6 nodes (2P4D, 3P3D, 4P2D) x `network.snic_gbps`"
        f" ({', '.join(f'{v:g}' for v in meta['snic_gbps'])}) x design (basic, dualpath) = {meta['points']} points"
        " through `run_sweep` on an `open_executor` executor into a fresh DuckDB store (the splits are"
        f" {len(SPLITS)} sweeps of {meta['points'] // len(SPLITS)} points started together on one executor, so every"
        " point is queued at once).",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        f"- load average (1 min) before / after: {meta['load_before']:.2f} / {meta['load_after']:.2f}",
        "",
        "| executor | workers | run | sweep wall (s) | executor start (s) | serial sum of point walls (s) | points done / stored |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        kind, w = r["config"].split(":")
        name = {"local": "local process pool", "dask": "Dask LocalCluster"}.get(kind, kind)
        lines.append(f"| {name} | {w} | {r['rep']} | {r['wall_s']:.1f} | {r['startup_s']:.1f} | {r['serial_s']:.1f} |"
                     f" {r['done']} / {r['stored']} |")
    lines += ["", "Against issue 16's targets (fastest run of each configuration):", "", "| target | measured | verdict |", "|---|---|---|"]
    if "local:2" in by:
        t = by["local:2"]["wall_s"]
        lines.append(f"| {meta['points']}-point sweep <= {TARGET_LOCAL_S:g} s on 2 cores (local pool) | {t:.1f} s |"
                     f" {'met' if t <= TARGET_LOCAL_S else 'NOT met'} |")
    if "dask:1" in by and "dask:2" in by:
        t1, t2 = by["dask:1"]["wall_s"], by["dask:2"]["wall_s"]
        eff = t1 / (2 * t2)
        lines.append(f"| Dask N=1 -> N=2 within {TARGET_SCALING:g}x of ideal (T2 <= {TARGET_SCALING:g} T1/2) |"
                     f" T1 {t1:.1f} s, T2 {t2:.1f} s: efficiency T1/(2 T2) = {eff:.2f} (T2 = {1 / eff:.2f}x ideal) |"
                     f" {'met' if 1 / eff <= TARGET_SCALING else 'NOT met'} |")
    lines += ["", f"Same summaries (all fields but wall time) in every configuration: {meta['identical']}.", MARK]
    return "\n".join(lines)


def main() -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="local:2,dask:1,dask:2", help="kind:workers, comma-separated")
    ap.add_argument("--snic", default="100,200,400,800", help="network.snic_gbps values")
    ap.add_argument("--agents", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each configuration, interleaved")
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch BENCHMARKS.md")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/bench_sweep.json")
    a = ap.parse_args()
    snic = [float(v) for v in a.snic.split(",")]
    load_before = os.getloadavg()[0]
    runs = []
    for rep, cfg in ((rep, cfg) for rep in range(1, a.repeat + 1) for cfg in a.configs.split(",")):
        kind, _, w = cfg.partition(":")
        r = run_config(kind, int(w or 2), snic, a.agents)
        r["rep"] = rep
        print(f"{r['config']} run {rep}: {r['wall_s']:.1f} s sweep (+{r['startup_s']:.1f} s start), serial {r['serial_s']:.1f} s,"
              f" {r['done']}/{r['points']} done, {r['stored']} stored", flush=True)
        runs.append(r)
    first = runs[0]["summaries"]
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.system()} {platform.release()}, {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}),"
                   f" {cpu_model()}, Python {platform.python_version()}",
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "agents": a.agents,
        "snic_gbps": snic,
        "points": runs[0]["points"],
        "identical": "yes" if all(r["summaries"] == first for r in runs) else "NO",
    }
    text = section(runs, meta)
    print(text)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"meta": meta, "runs": [{k: v for k, v in r.items() if k != "summaries"} for r in runs]},
                                 indent=1, default=str), encoding="utf-8")
    if not a.no_write:
        write_section(text, a.out, MARK)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
