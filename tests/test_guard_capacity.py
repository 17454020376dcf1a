"""The run-size guard of a capacity search follows its settings: runs from the start rate, the tolerance and the
likely bracket (capped by max_evaluations), each run's size from rate x window x rounds per agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from dualpath_twin import guard as g
from dualpath_twin.planning.capacity import online_scenario
from dualpath_twin.scenario import load

QUICK = load(Path(__file__).resolve().parents[1] / "scenarios" / "examples" / "quick.toml")
LIMITS = g.Limits(max_memory_bytes=1e15, max_wall_s=1e9, source="test")


def _est(**kw: object) -> g.CapacityEstimate:
    return g.guard_capacity(QUICK, ["basic", "dualpath"], limits=LIMITS, **kw)  # type: ignore[arg-type]


def test_a_longer_window_raises_the_estimate_through_bigger_runs() -> None:
    short, long = _est(window_s=64), _est(window_s=256)
    assert long.runs == short.runs  # the same rates ...
    for p in short.plans:
        # ... each run 4x the agents, so ~4x the rounds; rates above the analytic ceiling cost none in both
        pairs = list(zip(long.plans[p].rounds, short.plans[p].rounds, strict=True))
        assert [r == 0 for r, _ in pairs] == [s == 0 for _, s in pairs]
        run = [(r, s) for r, s in pairs if s > 0]
        assert run and [r / s for r, s in run] == pytest.approx([4.0] * len(run), rel=0.02)
    assert long.wall_s > 3 * short.wall_s
    assert long.largest.rounds > 3 * short.largest.rounds


def test_a_tighter_tolerance_raises_the_estimate_through_more_runs() -> None:
    loose, tight = _est(tolerance=0.2), _est(tolerance=0.01)
    for p in loose.plans:
        assert tight.plans[p].bisect_runs >= loose.plans[p].bisect_runs + 3  # log2(0.2 / 0.01) ~ 4.3 more halvings
        assert tight.plans[p].bracket_runs == loose.plans[p].bracket_runs
    assert tight.runs > loose.runs and tight.wall_s > loose.wall_s


def test_runs_follow_the_start_rate_and_stop_at_max_evaluations() -> None:
    near = g.plan_capacity_search(QUICK, "basic", boundary_aps=8.0, start_aps=4.0)
    far = g.plan_capacity_search(QUICK, "basic", boundary_aps=8.0, start_aps=0.125)
    assert far.bracket_runs == near.bracket_runs + 5  # five more doublings from 1/32 of the start
    assert max(far.rates) == pytest.approx(8.0) and min(far.rates) == pytest.approx(0.125)
    # with the boundary at 8 the search brackets [4, 8] and bisects until (hi - lo) / hi <= tolerance
    assert near.bracket_runs == 2 and near.bisect_runs == 4  # 0.5 -> 0.25 -> 0.125 -> 0.0625 -> 0.03125 <= 0.05
    capped = g.plan_capacity_search(QUICK, "basic", boundary_aps=8.0, start_aps=0.125, tolerance=1e-4, max_evaluations=9)
    assert capped.runs == 9 and capped.capped and "capped by max_evaluations 9" in capped.text()
    # without a given boundary it is the analytic ceiling, and a fast search starts at half of it
    fast = g.plan_capacity_search(QUICK, "basic", from_bound=True)
    assert fast.start_aps == pytest.approx(fast.boundary_aps / 2) and "analytic ceiling" in fast.boundary_source


def test_rounds_per_run_grow_with_the_rate() -> None:
    plan = g.plan_capacity_search(QUICK, "basic", boundary_aps=8.0, start_aps=1.0, window_s=100)
    # rounds = rate x window x rounds/agent; a rate above the analytic ceiling is not simulated (0 rounds)
    ceiling, _ = g._ceiling_aps(online_scenario(QUICK, QUICK.workload.arrival_rate_aps, 100).to_toml(), "basic", 100)
    assert ceiling is not None and any(r > ceiling for r in plan.rates) and plan.unsimulated > 0
    per_rate = [n / (r * 100) for r, n in zip(plan.rates, plan.rounds, strict=True) if r <= ceiling]
    assert per_rate == pytest.approx([plan.rounds_per_agent] * len(per_rate), rel=0.05)
    assert all(n == 0 for r, n in zip(plan.rates, plan.rounds, strict=True) if r > ceiling * (1 + 1e-9))
    assert f"{plan.unsimulated} of them above the analytic ceiling" in plan.text()
    assert "x 100 s window" in plan.text() and f"{plan.rounds_per_agent:.3g} rounds per agent" in plan.text()


def test_refusal_names_what_was_assumed_and_force_still_runs() -> None:
    tiny = g.Limits(max_memory_bytes=1e15, max_wall_s=1.0, source="test")
    with pytest.raises(g.RunTooLarge) as err:
        g.guard_capacity(QUICK, ["basic"], tolerance=0.05, window_s=64, limits=tiny, force_hint="pass --yes")
    msg = str(err.value)
    assert "capacity search: ~" in msg and "Assumed: basic:" in msg
    assert "to tolerance 0.05" in msg and "x 64 s window" in msg and "pass --yes" in msg
    est = g.guard_capacity(QUICK, ["basic"], tolerance=0.05, window_s=64, limits=tiny, force=True)
    assert est.runs == est.plans["basic"].runs > 0


def test_cli_capacity_is_refused_with_its_own_settings() -> None:
    from typer.testing import CliRunner

    from dualpath_twin import cli

    path = str(Path(__file__).resolve().parents[1] / "scenarios" / "examples" / "quick.toml")
    args = ["capacity", path, "--policy", "basic", "--no-save", "--workers", "1", "--max-wall-s", "1"]
    loose = CliRunner().invoke(cli.app, [*args, "--tolerance", "0.2"])
    tight = CliRunner().invoke(cli.app, [*args, "--tolerance", "0.01", "--window-s", "640"])
    assert loose.exit_code == tight.exit_code == 2
    for r, tol in ((loose, "0.2"), (tight, "0.01")):
        assert f"to tolerance {tol}" in r.stderr and "capacity search: ~" in r.stderr
    assert "x 640 s window" in tight.stderr

    def runs(text: str) -> int:
        return int(text.split("capacity search: ~")[1].split(" ")[0])

    assert runs(tight.stderr) > runs(loose.stderr)


def _refusing_dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh dashboard store with a wall-time limit so small that every planning job is refused."""
    import streamlit as st

    from dualpath_twin.ui import backend

    monkeypatch.setenv("DUALPATH_TWIN_DB", str(tmp_path / "t.duckdb"))
    monkeypatch.setenv("DUALPATH_TWIN_MAX_WALL_S", "0.001")
    monkeypatch.delenv("DUALPATH_TWIN_SETTINGS", raising=False)
    st.cache_data.clear()
    backend._STORES.clear()


def test_dashboard_refusal_uses_the_forms_tolerance_and_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_planning_tabs_ui import TINY, _page, _tab

    from dualpath_twin.ui import backend, planning_page

    _refusing_dashboard(tmp_path, monkeypatch)
    calls: list[object] = []
    monkeypatch.setattr(planning_page, "capacity_search_many", lambda *a, **k: calls.append(a))
    texts = {}
    for tol, win in ((0.2, 16.0), (0.01, 500.0)):
        at = _page(TINY)
        at.number_input(key="cap_tol").set_value(tol)
        at.number_input(key="cap_win").set_value(win)
        at.button(key="cap_go").click().run()
        assert not at.exception, at.exception
        texts[tol] = " ".join(e.value for e in _tab(at, "Capacity").error)
        assert f"to tolerance {tol:g}" in texts[tol] and f"x {win:g} s window" in texts[tol]
    backend._STORES.clear()

    def runs(text: str) -> int:
        return int(text.split("capacity search: ~")[1].split(" ")[0])

    assert runs(texts[0.01]) > runs(texts[0.2]) and calls == []


def test_memory_refusal_names_the_window_not_workload_agents() -> None:
    small = g.Limits(max_memory_bytes=2e9, max_wall_s=1e9, source="test")
    with pytest.raises(g.RunTooLarge) as err:
        g.guard_capacity(QUICK, ["basic"], window_s=20_000, limits=small)
    msg = str(err.value)
    assert "20000 s arrival window" in msg and "workload.agents" not in msg
    fit = float(msg.split("an arrival window of ~")[1].split(" s fits")[0].replace(",", ""))
    assert 0 < fit < 20_000
    g.guard_capacity(QUICK, ["basic"], window_s=fit, limits=small)  # the window it names fits


def test_a_capacity_sweep_plans_a_search_per_point() -> None:
    from dualpath_twin.planning.common import labelled_point_scenarios

    searches = labelled_point_scenarios(QUICK, {"cluster.prefill_nodes": [2, 3], "network.snic_gbps": [200, 400]},
                                        ["basic"])
    assert len(searches) == 4 and "cluster.prefill_nodes=3, network.snic_gbps=400 (basic)" in searches
    loose = g.guard_capacity_many(searches, tolerance=0.2, limits=LIMITS)
    tight = g.guard_capacity_many(searches, tolerance=0.01, limits=LIMITS)
    from dualpath_twin.planning.capacity import default_window_s

    longer = g.guard_capacity_many(searches, tolerance=0.2, window_s=2 * default_window_s(QUICK), limits=LIMITS)
    assert tight.runs > loose.runs and longer.wall_s > loose.wall_s and longer.runs == loose.runs
    assert loose.text().startswith("4 searches of ") and "the largest, cluster.prefill_nodes=" in loose.text()


def test_cli_capacity_sweep_is_refused_with_its_own_tolerance() -> None:
    from typer.testing import CliRunner

    from dualpath_twin import cli

    path = str(Path(__file__).resolve().parents[1] / "scenarios" / "examples" / "quick.toml")
    args = ["sweep", path, "--grid", "cluster.prefill_nodes=2,3", "--policies", "basic", "--objective", "capacity",
            "--no-save", "--workers", "1", "--max-wall-s", "1"]
    loose = CliRunner().invoke(cli.app, [*args, "--tolerance", "0.2"])
    tight = CliRunner().invoke(cli.app, [*args, "--tolerance", "0.01"])
    assert loose.exit_code == tight.exit_code == 2
    assert "to tolerance 0.2" in loose.stderr and "to tolerance 0.01" in tight.stderr

    def runs(text: str) -> int:
        return int(text.split("capacity search: ~")[1].split(" ")[0])

    assert runs(tight.stderr) > runs(loose.stderr)


def test_dashboard_capacity_sweep_is_refused_with_each_points_search(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from test_planning_tabs_ui import TINY, _page, _tab

    from dualpath_twin.ui import backend, planning_page

    _refusing_dashboard(tmp_path, monkeypatch)
    calls: list[object] = []
    monkeypatch.setattr(planning_page, "run_sweep", lambda *a, **k: calls.append(a))
    at = _page(TINY)
    at.radio(key="sw_obj").set_value("capacity").run()
    at.button(key="sw_go").click().run()
    assert not at.exception, at.exception
    errs = " ".join(e.value for e in _tab(at, "Sweep").error)
    backend._STORES.clear()
    assert "capacity search: ~" in errs and "search(s)) expected" in errs and "to tolerance 0.05" in errs
    assert "Assumed:" in errs and calls == []


def test_the_plan_counts_the_confirmation_replicas() -> None:
    plain = g.plan_capacity_search(QUICK, "basic", boundary_aps=8.0, start_aps=4.0, confirm=False, horizon_factor=1)
    confirmed = g.plan_capacity_search(QUICK, "basic", boundary_aps=8.0, start_aps=4.0, horizon_factor=1)
    # the search re-measures its two bracket ends with other seeds: two more runs, at those ends
    assert confirmed.runs == plain.runs + 2 and confirmed.confirm_runs == 2 and plain.confirm_runs == 0
    ok = max(r for r in plain.rates if r < 8.0)
    bad = min(r for r in plain.rates if r >= 8.0)
    assert confirmed.rates[-2:] == [ok, bad] and confirmed.rates[:-2] == plain.rates
    assert "re-measuring the bracket ends" in confirmed.text() and "re-measuring" not in plain.text()
    # a search capped before it converges has no bracket to confirm
    capped = g.plan_capacity_search(QUICK, "basic", boundary_aps=8.0, start_aps=0.125, tolerance=1e-4, max_evaluations=9)
    assert capped.confirm_runs == 0


def test_the_plan_counts_the_horizon_check_at_its_longer_window() -> None:
    """The capacity rate runs once more with horizon_factor x the window: one more, larger run, last (boundary under
    the analytic ceiling, so the runs near it are simulated)."""
    off = g.plan_capacity_search(QUICK, "basic", boundary_aps=5.0, start_aps=2.0, horizon_factor=1)
    on = g.plan_capacity_search(QUICK, "basic", boundary_aps=5.0, start_aps=2.0, horizon_factor=2)
    ok = max(r for r in off.rates if r < 5.0)
    assert on.runs == off.runs + 1 and on.horizon_runs == 1 and off.horizon_runs == 0
    assert on.rates[:-1] == off.rates and on.rates[-1] == ok
    assert on.run_window_s(on.runs - 1) == 2 * on.window_s and on.run_window_s(0) == on.window_s
    # twice the window: about twice the agents, so about twice the rounds of the same rate's first run
    first = on.rounds[on.rates.index(ok)]
    assert 1.6 * first <= on.rounds[-1] <= 2.4 * first
    assert on.simulated[-1] > on.simulated[on.rates.index(ok)]
    assert "horizon check of the capacity with a 2x longer window" in on.text() and "horizon" not in off.text()
