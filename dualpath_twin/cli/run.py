"""``run`` and ``compare``: simulate a scenario under one or several policies, save, report and check."""

from __future__ import annotations

import os
import threading
from typing import Annotated, Any

import typer

from dualpath_twin import checks as chk
from dualpath_twin import scenario as scn
from dualpath_twin.cli import common
from dualpath_twin.cli.common import (
    EXIT_CHECK_FAILED,
    CheckOpt,
    DbOpt,
    JsonOpt,
    JunitOpt,
    NoSaveOpt,
    ProgressBar,
    ProgressState,
    QuietOpt,
    ReportOpt,
    ScenarioArg,
    SetOpt,
    SkipBadOpt,
    apply_checks,
    close,
    fmt_num,
    load_scenario,
    mark,
    out_console,
    print_json,
    print_summary_table,
    report_skipped,
    run_cancellable,
    split_csv,
    try_report,
    with_skip_bad_lines,
)
from dualpath_twin.cli.limits import MaxMemOpt, MaxWallOpt, YesOpt, check_size
from dualpath_twin.cli_errors import die, guard
from dualpath_twin.results import RunResult


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
    yes: YesOpt = False,
    max_memory_gb: MaxMemOpt = None,
    max_wall_s: MaxWallOpt = None,
) -> None:
    """Simulate one scenario under one policy and print its summary."""
    with guard():
        checks = chk.parse_checks(check or [])
        chk.precheck(checks)
        sc = with_skip_bad_lines(load_scenario(scenario, set_, policy), skip_bad_lines)
        pol = sc.policy.name
        check_size([sc], [pol], yes=yes, max_memory_gb=max_memory_gb, max_wall_s=max_wall_s)
        workload = report_skipped(sc)
        from dualpath_twin import api

        store = None if no_save else common.open_store(db)
        run_id: str | None = None
        try:
            if store is not None:
                run_id = store.begin_run(sc.to_toml(), sc.name, pol, sc.run.seed)
            state = ProgressState()
            bar = ProgressBar(state, enabled=not quiet)
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
                result = run_cancellable(go, cancel, bar.tick)
            except KeyboardInterrupt:
                bar.close()
                if store is not None and run_id:
                    mark(store, [run_id], "cancelled", "interrupted (Ctrl-C)")
                raise
            except BaseException as exc:
                bar.close()
                if store is not None and run_id:
                    mark(store, [run_id], "failed", f"{type(exc).__name__}: {exc}")
                raise
            bar.close()
            if store is not None and run_id:
                store.finish_run(run_id, result)
            report_problem = try_report(store, [run_id] if run_id else [], [result], report)
        finally:
            close(store)

        summary = result.summary
        if json_:
            obj: dict[str, Any] = summary.model_dump(mode="json")
            if run_id:
                obj["run_id"] = run_id
            if check_invariants:
                obj["invariants"] = list(result.invariants)
            print_json(obj)
        elif not quiet:
            print_summary_table([summary], [run_id], f"{sc.name} ({scenario})", [sc])
        ok = True
        if check_invariants and result.invariants:
            ok = False
            for v in result.invariants:
                typer.echo(f"invariant violated: {v}", err=True)
        elif check_invariants:
            typer.echo("invariants: all held", err=True)
        metrics = chk.run_metrics(summary)
        ok = apply_checks(checks, metrics, None, junit, f"{sc.name}.{pol}") and ok
        if report_problem:
            die(report_problem)
        if not ok:
            raise typer.Exit(EXIT_CHECK_FAILED)


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
    yes: YesOpt = False,
    max_memory_gb: MaxMemOpt = None,
    max_wall_s: MaxWallOpt = None,
) -> None:
    """Run several policies on the same scenario and seed; print them side by side with ratios."""
    with guard():
        pols = split_csv(policies)
        bad = [p for p in pols if p not in scn.POLICY_NAMES]
        if not pols or bad:
            die(
                f"--policies {policies!r}: unknown {', '.join(bad) or 'empty list'}; choose from {', '.join(scn.POLICY_NAMES)}"
            )
        if len(set(pols)) != len(pols):
            die(f"--policies {policies!r}: each policy may appear once")
        checks = chk.parse_checks(check or [])
        chk.precheck(checks, pols)
        sc = with_skip_bad_lines(load_scenario(scenario, set_), skip_bad_lines)
        n_workers = workers if workers is not None else min(len(pols), os.cpu_count() or 1)  # as api.compare
        check_size([sc], pols, workers=n_workers, yes=yes, max_memory_gb=max_memory_gb, max_wall_s=max_wall_s)
        report_skipped(sc)
        from dualpath_twin import api

        store = None if no_save else common.open_store(db)
        run_ids: dict[str, str] = {}
        run_ids_done: dict[str, str] = {}
        try:
            if store is not None:
                for p in pols:
                    run_ids[p] = store.begin_run(sc.with_policy(p).to_toml(), sc.name, p, sc.run.seed)
            state = ProgressState()
            bar = ProgressBar(state, enabled=not quiet)
            cancel = threading.Event()

            def go() -> Any:
                return api.compare(
                    sc, pols, workers=workers, progress=state.update, cancel=cancel, check_invariants=check_invariants
                )

            try:
                cmp = run_cancellable(go, cancel, bar.tick)
            except KeyboardInterrupt:
                bar.close()
                if store is not None:
                    mark(store, list(run_ids.values()), "cancelled", "interrupted (Ctrl-C)")
                raise
            except BaseException as exc:
                bar.close()
                if store is not None:
                    mark(store, list(run_ids.values()), "failed", f"{type(exc).__name__}: {exc}")
                raise
            bar.close()
            if store is not None:
                for res in cmp.runs:
                    rid = run_ids.pop(res.summary.policy, None)
                    if rid is not None:
                        store.finish_run(rid, res)
                        run_ids_done[res.summary.policy] = rid
                # policies the comparison did not return (should not happen) are not left 'running'
                mark(store, list(run_ids.values()), "failed", "no result returned by compare")
            ids = [run_ids_done[r.summary.policy] for r in cmp.runs if r.summary.policy in run_ids_done]
            report_problem = try_report(store, ids, cmp.runs, report)
        finally:
            close(store)

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
            print_json(out_json)
        elif not quiet:
            print_summary_table(summaries, ids_in_order, f"{sc.name} ({scenario})", [sc.with_policy(x.policy) for x in summaries])
            base = summaries[0].policy if summaries else ""
            shown = {k: v for k, v in cmp.ratios.items() if k.split("_vs_", 1)[-1] in (base, f"{base}_jct")}
            if shown:
                out_console().print(
                    f"ratios vs {base} (throughput; *_jct = JCT ratio; all ratios in --json): "
                    + ", ".join(f"{k} = {fmt_num(v, 3)}" for k, v in shown.items())
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
        ok = apply_checks(checks, metrics, [s.policy for s in summaries], junit, f"{sc.name}.compare") and inv_ok
        if report_problem:
            die(report_problem)
        if not ok:
            raise typer.Exit(EXIT_CHECK_FAILED)



def register(app: typer.Typer) -> None:
    """Add ``run`` and ``compare`` to the CLI."""
    app.command()(run)
    app.command()(compare)
