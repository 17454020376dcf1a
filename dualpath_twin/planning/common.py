"""Small helpers shared by the planning modules: scenario overrides and (de)serialisation."""

from __future__ import annotations

from typing import Any

from dualpath_twin import scenario as scn
from dualpath_twin.scenario import Scenario


def _validation_available() -> bool:
    try:
        import dualpath_twin.validation  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def override(sc: Scenario, overrides: dict[str, Any]) -> Scenario:
    """Apply dotted-path overrides with full validation (catalog checks when the validation module exists)."""
    if not overrides:
        return sc
    return scn.apply_overrides(sc, overrides, check_catalog=_validation_available())


def scenario_from_toml(text: str) -> Scenario:
    """Rebuild a scenario from its TOML text inside a worker."""
    return scn.from_toml(text, check_catalog=_validation_available())


def point_scenarios(sc: Scenario, grid: dict[str, list[Any]], policies: list[str]) -> list[Scenario]:
    """Every (grid point, policy) scenario a planning job will run; invalid points are left out (skipped later)."""
    return list(labelled_point_scenarios(sc, grid, policies).values())


def labelled_point_scenarios(sc: Scenario, grid: dict[str, list[Any]], policies: list[str]) -> dict[str, Scenario]:
    """``point_scenarios`` keyed by 'path=value, ... (policy)', the label a run-size estimate names them by."""
    from dualpath_twin.planning.grid import expand_grid

    out: dict[str, Scenario] = {}
    for point in expand_grid(grid) if grid else [{}]:
        for pol in policies:
            try:
                s = override(sc, {**point, "policy.name": pol})
            except scn.ScenarioError:
                continue
            out[", ".join(f"{k}={v}" for k, v in point.items()) + f" ({pol})"] = s
    return out
