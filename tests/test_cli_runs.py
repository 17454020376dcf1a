"""`dualpath-twin runs` tells the runs of a sweep apart, uses the metric names of --check and shows cost."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dualpath_twin import checks as chk
from dualpath_twin import cli
from dualpath_twin.store import open_store
from dualpath_twin.store.synthetic import synthetic_result

runner = CliRunner()


def _store_two_topologies(db: Path) -> None:
    st = open_store(db)
    try:
        for p in (1, 2):
            for pol in ("basic", "dualpath"):
                st.save_run(synthetic_result(pol, prefill_nodes=p, scenario_name="sweepish"))
    finally:
        st.close()


def test_runs_table_shows_what_differs_and_the_check_names(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    _store_two_topologies(db)
    r = runner.invoke(cli.app, ["runs", "--db", str(db)])
    assert r.exit_code == 0, r.output
    out = r.stdout
    # four rows of one scenario name: the topology column is what tells them apart
    assert "topology" in out and "1P4D" in out.replace(" ", "") and "2P4D" in out.replace(" ", "")
    assert "ttft_s.p99" in out and "tpot_ms.p99" in out and "ttft_p99_s" not in out
    assert "usd_per_hour" in out and "meets_slo" in out
    assert max(len(line) for line in out.splitlines()) > 80  # not squeezed into 80 columns in a pipe


def test_runs_json_names_are_check_metrics_and_tpot_is_in_ms(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    _store_two_topologies(db)
    rows = json.loads(runner.invoke(cli.app, ["runs", "--db", str(db), "--json"]).stdout)
    assert len(rows) == 4 and len({r["topology"] for r in rows}) == 2
    st = open_store(db)
    try:
        for row in rows:
            s = st.get_summary(row["run_id"])
            metrics = chk.run_metrics(s)
            assert row["ttft_s.p99"] == metrics["ttft_s.p99"]
            assert abs(row["tpot_ms.p99"] - metrics["tpot_ms.p99"]) < 1e-9 and abs(row["tpot_ms.p99"] - 1000 * s.tpot_s.p99) < 1e-9
            assert row["usd_per_hour"] > 0
    finally:
        st.close()
    two = [r["usd_per_hour"] for r in rows if "2P" in r["topology"]]
    one = [r["usd_per_hour"] for r in rows if "1P" in r["topology"]]
    assert min(two) > max(one)  # one more prefill node costs more


def test_check_accepts_tpot_in_ms() -> None:
    s = synthetic_result("basic").summary
    res = chk.evaluate(chk.parse_checks([f"tpot_ms.p99<={s.tpot_s.p99 * 1000 + 1e-6}"]), chk.run_metrics(s))
    assert res[0].passed
    res = chk.evaluate(chk.parse_checks([f"tpot_ms.p99<={s.tpot_s.p99 * 1000 * 0.5}"]), chk.run_metrics(s))
    assert not res[0].passed


def test_history_says_whether_each_run_meets_its_own_slo(tmp_path: Path) -> None:
    """``meets_slo`` compares TTFT p99 and TPOT p99 with each run's scenario SLO: a tighter SLO turns a pass into a fail."""
    from dualpath_twin.comparison import runs_with_diff
    from dualpath_twin.scenario import from_toml

    st = open_store(tmp_path / "r.duckdb")
    try:
        loose = synthetic_result("basic", scenario_name="loose")
        sc = from_toml(loose.scenario_toml, check_catalog=False)
        p99 = loose.summary.ttft_s.p99
        loose.scenario_toml = sc.model_copy(update={"slo": sc.slo.model_copy(
            update={"ttft_s": p99 * 2, "tpot_ms": loose.summary.tpot_s.p99 * 2000})}).to_toml()
        tight = synthetic_result("basic", scenario_name="tight")
        tight.scenario_toml = sc.model_copy(update={"name": "tight", "slo": sc.slo.model_copy(
            update={"ttft_s": tight.summary.ttft_s.p99 / 2, "tpot_ms": tight.summary.tpot_s.p99 * 2000})}).to_toml()
        for r in (loose, tight):
            st.save_run(r)
        df = runs_with_diff(st)
    finally:
        st.close()
    got = dict(zip(df["scenario_name"].to_list(), df["meets_slo"].to_list(), strict=True))
    assert got == {"loose": True, "tight": False}
