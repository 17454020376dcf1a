"""The capacity command's fast path (--early-stop, --from-bound, both on by default) against the exhaustive search."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from dualpath_twin.cli.planning import register

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "examples" / "online-serving.toml"
# 4K contexts, the default arrival window (~109 s: mean agent lifetime at the SLO limits + 2 x 10 s); the scenario's own rate (where the exhaustive search starts) is 16 APS
TINY = ["--set", "workload.max_context_tokens=4096", "--set", "run.online_window_s=10",
        "--set", "workload.arrival_rate_aps=16",
        "--policy", "basic", "--tolerance", "0.1", "--workers", "1", "--no-save"]


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """Planning commands only."""

    return app


def _run(*extra: str) -> dict:
    res = CliRunner().invoke(_app(), ["capacity", str(SCENARIO), *TINY, "--json", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_fast_default_matches_exhaustive_and_marks_stopped_runs() -> None:
    """Default (fast) and --no-early-stop --no-from-bound agree within the tolerance; only the fast one stops runs."""
    fast = _run()
    slow = _run("--no-early-stop", "--no-from-bound")
    assert fast["early_stop"] is True and fast["from_bound"] is True
    assert slow["early_stop"] is False and slow["from_bound"] is False
    f, s = fast["capacity"][0], slow["capacity"][0]
    assert f["converged"] and s["converged"]
    assert abs(f["capacity_aps"] - s["capacity_aps"]) / max(f["capacity_aps"], s["capacity_aps"]) <= 0.1
    f_stopped = [p for p in f["curve"] if p["stopped_early"] == "slo violated"]
    assert f_stopped and all(not p["meets"] for p in f_stopped)
    # rates above the analytic ceiling are refused unsimulated by both (a physical limit, not an early stop)
    for p in f["curve"] + s["curve"]:
        assert p["stopped_early"] in (None, "slo violated", "above the ceiling")
        assert p["stopped_early"] != "above the ceiling" or (not p["meets"] and p["rounds"] == 0)
    assert not any(p["stopped_early"] == "slo violated" for p in s["curve"])
    # the exhaustive search starts at the scenario's rate, the fast one at half the analytic ceiling
    assert min(p["aps"] for p in s["curve"]) == 16.0
    assert any("analytic ceiling" in n for n in f["notes"])
    # (which of the two simulates fewer rounds depends on the confirmation's draws since rates above the
    # ceiling cost both nothing: benchmarks/capacity_headline.py compares their cost)


def test_table_shows_which_runs_stopped_early() -> None:
    """The text output has a 'stopped' column with 'early' on stopped runs and counts them per design."""
    res = CliRunner().invoke(_app(), ["capacity", str(SCENARIO), *TINY], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    out = res.stdout
    header = next(ln for ln in out.splitlines() if "APS" in ln and "why" in ln)
    assert "stopped" in header
    cells = [[c.strip() for c in ln.split("│")] for ln in out.splitlines() if ln.startswith("│ basic")]
    col = [c.strip() for c in header.split("┃")].index("stopped")
    rows = [c for c in cells if c[col] == "early"]
    assert rows and all(c[3] == "no" and c[-2].startswith("stopped early: slo violated") for c in rows)
    free = [c for c in cells if c[col] == "ceiling"]
    assert all(c[3] == "no" and c[-2].startswith("above the analytic ceiling") for c in free)
    assert all(c[col] == "-" for c in cells if c not in rows + free)
    summary = next(ln for ln in out.splitlines() if ln.startswith("basic: capacity"))
    n = int(summary.split(" stopped early")[0].rsplit(" ", 1)[1])
    assert n == len(rows) >= 1


def test_warmup_from_measured_is_opt_in_and_a_bad_value_is_named() -> None:
    """--warmup-from measured ends runs' windows early (curve column, note); a typo names the option and its values."""
    quick = _run("--warmup-from", "measured", "--no-confirm")
    c = quick["capacity"][0]
    assert c["criterion"]["warmup_from"] == "measured"
    assert any(p["window_end_s"] is not None for p in c["curve"])
    assert any("at the measured latencies" in n for n in c["notes"])
    default = _run("--no-confirm")
    assert default["capacity"][0]["criterion"]["warmup_from"] == "slo_limits"
    assert all(p["window_end_s"] is None for p in default["capacity"][0]["curve"])
    bad = CliRunner().invoke(_app(), ["capacity", str(SCENARIO), *TINY, "--warmup-from", "meausred"])
    assert bad.exit_code != 0 and "--warmup-from" in bad.output and "slo_limits" in bad.output


def test_horizon_check_runs_by_default_and_a_bad_factor_is_named() -> None:
    """By default the capacity is re-measured with a 2x window (curve, note, estimate); --horizon-factor 1 skips
    it; a factor out of range names the option and the range before any run."""
    on = _run("--no-confirm")
    c = on["capacity"][0]
    assert c["criterion"]["horizon_factor"] == 2.0
    checks = [p for p in c["curve"] if p["horizon_window_s"] is not None]
    assert checks and all(p["reason"].startswith("horizon check (") for p in checks)
    assert any(p["meets"] and p["aps"] == c["capacity_aps"] for p in checks)  # the capacity held its check
    window = c["window_s"]
    assert all(abs(p["horizon_window_s"] - 2 * window) < 1e-6 for p in checks)
    assert any(n.startswith("horizon check: ") for n in c["notes"])
    off = _run("--no-confirm", "--horizon-factor", "1")
    assert all(p["horizon_window_s"] is None for p in off["capacity"][0]["curve"])
    res = CliRunner().invoke(_app(), ["capacity", str(SCENARIO), *TINY, "--no-confirm"])
    assert "horizon check of the capacity with a 2x longer window" in res.output
    bad = CliRunner().invoke(_app(), ["capacity", str(SCENARIO), *TINY, "--horizon-factor", "0.5"])
    assert bad.exit_code != 0 and "--horizon-factor" in bad.output and "1 (no horizon check) to 4" in bad.output


def test_size_sensitivity_and_sweep_take_the_horizon_factor_and_name_a_bad_one() -> None:
    """size, sensitivity and a capacity sweep search capacities too: the same option, the same refusal before any run."""
    for cmd in (["sensitivity", str(SCENARIO)], ["size", str(SCENARIO), "--target-aps", "0.5",
                                                 "--vary", "cluster.prefill_nodes=1,2"],
                ["sweep", str(SCENARIO), "--grid", "cluster.prefill_nodes=1,2", "--objective", "capacity"]):
        bad = CliRunner().invoke(_app(), [*cmd, "--horizon-factor", "9"])
        assert bad.exit_code != 0 and "--horizon-factor 9.0: give 1 (no horizon check) to 4" in bad.output, bad.output
