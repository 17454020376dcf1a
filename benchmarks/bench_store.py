"""Benchmark: store a run with ~1M time-series rows, then load it into a report's figures.

The load path is the dashboard/report one: ``Store.get_timeseries(run_id, max_points=2000)``
(downsampled in DuckDB SQL) followed by the Plotly builders of every time-series figure.
Target: under 2 s. Writes its section of BENCHMARKS.md between ``<!-- bench_store -->`` markers.

    .venv/bin/python benchmarks/bench_store.py [--rows 1000000] [--repeat 3] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from dualpath_twin.report import figures as F
from dualpath_twin.store import open_store
from dualpath_twin.store.synthetic import synthetic_result, synthetic_timeseries

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling helper module
from _sections import write_section  # noqa: E402

MARK = "<!-- bench_store -->"
TARGET_S = 2.0
SERIES_PER_SAMPLE = 139  # 2P4D, 8 CNICs per node: NIC, node and cluster series


@dataclass
class Timing:
    """Wall-clock seconds of one benchmark phase over several repeats."""

    name: str
    runs_s: list[float]

    @property
    def median_s(self) -> float:
        """Median of the repeats."""
        return statistics.median(self.runs_s)

    @property
    def best_s(self) -> float:
        """Fastest repeat."""
        return min(self.runs_s)


def load_figures(store, run_id: str) -> tuple[float, float, int]:  # noqa: ANN001
    """Query (SQL downsampling) then build every time-series figure; return (query_s, figures_s, rows)."""
    t0 = time.perf_counter()
    ts = store.get_timeseries(run_id, max_points=2000)
    t1 = time.perf_counter()
    figs = [
        F.throughput_figure(ts),
        F.storage_throughput_figure(ts),
        F.occupancy_figure(ts),
        F.nic_utilization_figure(ts),
        F.nic_heatmap_figure(ts, "snic_rx_util"),
        F.nic_heatmap_figure(ts, "cnic_rx_util"),
    ]
    for f in figs:
        f.to_plotly_json()  # force serialisation, as the dashboard/report does
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, ts.height


def run(rows: int, repeat: int) -> dict[str, object]:
    """Run the benchmark and return its numbers."""
    n_samples = max(1, rows // SERIES_PER_SAMPLE)
    with tempfile.TemporaryDirectory() as tmp:
        st = open_store(Path(tmp) / "bench.duckdb")
        res = synthetic_result("dualpath", n_rounds=2000, n_samples=10)
        res.timeseries = synthetic_timeseries(n_samples, seed=1)
        t0 = time.perf_counter()
        rid = st.save_run(res)
        save_s = time.perf_counter() - t0
        q, f, tot = [], [], []
        out_rows = 0
        for _ in range(repeat):
            qs, fs, out_rows = load_figures(st, rid)
            q.append(qs)
            f.append(fs)
            tot.append(qs + fs)
        db_mb = (Path(tmp) / "bench.duckdb").stat().st_size / 1e6
    return {
        "rows": res.timeseries.height,
        "samples": n_samples,
        "save_s": save_s,
        "query": Timing("get_timeseries (SQL downsampling to 2000 points/series)", q),
        "figures": Timing("6 time-series figures built and serialised", f),
        "total": Timing("query + figures", tot),
        "rows_out": out_rows,
        "db_mb": db_mb,
    }


def machine() -> str:
    """One line describing this machine and the library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), load avg {load:.1f}, "
        f"Python {platform.python_version()}, duckdb {duckdb.__version__}, polars {pl.__version__}"
    )


def section(r: dict[str, object]) -> str:
    """The markdown section for BENCHMARKS.md."""
    total: Timing = r["total"]  # type: ignore[assignment]
    lines = [
        MARK,
        "## Result store: 1M time-series rows into a report's figures (`benchmarks/bench_store.py`)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}",
        f"- run: {r['rows']:,} time-series rows ({r['samples']:,} samples x {SERIES_PER_SAMPLE} series, 2P4D),"
        f" database {r['db_mb']:.1f} MB",
        f"- save_run (spool Parquet + one-transaction ingest): {r['save_s']:.2f} s",
        "",
        "| phase | median (s) | best (s) |",
        "|---|---|---|",
    ]
    for key in ("query", "figures", "total"):
        t: Timing = r[key]  # type: ignore[assignment]
        lines.append(f"| {t.name} | {t.median_s:.3f} | {t.best_s:.3f} |")
    verdict = "meets" if total.median_s < TARGET_S else "MISSES"
    lines += [
        "",
        f"Downsampled frame: {r['rows_out']:,} rows. Target < {TARGET_S:g} s: {verdict} it"
        f" (median of {len(total.runs_s)}).",
        MARK,
    ]
    return "\n".join(lines)


def main() -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch BENCHMARKS.md")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "BENCHMARKS.md")
    a = ap.parse_args()
    r = run(a.rows, a.repeat)
    text = section(r)
    print(text)
    if not a.no_write:
        write_section(text, a.out, MARK)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
