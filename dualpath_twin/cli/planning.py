"""CLI commands of the planning package: ``sweep``, ``capacity``, ``size``, ``sensitivity`` (thin shells over the library).

Contract (same as the main CLI): ``--json`` prints ONE JSON object on stdout; progress and
messages go to stderr; exit 2 on a user error (bad scenario, grid, cost file), 130 on Ctrl-C.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dualpath_twin import scenario as scn
from dualpath_twin.cli import common
from dualpath_twin.cli.common import DbOpt, NoSaveOpt, out_console
from dualpath_twin.cli.limits import (
    MaxMemOpt,
    MaxWallOpt,
    YesOpt,
    check_capacity,
    check_capacity_many,
    check_size,
    check_sizing,
)
from dualpath_twin.cli_errors import guard as _guard
from dualpath_twin.guard import SENSITIVITY_FIX, WINDOW_FIX, plans_text
from dualpath_twin.planning.capacity import CapacityPoint, CapacityResult, SloCriterion, capacity_search_many
from dualpath_twin.planning.common import labelled_point_scenarios, point_scenarios
from dualpath_twin.planning.executors import DEFAULT_RETRIES, default_workers, open_executor
from dualpath_twin.planning.grid import PlanningError, parse_grid
from dualpath_twin.planning.reasons import ReasonLog, actionable_reason, window_advice
from dualpath_twin.planning.sensitivity import sensitivity, sensitivity_moves
from dualpath_twin.planning.sizing import SizingProgress, labelled_online, load_costs, size, sizing_points
from dualpath_twin.planning.sweep import SweepProgress, check_policies, run_sweep
from dualpath_twin.planning.types import STOPPED_CEILING, STOPPED_SLO

_err = Console(stderr=True)

ExecOpt = Annotated[str, typer.Option("--executor", help="local (process pool, default), dask or ray")]
AddrOpt = Annotated[str | None, typer.Option("--address", help="scheduler address for dask (tcp://host:8786) or ray")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", "-w", help="parallel workers (default: available cores)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="override a scenario value: dotted.path=value (repeatable)")]
HtmlOpt = Annotated[Path | None, typer.Option("--html", help="write the chart(s) to this self-contained HTML file")]
PctOpt = Annotated[str, typer.Option("--percentile", help="SLO percentile that must be under the limits: p50, p90 or p99")]
AttOpt = Annotated[float | None, typer.Option("--min-attainment", help="also require this share of rounds within SLO (0-1)")]
SteadyOpt = Annotated[bool, typer.Option("--require-steady/--no-require-steady", help="a run not in steady state fails")]
PopOpt = Annotated[str, typer.Option(
    "--population",
    help="rounds the SLO percentiles count: 'window' (default) = rounds arriving in the last two run.online_window_s "
         "windows before the last agent's arrival, the run stopping once they are done; 'all' = every round, "
         "ramp-up and drain included")]
HorizonOpt = Annotated[float, typer.Option(
    "--horizon-factor",
    help="re-measure each capacity found with an arrival window this many times longer (1 to 4) and, if it "
         "fails there, search on below it: a slight overload grows the queue too slowly for the measured "
         "windows to show. 1 skips the check (docs/planning.md, 'Horizon check')")]
GrowthOpt = Annotated[float, typer.Option(
    "--max-population-growth",
    help="with --require-steady, fail a run whose mean number of active agents grew by more than this share from "
         "one run.online_window_s window to the next before the last arrival (not steady: agents outlive the "
         "arrival window)")]


def _load(path: Path, sets: list[str] | None) -> scn.Scenario:
    sc = scn.load(path)
    if sets:
        sc = scn.apply_overrides(sc, scn.parse_assignments(sets))
    return sc


def _split(items: list[str] | None) -> list[str]:
    return [p.strip() for it in items or [] for p in it.split(",") if p.strip()]


def _criterion(percentile: str, min_attainment: float | None, require_steady: bool, population: str = "window",
               max_population_growth: float = 0.05, warmup_from: str = "slo_limits",
               horizon_factor: float = 2.0) -> SloCriterion:
    if not 1 <= horizon_factor <= 4:
        raise PlanningError(f"--horizon-factor {horizon_factor}: give 1 (no horizon check) to 4, e.g. 2 (twice the "
                            "arrival window)")
    if warmup_from not in ("measured", "slo_limits"):
        raise PlanningError(f"--warmup-from {warmup_from!r}: use measured or slo_limits")
    if percentile not in ("p50", "p90", "p99"):
        raise PlanningError(f"--percentile {percentile!r}: use p50, p90 or p99")
    if population not in ("window", "all"):
        raise PlanningError(f"--population {population!r}: use window or all")
    if not max_population_growth >= 0:
        raise PlanningError(f"--max-population-growth {max_population_growth}: give a share >= 0, e.g. 0.05")
    return SloCriterion(percentile=percentile, min_attainment=min_attainment, require_steady=require_steady,  # type: ignore[arg-type]
                        population=population, max_population_growth=max_population_growth,  # type: ignore[arg-type]
                        warmup_from=warmup_from, horizon_factor=horizon_factor)  # type: ignore[arg-type]


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")


def _write_html(path: Path | None, figs: list[Any], title: str) -> None:
    if path is None:
        return
    from dualpath_twin.planning.figures import figures_to_html

    path.write_text(figures_to_html(figs, title), encoding="utf-8")
    typer.echo(f"wrote {path}", err=True)


def _store(db: Path | None) -> Any:
    from dualpath_twin.planning.storeio import open_sweep_store

    return open_sweep_store(db)


_STOPPED = {STOPPED_SLO: "early", STOPPED_CEILING: "ceiling"}
"""The capacity table's 'stopped' cell per CapacityPoint.stopped_early ('-' for a run that ran its course)."""


def _fmt(v: float | None, scale: float = 1.0, digits: str = ".3g") -> str:
    return "-" if v is None else format(v * scale, digits)


def capacity_table(results: list[CapacityResult]) -> Table:
    """Rich table: capacity per policy plus the measured curve."""
    t = Table(title="capacity (highest agents/s meeting the SLO)")
    for c in ("policy", "APS", "meets", "TTFT p90 s", "TTFT p99 s", "TPOT p90 ms", "attain", "steady", "agents +%",
              "stopped", "why"):
        t.add_column(c)
    for r in results:
        for p in r.curve:
            mark = " <= capacity" if p.aps == r.capacity_aps else ""
            # a run stopped early ends before its load drains: its latencies cover only the rounds run so far
            t.add_row(r.policy, f"{p.aps:.4g}", "yes" if p.meets else "no", _fmt(p.ttft_p90_s), _fmt(p.ttft_p99_s),
                      _fmt(p.tpot_p90_s, 1000), _fmt(p.slo_attainment), str(p.steady_state),
                      _fmt(p.population_growth, 100, ".0f"), _STOPPED.get(p.stopped_early or "", "-"),
                      actionable_reason(p.reason) + mark)
    return t


def _pd_advice(sc: scn.Scenario, pd: str, measure: str, policy: str | None, json_out: bool, store: Any = None) -> None:
    """``size --pd``: advise a P/D split from a run and show the neighbouring splits measured (saved in ``store``)."""
    from dualpath_twin.planning.pd_advice import advise_pd, parse_splits

    splits = None if pd.strip().lower() == "all" else parse_splits(pd)
    try:
        adv = advise_pd(sc, splits, policy=policy, measure=measure, store=store)
    finally:
        if store is not None:
            store.close()
    if json_out:
        _emit_json(adv.model_dump(mode="json"))
        return
    t = Table(title=f"P/D splits for {sc.name} ({adv.policy}); advised {adv.advised}")
    for col in ("split", "estimated rounds/s", "per node", "side balance", "bound rounds/s", "measured rounds/s",
                "measured per node", "GPU busy P / D", "JCT s"):
        t.add_column(col)
    for c in adv.candidates:
        busy = (f"{c.measured_gpu_busy_prefill:.0%} / {c.measured_gpu_busy_decode:.0%}"
                if c.measured_gpu_busy_prefill is not None and c.measured_gpu_busy_decode is not None else "-")
        t.add_row(c.label + (" *" if c.label == adv.advised else ""), _fmt(c.estimated_rounds_per_s), _fmt(c.estimated_per_node),
                  _fmt(c.estimated_balance, digits=".2f"), _fmt(c.bound_rounds_per_s), _fmt(c.measured_rounds_per_s),
                  _fmt(c.measured_per_node), busy, _fmt(c.jct_s, digits=".1f"))
    out_console().print(t)
    typer.echo(adv.text)
    ids = [c.run_id for c in adv.candidates if c.run_id]
    if ids:
        typer.echo(f"runs saved: {' '.join(ids)} (report: dualpath-twin report {' '.join(ids)})")


def register(app: typer.Typer) -> None:
    """Add the planning commands to the main typer app."""

    @app.command("sweep")
    def sweep_cmd(
        scenario: Annotated[Path, typer.Argument(help="scenario TOML")],
        grid: Annotated[list[str] | None, typer.Option("--grid", "-g", help="axis: path=v1,v2 | a..b | a..b+step | a..bxfactor (repeatable)")] = None,
        policies: Annotated[list[str] | None, typer.Option("--policies", "-p", help="policies, comma-separated or repeated (default: the scenario's)")] = None,
        workers: WorkersOpt = None,
        executor: ExecOpt = "local",
        address: AddrOpt = None,
        json_out: JsonOpt = False,
        db: Annotated[Path | None, typer.Option("--db", envvar="DUALPATH_TWIN_DB", help="result store; default data/twin.duckdb")] = None,
        no_save: Annotated[bool, typer.Option("--no-save", help="do not use the store (no resume)")] = False,
        name: Annotated[str | None, typer.Option("--name", help="sweep name (default: scenario name)")] = None,
        objective: Annotated[str, typer.Option("--objective", help="run (one simulation per point) or capacity (capacity search per point, not stored)")] = "run",
        tolerance: Annotated[float, typer.Option("--tolerance", help="capacity objective: relative tolerance")] = 0.1,
        horizon_factor: HorizonOpt = 2.0,
        sets: SetOpt = None,
        html: HtmlOpt = None,
        retries: Annotated[int, typer.Option("--retries", min=0, max=20, help="resubmit a point lost with its worker (a killed Dask worker or local process) this many times")] = DEFAULT_RETRIES,
        heatmap: Annotated[str | None, typer.Option("--heatmap", help="with --html: X,Y,METRIC axes of the heatmap, e.g. cluster.prefill_nodes,network.snic_gbps,capacity_aps")] = None,
        yes: YesOpt = False,
        max_memory_gb: MaxMemOpt = None,
        max_wall_s: MaxWallOpt = None,
    ) -> None:
        """Run a scenario over the cartesian product of grid axes and policies; resumable through the store."""
        with _guard():
            sc = _load(scenario, sets)
            axes = parse_grid(grid or [])
            pols = check_policies(_split(policies), sc)
            if objective not in ("run", "capacity"):
                raise PlanningError(f"--objective {objective!r}: use run or capacity")
            crit = _criterion("p90", None, True, horizon_factor=horizon_factor)  # the capacity objective's criterion
            if objective == "capacity":  # a search per point, its runs from its settings (guard.plan_capacity_search)
                plans = check_capacity_many(labelled_point_scenarios(sc, axes, pols), workers=workers or default_workers(),
                                            yes=yes, max_memory_gb=max_memory_gb, max_wall_s=max_wall_s,
                                            tolerance=tolerance, from_bound=True, horizon_factor=horizon_factor)
                _err.print(f"estimate: {plans_text(plans)}", markup=False)
            else:
                check_size(point_scenarios(sc, axes, pols), workers=workers or default_workers(), yes=yes,
                           max_memory_gb=max_memory_gb, max_wall_s=max_wall_s)
            store = None if (no_save or objective == "capacity") else _store(db)
            n_points = len(pols)
            for v in axes.values():
                n_points *= len(v)
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
                           TimeElapsedColumn(), console=_err, transient=True)
            task_id = bar.add_task("sweep", total=n_points, detail="")

            def on_progress(p: SweepProgress) -> None:
                bar.update(task_id, completed=p.done, total=p.total, detail=f"cached {p.cached}, failed {p.failed}")

            try:
                with bar, open_executor(executor, workers, address, retries=retries) as ex:
                    res = run_sweep(sc, axes, pols, executor=ex, store=store, name=name, objective=objective,  # type: ignore[arg-type]
                                    tolerance=tolerance, progress=on_progress, retries=retries, criterion=crit)
            finally:
                if store is not None and hasattr(store, "close"):
                    store.close()
            if html is not None:
                from dualpath_twin.planning.figures import sweep_heatmap
                from dualpath_twin.report.sweep import cli_command_line, write_sweep_report

                x, y, metric = _heatmap_axes(heatmap, list(axes), objective)
                write_sweep_report(html, res, sc, cli_command_line(), [sweep_heatmap(res.to_frame(), x, y, metric)],
                                   {"policies": ",".join(pols), "objective": objective, "tolerance": tolerance})
                typer.echo(f"wrote {html}", err=True)
            if json_out:
                _emit_json(res.to_json_obj())
                return
            typer.echo(f"sweep {res.sweep_id} ({res.name}): {len(res.points)} points, {res.new_runs} new runs, "
                       f"{sum(p.status == 'cached' for p in res.points)} already finished, "
                       f"{sum(p.status == 'skipped' for p in res.points)} skipped, "
                       f"{sum(p.status == 'failed' for p in res.points)} failed, {res.wall_s:.1f} s", err=True)
            from dualpath_twin.planning.figures import with_display_metrics

            df = with_display_metrics(res.to_frame())  # TPOT in ms (tpot_p90_ms), as every other table shows it
            t = Table()
            cols = [*axes, "policy", "status", "capacity_aps" if objective == "capacity" else "prompt_tokens_per_s",
                    "jct_s", "ttft_p90_s", "tpot_p90_ms", "slo_attainment", "reason"]
            for c in cols:
                t.add_column(c)
            for row in df.iter_rows(named=True):
                t.add_row(*[(_fmt(row[c]) if isinstance(row[c], float) else str(row[c] if row[c] is not None else "-"))[:60] for c in cols])
            out_console().print(t)

    @app.command("capacity")
    def capacity_cmd(
        scenario: Annotated[Path, typer.Argument(help="scenario TOML (run online at varying workload.arrival_rate_aps)")],
        policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help="policies, comma-separated or repeated (default: the scenario's)")] = None,
        tolerance: Annotated[float, typer.Option("--tolerance", help="stop when (hi - lo) / hi <= this")] = 0.05,
        start_aps: Annotated[float | None, typer.Option("--start-aps", help="first rate tried (default: workload.arrival_rate_aps)")] = None,
        max_evaluations: Annotated[int, typer.Option("--max-evaluations", help="simulations per policy at most")] = 40,
        window: Annotated[float | None, typer.Option("--window-s", help="arrival window: each rate runs aps x window agents (default: the larger of scenario agents / arrival_rate_aps and the agent population's warm-up at the SLO limits, to SloCriterion.warmup_share = 98% of its steady size, plus two run.online_window_s)")] = None,
        percentile: PctOpt = "p90",
        min_attainment: AttOpt = None,
        require_steady: SteadyOpt = True,
        population: PopOpt = "window",
        max_population_growth: GrowthOpt = 0.05,
        warmup_from: Annotated[str, typer.Option(
            "--warmup-from",
            help="when each run's two measured windows end: 'slo_limits' (default) = at the last arrival of the arrival "
                 "window; 'measured' = as soon as the agent population has reached 99.9% of its steady size at the "
                 "latencies the run measures: quicker, but near the capacity a shorter run can pass a rate that "
                 "collapses later (docs/planning.md)")] = "slo_limits",
        horizon_factor: HorizonOpt = 2.0,
        early_stop: Annotated[bool, typer.Option(
            "--early-stop/--no-early-stop",
            help="stop a run as soon as its TTFT SLO failure is certain (marked 'early' in the curve). On by default: "
                 "a stopped run fails exactly as the full run would, so the capacity found is the same, in less time")] = True,
        from_bound: Annotated[bool, typer.Option(
            "--from-bound/--no-from-bound",
            help="start at half the analytic ceiling instead of workload.arrival_rate_aps (ignored with --start-aps). "
                 "On by default: fewer runs, same capacity within --tolerance (a different start brackets the "
                 "same SLO boundary)")] = True,
        confirm: Annotated[bool, typer.Option(
            "--confirm/--no-confirm",
            help="once the bracket is within --tolerance, re-measure its two ends (and any pass above a failure) with "
                 "independent seeds (run.seed + 1, + 2) and take each rate's majority verdict; a reversed verdict "
                 "resumes the bisection. On by default: near saturation one run's steadiness verdict is noisy")] = True,
        workers: WorkersOpt = None,
        executor: ExecOpt = "local",
        address: AddrOpt = None,
        json_out: JsonOpt = False,
        sets: SetOpt = None,
        html: HtmlOpt = None,
        db: Annotated[Path | None, typer.Option("--db", envvar="DUALPATH_TWIN_DB", help="result store; default data/twin.duckdb")] = None,
        no_save: Annotated[bool, typer.Option("--no-save", help="do not save the search in the store")] = False,
        name: Annotated[str | None, typer.Option("--name", help="name of the saved search (default: scenario name)")] = None,
        yes: YesOpt = False,
        max_memory_gb: MaxMemOpt = None,
        max_wall_s: MaxWallOpt = None,
    ) -> None:
        """Highest online arrival rate (agents/s) meeting the SLO, by doubling then bisection; prints the measured curve.

        By default the search starts at half the analytic ceiling and stops each failing run once its
        failure is certain (column 'stopped'); --no-from-bound --no-early-stop runs the exhaustive search.

        The search (scenario, settings, capacity and measured curve per policy) is saved in the store
        (--db) under a search id; the dashboard's Planning > Capacity tab shows it.
        """
        with _guard():
            sc = _load(scenario, sets)
            pols = check_policies(_split(policy), sc)
            crit = _criterion(percentile, min_attainment, require_steady, population, max_population_growth, warmup_from,
                              horizon_factor)
            n = workers or default_workers()
            # runs and their sizes from the settings: bracket from the start rate, bisect to the tolerance
            plans = check_capacity(sc, pols, workers=n, yes=yes, max_memory_gb=max_memory_gb, max_wall_s=max_wall_s,
                                   tolerance=tolerance, start_aps=start_aps, window_s=window,
                                   max_evaluations=max_evaluations, from_bound=from_bound, confirm=confirm,
                                   population=population, horizon_factor=horizon_factor)
            for pol_name, plan in plans.items():
                _err.print(f"estimate {pol_name}: {plan.text()}", markup=False)

            said = ReasonLog()

            def on_point(p: CapacityPoint) -> None:
                early = ", stopped early" if p.stopped_early == STOPPED_SLO else ""
                who = f"{p.policy}: " if p.policy else ""
                rep = f" (replica {p.replica})" if p.replica else ""
                _err.print(f"  {who}{p.aps:.4g} APS{rep}: {'meets' if p.meets else 'fails'}{early} "
                           f"({said(actionable_reason(p.reason))})", markup=False)

            with open_executor(executor, n, address) as ex:
                results = capacity_search_many(sc, pols, criterion=crit, tolerance=tolerance, start_aps=start_aps,
                                               max_evaluations=max_evaluations, executor=ex, workers=n, on_point=on_point,
                                               window_s=window, early_stop=early_stop, from_bound=from_bound,
                                               confirm=confirm)
            _write_html(html, [_capacity_fig(results)], f"capacity {sc.name}")
            search_id = None
            if not no_save:
                from dualpath_twin.planning.storeio import capacity_spec, save_capacity

                store = _store(db)
                try:
                    spec = capacity_spec(pols, tolerance=tolerance, criterion=crit, start_aps=start_aps, window_s=window,
                                         max_evaluations=max_evaluations, overrides=sets, scenario_path=str(scenario),
                                         source="cli")
                    spec.update(early_stop=early_stop, from_bound=from_bound and start_aps is None, confirm=confirm)
                    search_id = save_capacity(store, sc, results, spec, name=name)
                finally:
                    store.close()
                typer.echo(f"saved capacity search {search_id} in {store.store.path} "
                           f"(dashboard: Planning > Capacity, or /planning?capacity={search_id})", err=True)
            if json_out:
                _emit_json({"scenario": sc.name, "search_id": search_id, "early_stop": early_stop,
                            "from_bound": from_bound and start_aps is None, "confirm": confirm,
                            "capacity": [r.model_dump(mode="json") for r in results]})
                return
            out_console().print(capacity_table(results))
            for r in results:
                hi = f"{r.hi_aps:.4g}" if r.hi_aps is not None else "none found"
                stopped = sum(1 for p in r.curve if p.stopped_early == STOPPED_SLO)
                free = sum(1 for p in r.curve if p.stopped_early == STOPPED_CEILING)
                typer.echo(f"{r.policy}: capacity {r.capacity_aps:.4g} agents/s (fails at {hi}; "
                           f"{'converged' if r.converged else 'NOT converged'} to {r.tolerance:g}, {r.evaluations} runs, "
                           f"{stopped} stopped early" + (f", {free} above the ceiling, not simulated" if free else "") + ")")
                for note in r.notes:
                    typer.echo(f"  note: {note}")
                advice = window_advice(r.policy, r.curve, r.window_s, online_window_s=sc.run.online_window_s)
                if advice:
                    typer.echo(f"  note: {advice}")

    @app.command("size")
    def size_cmd(
        scenario: Annotated[Path, typer.Argument(help="scenario TOML")],
        target_aps: Annotated[float | None, typer.Option("--target-aps", help="arrival rate to serve within SLO, agents/s")] = None,
        vary: Annotated[list[str] | None, typer.Option("--vary", "-v", help="axis to size: path=values (ranges ok), repeatable")] = None,
        cost_file: Annotated[Path | None, typer.Option("--cost-file", help="cost table TOML (default data/costs.toml)")] = None,
        policy: Annotated[str | None, typer.Option("--policy", "-p", help="loading design (default: the scenario's)")] = None,
        capacity: Annotated[str, typer.Option("--capacity", help="measure capacity for: none, meets (default) or all configurations")] = "meets",
        tolerance: Annotated[float, typer.Option("--tolerance", help="capacity search tolerance")] = 0.1,
        top: Annotated[int, typer.Option("--top", help="cheapest configurations to list")] = 5,
        no_prune: Annotated[bool, typer.Option("--no-prune", help="simulate configurations dominated by a failing one too")] = False,
        percentile: PctOpt = "p90",
        min_attainment: AttOpt = None,
        require_steady: SteadyOpt = True,
        horizon_factor: HorizonOpt = 2.0,
        workers: WorkersOpt = None,
        executor: ExecOpt = "local",
        address: AddrOpt = None,
        json_out: JsonOpt = False,
        sets: SetOpt = None,
        html: HtmlOpt = None,
        pd: Annotated[str | None, typer.Option("--pd", help="P/D advice instead: candidate splits, e.g. 1:1,2:1,1:2, or 'all' (every split of the scenario's node count)")] = None,
        pd_measure: Annotated[str, typer.Option("--pd-measure", help="P/D advice: simulate the advised split's neighbours (default), all candidates, or none")] = "neighbours",
        yes: YesOpt = False,
        max_memory_gb: MaxMemOpt = None,
        max_wall_s: MaxWallOpt = None,
        db: DbOpt = None,
        no_save: NoSaveOpt = False,
    ) -> None:
        """Cheapest configurations meeting the SLO at --target-aps, and the cost vs capacity Pareto front; --pd: which P/D split keeps both sides busy."""
        with _guard():
            sc = _load(scenario, sets)
            if policy:
                check_policies([policy], sc)
            limits = {"yes": yes, "max_memory_gb": max_memory_gb, "max_wall_s": max_wall_s}
            if pd is not None:
                check_size([sc], workers=workers or default_workers(), runs_per_scenario=3, **limits)  # the advised split and two neighbours
                _pd_advice(sc, pd, pd_measure, policy, json_out, None if no_save else common.open_store(db))
                return
            if target_aps is None or not vary:
                raise PlanningError("size needs --target-aps and at least one --vary axis (or --pd for P/D advice)")
            axes = parse_grid(vary)
            if capacity not in ("none", "meets", "all"):
                raise PlanningError(f"--capacity {capacity!r}: use none, meets or all")
            costs = load_costs(cost_file)
            crit = _criterion(percentile, min_attainment, require_steady, horizon_factor=horizon_factor)
            # the points as size() runs them (online at the target), a run each, then the capacity searches it makes
            cands = labelled_online(sizing_points(sc, target_aps, axes, policy or sc.policy.name, crit))
            est = check_sizing(cands, target_aps, workers=workers or default_workers(), measure=capacity,
                               tolerance=tolerance, population=crit.population, horizon_factor=horizon_factor, **limits)
            if est is not None:
                _err.print(f"estimate: {est.headline()}" + (f"; {est.text()}" if est.plans else ""), markup=False)

            def on_progress(p: SizingProgress) -> None:
                if p.last is not None:
                    _err.print(f"  [{p.phase} {p.done}/{p.total}] {p.last.point}: {p.last.status} {p.last.reason}")

            with open_executor(executor, workers, address) as ex:
                res = size(sc, target_aps, axes, policy=policy, costs=costs, criterion=crit,
                           measure_capacity=capacity, tolerance=tolerance, top=top, prune=not no_prune, executor=ex,  # type: ignore[arg-type]
                           progress=on_progress)
            if html is not None:
                from dualpath_twin.planning.figures import pareto_chart

                _write_html(html, [pareto_chart(res)], f"sizing {sc.name}")
            if json_out:
                _emit_json(res.model_dump(mode="json"))
                return
            t = Table(title=f"cheapest configurations meeting the SLO at {target_aps:g} agents/s ({res.policy})")
            for c in [*res.axes, f"{res.currency}/hour", "TTFT p90 s", "TPOT p90 ms", "capacity APS"]:
                t.add_column(c)
            for c in res.cheapest:
                t.add_row(*[str(c.point[a]) for a in res.axes], f"{c.cost_per_hour:.2f}",
                          _fmt(c.at_target.ttft_p90_s if c.at_target else None),
                          _fmt(c.at_target.tpot_p90_s if c.at_target else None, 1000), _fmt(c.capacity_aps))
            out_console().print(t)
            if not res.cheapest:
                typer.echo("no configuration meets the SLO at the target rate; widen the --vary ranges", err=True)
            counts = {s: sum(c.status == s for c in res.candidates) for s in ("meets", "fails", "pruned", "skipped", "error")}
            typer.echo("candidates: " + ", ".join(f"{v} {k}" for k, v in counts.items()), err=True)
            for c in res.candidates:
                if c.status in ("skipped", "error"):
                    typer.echo(f"  {c.status} {c.point}: {c.reason}", err=True)
            if res.pareto:
                typer.echo("Pareto front (cost/hour -> capacity APS): " + "; ".join(
                    f"{c.point} {c.cost_per_hour:.2f} -> {_fmt(c.capacity_aps)}" for c in res.pareto))

    @app.command("sensitivity")
    def sensitivity_cmd(
        scenario: Annotated[Path, typer.Argument(help="scenario TOML (online: capacity; offline: JCT)")],
        policy: Annotated[str | None, typer.Option("--policy", "-p", help="loading design (default: the scenario's)")] = None,
        param: Annotated[list[str] | None, typer.Option("--param", help="parameter paths to move (default: the hardware set), comma-separated or repeated")] = None,
        change: Annotated[float, typer.Option("--change", help="relative move, 0.5 = +/-50%")] = 0.5,
        tolerance: Annotated[float, typer.Option("--tolerance", help="capacity search tolerance (online)")] = 0.1,
        percentile: PctOpt = "p90",
        min_attainment: AttOpt = None,
        require_steady: SteadyOpt = True,
        horizon_factor: HorizonOpt = 2.0,
        workers: WorkersOpt = None,
        executor: ExecOpt = "local",
        address: AddrOpt = None,
        json_out: JsonOpt = False,
        sets: SetOpt = None,
        html: HtmlOpt = None,
        yes: YesOpt = False,
        max_memory_gb: MaxMemOpt = None,
        max_wall_s: MaxWallOpt = None,
    ) -> None:
        """Capacity (online) or JCT (offline) when each hardware parameter moves +/-50%: a tornado chart."""
        with _guard():
            sc = _load(scenario, sets)
            if policy:
                check_policies([policy], sc)
            crit = _criterion(percentile, min_attainment, require_steady, horizon_factor=horizon_factor)
            # the baseline and every move as sensitivity() builds them; online each is a capacity search
            runs = sensitivity_moves(sc, policy, parameters=_split(param) or None, change=change).scenarios()
            n = workers or default_workers()
            limits = {"yes": yes, "max_memory_gb": max_memory_gb, "max_wall_s": max_wall_s}
            if sc.workload.mode == "online":
                plans = check_capacity_many(runs, workers=n, tolerance=tolerance, from_bound=True,
                                            population=crit.population, fix=SENSITIVITY_FIX, window_fix=WINDOW_FIX,
                                            horizon_factor=horizon_factor, **limits)
                _err.print(f"estimate: {sum(pl.runs for pl in plans.values()):,} runs in {len(plans)} capacity"
                           f" searches; {plans_text(plans)}", markup=False)
            else:
                check_size(list(runs.values()), workers=n, **limits)

            def on_progress(done: int, total: int) -> None:
                _err.print(f"  {done}/{total} runs", end="\r")

            with open_executor(executor, workers, address) as ex:
                res = sensitivity(sc, policy, parameters=_split(param) or None, change=change,
                                  criterion=crit, tolerance=tolerance,
                                  executor=ex, progress=on_progress)
            if html is not None:
                from dualpath_twin.planning.figures import tornado_chart

                _write_html(html, [tornado_chart(res)], f"sensitivity {sc.name}")
            if json_out:
                _emit_json(res.model_dump(mode="json"))
                return
            t = Table(title=f"sensitivity of {res.metric} ({res.policy}), baseline {_fmt(res.baseline)}")
            for c in ("parameter", "low", "high", f"{res.metric} low", f"{res.metric} high", "swing"):
                t.add_column(c)
            for r in res.rows:
                t.add_row(r.path, f"{r.low_value:g}", f"{r.high_value:g}", _fmt(r.metric_low), _fmt(r.metric_high), _fmt(r.swing))
            out_console().print(t)
            for s in res.skipped:
                typer.echo(f"  skipped {s}", err=True)


def _heatmap_axes(spec: str | None, axes: list[str], objective: str) -> tuple[str, str, str]:
    metric = "capacity_aps" if objective == "capacity" else "prompt_tokens_per_s"
    if spec:
        parts = [p.strip() for p in spec.split(",")]
        if len(parts) not in (2, 3):
            raise PlanningError(f"--heatmap {spec!r}: give X,Y or X,Y,METRIC")
        return parts[0], parts[1], parts[2] if len(parts) == 3 else metric
    if len(axes) < 2:
        raise PlanningError("--html for a sweep needs two grid axes for the heatmap (or --heatmap X,Y)")
    return axes[0], axes[1], metric


def _capacity_fig(results: list[CapacityResult]) -> Any:
    from dualpath_twin.planning.figures import capacity_curve

    return capacity_curve(results)
