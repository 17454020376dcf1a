"""The run-size guard of the CLI: every command that simulates estimates its memory and wall time first.

Above the limits (``--max-memory-gb`` / ``--max-wall-s``, else the environment, the settings file
or the defaults; see ``dualpath_twin.guard``) the command refuses before any work starts, with
exit 2 and the scenario field and the fix named, unless ``--yes`` is given (then it warns and runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from dualpath_twin import guard as g
from dualpath_twin.cli_errors import die
from dualpath_twin.scenario import Scenario

T = TypeVar("T")

CLI_FORCE_HINT = "pass --yes to run anyway (or --max-memory-gb / --max-wall-s for this command)"

YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="run even when the estimated memory or wall time is above the limits")
]
MaxMemOpt = Annotated[
    float | None,
    typer.Option(
        "--max-memory-gb",
        min=0.001,
        help=f"memory limit for this command, GB (default: {g.ENV_MAX_MEMORY_GB}, the settings file, "
        f"or {g.DEFAULT_MEMORY_FRACTION:.0%} of available memory)",
    ),
]
MaxWallOpt = Annotated[
    float | None,
    typer.Option(
        "--max-wall-s",
        min=0.001,
        help=f"wall-time limit for this command, s (default: {g.ENV_MAX_WALL_S}, the settings file, or {g.DEFAULT_MAX_WALL_S:g})",
    ),
]


def check_size(
    scenarios: list[Scenario],
    policies: int | list[str] = 1,
    *,
    workers: int = 1,
    yes: bool = False,
    max_memory_gb: float | None = None,
    max_wall_s: float | None = None,
    runs_per_scenario: int = 1,
) -> g.RunEstimate | None:
    """Refuse (exit 2, the field and the fix named) a command whose runs exceed the limits, unless ``yes``.

    One scenario run once is guarded as a run of ``policies`` on ``workers`` processes; several
    (sweep points, capacity rates) as a batch: the largest point against memory, the total against wall time.
    """
    try:
        limits = g.get_limits(max_memory_gb, max_wall_s)
        if len(scenarios) == 1 and runs_per_scenario == 1:
            return g.guard_run(scenarios[0], policies, workers=workers, limits=limits, force_hint=CLI_FORCE_HINT)
        return g.guard_many(scenarios, policies, workers=workers, limits=limits, force_hint=CLI_FORCE_HINT,
                            runs_per_scenario=runs_per_scenario)  # fmt: skip
    except g.RunTooLarge as err:
        if not yes:
            die(str(err))
        typer.echo("warning: running anyway (--yes); " + str(err).replace("run refused before it started", "the estimate is above the limits"), err=True)
        return err.estimate
    except ValueError as err:  # a limit in the environment or settings file that is not a number
        die(str(err))
    return None


def check_capacity(
    sc: Scenario,
    policies: list[str],
    *,
    workers: int = 1,
    yes: bool = False,
    max_memory_gb: float | None = None,
    max_wall_s: float | None = None,
    **settings: object,
) -> dict[str, g.CapacityPlan]:
    """Refuse (exit 2) a capacity search whose expected runs exceed the limits, unless ``yes``; its plan per design.

    ``settings`` are the search's (tolerance, start_aps, window_s, max_evaluations, from_bound): the runs and
    each run's size follow from them (``guard.plan_capacity_search``), not from a typical count.
    """
    return _refuse_or_warn(lambda limits, force: g.guard_capacity(
        sc, policies, workers=workers, limits=limits, force=force, force_hint=CLI_FORCE_HINT, **settings,  # type: ignore[arg-type]
    ).plans, yes, max_memory_gb, max_wall_s, {})


def _refuse_or_warn(guard: Callable[[g.Limits, bool], T], yes: bool, max_memory_gb: float | None,
                    max_wall_s: float | None, empty: T) -> T:
    """Run ``guard(limits, force)``: exit 2 on a refusal (or a bad limit/setting) unless ``yes``, then warn and force."""
    try:
        limits = g.get_limits(max_memory_gb, max_wall_s)
        try:
            return guard(limits, False)
        except g.RunTooLarge as err:
            if not yes:
                die(str(err))
            typer.echo("warning: running anyway (--yes); " + str(err).replace("run refused before it started", "the estimate is above the limits"), err=True)
            return guard(limits, True)
    except ValueError as err:  # a limit that is not a number, or a setting the search would refuse
        die(str(err))
    return empty


def check_capacity_many(
    searches: dict[str, Scenario],
    *,
    workers: int = 1,
    yes: bool = False,
    max_memory_gb: float | None = None,
    max_wall_s: float | None = None,
    **settings: object,
) -> dict[str, g.CapacityPlan]:
    """``check_capacity`` for one search per scenario (a capacity sweep's points); their plans by label."""
    return _refuse_or_warn(lambda limits, force: g.guard_capacity_many(
        searches, workers=workers, limits=limits, force=force, force_hint=CLI_FORCE_HINT, **settings,  # type: ignore[arg-type]
    ).plans, yes, max_memory_gb, max_wall_s, {})


def check_sizing(
    candidates: dict[str, Scenario],
    target_aps: float,
    *,
    workers: int = 1,
    yes: bool = False,
    max_memory_gb: float | None = None,
    max_wall_s: float | None = None,
    **settings: object,
) -> g.CapacityEstimate | None:
    """Refuse (exit 2) a sizing job whose runs (one per candidate at the target, then its capacity searches) exceed the limits.

    ``settings`` are ``size``'s (measure, tolerance, population; ``guard.guard_sizing``); unless ``yes``.
    Returns the estimate (None without candidates).
    """
    return _refuse_or_warn(lambda limits, force: g.guard_sizing(
        candidates, target_aps, workers=workers, limits=limits, force=force, force_hint=CLI_FORCE_HINT,  # type: ignore[arg-type]
        **settings,  # type: ignore[arg-type]
    ), yes, max_memory_gb, max_wall_s, None)
