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
CASES: dict[str, tuple[dict, str]] = {
    "2p4d-1024-dualpath": ({"workload.agents": 1024}, "dualpath"),
    "2p4d-128": ({"workload.agents": 128}, "dualpath"),
    "2p4d-256": ({"workload.agents": 256}, "dualpath"),
    "2p4d-512": ({"workload.agents": 512}, "dualpath"),
    "2p4d-2048": ({"workload.agents": 2048}, "dualpath"),
    "2p4d-4096": ({"workload.agents": 4096}, "dualpath"),
    "1p2d-512": ({"workload.agents": 512, "cluster.prefill_nodes": 1, "cluster.decode_nodes": 2,
                  "cluster.prefill_ep_nodes": 1, "cluster.decode_ep_nodes": 2, "model.name": "DS-27B"}, "dualpath"),
    "4p8d-2048": ({"workload.agents": 2048, "cluster.prefill_nodes": 4, "cluster.decode_nodes": 8,
                   "cluster.prefill_ep_nodes": 2, "cluster.decode_ep_nodes": 4}, "dualpath"),
    "8p16d-4096": ({"workload.agents": 4096, "cluster.prefill_nodes": 8, "cluster.decode_nodes": 16,
                    "cluster.prefill_ep_nodes": 2, "cluster.decode_ep_nodes": 4}, "dualpath"),
}
QUICK = ["2p4d-128", "2p4d-256", "2p4d-512", "2p4d-1024-dualpath", "1p2d-512", "4p8d-2048"]


def _child(name: str) -> None:
    from dualpath_twin import api
    from dualpath_twin.scenario import apply_overrides, load

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


def main() -> None:
    """Run the cases and write the BENCHMARKS.md section."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="only the cases that finish in about a minute")
    ap.add_argument("--cases", default="", help="comma-separated case names")
    ap.add_argument("--child", default="")
    a = ap.parse_args()
    if a.child:
        _child(a.child)
        return
    names = a.cases.split(",") if a.cases else (QUICK if a.quick else list(CASES))
    rows = []
    for n in names:
        out = subprocess.run([sys.executable, __file__, "--child", n], capture_output=True, text=True, cwd=ROOT)
        line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        if out.returncode != 0 or not line.startswith("{"):
            print(f"{n}: FAILED\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        row = json.loads(line)
        rows.append(row)
        print(f"{n}: {row['rounds']:,} rounds, {row['wall_s']:.1f} s wall, {row['rss_mb']:.0f} MB, "
              f"{row['rounds_per_s']:,.0f} rounds/s", flush=True)
    load = os.getloadavg()[0]
    head = (f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n- machine: {platform.platform()}, "
            f"{os.cpu_count()} cores, load avg at end {load:.1f}, Python {platform.python_version()}\n"
            f"- scenario: scenarios/paper/ds660b-2p4d-64k.toml with the overrides of each case (bench_sim.py)\n\n")
    table = ["| case | policy | rounds | wall (s) | CPU (s) | peak RSS (MB) | SimPy events | events/round | rounds/s | JCT (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['case']} | {r['policy']} | {r['rounds']:,} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                     f"{r['rss_mb']:.0f} | {r['events']:,} | {r['events_per_round']:.1f} | {r['rounds_per_s']:,.0f} | "
                     f"{(r['jct_s'] or 0):.0f} |")
    section = ("<!-- bench_sim -->\n## Simulation speed (`benchmarks/bench_sim.py`)\n\n" + head + "\n".join(table)
               + "\n<!-- bench_sim -->")
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if "<!-- bench_sim -->" in text:
        text = re.sub(r"<!-- bench_sim -->.*?<!-- bench_sim -->", lambda _m: section, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
