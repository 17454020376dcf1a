"""Helpers of the robustness suite: tiny scenarios, CLI arguments, subprocess environments."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dualpath_twin import scenario as scn
from dualpath_twin.store.schema import ROUNDS_COLUMNS

REPO = Path(__file__).resolve().parents[2]
QUICK = REPO / "scenarios" / "examples" / "quick.toml"
TINY_SETS = ["workload.agents=4", "workload.max_context_tokens=4096"]
CLI = [sys.executable, "-m", "dualpath_twin"]


def tiny_scenario(overrides: dict[str, object] | None = None) -> scn.Scenario:
    """quick.toml shrunk to 4 agents at 4K context (simulates in well under a second), plus overrides."""
    sc = scn.load(QUICK)
    return scn.apply_overrides(sc, {"workload.agents": 4, "workload.max_context_tokens": 4096, **(overrides or {})})


def set_args(sets: list[str] | None = None) -> list[str]:
    """``--set`` arguments for the tiny scenario plus extra assignments."""
    out: list[str] = []
    for s in TINY_SETS + list(sets or []):
        out += ["--set", s]
    return out


def subprocess_env(db: Path) -> dict[str, str]:
    """Environment for a CLI subprocess writing to ``db``."""
    env = dict(os.environ)
    env["DUALPATH_TWIN_DB"] = str(db)
    env.pop("DUALPATH_TWIN_STORE_PAUSE_AT", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# the version-1 store layout, spelled out as an old release created it (migration tests)
V1_DDL = [
    "create table schema_version (version INTEGER, applied_at TIMESTAMP)",
    "create table scenarios (scenario_hash VARCHAR, name VARCHAR, toml VARCHAR, created_at TIMESTAMP)",
    "create table runs (run_id VARCHAR, scenario_hash VARCHAR, policy VARCHAR, seed BIGINT, status VARCHAR,"
    " created_at TIMESTAMP)",
    "create table summaries (run_id VARCHAR, summary_json VARCHAR)",
    "create table rounds (run_id VARCHAR, " + ", ".join(f"{k} {v}" for k, v in ROUNDS_COLUMNS.items()) + ")",
    "create table timeseries (run_id VARCHAR, t_s DOUBLE, metric VARCHAR, entity VARCHAR, role VARCHAR, value DOUBLE)",
]
