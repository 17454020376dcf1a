"""The ``dualpath-twin`` command line (typer): validate, run, compare, the result store, workloads.

A stable contract other tools script: ``--json`` output goes to stdout as ONE JSON object,
progress and messages go to stderr. Exit codes: 0 ok, 1 a --check (or invariant) failed,
2 a user error (bad scenario, file, run id or --check expression), 130 interrupted.
"""

from __future__ import annotations

import json
import math
import sys
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

from dualpath_twin import __version__
from dualpath_twin import checks as chk
from dualpath_twin import scenario as scn
from dualpath_twin.cli_errors import EXIT_USER_ERROR
from dualpath_twin.cli_errors import die as _die
from dualpath_twin.cli_errors import guard as _guard
from dualpath_twin.cli_errors import is_user_error as _is_user_error
from dualpath_twin.results import Progress, RunResult, RunSummary

T = TypeVar("T")

EXIT_CHECK_FAILED = 1
PROGRESS_AFTER_S = 2.0  # show a progress bar only for runs that last longer than this

app = typer.Typer(
    name="dualpath-twin",
    help="Digital twin of PD-disaggregated LLM inference clusters loading KV-cache from storage "
    "(Basic, layer-wise, DualPath, Oracle).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
workload_app = typer.Typer(help="Inspect workloads (synthetic datasets and traces).", no_args_is_help=True)
app.add_typer(workload_app, name="workload")

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


# ------------------------------------------------------------------ errors and output helpers


def _err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _out_console() -> Console:
    con = Console(highlight=False)
    if not con.is_terminal:  # pipes and files: do not squeeze tables into 80 columns
        con = Console(highlight=False, width=220)
    return con


def _jsonable(obj: Any) -> Any:
    """Convert results (pydantic, dataclasses, paths, NaN) into plain JSON-safe values."""
    if isinstance(obj, BaseModel):
        return _jsonable(obj.model_dump(mode="json"))
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, str | int | bool) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return _jsonable(obj.item())
    return str(obj)


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(_jsonable(obj), indent=2, allow_nan=False))


def _fmt_num(v: Any, digits: int = 4) -> str:
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


def _fmt_cell(v: Any) -> str:
    """A table cell: numbers compact, datetimes to the second, missing as '-'."""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, int | float):
        return _fmt_num(v)
    return "-" if v is None or v == "" else str(v)


def _fmt_bytes(n: float) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    x = float(n)
    for u in units:
        if abs(x) < 1024 or u == units[-1]:
            return f"{x:,.1f} {u}" if u != "B" else f"{x:,.0f} B"
        x /= 1024
    return f"{n} B"


def _load_scenario(path: Path, sets: list[str] | None, policy: str | None = None) -> scn.Scenario:
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


def _with_skip_bad_lines(sc: scn.Scenario, skip: bool) -> scn.Scenario:
    """Apply ``--skip-bad-lines`` to a loaded scenario."""
    return scn.apply_overrides(sc, {"workload.skip_bad_lines": True}) if skip else sc


def _report_skipped(sc: scn.Scenario) -> Any:
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


def _split_csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


# ------------------------------------------------------------------ running with progress and Ctrl-C


@dataclass
class _Box(Generic[T]):
    """Carries a worker thread's return value or exception back to the main thread."""

    value: T | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class _ProgressState:
    """Latest Progress per task (policy), written by the simulation, read by the main thread."""

    latest: dict[str, Progress] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, key: str, p: Progress) -> None:
        with self.lock:
            self.latest[key] = p

    def snapshot(self) -> dict[str, Progress]:
        with self.lock:
            return dict(self.latest)


def _run_cancellable(fn: Callable[[], T], cancel: threading.Event, tick: Callable[[], None]) -> T:
    """Run ``fn`` in a worker thread; Ctrl-C sets ``cancel``, waits for the worker, then re-raises."""
    box: _Box[T] = _Box()

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


class _ProgressBar:
    """A rich progress bar on stderr, shown only for runs lasting over PROGRESS_AFTER_S seconds."""

    def __init__(self, state: _ProgressState, enabled: bool) -> None:
        self.state = state
        self.enabled = enabled and _err_console().is_terminal
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
                console=_err_console(),
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


def _open_store(db: Path | None) -> Any:
    from dualpath_twin.store import open_store

    return open_store(db)


def _close(store: Any) -> None:
    if store is not None and hasattr(store, "close"):
        store.close()


def _mark(store: Any, run_ids: list[str], status: str, error: str = "") -> None:
    """Best-effort status update of runs that did not finish (never masks the original problem)."""
    for rid in run_ids:
        try:
            store.mark_run(rid, status, error)
        except Exception as exc:  # noqa: BLE001 - reporting only
            typer.echo(f"warning: could not mark run {rid} as {status}: {exc}", err=True)


def _try_report(store: Any, run_ids: list[str], results: list[RunResult], out: Path | None) -> str | None:
    """Write the --report file if asked; return the problem text of a user error (the run is kept)."""
    if out is None:
        return None
    try:
        written = _write_report(store, run_ids, results, out)
    except Exception as exc:  # noqa: BLE001 - user errors reported after the results are printed
        if not _is_user_error(exc):
            raise
        return f"report not written: {exc}"
    typer.echo(f"report written to {written}", err=True)
    return None


def _write_report(store: Any, run_ids: list[str], results: list[RunResult], out: Path) -> Path:
    from dualpath_twin import report

    if store is not None and run_ids:
        return report.build_report(store, run_ids, out)
    return report.build_report_from_results(results, out)


# ------------------------------------------------------------------ summary tables

_PCT_KEYS = ("p50", "p90", "p99")


def _summary_rows(s: RunSummary) -> list[tuple[str, str]]:
    """Label/value rows of a run summary for the human-readable tables."""
    ms = 1000.0

    def pct(p: Any, scale: float = 1.0) -> str:
        vals = [getattr(p, k) for k in _PCT_KEYS]
        return " / ".join(_fmt_num(v * scale if v is not None else None, 3) for v in vals)

    rows = [
        ("policy", s.policy),
        ("status", s.status + (f" ({s.status_reason})" if s.status_reason else "")),
        ("mode", s.mode),
        ("JCT (s)", _fmt_num(s.jct_s)),
        ("simulated time (s)", _fmt_num(s.sim_time_s)),
        ("rounds done / total", f"{s.rounds:,} / {s.rounds_total:,}"),
        ("prompt tokens/s", _fmt_num(s.prompt_tokens_per_s)),
        ("generated tokens/s", _fmt_num(s.generated_tokens_per_s)),
        ("TTFT p50/p90/p99 (s)", pct(s.ttft_s)),
        ("TPOT p50/p90/p99 (ms)", pct(s.tpot_s, ms)),
        ("SLO attainment", _fmt_num(s.slo_attainment)),
        ("SNIC read util prefill", _fmt_num(s.snic_read_utilization.get("prefill"))),
        ("SNIC read util decode", _fmt_num(s.snic_read_utilization.get("decode"))),
        ("SNIC imbalance (max/avg)", _fmt_num(s.snic_imbalance)),
        ("bottleneck", s.bottleneck or "-"),
    ]
    if s.bound is not None:
        rows += [
            ("bound: binding resource", s.bound.binding_resource or "-"),
            ("bound: max prompt tokens/s", _fmt_num(s.bound.max_prompt_tokens_per_s)),
            ("bound: min JCT (s)", _fmt_num(s.bound.min_jct_s)),
        ]
    rows += [("sim events", _fmt_num(s.sim_events)), ("wall time (s)", _fmt_num(s.wall_s))]
    return rows


def _print_summary_table(summaries: list[RunSummary], run_ids: list[str | None], title: str) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for s in summaries:
        table.add_column(s.policy, justify="right")
    rows = [_summary_rows(s) for s in summaries]
    for i, (label, _) in enumerate(rows[0]):
        if label == "policy":
            continue
        table.add_row(label, *[r[i][1] for r in rows])
    if any(run_ids):
        table.add_row("run id", *[rid or "-" for rid in run_ids])
    con = _out_console()
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
            )


# ------------------------------------------------------------------ checks


def _apply_checks(
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


# ------------------------------------------------------------------ commands: validate


def _derived_sections(sc: scn.Scenario) -> dict[str, Any]:
    """Derived values, the P/D range and per-policy bounds; missing pieces are reported, not fatal."""
    out: dict[str, Any] = {}
    try:
        from dualpath_twin.validation import derived_values

        out["derived"] = _jsonable(derived_values(sc))
    except (ImportError, NotImplementedError) as exc:
        out["derived"] = {"unavailable": str(exc) or type(exc).__name__}
    try:
        from dualpath_twin.analysis import pd_range

        out["pd_range"] = _jsonable(pd_range(sc))
    except (ImportError, NotImplementedError) as exc:
        out["pd_range"] = {"unavailable": str(exc) or type(exc).__name__}
    bounds: dict[str, Any] = {}
    try:
        from dualpath_twin import api

        for pol in scn.POLICY_NAMES:
            bounds[pol] = _jsonable(api.bounds(sc, pol))
    except (ImportError, NotImplementedError) as exc:
        bounds = {"unavailable": str(exc) or type(exc).__name__}
    out["bounds"] = bounds
    return out


def _comment_block(title: str, data: Any) -> list[str]:
    lines = [f"# ---- {title}"]
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, dict):
                for k2, v2 in v.items():
                    lines.append(f"#   {k}.{k2} = {_fmt_value(k2, v2)}")
            else:
                lines.append(f"#   {k} = {_fmt_value(k, v)}")
    else:
        lines.append(f"#   {data}")
    return lines


def _fmt_value(key: str, v: Any) -> str:
    if isinstance(v, int | float) and not isinstance(v, bool) and "bytes" in key:
        return f"{_fmt_num(v)}  ({_fmt_bytes(v)})"
    if isinstance(v, list | dict):
        return json.dumps(v)
    return _fmt_num(v) if isinstance(v, int | float) else str(v)


@app.command()
def validate(
    scenario: Annotated[Path | None, typer.Argument(help="scenario TOML file", show_default=False)] = None,
    set_: SetOpt = None,
    json_: JsonOpt = False,
    paths: Annotated[bool, typer.Option("--paths", help="list every dotted path a scenario accepts")] = False,
) -> None:
    """Validate a scenario; print it resolved with defaults plus derived values, or its errors (exit 2)."""
    with _guard():
        if paths:
            _print_paths(json_)
            return
        if scenario is None:
            _die(
                "give a scenario file, e.g. `dualpath-twin validate scenarios/examples/quick.toml` (or --paths)"
            )
        assert scenario is not None
        try:
            sc = _load_scenario(scenario, set_)
        except scn.ScenarioError as err:
            if json_:
                _print_json({"valid": False, "source": err.source, "problems": err.problems})
            typer.echo(str(err), err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        extra = _derived_sections(sc)
        if json_:
            _print_json({"valid": True, "source": str(scenario), "scenario": sc, **extra})
            return
        lines = [
            f"# {scenario}: valid (resolved with defaults; derived values as comments)",
            sc.to_toml().rstrip(),
            "",
        ]
        lines += _comment_block("derived values", extra["derived"])
        lines += _comment_block("bottleneck-free P/D range (DualPath paper)", extra["pd_range"])
        bounds = extra["bounds"]
        if "unavailable" in bounds:
            lines += _comment_block("analytic bounds", bounds)
        else:
            lines.append("# ---- analytic bounds per policy (rounds/s; binding resource)")
            for pol, b in bounds.items():
                lines.append(
                    f"#   {pol}: max {_fmt_num(b.get('max_rounds_per_s'))} rounds/s, "
                    f"{_fmt_num(b.get('max_prompt_tokens_per_s'))} prompt tokens/s, "
                    f"min JCT {_fmt_num(b.get('min_jct_s'))} s, bound by {b.get('binding_resource') or '-'}"
                )
        typer.echo("\n".join(lines))


def _print_paths(as_json: bool) -> None:
    """List every dotted scenario path (with default and description in JSON)."""
    paths = scn.all_paths()
    if not as_json:
        typer.echo("\n".join(paths))
        return
    default = scn.Scenario().model_dump(mode="json")
    rows = []
    for p in paths:
        node: Any = default
        model: Any = scn.Scenario
        info = None
        for part in p.split("."):
            node = node.get(part) if isinstance(node, dict) else None
            info = model.model_fields[part]
            model = scn.table_model(info.annotation)
        rows.append({"path": p, "default": node, "description": info.description if info else ""})
    _print_json(rows)


# ------------------------------------------------------------------ commands: run


@app.command()
def run(
    scenario: ScenarioArg,
    policy: Annotated[
        str | None, typer.Option("--policy", "-p", help="basic | layerwise | dualpath | oracle")
    ] = None,
    set_: SetOpt = None,
    json_: JsonOpt = False,
    no_save: NoSaveOpt = False,
    db: DbOpt = None,
    report: ReportOpt = None,
    check: CheckOpt = None,
    junit: JunitOpt = None,
    check_invariants: Annotated[
        bool,
        typer.Option(
            "--check-invariants", help="verify conservation/capacity invariants; exit 1 if violated"
        ),
    ] = False,
    skip_bad_lines: SkipBadOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Simulate one scenario under one policy and print its summary."""
    with _guard():
        checks = chk.parse_checks(check or [])
        chk.precheck(checks)
        sc = _with_skip_bad_lines(_load_scenario(scenario, set_, policy), skip_bad_lines)
        pol = sc.policy.name
        workload = _report_skipped(sc)
        from dualpath_twin import api

        store = None if no_save else _open_store(db)
        run_id: str | None = None
        try:
            if store is not None:
                run_id = store.begin_run(sc.to_toml(), sc.name, pol, sc.run.seed)
            state = _ProgressState()
            bar = _ProgressBar(state, enabled=not quiet)
            cancel = threading.Event()

            def go() -> RunResult:
                return api.simulate(
                    sc,
                    pol,
                    progress=lambda p: state.update(pol, p),
                    cancel=cancel,
                    check_invariants=check_invariants,
                    workload=workload,
                )

            try:
                result = _run_cancellable(go, cancel, bar.tick)
            except KeyboardInterrupt:
                bar.close()
                if store is not None and run_id:
                    _mark(store, [run_id], "cancelled", "interrupted (Ctrl-C)")
                raise
            except BaseException as exc:
                bar.close()
                if store is not None and run_id:
                    _mark(store, [run_id], "failed", f"{type(exc).__name__}: {exc}")
                raise
            bar.close()
            if store is not None and run_id:
                store.finish_run(run_id, result)
            report_problem = _try_report(store, [run_id] if run_id else [], [result], report)
        finally:
            _close(store)

        summary = result.summary
        if json_:
            obj: dict[str, Any] = summary.model_dump(mode="json")
            if run_id:
                obj["run_id"] = run_id
            if check_invariants:
                obj["invariants"] = list(result.invariants)
            _print_json(obj)
        elif not quiet:
            _print_summary_table([summary], [run_id], f"{sc.name} ({scenario})")
        ok = True
        if check_invariants and result.invariants:
            ok = False
            for v in result.invariants:
                typer.echo(f"invariant violated: {v}", err=True)
        elif check_invariants:
            typer.echo("invariants: all held", err=True)
        metrics = chk.run_metrics(summary)
        ok = _apply_checks(checks, metrics, None, junit, f"{sc.name}.{pol}") and ok
        if report_problem:
            _die(report_problem)
        if not ok:
            raise typer.Exit(EXIT_CHECK_FAILED)


# ------------------------------------------------------------------ commands: compare


@app.command()
def compare(
    scenario: ScenarioArg,
    policies: Annotated[
        str, typer.Option("--policies", help="comma-separated policies to run on the same scenario and seed")
    ] = "basic,layerwise,dualpath,oracle",
    set_: SetOpt = None,
    json_: JsonOpt = False,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", min=1, help="parallel worker processes")
    ] = None,
    no_save: NoSaveOpt = False,
    db: DbOpt = None,
    report: ReportOpt = None,
    check: CheckOpt = None,
    junit: JunitOpt = None,
    check_invariants: Annotated[
        bool,
        typer.Option(
            "--check-invariants", help="verify conservation/capacity invariants of every run; exit 1 if violated"
        ),
    ] = False,
    skip_bad_lines: SkipBadOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run several policies on the same scenario and seed; print them side by side with ratios."""
    with _guard():
        pols = _split_csv(policies)
        bad = [p for p in pols if p not in scn.POLICY_NAMES]
        if not pols or bad:
            _die(
                f"--policies {policies!r}: unknown {', '.join(bad) or 'empty list'}; choose from {', '.join(scn.POLICY_NAMES)}"
            )
        if len(set(pols)) != len(pols):
            _die(f"--policies {policies!r}: each policy may appear once")
        checks = chk.parse_checks(check or [])
        chk.precheck(checks, pols)
        sc = _with_skip_bad_lines(_load_scenario(scenario, set_), skip_bad_lines)
        _report_skipped(sc)
        from dualpath_twin import api

        store = None if no_save else _open_store(db)
        run_ids: dict[str, str] = {}
        run_ids_done: dict[str, str] = {}
        try:
            if store is not None:
                for p in pols:
                    run_ids[p] = store.begin_run(sc.with_policy(p).to_toml(), sc.name, p, sc.run.seed)
            state = _ProgressState()
            bar = _ProgressBar(state, enabled=not quiet)
            cancel = threading.Event()

            def go() -> Any:
                return api.compare(
                    sc, pols, workers=workers, progress=state.update, cancel=cancel, check_invariants=check_invariants
                )

            try:
                cmp = _run_cancellable(go, cancel, bar.tick)
            except KeyboardInterrupt:
                bar.close()
                if store is not None:
                    _mark(store, list(run_ids.values()), "cancelled", "interrupted (Ctrl-C)")
                raise
            except BaseException as exc:
                bar.close()
                if store is not None:
                    _mark(store, list(run_ids.values()), "failed", f"{type(exc).__name__}: {exc}")
                raise
            bar.close()
            if store is not None:
                for res in cmp.runs:
                    rid = run_ids.pop(res.summary.policy, None)
                    if rid is not None:
                        store.finish_run(rid, res)
                        run_ids_done[res.summary.policy] = rid
                # policies the comparison did not return (should not happen) are not left 'running'
                _mark(store, list(run_ids.values()), "failed", "no result returned by compare")
            ids = [run_ids_done[r.summary.policy] for r in cmp.runs if r.summary.policy in run_ids_done]
            report_problem = _try_report(store, ids, cmp.runs, report)
        finally:
            _close(store)

        summaries = [r.summary for r in cmp.runs]
        ids_in_order = [run_ids_done.get(s.policy) for s in summaries]
        if json_:
            runs_json = []
            for s, rid in zip(summaries, ids_in_order, strict=True):
                obj: dict[str, Any] = s.model_dump(mode="json")
                if rid:
                    obj["run_id"] = rid
                runs_json.append(obj)
            out_json: dict[str, Any] = {"runs": runs_json, "ratios": dict(cmp.ratios)}
            if check_invariants:
                out_json["invariants"] = {r.summary.policy: list(r.invariants) for r in cmp.runs}
            _print_json(out_json)
        elif not quiet:
            _print_summary_table(summaries, ids_in_order, f"{sc.name} ({scenario})")
            base = summaries[0].policy if summaries else ""
            shown = {k: v for k, v in cmp.ratios.items() if k.split("_vs_", 1)[-1] in (base, f"{base}_jct")}
            if shown:
                _out_console().print(
                    f"ratios vs {base} (throughput; *_jct = JCT ratio; all ratios in --json): "
                    + ", ".join(f"{k} = {_fmt_num(v, 3)}" for k, v in shown.items())
                )
        inv_ok = True
        if check_invariants:
            for r in cmp.runs:
                for v in r.invariants:
                    inv_ok = False
                    typer.echo(f"invariant violated ({r.summary.policy}): {v}", err=True)
            if inv_ok:
                typer.echo("invariants: all held", err=True)
        metrics = chk.compare_metrics(summaries, cmp.ratios)
        ok = _apply_checks(checks, metrics, [s.policy for s in summaries], junit, f"{sc.name}.compare") and inv_ok
        if report_problem:
            _die(report_problem)
        if not ok:
            raise typer.Exit(EXIT_CHECK_FAILED)


# ------------------------------------------------------------------ commands: store


@app.command("runs")
def runs_cmd(
    json_: JsonOpt = False,
    policy: Annotated[str | None, typer.Option("--policy", help="only runs of this policy")] = None,
    scenario: Annotated[
        str | None, typer.Option("--scenario", help="only runs of this scenario name")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="only runs with this status")] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="at most this many runs (newest first)")
    ] = 50,
    db: DbOpt = None,
) -> None:
    """List stored runs, newest first."""
    with _guard():
        store = _open_store(db)
        try:
            df = store.list_runs(scenario=scenario, policy=policy, status=status)
        finally:
            _close(store)
        df = df.head(limit)
        rows = df.to_dicts()
        if json_:
            _print_json(rows)
            return
        if not rows:
            typer.echo("no runs stored" + (f" in {db}" if db else ""), err=True)
            return
        preferred = [
            "run_id", "created_at", "status", "scenario_name", "policy", "seed", "jct_s",
            "prompt_tokens_per_s", "ttft_p99_s", "slo_attainment", "bottleneck",
        ]  # fmt: skip
        cols = [c for c in preferred if c in df.columns] or list(df.columns)[:8]
        table = Table(title=f"{len(rows)} run(s)", title_justify="left")
        for c in cols:
            table.add_column(c)
        for r in rows:
            table.add_row(*[_fmt_cell(r.get(c)) for c in cols])
        _out_console().print(table)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="run id or a unique prefix of it", show_default=False)],
    json_: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Show one stored run's summary."""
    with _guard():
        store = _open_store(db)
        try:
            rid = store.resolve_run_id(run_id)
            summary = store.get_summary(rid)
        finally:
            _close(store)
        if json_:
            obj = summary.model_dump(mode="json")
            obj["run_id"] = rid
            _print_json(obj)
            return
        _print_summary_table([summary], [rid], f"run {rid}: {summary.scenario_name}")


@app.command()
def export(
    run_id: Annotated[str, typer.Argument(help="run id or a unique prefix of it", show_default=False)],
    format_: Annotated[str, typer.Option("--format", "-f", help="parquet | csv")] = "parquet",
    output: Annotated[Path, typer.Option("--output", "-o", help="output folder (or file prefix)")] = Path(
        "export"
    ),
    db: DbOpt = None,
) -> None:
    """Export a run's summary, rounds and time series as Parquet or CSV files."""
    with _guard():
        fmt = format_.lower()
        if fmt not in ("parquet", "csv"):
            _die(f"--format {format_!r}: choose parquet or csv")
        store = _open_store(db)
        try:
            rid = store.resolve_run_id(run_id)
            files = store.export_run(rid, fmt, output)
        finally:
            _close(store)
        for f in files:
            typer.echo(str(f))


@app.command()
def gc(
    older_than_days: Annotated[
        float | None,
        typer.Option("--older-than-days", min=0, help="remove runs started more than N days ago"),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="comma-separated statuses to remove (default: failed,cancelled)"),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Delete runs: --older-than-days N alone removes every completed run that old; default: failed and cancelled runs."""
    with _guard():
        allowed = {"running", "finished", "truncated", "failed", "cancelled"}
        statuses = _split_csv(status) if status else None
        if statuses is None:
            # age alone: every completed run that old; neither: failed and cancelled runs of any age
            statuses = (
                ["finished", "truncated", "failed", "cancelled"]
                if older_than_days is not None
                else ["failed", "cancelled"]
            )
        bad = [s for s in statuses or [] if s not in allowed]
        if bad:
            _die(f"--status: unknown {', '.join(bad)}; choose from {', '.join(sorted(allowed))}")
        store = _open_store(db)
        try:
            n = store.gc(older_than_days=older_than_days, statuses=statuses)
        finally:
            _close(store)
        typer.echo(f"removed {n} run(s)")


@app.command("report")
def report_cmd(
    run_ids: Annotated[
        list[str], typer.Argument(help="one or more run ids (or unique prefixes)", show_default=False)
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="report.html or report.pdf")] = Path(
        "report.html"
    ),
    db: DbOpt = None,
) -> None:
    """Build a self-contained HTML (or PDF) report of stored runs."""
    with _guard():
        if output.suffix.lower() not in (".html", ".htm", ".pdf"):
            _die(f"-o {output}: the report must end in .html or .pdf")
        store = _open_store(db)
        try:
            ids = [store.resolve_run_id(r) for r in run_ids]
            out = _write_report(store, ids, [], output)
        finally:
            _close(store)
        typer.echo(str(out))


# ------------------------------------------------------------------ commands: workload


@workload_app.command("stats")
def workload_stats_cmd(
    source: Annotated[Path, typer.Argument(help="a scenario TOML or a trace file", show_default=False)],
    json_: JsonOpt = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="model catalog name for KV bytes per round (default: the scenario's)"
        ),
    ] = None,
    set_: SetOpt = None,
    skip_bad_lines: SkipBadOpt = False,
) -> None:
    """Statistics of a workload: rounds, agents, token percentiles, hit ratio, KV bytes per round."""
    with _guard():
        from dualpath_twin.catalog import get_model
        from dualpath_twin.workload import format_stats_table, workload_stats

        if not source.exists():
            _die(f"file not found: {source}; give a scenario .toml or a trace file (.jsonl/.csv)")
        if source.suffix.lower() == ".toml":
            sc = _with_skip_bad_lines(_load_scenario(source, set_), skip_bad_lines)
            spec = (
                get_model(model)
                if model
                else get_model(sc.model.name, sc.model.kv_format, sc.model.overrides)
            )
            stats = workload_stats(sc, model_spec=spec, block_tokens=sc.storage.block_tokens)
        else:
            if set_:
                _die("--set applies to scenario files only, not to a trace")
            spec = get_model(model) if model else None
            stats = workload_stats(source, model_spec=spec, skip_bad_lines=skip_bad_lines)
        if json_:
            _print_json(stats.to_dict())
        else:
            typer.echo(format_stats_table(stats))


# ------------------------------------------------------------------ version, planning, entry point


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"dualpath-twin {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Digital twin of PD-disaggregated LLM inference clusters loading KV-cache from storage."""


def _register_planning() -> None:
    """Add the planning commands (sweep, capacity, size, sensitivity) when that module exists."""
    try:
        from dualpath_twin.planning.cli import register
    except ModuleNotFoundError as exc:
        if exc.name in ("dualpath_twin.planning.cli", "dualpath_twin.planning"):
            return
        typer.echo(f"warning: planning commands unavailable: {exc}", err=True)
        return
    except ImportError as exc:
        typer.echo(f"warning: planning commands unavailable: {exc}", err=True)
        return
    register(app)


_register_planning()


def _register_calibration() -> None:
    """Add the ``calibrate`` command (dualpath_twin/calibration/cli.py)."""
    from dualpath_twin.calibration.cli import register

    register(app)


_register_calibration()


def main() -> None:
    """Console-script entry point."""
    app(prog_name="dualpath-twin")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
