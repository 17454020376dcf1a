"""What every command of the CLI shares: options, output formatting, scenario loading, progress, store doors, checks.

``open_store`` and ``write_report`` are looked up on this module by the commands (``common.open_store``),
so tests replace them in one place.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from dualpath_twin import checks as chk
from dualpath_twin import scenario as scn
from dualpath_twin.cli_errors import is_user_error
from dualpath_twin.results import Progress, RunResult, RunSummary

T = TypeVar("T")

EXIT_CHECK_FAILED = 1
PIPE_WIDTH = 320  # columns of a table printed to a pipe or file (CI logs do not wrap)
PROGRESS_AFTER_S = 2.0  # show a progress bar only for runs that last longer than this

# ------------------------------------------------------------------ shared options

SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="override a scenario value: dotted.path=value (repeatable); see `validate --paths`",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]
DbOpt = Annotated[
    Path | None,
    typer.Option(
        "--db", envvar="DUALPATH_TWIN_DB", help="result store (DuckDB file); default data/twin.duckdb"
    ),
]
CheckOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--check",
        help="CI check 'metric op number', e.g. 'slo_attainment>=0.99' (repeatable); exit 1 on failure",
    ),
]
JunitOpt = Annotated[Path | None, typer.Option("--junit", help="write the checks as JUnit XML to this file")]
ReportOpt = Annotated[
    Path | None, typer.Option("--report", help="write a self-contained report (.html or .pdf)")
]
NoSaveOpt = Annotated[bool, typer.Option("--no-save", help="do not save the run in the result store")]
ScenarioArg = Annotated[Path, typer.Argument(help="scenario TOML file", show_default=False)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or table (JSON still printed)")]
SkipBadOpt = Annotated[
    bool,
    typer.Option(
        "--skip-bad-lines",
        help="trace replay: skip malformed trace lines and report how many (= --set workload.skip_bad_lines=true)",
    ),
]




def err_console() -> Console:
    """A console on stderr for messages and progress."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def out_console() -> Console:
    """A console on stdout; pipes and files get 220 columns so tables are not cut."""
    con = Console(highlight=False)
    if not con.is_terminal:  # pipes, files and CI logs: do not squeeze tables into 80 columns
        con = Console(highlight=False, width=PIPE_WIDTH)
    return con


def jsonable(obj: Any) -> Any:
    """Convert results (pydantic, dataclasses, paths, NaN) into plain JSON-safe values."""
    if isinstance(obj, BaseModel):
        return jsonable(obj.model_dump(mode="json"))
    if is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, str | int | bool) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return jsonable(obj.item())
    return str(obj)


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout."""
    typer.echo(json.dumps(jsonable(obj), indent=2, allow_nan=False))


def fmt_num(v: Any, digits: int = 4) -> str:
    """A number for a table: thousands separators, a few significant digits, "-" for none."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.{digits - 1}e}"
        return f"{v:,.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def fmt_cell(v: Any) -> str:
    """A table cell: numbers compact, datetimes to the second, missing as '-'."""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, int | float):
        return fmt_num(v)
    return "-" if v is None or v == "" else str(v)


def fmt_bytes(n: float) -> str:
    """Bytes in binary units (KiB, MiB, ...)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    x = float(n)
    for u in units:
        if abs(x) < 1024 or u == units[-1]:
            return f"{x:,.1f} {u}" if u != "B" else f"{x:,.0f} B"
        x /= 1024
    return f"{n} B"


def load_scenario(path: Path, sets: list[str] | None, policy: str | None = None) -> scn.Scenario:
    """Load a scenario file, apply ``--set`` overrides and an optional policy."""
    sc = scn.load(path)
    overrides = scn.parse_assignments(sets or [])
    if policy is not None:
        overrides["policy.name"] = policy
    if overrides:
        try:
            sc = scn.apply_overrides(sc, overrides)
        except scn.ScenarioError as err:
            raise scn.ScenarioError(err.problems, f"{path} with --set overrides") from None
    return sc


def with_skip_bad_lines(sc: scn.Scenario, skip: bool) -> scn.Scenario:
    """Apply ``--skip-bad-lines`` to a loaded scenario."""
    return scn.apply_overrides(sc, {"workload.skip_bad_lines": True}) if skip else sc


def report_skipped(sc: scn.Scenario) -> Any:
    """For a trace replayed with skip_bad_lines, read it once and tell stderr how many lines were skipped."""
    if sc.workload.kind != "trace" or not sc.workload.skip_bad_lines:
        return None
    from dualpath_twin import api

    wl = api.load_workload(sc)
    n = int(wl.meta.get("skipped_lines", 0))
    if n:
        typer.echo(f"warning: skipped {n:,} bad trace line(s) in {wl.source}; first:", err=True)
        for ex in wl.meta.get("skipped_examples", []):
            typer.echo(f"  {ex}", err=True)
    return wl


def split_csv(text: str) -> list[str]:
    """The non-empty items of a comma-separated option."""
    return [p.strip() for p in text.split(",") if p.strip()]


# ------------------------------------------------------------------ running with progress and Ctrl-C


@dataclass
class ResultBox(Generic[T]):
    """Carries a worker thread's return value or exception back to the main thread."""

    value: T | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class ProgressState:
    """Latest Progress per task (policy), written by the simulation, read by the main thread."""

    latest: dict[str, Progress] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, key: str, p: Progress) -> None:
        """Record the latest progress of one task."""
        with self.lock:
            self.latest[key] = p

    def snapshot(self) -> dict[str, Progress]:
        """A copy of the latest progress of every task."""
        with self.lock:
            return dict(self.latest)


def run_cancellable(fn: Callable[[], T], cancel: threading.Event, tick: Callable[[], None]) -> T:
    """Run ``fn`` in a worker thread; Ctrl-C sets ``cancel``, waits for the worker, then re-raises."""
    box: ResultBox[T] = ResultBox()

    def target() -> None:
        try:
            box.value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            box.error = exc
        finally:
            box.done = True

    worker = threading.Thread(target=target, name="dualpath-twin-sim", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
            tick()
    except KeyboardInterrupt:
        cancel.set()
        worker.join(timeout=60)
        raise
    if box.error is not None:
        raise box.error
    return box.value  # type: ignore[return-value]


class ProgressBar:
    """A rich progress bar on stderr, shown only for runs lasting over PROGRESS_AFTER_S seconds."""

    def __init__(self, state: ProgressState, enabled: bool) -> None:
        self.state = state
        self.enabled = enabled and err_console().is_terminal
        self.started_s = time.monotonic()
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def tick(self) -> None:
        """Refresh from the latest progress reports (called from the main thread)."""
        if not self.enabled or time.monotonic() - self.started_s < PROGRESS_AFTER_S:
            return
        if self.bar is None:
            from rich import progress as rp

            self.bar = rp.Progress(
                rp.TextColumn("{task.description}"),
                rp.BarColumn(),
                rp.TaskProgressColumn(),
                rp.TextColumn("{task.fields[detail]}"),
                rp.TimeElapsedColumn(),
                console=err_console(),
                transient=True,
            )
            self.bar.start()
        for key, p in sorted(self.state.snapshot().items()):
            total = max(p.rounds_total, 1)
            detail = f"{p.rounds_done:,}/{p.rounds_total:,} rounds, sim {p.sim_time_s:,.0f} s"
            if key not in self.tasks:
                self.tasks[key] = self.bar.add_task(key, total=total, detail=detail)
            self.bar.update(self.tasks[key], completed=p.rounds_done, total=total, detail=detail)

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


# ------------------------------------------------------------------ store helpers


def open_store(db: Path | None) -> Any:
    """Open the result store (the --db file or the default)."""
    from dualpath_twin.store import open_store

    return open_store(db)


def close(store: Any) -> None:
    """Close a store if one is open."""
    if store is not None and hasattr(store, "close"):
        store.close()


def mark(store: Any, run_ids: list[str], status: str, error: str = "") -> None:
    """Best-effort status update of runs that did not finish (never masks the original problem)."""
    for rid in run_ids:
        try:
            store.mark_run(rid, status, error)
        except Exception as exc:  # noqa: BLE001 - reporting only
            typer.echo(f"warning: could not mark run {rid} as {status}: {exc}", err=True)


def try_report(store: Any, run_ids: list[str], results: list[RunResult], out: Path | None) -> str | None:
    """Write the --report file if asked; return the problem text of a user error (the run is kept)."""
    if out is None:
        return None
    try:
        written = write_report(store, run_ids, results, out)
    except Exception as exc:  # noqa: BLE001 - user errors reported after the results are printed
        if not is_user_error(exc):
            raise
        return f"report not written: {exc}"
    typer.echo(f"report written to {written}", err=True)
    return None


def write_report(store: Any, run_ids: list[str], results: list[RunResult], out: Path) -> Path:
    """Write the HTML/PDF report of stored runs, or of results not saved."""
    from dualpath_twin import report

    if store is not None and run_ids:
        return report.build_report(store, run_ids, out)
    return report.build_report_from_results(results, out)


# ------------------------------------------------------------------ summary tables

_PCT_KEYS = ("p50", "p90", "p99")


def summary_rows(s: RunSummary) -> list[tuple[str, str]]:
    """Label/value rows of a run summary for the human-readable tables (bottleneck keys in words)."""
    from dualpath_twin.analysis.verdict import resource_label

    ms = 1000.0

    def pct(p: Any, scale: float = 1.0) -> str:
        vals = [getattr(p, k) for k in _PCT_KEYS]
        return " / ".join(fmt_num(v * scale if v is not None else None, 3) for v in vals)

    rows = [
        ("policy", s.policy),
        ("status", s.status + (f" ({s.status_reason})" if s.status_reason else "")),
        ("mode", s.mode),
        ("JCT (s)", fmt_num(s.jct_s)),
        ("simulated time (s)", fmt_num(s.sim_time_s)),
        ("rounds done / total", f"{s.rounds:,} / {s.rounds_total:,}"),
        ("prompt tokens/s", fmt_num(s.prompt_tokens_per_s)),
        ("generated tokens/s", fmt_num(s.generated_tokens_per_s)),
        ("TTFT p50/p90/p99 (s)", pct(s.ttft_s)),
        ("TPOT p50/p90/p99 (ms)", pct(s.tpot_s, ms)),
        ("SLO attainment", fmt_num(s.slo_attainment)),
        ("SNIC read util prefill", fmt_num(s.snic_read_utilization.get("prefill"))),
        ("SNIC read util decode", fmt_num(s.snic_read_utilization.get("decode"))),
        ("SNIC imbalance (max/avg)", fmt_num(s.snic_imbalance)),
        ("bottleneck", resource_label(s.bottleneck) or "-"),
    ]
    if s.bound is not None:
        rows += [
            ("bound: binding resource", resource_label(s.bound.binding_resource) or "-"),
            ("bound: max prompt tokens/s", fmt_num(s.bound.max_prompt_tokens_per_s)),
            ("bound: min JCT (s)", fmt_num(s.bound.min_jct_s)),
        ]
    rows += [("sim events", fmt_num(s.sim_events)), ("wall time (s)", fmt_num(s.wall_s))]
    return rows


COST_LABELS = ("cost ($/hour)", "$ per M generated tokens", "$ per M prompt tokens", "generated tokens per $")


def cost_rows(s: RunSummary, scenario: Any) -> list[tuple[str, str]]:
    """$/hour, $ per million tokens and tokens per $ of a run (cost table data/costs.toml), or why not."""
    from dualpath_twin.economics import try_run_economics

    e = try_run_economics(s, scenario)
    if isinstance(e, str):
        return list(zip(COST_LABELS, [e, "-", "-", "-"], strict=True))
    vals = [e.usd_per_hour, e.usd_per_m_generated_tokens, e.usd_per_m_prompt_tokens, e.generated_tokens_per_usd]
    return list(zip(COST_LABELS, [fmt_num(v) for v in vals], strict=True))


CACHE_LABELS = ("DRAM cache", "cache: prompt tokens from DRAM", "cache: KV bytes saved", "cache: SNIC read relief")


def cache_rows(s: RunSummary) -> list[tuple[str, str]]:
    """The DRAM cache tier's effect ([cache]); '-' when the run had no cache."""
    c = s.cache
    if c is None:
        return [(lab, "-") for lab in CACHE_LABELS]
    cap = "unbounded" if c.capacity_gb is None else f"{c.capacity_gb:g} GB"
    vals = [f"{cap} {c.scope}", fmt_num(c.hit_ratio_tokens), fmt_bytes(c.bytes_from_cache), fmt_num(c.snic_relief)]
    return list(zip(CACHE_LABELS, vals, strict=True))


def print_summary_table(
    summaries: list[RunSummary], run_ids: list[str | None], title: str, scenarios: list[Any] | None = None
) -> None:
    """Print runs side by side as a metric table (with cost when ``scenarios`` are given), then verdicts and faults."""
    rows = [summary_rows(s) for s in summaries]
    if any(s.cache is not None for s in summaries):
        rows = [r + cache_rows(s) for r, s in zip(rows, summaries, strict=True)]
    if scenarios is not None:
        rows = [r + cost_rows(s, sc) for r, s, sc in zip(rows, summaries, scenarios, strict=True)]
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for s in summaries:
        table.add_column(s.policy, justify="right")
    for i, (label, _) in enumerate(rows[0]):
        if label == "policy":
            continue
        table.add_row(label, *[r[i][1] for r in rows])
    if any(run_ids):
        table.add_row("run id", *[rid or "-" for rid in run_ids])
    con = out_console()
    con.print(table)
    for s in summaries:
        if s.bottleneck_sentence:
            con.print(f"{s.policy}: {s.bottleneck_sentence}")
        for f in s.faults:  # [[faults]]: what each did to prefill throughput
            where = f"{f.node}{'' if f.gpu is None else f'.gpu{f.gpu}'}"
            degr = "-" if f.degradation is None else f"{f.degradation:.0%}"
            rec = "not within the run" if f.recovery_s is None else f"{f.recovery_s:.1f} s"
            con.print(
                f"{s.policy}: fault {f.kind} on {where} at {f.start_s:g}-{'end' if f.end_s is None else f'{f.end_s:g}'} s: "
                f"prompt tokens/s {f.prompt_tokens_per_s_before or 0:,.0f} before, {f.prompt_tokens_per_s_during or 0:,.0f} during "
                f"(degradation {degr}), recovery {rec}"
                + ("" if f.rounds_requeued is None else f", {f.rounds_requeued:,} rounds re-queued")
            )


# ------------------------------------------------------------------ checks


def apply_checks(
    checks: list[chk.Check],
    metrics: dict[str, Any],
    policies: list[str] | None,
    junit: Path | None,
    title: str,
) -> bool:
    """Evaluate checks, print them on stderr, write JUnit/GitHub summary; True when all passed."""
    if not checks:
        return True
    results = chk.evaluate(checks, metrics, policies)
    for r in results:
        typer.echo(r.message, err=True)
    if junit is not None:
        chk.write_junit(results, junit, suite_name=title)
    chk.append_github_summary(results, title)
    ok = chk.all_passed(results)
    if not ok:
        n = sum(not r.passed for r in results)
        typer.echo(f"{n} of {len(results)} checks failed", err=True)
    return ok
