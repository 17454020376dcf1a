"""Simulation speed benchmark (issue 7): wall, CPU, peak RSS, SimPy events, rounds per second.

Run: .venv/bin/python benchmarks/bench_sim.py [--quick] [--cases NAME,...]
Each case runs in a fresh subprocess so peak RSS is per case. Results replace the
``<!-- bench_sim -->`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "scenarios" / "paper" / "ds660b-2p4d-64k.toml"

# name -> (scenario overrides, policy)
_EP = {"cluster.prefill_ep_nodes": 2, "cluster.decode_ep_nodes": 4}


def _cluster(p: int, d: int, agents: int) -> dict:
    return {"workload.agents": agents, "cluster.prefill_nodes": p, "cluster.decode_nodes": d, **_EP}


CASES: dict[str, tuple[dict, str]] = {
    # load curve on the paper testbed (2P4D, DS 660B)
    "2p4d-128": ({"workload.agents": 128}, "dualpath"),
    "2p4d-256": ({"workload.agents": 256}, "dualpath"),
    "2p4d-512": ({"workload.agents": 512}, "dualpath"),
    "2p4d-1024": ({"workload.agents": 1024}, "dualpath"),
    "2p4d-2048": ({"workload.agents": 2048}, "dualpath"),
    "2p4d-4096": ({"workload.agents": 4096}, "dualpath"),
    # the other designs at the headline point
    "2p4d-1024-basic": ({"workload.agents": 1024}, "basic"),
    "2p4d-1024-oracle": ({"workload.agents": 1024}, "oracle"),
    # cluster curve: agents grow with the cluster (512 per prefill node)
    "1p1d-256-ds27b": ({"workload.agents": 256, "cluster.prefill_nodes": 1, "cluster.decode_nodes": 1,
                        "cluster.prefill_ep_nodes": 1, "cluster.decode_ep_nodes": 1, "model.name": "DS-27B"}, "dualpath"),
    "4p8d-2048": (_cluster(4, 8, 2048), "dualpath"),
    "8p16d-4096": (_cluster(8, 16, 4096), "dualpath"),
    "16p32d-8192": (_cluster(16, 32, 8192), "dualpath"),
    "48p96d-49152": (_cluster(48, 96, 49152), "dualpath"),
}
QUICK = ["2p4d-128", "2p4d-256", "2p4d-512", "2p4d-1024", "2p4d-2048", "1p1d-256-ds27b", "4p8d-2048"]
RESULTS = ROOT / "benchmarks" / "results" / "bench_sim.json"


def _child(name: str) -> None:
    from dualpath_twin import api
    from dualpath_twin.scenario import apply_overrides, load

    if name == "dashboard-first-compare":
        # what the dashboard does on its first comparison: the default scenario, four designs,
        # one process per design (imports already loaded in the dashboard process)
        sc = load(ROOT / "scenarios" / "examples" / "quick.toml")
        t0 = time.perf_counter()
        runs = api.compare(sc, ["basic", "layerwise", "dualpath", "oracle"], workers=os.cpu_count() or 1).runs
        wall = time.perf_counter() - t0
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rounds = sum(r.summary.rounds_total for r in runs)
        events = sum(r.summary.sim_events for r in runs)
        print(json.dumps({
            "case": name, "policy": "4 designs", "rounds": rounds, "wall_s": wall, "cpu_s": time.process_time(),
            "rss_mb": rss_mb, "events": events, "events_per_round": events / max(rounds, 1),
            "rounds_per_s": rounds / wall, "jct_s": None, "status": ",".join(r.summary.status for r in runs),
        }))
        return

    over, policy = CASES[name]
    sc = apply_overrides(load(PAPER), over)
    t0 = time.perf_counter()
    c0 = time.process_time()
    r = api.simulate(sc, policy)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    s = r.summary
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "case": name, "policy": policy, "rounds": s.rounds_total, "wall_s": wall, "cpu_s": cpu, "rss_mb": rss_mb,
        "events": s.sim_events, "events_per_round": s.sim_events / max(s.rounds_total, 1),
        "rounds_per_s": s.rounds_total / wall, "jct_s": s.jct_s, "status": s.status,
    }))


def _targets(res: dict[str, dict]) -> list[str]:
    """Issue 7's targets against the stored results: one table row each, with a verdict."""

    def row(target: str, measured: str, ok: bool | None) -> str:
        verdict = "not run" if ok is None else ("met" if ok else "NOT met")
        return f"| {target} | {measured} | {verdict} |"

    out = ["| target | measured | verdict |", "|---|---|---|"]
    r1 = res.get("2p4d-1024")
    out.append(row("2P4D, 1,024 agents, DualPath offline: <= 20 s wall, <= 1.5 GB peak RSS",
                   f"{r1['wall_s']:.1f} s, {r1['rss_mb']:.0f} MB" if r1 else "-",
                   (r1["wall_s"] <= 20 and r1["rss_mb"] <= 1536) if r1 else None))
    r2 = res.get("2p4d-2048")
    out.append(row("2,048 agents <= 2.1x the 1,024-agent time",
                   f"{r2['wall_s'] / r1['wall_s']:.2f}x" if r1 and r2 else "-",
                   (r2["wall_s"] / r1["wall_s"] <= 2.1) if r1 and r2 else None))
    pairs = [("2p4d-1024", "8p16d-4096"), ("4p8d-2048", "16p32d-8192")]
    for small, big in pairs:
        a, b = res.get(small), res.get(big)
        out.append(row(f"4x cluster with 4x agents <= 4.4x the time ({small} -> {big})",
                       f"{b['wall_s'] / a['wall_s']:.2f}x" if a and b else "-",
                       (b["wall_s"] / a["wall_s"] <= 4.4) if a and b else None))
    rb = res.get("48p96d-49152")
    out.append(row("48P96D, 48K agents: <= 15 min, <= 8 GB peak RSS",
                   f"{rb['wall_s'] / 60:.1f} min, {rb['rss_mb'] / 1024:.1f} GB, {rb['rounds']:,} rounds" if rb else "-",
                   (rb["wall_s"] <= 900 and rb["rss_mb"] <= 8192) if rb else None))
    rc = res.get("dashboard-first-compare")
    out.append(row("compare of four designs uses the cores; the dashboard's first comparison <= 5 s",
                   f"{rc['wall_s']:.1f} s for the default scenario, 4 designs in parallel processes" if rc else "-",
                   (rc["wall_s"] <= 5) if rc else None))
    return out


def main() -> None:
    """Run the cases, merge them into benchmarks/results/bench_sim.json and write the BENCHMARKS.md section."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="only the cases that finish in about a minute each")
    ap.add_argument("--cases", default="", help="comma-separated case names (also: dashboard-first-compare)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per case, the fastest kept: noise from a shared machine only ever adds time")
    ap.add_argument("--child", default="")
    a = ap.parse_args()
    if a.child:
        _child(a.child)
        return
    names = a.cases.split(",") if a.cases else (QUICK if a.quick else [*CASES, "dashboard-first-compare"])
    res: dict[str, dict] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for n in names:
        runs = []
        for _ in range(max(a.repeat, 1)):
            out = subprocess.run([sys.executable, __file__, "--child", n], capture_output=True, text=True, cwd=ROOT)
            line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
            if out.returncode != 0 or not line.startswith("{"):
                print(f"{n}: FAILED\n{out.stderr[-2000:]}", file=sys.stderr)
                break
            runs.append(json.loads(line))
        if not runs:
            continue
        row = min(runs, key=lambda r: r["wall_s"])
        row["runs"] = len(runs)
        row["wall_all_s"] = [round(r["wall_s"], 2) for r in runs]
        row["date"] = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
        row["load_avg"] = os.getloadavg()[0]
        res[n] = row
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(res, indent=1))  # after every case: a long run is never lost
        print(f"{n}: {row['rounds']:,} rounds, {row['wall_s']:.1f} s wall, {row['rss_mb']:.0f} MB, "
              f"{row['rounds_per_s']:,.0f} rounds/s", flush=True)
    order = [*CASES, "dashboard-first-compare"]
    rows = [res[k] for k in order if k in res]
    head = (f"- machine: {platform.platform()}, {os.cpu_count()} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, Python {platform.python_version()}\n"
            f"- scenario: scenarios/paper/ds660b-2p4d-64k.toml (offline, 1,024 agents x ~150 rounds at 64K context) with "
            "the overrides of each case in bench_sim.py; each case runs in a fresh process (peak RSS is per case)\n"
            "- each row has its own date and the 1-minute load average when it finished; wall is the fastest of the "
            "case's runs (a shared machine only ever adds time; all runs are in benchmarks/results/bench_sim.json)\n\n")
    table = ["| case | policy | rounds | wall (s) | runs | CPU (s) | peak RSS (MB) | events | events/round | rounds/s | JCT (s) "
             "| date (load) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['case']} | {r['policy']} | {r['rounds']:,} | {r['wall_s']:.1f} | {r.get('runs', 1)} | {r['cpu_s']:.1f} | "
                     f"{r['rss_mb']:.0f} | {r['events']:,} | {r['events_per_round']:.1f} | {r['rounds_per_s']:,.0f} | "
                     f"{(r['jct_s'] or 0):.0f} | {r.get('date', '')} ({r.get('load_avg', 0):.1f}) |")
    section = ("<!-- bench_sim -->\n## Simulation speed (`benchmarks/bench_sim.py`)\n\n" + head + "\n".join(table)
               + "\n\nAgainst issue 7's targets (computed from the rows above by bench_sim.py):\n\n"
               + "\n".join(_targets(res)) + "\n<!-- bench_sim -->")
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if "<!-- bench_sim -->" in text:
        text = re.sub(r"<!-- bench_sim -->.*?<!-- bench_sim -->", lambda _m: section, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
