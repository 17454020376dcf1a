"""The dashboard's single doorway to the library (api, validation, catalog, analysis, store, report).

Pages never import those layers directly: they call these functions, which turn a layer that is
missing or failing into a clear message instead of a crash, and keep the UI a thin shell.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dualpath_twin import scenario as scn
from dualpath_twin.results import Bound
from dualpath_twin.scenario import Scenario, ScenarioError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = REPO_ROOT / "scenarios"
DEFAULT_SCENARIO = SCENARIO_DIR / "examples" / "quick.toml"
DATASETS = ("paper-32k", "paper-48k", "paper-64k", "claude-code")
DEFAULT_POLICIES = ("basic", "dualpath")
MAX_TOML_UPLOAD_BYTES = 1_000_000


def _optional(module: str) -> Any | None:
    """Import a library module that another engineer may not have written yet."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


# ---------------------------------------------------------------- scenarios


def bundled_scenarios() -> list[Path]:
    """Every scenario TOML shipped under scenarios/ (examples first, then paper configurations)."""
    # scenarios/calibration/ holds measurement files for `calibrate` (the Calibration page), not scenarios
    files = [p for p in SCENARIO_DIR.glob("**/*.toml") if p.parent.name != "calibration"]
    found = sorted(files, key=lambda p: (p.parent.name != "examples", str(p)))
    return found


def scenario_label(path: Path) -> str:
    """Short label of a bundled scenario file, e.g. ``examples/quick``."""
    try:
        rel = path.relative_to(SCENARIO_DIR)
    except ValueError:
        rel = Path(path.name)
    return str(rel.with_suffix(""))


def default_scenario() -> Scenario:
    """The scenario the builder starts from: scenarios/examples/quick.toml, else a small default."""
    if DEFAULT_SCENARIO.is_file():
        try:
            return load_scenario(DEFAULT_SCENARIO)
        except ScenarioError:
            pass
    return apply_overrides(Scenario(name="quick"), {"workload.agents": 64})


def load_scenario(path: Path) -> Scenario:
    """Load a bundled scenario file (catalog checks when the validation layer exists)."""
    try:
        return scn.load(path, check_catalog=_has_validation())
    except ImportError:
        return scn.load(path, check_catalog=False)


def parse_uploaded_toml(data: bytes, filename: str) -> Scenario:
    """Parse an uploaded scenario (size-limited, UTF-8 TOML, never executed)."""
    if len(data) > MAX_TOML_UPLOAD_BYTES:
        raise ScenarioError(
            [f"{filename}: {len(data):,} bytes is too large for a scenario; the limit is "
             f"{MAX_TOML_UPLOAD_BYTES:,} bytes (a scenario is a short TOML file)"],
            filename,
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ScenarioError([f"{filename}: not UTF-8 text ({err}); upload a .toml scenario file"], filename) from None
    try:
        return scn.from_toml(text, source=filename, check_catalog=_has_validation())
    except ImportError:
        return scn.from_toml(text, source=filename, check_catalog=False)


def _has_validation() -> bool:
    return _optional("dualpath_twin.validation") is not None


def has_validation() -> bool:
    """Whether catalog checks are available (scenarios are then validated against the catalog too)."""
    return _has_validation()


def apply_overrides(base: Scenario, overrides: dict[str, Any]) -> Scenario:
    """Apply dotted-path edits to ``base``, raising ScenarioError with field-named problems."""
    return scn.apply_overrides(base, overrides, check_catalog=_has_validation())


def problem_path(problem: str) -> str:
    """The dotted scenario path a validation problem starts with ('' when it names none)."""
    head = problem.split(":", 1)[0].split(" = ", 1)[0].strip()
    return head if head and " " not in head and not head.startswith("<") else ""


# ---------------------------------------------------------------- catalog


def _names(items: Any) -> list[str]:
    out: list[str] = []
    for it in items or []:
        if isinstance(it, str):
            out.append(it)
        elif hasattr(it, "name"):
            out.append(str(it.name))
    return out


def gpu_names() -> list[str]:
    """GPU names from the catalog (empty when the catalog is not available)."""
    cat = _optional("dualpath_twin.catalog")
    try:
        return _names(cat.list_gpus()) if cat and hasattr(cat, "list_gpus") else []
    except Exception:  # noqa: BLE001 - a broken catalog must not break the builder
        return []


def model_names() -> list[str]:
    """Model names from the catalog (empty when the catalog is not available)."""
    cat = _optional("dualpath_twin.catalog")
    try:
        return _names(cat.list_models()) if cat and hasattr(cat, "list_models") else []
    except Exception:  # noqa: BLE001
        return []


def kv_formats(model_name: str) -> list[str]:
    """KV-cache layout variants the catalog offers for a model, default first (empty when unknown)."""
    cat = _optional("dualpath_twin.catalog")
    if cat is None or not hasattr(cat, "list_kv_formats"):
        return []
    try:
        return [str(f) for f in cat.list_kv_formats(model_name)]
    except Exception:  # noqa: BLE001
        return []


# ---------------------------------------------------------------- derived values and bounds


@dataclasses.dataclass
class Derived:
    """One labelled derived number shown before a run."""

    label: str
    value: str
    key: str = ""


def human_bytes(v: float) -> str:
    """Bytes with a decimal unit: 40016 -> '40.0 KB', 6.6e8 -> '656 MB'."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:,.3g} {unit}" if abs(v) / scale < 1000 else f"{v / scale:,.0f} {unit}"
    return f"{v:,.0f} B"


def _fmt(v: Any, key: str = "") -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if "bytes" in key and isinstance(v, int | float):
        return f"{human_bytes(float(v))} ({v:,.0f} B)" if abs(v) >= 1000 else f"{v:,.0f} B"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
    return str(v)


def _as_items(obj: Any) -> list[tuple[str, Any]]:
    if isinstance(obj, BaseModel):
        return list(obj.model_dump().items())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return list(dataclasses.asdict(obj).items())
    if isinstance(obj, dict):
        return list(obj.items())
    return [("value", obj)]


def derived_values(sc: Scenario) -> list[Derived] | str:
    """KV bytes per token, bytes per round etc. from dualpath_twin.validation, or why they are missing."""
    val = _optional("dualpath_twin.validation")
    if val is None or not hasattr(val, "derived_values"):
        return "derived values need dualpath_twin.validation.derived_values (not available yet)"
    try:
        raw = val.derived_values(sc)
    except Exception as err:  # noqa: BLE001
        return f"derived values failed: {err}"
    raw = dict(_as_items(raw))
    if sc.workload.kind == "trace":
        raw.update(trace_derived(sc))
    elif raw.get("context_tokens_mean") is None:  # a dataset without published means: measure a small sample
        raw.update(sample_derived(sc))
    out = []
    for k, v in raw.items():
        if isinstance(v, dict | list):
            continue
        out.append(Derived(str(k).replace("_", " "), _fmt(v, str(k)), str(k)))
    return out


TRACE_STATS_MAX_BYTES = 64_000_000  # traces up to this size are read for the Scenario page's derived values
TRACE_KEYS = ("context_tokens_mean", "append_tokens_mean", "kv_bytes_per_round_mean", "max_context_tokens",
              "kv_bytes_per_request_max", "cache_to_compute_gb_per_pflop")  # fmt: skip


def trace_derived(sc: Scenario) -> dict[str, Any]:
    """A trace's per-round figures (what a dataset's means give a synthetic workload), or why they are not shown."""
    from dualpath_twin.workload.build import resolve_trace_path

    try:
        path = resolve_trace_path(sc)
        st_ = path.stat()
    except Exception as err:  # noqa: BLE001 - the scenario's own check reports a missing trace
        return dict.fromkeys(TRACE_KEYS, f"from the trace (not readable: {err})")
    if st_.st_size > TRACE_STATS_MAX_BYTES:
        return dict.fromkeys(TRACE_KEYS, "from the trace (too large to read here: `dualpath-twin workload stats`)")
    try:
        return _trace_derived(str(path), st_.st_mtime, st_.st_size, sc.model.name, sc.model.kv_format,
                              tuple(sorted(sc.model.overrides.items())), sc.storage.block_tokens,
                              bool(sc.workload.skip_bad_lines))  # fmt: skip
    except Exception as err:  # noqa: BLE001
        return dict.fromkeys(TRACE_KEYS, f"from the trace (could not be read: {err})")


SAMPLE_AGENTS = 64  # trajectories generated to measure a dataset's per-round means for the Scenario page


def sample_derived(sc: Scenario) -> dict[str, Any]:
    """Per-round means of a synthetic dataset measured on SAMPLE_AGENTS generated trajectories (same seed)."""
    small = scn.apply_overrides(sc, {"workload.agents": min(sc.workload.agents, SAMPLE_AGENTS)})
    try:
        return _sample_derived(small.to_toml())
    except Exception as err:  # noqa: BLE001
        return dict.fromkeys(TRACE_KEYS[:3], f"unavailable ({err})")


@functools.lru_cache(maxsize=32)
def _sample_derived(toml: str) -> dict[str, Any]:
    from dualpath_twin import api
    from dualpath_twin.catalog import get_model
    from dualpath_twin.workload import workload_stats

    sc = scn.from_toml(toml, check_catalog=False)
    spec = get_model(sc.model.name, sc.model.kv_format, dict(sc.model.overrides))
    ws = workload_stats(api.load_workload(sc), model_spec=spec, block_tokens=sc.storage.block_tokens)
    return _per_round(ws, spec) | {"sampled_agents": sc.workload.agents}


def _per_round(ws: Any, spec: Any) -> dict[str, Any]:
    """The Scenario page's per-round figures from workload statistics."""
    ctx = ws.prompt_tokens.mean if ws.prompt_tokens else None
    app = ws.miss_tokens.mean if ws.miss_tokens else None
    return {
        "context_tokens_mean": ctx,
        "append_tokens_mean": app,
        "kv_bytes_per_round_mean": ws.kv_load_bytes_per_round.mean if ws.kv_load_bytes_per_round else None,
        "cache_to_compute_gb_per_pflop": spec.cache_to_compute_gb_per_pflop(int(ctx), max(1, round(app)))
        if ctx and app else None,
    }


@functools.lru_cache(maxsize=16)
def _trace_derived(path: str, _mtime: float, _size: int, model: str, kv_format: str, overrides: tuple[Any, ...],
                   block_tokens: int, skip: bool) -> dict[str, Any]:  # fmt: skip
    """Trace statistics by file identity (path, mtime, size), model and block size: read once per edit of the trace."""
    from dualpath_twin.catalog import get_model
    from dualpath_twin.workload import workload_stats

    spec = get_model(model, kv_format, dict(overrides))
    ws = workload_stats(Path(path), model_spec=spec, block_tokens=block_tokens, skip_bad_lines=skip)
    return _per_round(ws, spec) | {
        "max_context_tokens": int(ws.prompt_tokens.max) if ws.prompt_tokens else None,
        "kv_bytes_per_request_max": spec.kv_bytes_for_context(int(ws.prompt_tokens.max)) if ws.prompt_tokens else None,
        "trace_rounds": ws.rounds,
    }


def bounds(sc: Scenario, policy: str) -> Bound | str:
    """Closed-form bound of ``sc`` under ``policy``, or the reason it is unavailable."""
    api = _optional("dualpath_twin.api")
    try:
        return api.bounds(sc, policy)
    except NotImplementedError:
        return "analytic bounds are not implemented yet"
    except Exception as err:  # noqa: BLE001
        return f"bounds failed: {err}"


def fit_problems(sc: Scenario, policy: str) -> list[str]:
    """Why ``sc`` would be refused before it runs under ``policy`` (a request too big for HBM or DRAM); [] when it fits or cannot be checked."""
    api = _optional("dualpath_twin.api")
    if api is None or not hasattr(api, "fit_problems"):
        return []
    try:
        return list(api.fit_problems(sc, policy))
    except Exception:  # noqa: BLE001 - advisory: the run itself checks again
        return []


@dataclasses.dataclass
class PdRangeView:
    """Where the scenario's P/D ratio sits against DualPath's bottleneck-free range."""

    ratio: float | None
    lower: float | None
    upper: float | None
    inside: bool | None
    limiting_term: str
    text: str


def pd_range(sc: Scenario) -> PdRangeView | str:
    """The bottleneck-free P/D range from dualpath_twin.analysis.pd_range, or why it is missing."""
    ana = _optional("dualpath_twin.analysis")
    fn = getattr(ana, "pd_range", None) if ana else None
    if fn is None:
        ana = _optional("dualpath_twin.analysis.bounds")
        fn = getattr(ana, "pd_range", None) if ana else None
    if fn is None:
        return "the P/D range analysis (dualpath_twin.analysis.pd_range) is not available yet"
    try:
        raw = fn(sc)
    except Exception as err:  # noqa: BLE001
        return f"P/D range failed: {err}"
    d = dict(_as_items(raw))
    inside = d.get("inside")
    return PdRangeView(d.get("ratio"), d.get("lower"), d.get("upper"), None if inside is None else bool(inside),
                       str(d.get("limiting_term", "")), str(d.get("text", "")))


# ---------------------------------------------------------------- store and report


def db_path() -> Path:
    """The DuckDB file the dashboard reads and writes (DUALPATH_TWIN_DB overrides the default)."""
    env = os.environ.get("DUALPATH_TWIN_DB")
    if env:
        return Path(env)
    store = _optional("dualpath_twin.store")
    if store is not None and hasattr(store, "default_db_path"):
        return Path(store.default_db_path())
    return REPO_ROOT / "data" / "dualpath_twin.duckdb"


def store_available() -> bool:
    """True when the store layer (dualpath_twin.store.open_store) exists."""
    store = _optional("dualpath_twin.store")
    return store is not None and hasattr(store, "open_store")


_STORES: dict[str, Any] = {}
_STORES_LOCK = threading.Lock()


def store() -> Any:
    """The Store handle for db_path() (it holds no DuckDB connection between calls, so one is kept per path)."""
    mod = _optional("dualpath_twin.store")
    if mod is None or not hasattr(mod, "open_store"):
        raise RuntimeError("the results store (dualpath_twin.store.open_store) is not available yet")
    path = str(db_path())
    with _STORES_LOCK:
        handle = _STORES.get(path)
        if handle is None:
            handle = mod.open_store(path)
            _STORES[path] = handle
        return handle
