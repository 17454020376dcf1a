"""The measurement file of ``dualpath-twin calibrate``: what a planner measured and on which cluster.

A measurement file is TOML. Top level: ``name``, ``description``, ``source`` (free text),
``scenario`` (a base scenario, relative to the measurement file; default: the built-in defaults),
inline scenario tables (``[cluster]``, ``[model]``, ``[network]``, ``[compute]``, ``[storage]``)
applied on top of it, ``fit`` (dotted paths of the fields to fit), ``[bounds]`` (narrower bounds
than the schema's, per field), ``uncertainty_pct`` (relative 1-sigma error of one measurement).

Measurements, each an array of tables; a field given as an array makes a series of points
(scalars are repeated), and ``relative = true`` normalises the series to its first point:

- ``[[prefill]]``: ``batch_per_gpu``, ``context_tokens``, ``new_tokens``, ``tokens_per_s_node`` and
  ``counts = "input" | "new"`` (whether the throughput counts every prompt token or only the
  newly computed ones);
- ``[[decode]]``: ``batch_per_gpu``, ``context_tokens`` and one of ``step_ms``,
  ``tokens_per_s_user``, ``tokens_per_s_node``;
- ``[[storage_read]]``: ``read_gbytes_per_s_per_client`` (GB/s = 1e9 bytes/s, one node's reads);
- ``[serving]`` (optional, reported, not fitted): ``ttft_p50_s``, ``ttft_p99_s``, ``tpot_p50_ms``, ...

Every entry may carry ``label``, ``weight`` and ``set`` (dotted scenario overrides for that entry
only, e.g. when it was measured on another model or cluster size).
"""

from __future__ import annotations

import difflib
import hashlib
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dualpath_twin import scenario as scn

SCENARIO_TABLES = ("cluster", "model", "network", "compute", "storage")
"""Scenario sections a measurement file may give inline (applied on top of ``scenario``)."""

DEFAULT_FIT_SUFFIXES = ("_mfu", "_efficiency")
"""Default fitted fields: every float ``compute.*`` field ending so, plus ``network.snic_efficiency``."""

MEASUREMENT_ARRAYS = ("prefill", "decode", "storage_read")


class CalibrationError(scn.ScenarioError):
    """A measurement file (or a fit request) is invalid; ``problems`` holds one line per bad field."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        super().__init__(problems, source)
        head = f"invalid measurement file{f' {source}' if source else ''}:"
        self.args = ("\n".join([head] + [f"  - {p}" for p in problems]),)

    def __str__(self) -> str:
        return str(self.args[0])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


PosInt = typing.Annotated[int, Field(ge=1)]
PosFloat = typing.Annotated[float, Field(gt=0)]


class _Entry(_Strict):
    label: str = Field("", description="free text naming the measurement in the fit table")
    weight: float = Field(1.0, gt=0, le=1000, description="weight of this entry's residuals in the fit")
    relative: bool = Field(False, description="values are relative; the series is normalised to its first point")
    set: dict[str, Any] = Field(default_factory=dict, description="scenario overrides (dotted paths) for this entry only")


class PrefillEntry(_Entry):
    """Prefill throughput of batches of equal requests, every GPU of an EP group equally loaded."""

    batch_per_gpu: PosInt | list[PosInt] = Field(description="requests per GPU in one forward step")
    context_tokens: PosInt | list[PosInt] = Field(description="tokens of each request's prompt (loaded KV + new tokens)")
    new_tokens: PosInt | list[PosInt] = Field(description="tokens of each request computed in the step (the rest is cache hits)")
    tokens_per_s_node: PosFloat | list[PosFloat] = Field(description="measured throughput per node, tokens/s")
    counts: Literal["input", "new"] = Field(description="input: every prompt token counts (cache hits included); new: only computed ones")


class DecodeEntry(_Entry):
    """Decode speed of ``batch_per_gpu`` requests of ``context_tokens`` each on every GPU."""

    batch_per_gpu: PosInt | list[PosInt] = Field(description="running requests per GPU")
    context_tokens: PosInt | list[PosInt] = Field(description="context of each request, tokens")
    step_ms: PosFloat | list[PosFloat] | None = Field(None, description="measured time of one decode step, ms")
    tokens_per_s_user: PosFloat | list[PosFloat] | None = Field(None, description="measured tokens/s one request sees")
    tokens_per_s_node: PosFloat | list[PosFloat] | None = Field(None, description="measured output tokens/s per node")

    @model_validator(mode="after")
    def _one_quantity(self) -> DecodeEntry:
        given = [q for q in ("step_ms", "tokens_per_s_user", "tokens_per_s_node") if getattr(self, q) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of step_ms, tokens_per_s_user, tokens_per_s_node"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class StorageReadEntry(_Entry):
    """Storage read bandwidth one client node achieves (all its storage NICs)."""

    read_gbytes_per_s_per_client: PosFloat | list[PosFloat] = Field(description="measured read GB/s (1e9 bytes/s) of one node")


class ServingSummary(_Strict):
    """A short serving trace's latency summary: reported next to the fit, not fitted."""

    ttft_p50_s: float | None = Field(None, gt=0)
    ttft_p90_s: float | None = Field(None, gt=0)
    ttft_p99_s: float | None = Field(None, gt=0)
    tpot_p50_ms: float | None = Field(None, gt=0)
    tpot_p90_ms: float | None = Field(None, gt=0)
    tpot_p99_ms: float | None = Field(None, gt=0)
    rounds: int | None = Field(None, ge=1)
    note: str = ""


class MeasurementFile(_Strict):
    """The whole measurement file (see the module docstring)."""

    name: str = ""
    description: str = ""
    source: str = Field("", description="where the numbers come from")
    scenario: str | None = Field(None, description="base scenario TOML, relative to the measurement file")
    fit: list[str] | None = Field(None, description="dotted paths of the fields to fit (default: compute efficiencies + network.snic_efficiency)")
    bounds: dict[str, list[float]] = Field(default_factory=dict, description="narrower [low, high] per fitted field")
    uncertainty_pct: float = Field(3.0, gt=0, le=100, description="relative 1-sigma error of one measurement, %")
    cluster: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict)
    network: dict[str, Any] = Field(default_factory=dict)
    compute: dict[str, Any] = Field(default_factory=dict)
    storage: dict[str, Any] = Field(default_factory=dict)
    prefill: list[PrefillEntry] = Field(default_factory=list)
    decode: list[DecodeEntry] = Field(default_factory=list)
    storage_read: list[StorageReadEntry] = Field(default_factory=list)
    serving: ServingSummary | None = None


# ---------------------------------------------------------------- points


@dataclass(frozen=True)
class Point:
    """One measured number and what the twin must predict for it."""

    kind: Literal["prefill", "decode", "storage_read"]
    entry: int  # index of the entry in its array (0-based)
    label: str
    inputs: dict[str, Any]  # batch_per_gpu, context_tokens, new_tokens as applicable
    quantity: str  # e.g. "input tokens/s/node", "step_ms"
    measured: float
    weight: float
    relative: bool
    reference: int | None  # index (in MeasurementSet.points) of the series' first point when relative
    scenario_key: str  # which per-entry scenario it is predicted on ("" = the base)

    @property
    def name(self) -> str:
        """Short label for tables: the entry's label or kind and its inputs."""
        short = {"batch_per_gpu": "b", "context_tokens": "ctx", "new_tokens": "new"}
        ins = " ".join(f"{short.get(k, k)}={v:,}" for k, v in self.inputs.items())
        head = self.label or self.kind
        return f"{head}: {ins}" if ins else head


@dataclass
class MeasurementSet:
    """A validated measurement file: the base scenario, per-entry scenarios, the points and the fit request."""

    spec: MeasurementFile
    base: scn.Scenario
    scenarios: dict[str, scn.Scenario]  # scenario_key -> scenario the point is predicted on
    points: list[Point]
    fit_paths: list[str]
    bounds: dict[str, tuple[float, float]]
    text: str = ""
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        """Hash of the measurement file text (provenance)."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- fit fields


def _bounds_of(section: str, name: str) -> tuple[float, float]:
    """Closed bounds of a float scenario field from its pydantic constraints (strict bounds nudged inward)."""
    model = scn.Scenario.model_fields[section].annotation
    info = model.model_fields[name]  # type: ignore[union-attr]
    lo, hi = -float("inf"), float("inf")
    for m in info.metadata:
        if getattr(m, "ge", None) is not None:
            lo = max(lo, float(m.ge))
        if getattr(m, "gt", None) is not None:
            lo = max(lo, float(m.gt) + max(abs(float(m.gt)) * 1e-9, 1e-9))
        if getattr(m, "le", None) is not None:
            hi = min(hi, float(m.le))
        if getattr(m, "lt", None) is not None:
            hi = min(hi, float(m.lt) - max(abs(float(m.lt)) * 1e-9, 1e-9))
    return lo, hi


def fittable_paths() -> list[str]:
    """Every scenario field the fit can adjust: float fields of [compute] and [network]."""
    out = []
    for section in ("compute", "network"):
        model = scn.Scenario.model_fields[section].annotation
        for name, info in model.model_fields.items():  # type: ignore[union-attr]
            if info.annotation is float:
                out.append(f"{section}.{name}")
    return out


def default_fit_paths() -> list[str]:
    """The default fitted set: compute.*_mfu / *_efficiency fields and network.snic_efficiency."""
    out = [p for p in fittable_paths() if p.startswith("compute.") and p.endswith(DEFAULT_FIT_SUFFIXES)]
    return out + ["network.snic_efficiency"]


def check_fit_paths(paths: list[str]) -> list[str]:
    """Problems with a list of fitted fields (unknown, not a float, duplicated), one line each."""
    allowed = fittable_paths()
    problems = []
    seen: set[str] = set()
    for i, p in enumerate(paths):
        if p in seen:
            problems.append(f"fit[{i}] = {p!r}: listed twice; keep one")
        seen.add(p)
        if p in allowed:
            continue
        known = set(scn.all_paths())
        if p in known:
            problems.append(
                f"fit[{i}] = {p!r}: not a fittable field (only float fields of [compute] and [network] are fitted;"
                " set integer, boolean and other fields in the scenario)"
            )
        else:
            close = difflib.get_close_matches(p, allowed, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"fittable fields: {', '.join(allowed)}"
            problems.append(f"fit[{i}] = {p!r}: unknown field; {hint}")
    return problems


# ---------------------------------------------------------------- loading


def _entry_lines(text: str) -> dict[tuple[str, int], int]:
    """Line number (1-based) of each ``[[array]]`` header, keyed by (array, index)."""
    out: dict[tuple[str, int], int] = {}
    counts: dict[str, int] = {}
    for no, line in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*\[\[\s*([A-Za-z_]+)\s*\]\]", line)
        if m:
            k = m.group(1)
            out[(k, counts.get(k, 0))] = no
            counts[k] = counts.get(k, 0) + 1
    return out


def _where(lines: dict[tuple[str, int], int], kind: str, idx: int) -> str:
    no = lines.get((kind, idx))
    return f"[[{kind}]] #{idx + 1}" + (f" (line {no})" if no else "")


def _branch(loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], str | None, tuple[Any, ...]]:
    """Split an error location at pydantic's union-branch tag: (field, branch, rest)."""
    for i, x in enumerate(loc):
        if isinstance(x, str) and (x in ("int", "float") or x.startswith(("list[", "constrained-"))):
            return tuple(loc[:i]), x, tuple(loc[i + 1 :])
    return tuple(loc), None, ()


def _format(err: ValidationError, lines: dict[tuple[str, int], int]) -> list[str]:
    errors = err.errors()
    # a field that is "a number or an array of numbers" fails both union branches: keep the branch the
    # value took (an array if the list branch complains about an element, else a scalar)
    is_array: dict[tuple[Any, ...], bool] = {}
    for e in errors:
        fld, br, rest = _branch(tuple(e["loc"]))
        if br is not None and br.startswith("list[") and rest:
            is_array[fld] = True
    kept = []
    for e in errors:
        fld, br, rest = _branch(tuple(e["loc"]))
        if br is None:
            kept.append(e)
            continue
        if is_array.get(fld, False) != br.startswith("list["):
            continue
        kept.append(e)
    out = []
    for e in kept:
        loc = [str(x) for x in e["loc"]]
        # drop pydantic's union branch names (int / list[...]) from the location
        loc = [x for x in loc if not (x in ("int", "float", "str") or x.startswith(("list[", "constrained-", "function-")))]
        if len(loc) >= 2 and loc[0] in MEASUREMENT_ARRAYS and loc[1].isdigit():
            where = _where(lines, loc[0], int(loc[1]))
            parts = loc[2:]
            if len(parts) == 2 and parts[1].isdigit():  # an element of an array field
                parts = [f"{parts[0]} (point {int(parts[1]) + 1})"]
            fld = ".".join(parts)
        else:
            where, fld = "", ".".join(loc)
        val = e.get("input")
        shown = repr(val) if not isinstance(val, dict | list) else ("{...}" if isinstance(val, dict) else "[...]")
        msg = e["msg"].replace("Input should be", "must be").replace("Value error, ", "")
        if e["type"] == "extra_forbidden":
            model = {"prefill": PrefillEntry, "decode": DecodeEntry, "storage_read": StorageReadEntry}.get(loc[0], MeasurementFile)
            close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=3)
            msg = "unknown key; " + (f"did you mean {', '.join(close)}?" if close else f"allowed keys: {', '.join(model.model_fields)}")
            out.append(f"{where + ': ' if where else ''}{fld}: {msg}")
            continue
        if e["type"] == "missing":
            out.append(f"{where + ': ' if where else ''}{fld}: required; add it")
            continue
        head = f"{where}: " if where else ""
        out.append(f"{head}{fld + ' = ' + shown + ': ' if fld else ''}{msg}")
    return list(dict.fromkeys(out))


def _series(entry: BaseModel, names: list[str], where: str, problems: list[str]) -> list[dict[str, Any]]:
    """Expand scalar/array fields of an entry into one dict per point (scalars repeated)."""
    vals = {n: getattr(entry, n) for n in names if getattr(entry, n) is not None}
    lengths = {n: len(v) for n, v in vals.items() if isinstance(v, list)}
    if len(set(lengths.values())) > 1:
        problems.append(
            f"{where}: arrays of different lengths ({', '.join(f'{n} has {k}' for n, k in lengths.items())});"
            " give every array field one value per point"
        )
        return []
    n = next(iter(lengths.values()), 1)
    if n == 0:
        problems.append(f"{where}: empty array; give at least one value")
        return []
    return [{k: (v[i] if isinstance(v, list) else v) for k, v in vals.items()} for i in range(n)]


def parse(text: str, source: str | None = None, base_dir: Path | None = None) -> MeasurementSet:
    """Validate measurement-file text into a MeasurementSet, raising CalibrationError naming each bad field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CalibrationError([f"TOML syntax error: {err}; fix the file's syntax"], source) from None
    lines = _entry_lines(text)
    try:
        spec = MeasurementFile.model_validate(data)
    except ValidationError as err:
        raise CalibrationError(_format(err, lines), source) from None
    problems: list[str] = []
    base_dir = base_dir or Path.cwd()

    # the base scenario: a file plus the inline tables
    if spec.scenario:
        sp = Path(spec.scenario).expanduser()
        if not sp.is_absolute():
            sp = (base_dir / sp).resolve()
        try:
            base = scn.load(sp)
        except scn.ScenarioError as err:
            raise CalibrationError(
                [f"scenario = {spec.scenario!r}: {p}" for p in err.problems]
                + ([] if sp.is_file() else ["scenario: give the base scenario's path relative to the measurement file"]),
                source,
            ) from None
    else:
        base = scn.Scenario()
    inline = {f"{t}.{k}": v for t in SCENARIO_TABLES for k, v in getattr(spec, t).items()}
    if inline:
        try:
            base = scn.apply_overrides(base, inline)
        except scn.ScenarioError as err:
            raise CalibrationError([f"[{p.split('.')[0]}] table: {p}" for p in err.problems], source) from None

    fit_paths = list(spec.fit) if spec.fit is not None else default_fit_paths()
    if spec.fit is not None and not fit_paths:
        problems.append("fit = []: name at least one field to fit, e.g. fit = [\"compute.gemm_mfu\"]")
    problems += check_fit_paths(fit_paths)

    bounds: dict[str, tuple[float, float]] = {}
    for p in fit_paths:
        if p in fittable_paths():
            bounds[p] = _bounds_of(*p.split("."))
    for p, b in spec.bounds.items():
        if p not in fit_paths:
            problems.append(f"bounds.{p}: not a fitted field; add it to fit or remove the bound")
            continue
        if len(b) != 2 or b[0] >= b[1]:
            problems.append(f"bounds.{p} = {b}: give [low, high] with low < high")
            continue
        lo, hi = bounds[p]
        if b[0] < lo or b[1] > hi:
            problems.append(f"bounds.{p} = {b}: outside the field's allowed range [{lo:g}, {hi:g}]; narrow it")
            continue
        bounds[p] = (float(b[0]), float(b[1]))
    for p, (lo, hi) in bounds.items():
        start = _get(base, p)
        if not lo <= start <= hi:
            problems.append(f"{p} = {start:g} in the scenario: outside the fit bounds [{lo:g}, {hi:g}]; widen bounds.{p}")

    scenarios: dict[str, scn.Scenario] = {"": base}
    points: list[Point] = []
    for kind in MEASUREMENT_ARRAYS:
        for idx, entry in enumerate(getattr(spec, kind)):
            where = _where(lines, kind, idx)
            key = ""
            if entry.set:
                clash = sorted(set(entry.set) & set(fit_paths))
                if clash:
                    problems.append(f"{where}: set.{clash[0]} is a fitted field; remove it from set or from fit")
                    continue
                try:
                    sc = scn.apply_overrides(base, dict(entry.set))
                except scn.ScenarioError as err:
                    problems += [f"{where}: set: {p}" for p in err.problems]
                    continue
                key = f"{kind}#{idx + 1}"
                scenarios[key] = sc
            new_points = _points_of(kind, idx, entry, where, problems, key, len(points))
            points += new_points
    if not points:
        problems.append("no measurements: add at least one [[prefill]], [[decode]] or [[storage_read]] entry")
    if problems:
        raise CalibrationError(problems, source)
    ms = MeasurementSet(spec, base, scenarios, points, fit_paths, bounds, text, source or "")
    return ms


def _points_of(
    kind: str, idx: int, entry: Any, where: str, problems: list[str], key: str, offset: int
) -> list[Point]:
    """The points of one entry (a series when fields are arrays), with the reference of a relative series."""
    if kind == "prefill":
        rows = _series(entry, ["batch_per_gpu", "context_tokens", "new_tokens", "tokens_per_s_node"], where, problems)
        for j, r in enumerate(rows):
            if r["new_tokens"] > r["context_tokens"]:
                problems.append(
                    f"{where}: point {j + 1}: new_tokens = {r['new_tokens']} > context_tokens = {r['context_tokens']};"
                    " context_tokens is the whole prompt (cache hits + new tokens)"
                )
        quantity = f"{entry.counts} tokens/s/node"
        value_key = "tokens_per_s_node"
        in_keys = ["batch_per_gpu", "context_tokens", "new_tokens"]
    elif kind == "decode":
        value_key = next(q for q in ("step_ms", "tokens_per_s_user", "tokens_per_s_node") if getattr(entry, q) is not None)
        rows = _series(entry, ["batch_per_gpu", "context_tokens", value_key], where, problems)
        quantity = value_key
        in_keys = ["batch_per_gpu", "context_tokens"]
    else:
        value_key = "read_gbytes_per_s_per_client"
        rows = _series(entry, [value_key], where, problems)
        quantity = value_key
        in_keys = []
    if entry.relative and len(rows) < 2:
        problems.append(f"{where}: relative = true needs a series of at least 2 points (give the fields as arrays)")
        return []
    return [
        Point(
            kind=kind,  # type: ignore[arg-type]
            entry=idx,
            label=entry.label,
            inputs={k: r[k] for k in in_keys},
            quantity=("relative " + quantity) if entry.relative else quantity,
            measured=float(r[value_key]),
            weight=entry.weight,
            relative=entry.relative,
            reference=offset if entry.relative else None,
            scenario_key=key,
        )
        for r in rows
    ]


def refit_paths(ms: MeasurementSet, paths: list[str], option: str = "--fit") -> MeasurementSet:
    """Replace the fitted fields of a measurement set (e.g. from the CLI), keeping the file's bounds for fields in both."""
    problems = [p.replace("fit[", f"{option}[", 1) for p in check_fit_paths(paths)]
    if not paths:
        problems.append(f"{option}: name at least one field to fit")
    clash = sorted({k for kind in MEASUREMENT_ARRAYS for e in getattr(ms.spec, kind) for k in e.set} & set(paths))
    if problems or clash:
        raise CalibrationError(problems + [f"{option} {c}: set by an entry's set table; remove it there" for c in clash], ms.source)
    ms.fit_paths = list(paths)
    ms.bounds = {p: ms.bounds.get(p) or _bounds_of(*p.split(".")) for p in paths}
    return ms


def load(path: str | Path) -> MeasurementSet:
    """Read and validate a measurement file; relative paths in it resolve against its folder."""
    p = Path(path)
    if not p.is_file():
        raise CalibrationError([f"file not found: {p}; give the path of a measurements TOML file"], str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as err:
        raise CalibrationError([f"cannot read {p}: {err}; a measurement file is UTF-8 TOML"], str(p)) from None
    return parse(text, str(p), p.parent)


def _get(sc: scn.Scenario, path: str) -> float:
    section, name = path.split(".")
    return float(getattr(getattr(sc, section), name))
