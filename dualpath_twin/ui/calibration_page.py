"""Streamlit page for ``calibrate``: fit a measurement file, see measured vs twin per point, browse stored fits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st
from plotly.subplots import make_subplots

from dualpath_twin.ui import backend

EXAMPLES = Path(__file__).resolve().parents[2] / "scenarios" / "calibration"


def fit_figure(points: list[dict[str, Any]]) -> go.Figure:
    """Measured vs twin per point (twin / measured, start and fitted) and the fitted residuals in %."""
    def short(i: int, p: dict[str, Any]) -> str:
        b = p["inputs"].get("batch_per_gpu")
        return f"#{i} {p['kind'].replace('_', ' ')}" + (f" b={b}" if b is not None else "")

    names = [short(i, p) for i, p in enumerate(points, 1)]
    hover = [f"{p['name']}<br>{p['quantity']}: measured {p['measured']:.4g}, twin {p['twin']:.4g}" for p in points]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("twin / measured (1 = exact)", "residual after the fit, %"))  # fmt: skip
    fig.add_bar(x=names, y=[p["twin_start"] / p["measured"] for p in points], name="twin at start", row=1, col=1,
                marker_color="#bbbbbb", hovertext=hover)  # fmt: skip
    fig.add_bar(x=names, y=[p["twin"] / p["measured"] for p in points], name="twin fitted", row=1, col=1, marker_color="#1f77b4",
                hovertext=hover)  # fmt: skip
    fig.add_hline(y=1.0, line_dash="dot", row=1, col=1)
    res = [0.0 if p.get("reference") else p["residual_pct"] for p in points]
    fig.add_bar(x=names, y=res, name="residual %", row=2, col=1, showlegend=False,
                marker_color=["#2ca02c" if abs(r) <= 5 else "#d62728" for r in res],
                hovertext=hover)  # fmt: skip
    fig.update_layout(barmode="group", height=560, margin={"t": 40, "b": 10}, legend={"orientation": "h", "y": -0.12})
    return fig


def _show(result: dict[str, Any], key: str) -> None:
    """The fit: verdict, fields table, points chart and table."""
    verdict = result.get("verdict", "")
    (st.success if verdict.startswith("good") else st.warning if verdict.startswith("fair") else st.error)(verdict)
    c1, c2, c3 = st.columns(3)
    c1.metric("rms residual", f"{result['rms_residual_pct']:.2f} %", f"{result['rms_residual_pct'] - result['rms_residual_start_pct']:+.2f} % vs start",
              delta_color="inverse")  # fmt: skip
    c2.metric("max |residual|", f"{result['max_abs_residual_pct']:.2f} %")
    c3.metric("degrees of freedom", str(result["dof"]))
    st.dataframe(pl.DataFrame([
        {"field": f["path"], "start": f["start"], "fitted": f["fitted"], "1-sigma": f["sigma"], "verdict": f["verdict"], "note": f["note"]}
        for f in result["fields"]
    ]), hide_index=True, width="stretch")  # fmt: skip
    pts = result["points"]
    st.plotly_chart(fit_figure(pts), key=f"calfig-{key}")
    st.dataframe(pl.DataFrame([
        {"#": i, "point": p["name"], "quantity": p["quantity"], "measured": p["measured"], "twin start": p["twin_start"],
         "twin fitted": p["twin"], "residual %": None if p["reference"] else round(p["residual_pct"], 2)}
        for i, p in enumerate(pts, 1)
    ]), hide_index=True, width="stretch")  # fmt: skip
    for n in result.get("notes", []):
        st.caption(n)
    if result.get("serving"):
        st.caption("serving summary (reported, not fitted): " + ", ".join(f"{k} {v}" for k, v in result["serving"].items()))


def _fit_tab() -> None:
    from dualpath_twin import calibration as cal

    examples = sorted(EXAMPLES.glob("*.toml"))
    choice = st.selectbox("measurement file", [p.name for p in examples] + ["upload..."], key="cal_file")
    text, source = None, None
    if choice == "upload...":
        up = st.file_uploader("measurements TOML", type=["toml"], key="cal_up")
        if up is not None:
            text, source = up.getvalue().decode("utf-8", errors="replace"), up.name
    else:
        path = EXAMPLES / choice
        text, source = path.read_text(encoding="utf-8"), str(path)
    if text is None:
        st.info("upload a measurement file (format: docs/calibration.md, 'Calibrating to your cluster')")
        return
    with st.expander("measurement file", expanded=False):
        st.code(text, language="toml")
    save = st.checkbox("save the fit in the store", value=backend.store_available(), key="cal_save")
    if st.button("Fit", type="primary", key="cal_fit"):
        try:
            base = Path(source).parent if source and Path(source).is_file() else Path.cwd()
            res = cal.fit(cal.parse(text, source, base))
        except cal.CalibrationError as err:
            st.error(str(err))
            return
        out = res.summary_json()
        if save:
            from dualpath_twin.store.calibrations import save_calibration

            out["fit_id"] = save_calibration(backend.store(), res.name or Path(source or "upload").stem, res.measurements_text,
                                             res.fitted_values, [p.model_dump(mode="json") for p in res.points], out)  # fmt: skip
        st.session_state["cal_result"] = out
        st.session_state["cal_toml"] = res.to_toml()
    out = st.session_state.get("cal_result")
    if out:
        if out.get("fit_id"):
            st.caption(f"saved as {out['fit_id']}")
        _show(out, "fit")
        st.download_button("download calibration.toml", st.session_state.get("cal_toml", ""), file_name="calibration.toml",
                           mime="application/toml", key="cal_dl")  # fmt: skip
        st.caption('include it in a scenario with a top-level `calibration = "calibration.toml"` (relative to the scenario file)')


def _stored_tab() -> None:
    if not backend.store_available():
        st.info("the results store is not available")
        return
    from dualpath_twin.store.calibrations import list_calibrations, load_calibration

    df = list_calibrations(backend.store())
    if df.is_empty():
        st.info("no stored fits yet: fit a measurement file here or run `dualpath-twin calibrate MEASUREMENTS.toml`")
        return
    st.dataframe(df.select("fit_id", "name", "created_at", "rms_residual_pct", "verdict"), hide_index=True, width="stretch")
    fid = st.selectbox("fit", df["fit_id"].to_list(), key="cal_pick")
    rec = load_calibration(backend.store(), fid)
    if rec.result:
        _show(rec.result, "stored")
    st.json(rec.fitted)
    with st.expander("measurement file", expanded=False):
        st.code(rec.measurements_toml, language="toml")


def render() -> None:
    """The Calibration page: fit a measurement file, or open a stored fit."""
    st.title("Calibration")
    st.caption("Fit the twin's [compute]/[network] efficiency fields to measurements of your own cluster "
               "(prefill tokens/s, decode step time, storage read GB/s); the same as `dualpath-twin calibrate`.")  # fmt: skip
    t1, t2 = st.tabs(["Fit measurements", "Stored fits"])
    with t1:
        _fit_tab()
    with t2:
        _stored_tab()
