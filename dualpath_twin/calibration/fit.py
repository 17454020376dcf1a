"""Least-squares fit of scenario efficiency fields to a planner's measurements.

The twin's predictions come only from ``analysis/microbench.py`` (the cost model the simulation
uses). The fit minimises the weighted relative residuals ``(twin - measured) / measured`` with
``scipy.optimize.least_squares`` inside the fields' schema bounds, in coordinates scaled by the
start values (so the Jacobian's columns read as "relative change of each prediction per relative
change of the field"). Fields whose column is ~0 at the start or at the solution cannot be
identified from these measurements: they are reported and left at their start value. The 1-sigma
errors come from the Jacobian at the solution, ``sqrt(diag((J^T J)^-1)) x uncertainty_pct`` (the
measurement error the file states), with a note when the residuals are larger than that.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import tomli_w
from pydantic import BaseModel, Field

from dualpath_twin import scenario as scn
from dualpath_twin.analysis import microbench
from dualpath_twin.calibration.measurements import MeasurementSet, Point
from dualpath_twin.sim.cost import build_cost_model

IDENTIFIABLE_MIN = 1e-3
"""Smallest Jacobian column norm (relative prediction change per relative field change) a fitted field needs."""

CONFOUNDED_CORR = 0.98
"""Fitted fields whose estimates correlate beyond this are reported as confounded."""


class FieldFit(BaseModel):
    """One fitted field: start, fitted value, 1-sigma and verdict."""

    path: str
    start: float
    fitted: float
    sigma: float | None = None
    low: float
    high: float
    sensitivity: float = Field(description="Jacobian column norm at the solution (relative units)")
    verdict: str = Field(description="fitted | weak | confounded | at bound | unidentifiable")
    note: str = ""


class PointFit(BaseModel):
    """One measured point against the twin, before and after the fit."""

    kind: str
    entry: int
    label: str
    name: str
    inputs: dict[str, Any]
    quantity: str
    measured: float
    twin_start: float
    twin: float
    residual_pct: float
    relative: bool
    reference: bool = Field(False, description="the first point of a relative series (1 by definition, not fitted)")
    weight: float = 1.0


class CalibrationResult(BaseModel):
    """The outcome of ``calibrate``: fitted fields, per-point residuals, confidence and provenance."""

    name: str = ""
    source: str = ""
    measurements_sha256: str = ""
    measurements_text: str = ""
    base_scenario: str = ""
    created_at: str = ""
    fields: list[FieldFit]
    points: list[PointFit]
    rms_residual_pct: float
    max_abs_residual_pct: float
    rms_residual_start_pct: float
    sigma_pct: float = Field(description="relative 1-sigma of one measurement (the file's uncertainty_pct), %")
    dof: int
    verdict: str
    notes: list[str] = Field(default_factory=list)
    serving: dict[str, Any] | None = None
    nfev: int = 0

    @property
    def fitted_values(self) -> dict[str, float]:
        """Fitted values of the identified fields (dotted path -> value)."""
        return {f.path: f.fitted for f in self.fields if f.verdict != "unidentifiable"}

    def to_toml(self) -> str:
        """The calibration file: fitted [compute]/[network] values with provenance comments."""
        tables: dict[str, dict[str, float]] = {}
        for path, v in self.fitted_values.items():
            sec, name = path.split(".")
            tables.setdefault(sec, {})[name] = float(f"{v:.6g}")
        head = [
            "# dualpath-twin calibration: fitted by `dualpath-twin calibrate`; a scenario includes it with",
            '#   calibration = "<this file>"   (relative to the scenario; the scenario\'s own values win)',
            f"# created: {self.created_at}",
            f"# measurements: {self.source or '<text>'} (sha256 {self.measurements_sha256})",
        ]
        if self.name:
            head.append(f"# measurement set: {self.name}")
        head.append(f"# base scenario: {self.base_scenario}")
        head.append(
            f"# residuals: rms {self.rms_residual_pct:.2f} % (start {self.rms_residual_start_pct:.2f} %),"
            f" max {self.max_abs_residual_pct:.2f} %, {len(self.points)} points, {self.dof} degrees of freedom"
        )
        head.append(f"# verdict: {self.verdict}")
        head.append("# field: start -> fitted +- 1 sigma (verdict)")
        for f in self.fields:
            sig = f" +- {f.sigma:.3g}" if f.sigma is not None and math.isfinite(f.sigma) else ""
            head.append(f"#   {f.path}: {f.start:.6g} -> {f.fitted:.6g}{sig} ({f.verdict}{'; ' + f.note if f.note else ''})")
        body = tomli_w.dumps(tables) if tables else "# no field could be identified from these measurements\n"
        return "\n".join(head) + "\n\n" + body

    def summary_json(self) -> dict[str, Any]:
        """The result without the measurement text (for ``--json`` and the store's JSON columns)."""
        return self.model_dump(mode="json", exclude={"measurements_text"})


# ---------------------------------------------------------------- predictions


def with_values(sc: scn.Scenario, values: dict[str, float]) -> scn.Scenario:
    """A copy of ``sc`` with dotted-path float fields replaced (no re-validation: bounds are the caller's)."""
    by_sec: dict[str, dict[str, float]] = {}
    for path, v in values.items():
        sec, name = path.split(".")
        by_sec.setdefault(sec, {})[name] = float(v)
    return sc.model_copy(update={sec: getattr(sc, sec).model_copy(update=vals) for sec, vals in by_sec.items()})


def predict_raw(sc: scn.Scenario, p: Point, cost: Any = None) -> float:
    """The twin's absolute prediction of a point's quantity (before normalising a relative series)."""
    if p.kind == "prefill":
        pt = microbench.prefill_point(sc, p.inputs["batch_per_gpu"], p.inputs["context_tokens"], p.inputs["new_tokens"], cost)
        return pt.input_tokens_per_s_node if p.quantity.endswith("input tokens/s/node") else pt.new_tokens_per_s_node
    if p.kind == "decode":
        d = microbench.decode_point(sc, p.inputs["batch_per_gpu"], p.inputs["context_tokens"], cost)
        q = p.quantity.removeprefix("relative ")
        return {"step_ms": d.step_s * 1e3, "tokens_per_s_user": d.tokens_per_s_user, "tokens_per_s_node": d.tokens_per_s_node}[q]
    return microbench.storage_read_gbytes_per_s_per_client(sc)


def predict_all(ms: MeasurementSet, values: dict[str, float]) -> list[float]:
    """The twin's value of every point with ``values`` applied (relative series normalised to their first point)."""
    costs: dict[str, Any] = {}
    raw = []
    for p in ms.points:
        sc = with_values(ms.scenarios[p.scenario_key], values)
        if p.kind != "storage_read" and p.scenario_key not in costs:
            costs[p.scenario_key] = build_cost_model(sc)
        raw.append(predict_raw(sc, p, costs.get(p.scenario_key)))
    out = []
    for p, r in zip(ms.points, raw, strict=True):
        if p.relative and p.reference is not None:
            ref = raw[p.reference]
            out.append(r / ref if ref > 0 else float("nan"))
        else:
            out.append(r)
    return out


def _measured(ms: MeasurementSet) -> list[float]:
    out = []
    for p in ms.points:
        if p.relative and p.reference is not None:
            out.append(p.measured / ms.points[p.reference].measured)
        else:
            out.append(p.measured)
    return out


def _is_ref(ms: MeasurementSet, i: int) -> bool:
    p = ms.points[i]
    return p.relative and p.reference == i


# ---------------------------------------------------------------- the fit


def fit(ms: MeasurementSet, max_nfev: int = 400) -> CalibrationResult:
    """Fit ``ms.fit_paths`` to the measurements; unidentifiable fields stay at their start value."""
    from scipy.optimize import least_squares  # imported here: the CLI starts without scipy

    paths = list(ms.fit_paths)
    start = {p: _get(ms.base, p) for p in paths}
    meas = np.array(_measured(ms))
    w = np.array([p.weight for p in ms.points])
    active_rows = np.array([not _is_ref(ms, i) for i in range(len(ms.points))])
    scale = {p: (abs(v) if v != 0 else 1.0) for p, v in start.items()}
    notes: list[str] = []
    nfev = 0

    def residuals(values: dict[str, float]) -> np.ndarray:
        nonlocal nfev
        nfev += 1
        twin = np.array(predict_all(ms, values))
        r = (twin - meas) / meas * w
        r = np.where(np.isfinite(r), r, 1e3)
        return r[active_rows]

    def jac_at(values: dict[str, float], fields: list[str]) -> np.ndarray:
        """Central-difference Jacobian in scaled coordinates (column j: d r / d (x_j / scale_j))."""
        cols = []
        for f in fields:
            lo, hi = ms.bounds[f]
            h = 1e-4 * scale[f]
            up, dn = min(values[f] + h, hi), max(values[f] - h, lo)
            if up <= dn:
                cols.append(np.zeros(int(active_rows.sum())))
                continue
            ru = residuals({**values, f: up})
            rd = residuals({**values, f: dn})
            cols.append((ru - rd) / ((up - dn) / scale[f]))
        return np.array(cols).T if cols else np.zeros((int(active_rows.sum()), 0))

    unident: set[str] = set()
    j0 = jac_at(start, paths)
    for k, f in enumerate(paths):
        if np.linalg.norm(j0[:, k]) < IDENTIFIABLE_MIN:
            unident.add(f)
    res_x: dict[str, float] = dict(start)
    readmitted: set[str] = set()
    for _ in range(2 * len(paths) + 1):
        free = [f for f in paths if f not in unident]
        if not free:
            res_x = dict(start)
            break
        x_from = {**start, **{f: res_x[f] for f in free}}
        x0 = np.array([x_from[f] / scale[f] for f in free])
        lb = np.array([ms.bounds[f][0] / scale[f] for f in free])
        ub = np.array([ms.bounds[f][1] / scale[f] for f in free])

        def fun(u: np.ndarray, free: list[str] = free) -> np.ndarray:
            return residuals({**start, **{f: float(ui * scale[f]) for f, ui in zip(free, u, strict=True)}})

        sol = least_squares(fun, x0, bounds=(lb, ub), jac="3-point", diff_step=1e-5, method="trf", max_nfev=max_nfev, x_scale=1.0)
        res_x = {**start, **{f: float(ui * scale[f]) for f, ui in zip(free, sol.x, strict=True)}}
        if not sol.success:
            notes.append(f"least_squares stopped: {sol.message}")
        # at the solution: free fields that stopped mattering leave; excluded ones that matter now come back (once)
        jall = jac_at(res_x, paths)
        sens = {f: float(np.linalg.norm(jall[:, k])) for k, f in enumerate(paths)}
        newly = {f for f in free if sens[f] < IDENTIFIABLE_MIN}
        back = {f for f in unident if sens[f] >= IDENTIFIABLE_MIN and f not in readmitted}
        if not newly and not back:
            break
        unident = (unident | newly) - back
        readmitted |= back
    values = res_x
    free = [f for f in paths if f not in unident]
    r = residuals(values)
    m = int(active_rows.sum())
    dof = m - len(free)
    rss = float(np.sum(r**2))
    sigma_rel = ms.spec.uncertainty_pct / 100.0
    if dof > 0 and math.sqrt(rss / dof) > 2 * sigma_rel:
        notes.append(
            f"the residuals (rms {math.sqrt(rss / dof):.1%} per degree of freedom) exceed the stated measurement error"
            f" ({sigma_rel:.1%}): the 1-sigma errors assume the stated error and are optimistic; the twin misses a"
            " term these measurements see, or a measurement is off"
        )
    def at_bound(f: str) -> bool:
        lo, hi = ms.bounds[f]
        tol = 1e-6 * max(hi - lo, 1e-12) if math.isfinite(hi - lo) else 1e-9 * max(abs(values[f]), 1.0)
        return values[f] - lo <= tol or hi - values[f] <= tol

    # errors and correlations of the interior fields (a field pinned at a bound is held fixed there)
    inner = [f for f in free if not at_bound(f)]
    jf = jac_at(values, inner)
    cov = np.linalg.pinv(jf.T @ jf) * sigma_rel**2 if inner else np.zeros((0, 0))
    fields: list[FieldFit] = []
    jall = jac_at(values, paths)
    for k, f in enumerate(paths):
        lo, hi = ms.bounds[f]
        sens = float(np.linalg.norm(jall[:, k]))
        if f in unident:
            fields.append(FieldFit(
                path=f, start=start[f], fitted=start[f], sigma=None, low=lo, high=hi, sensitivity=sens,
                verdict="unidentifiable",
                note="these measurements do not depend on it; left at its start value (measure a regime it limits)",
            ))  # fmt: skip
            continue
        verdict, note = "fitted", ""
        if at_bound(f):
            sig = None
            verdict = "at bound"
            note = f"the fit wants it beyond [{lo:g}, {hi:g}]: the twin misses a term these measurements see"
        else:
            i = inner.index(f)
            sig = float(math.sqrt(max(cov[i, i], 0.0)) * scale[f])
            corr = [
                inner[j] for j in range(len(inner))
                if j != i and cov[i, i] > 0 and cov[j, j] > 0 and abs(cov[i, j] / math.sqrt(cov[i, i] * cov[j, j])) > CONFOUNDED_CORR
            ]  # fmt: skip
            if corr:
                verdict, note = "confounded", f"trades off against {', '.join(corr)}: only their combination is determined"
            elif values[f] != 0 and sig / abs(values[f]) > 0.25:
                verdict, note = "weak", f"1-sigma is {sig / abs(values[f]):.0%} of the value"
        fields.append(FieldFit(path=f, start=start[f], fitted=values[f], sigma=sig, low=lo, high=hi, sensitivity=sens, verdict=verdict, note=note))

    twin_start = predict_all(ms, start)
    twin = predict_all(ms, values)
    pts = []
    for i, p in enumerate(ms.points):
        res_pct = (twin[i] / meas[i] - 1.0) * 100.0
        pts.append(PointFit(
            kind=p.kind, entry=p.entry, label=p.label, name=p.name, inputs=p.inputs, quantity=p.quantity,
            measured=float(meas[i]), twin_start=float(twin_start[i]), twin=float(twin[i]), residual_pct=float(res_pct),
            relative=p.relative, reference=_is_ref(ms, i), weight=p.weight,
        ))  # fmt: skip
    fitted_res = [abs(pp.residual_pct) for pp in pts if not pp.reference]
    rms = math.sqrt(sum(x * x for x in fitted_res) / len(fitted_res)) if fitted_res else 0.0
    start_res = [(twin_start[i] / meas[i] - 1.0) * 100.0 for i in range(len(pts)) if not pts[i].reference]
    rms0 = math.sqrt(sum(x * x for x in start_res) / len(start_res)) if start_res else 0.0
    verdict = _verdict(fields, rms, ms.spec.uncertainty_pct, dof)
    if ms.spec.serving is not None:
        notes.append("the [serving] summary is reported, not fitted: compare it with a `dualpath-twin run` of the calibrated scenario")
    return CalibrationResult(
        name=ms.spec.name, source=ms.source, measurements_sha256=ms.sha256, measurements_text=ms.text,
        base_scenario=ms.spec.scenario or "built-in defaults" + (" + inline tables" if _has_inline(ms) else ""),
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        fields=fields, points=pts, rms_residual_pct=rms, max_abs_residual_pct=max(fitted_res, default=0.0),
        rms_residual_start_pct=rms0, sigma_pct=sigma_rel * 100.0, dof=dof, verdict=verdict, notes=notes,
        serving=ms.spec.serving.model_dump(exclude_none=True) if ms.spec.serving else None, nfev=nfev,
    )  # fmt: skip


def _has_inline(ms: MeasurementSet) -> bool:
    return any(getattr(ms.spec, t) for t in ("cluster", "model", "network", "compute", "storage"))


def _verdict(fields: list[FieldFit], rms_pct: float, uncertainty_pct: float, dof: int) -> str:
    """One line on how far to trust the fit."""
    ident = [f for f in fields if f.verdict != "unidentifiable"]
    if not ident:
        return "no fit: none of the fields affects these measurements"
    bad = [f.path for f in ident if f.verdict in ("confounded", "at bound", "weak")]
    unid = [f.path for f in fields if f.verdict == "unidentifiable"]
    if rms_pct > 3 * uncertainty_pct:
        head = f"poor: residuals (rms {rms_pct:.1f} %) are far above the measurement error ({uncertainty_pct:g} %)"
    elif bad or dof <= 0:
        head = "fair: the twin reproduces the measurements, but not every field is pinned down"
    else:
        head = f"good: residuals (rms {rms_pct:.1f} %) within the measurement error and every fitted field determined"
    extra = []
    if dof <= 0:
        extra.append(f"{dof} degrees of freedom (as many fields as points): add measurements")
    if bad:
        extra.append(f"check {', '.join(bad)}")
    if unid:
        extra.append(f"left at start: {', '.join(unid)}")
    return head + ("; " + "; ".join(extra) if extra else "")


def _get(sc: scn.Scenario, path: str) -> float:
    sec, name = path.split(".")
    return float(getattr(getattr(sc, sec), name))


def residuals_json(result: CalibrationResult) -> str:
    """The per-point table as JSON (the store's residuals column)."""
    return json.dumps([p.model_dump(mode="json") for p in result.points])
