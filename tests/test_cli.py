"""CLI contract with a stand-in simulation core and store: JSON shape, exit codes, checks, errors.

These tests replace ``api.simulate``/``api.compare`` and the store with small fakes so that the
CLI's own behaviour (argument handling, output, exit codes, store bookkeeping on failure and
Ctrl-C) is tested quickly and deterministically; tests/test_cli_sim.py runs the real core.
"""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from dualpath_twin import api, cli
from dualpath_twin import scenario as scn
from dualpath_twin.results import Bound, Percentiles, Progress, RunResult, RunSummary

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "scenarios" / "examples" / "quick.toml")
REQUIRED_RUN_KEYS = {
    "policy", "seed", "jct_s", "rounds", "prompt_tokens_per_s", "generated_tokens_per_s", "ttft_s", "tpot_s",
    "slo_attainment", "snic_read_utilization", "snic_imbalance", "bottleneck", "bound", "sim_events", "wall_s",
}  # fmt: skip
THROUGHPUT = {"basic": 1.0e5, "layerwise": 1.2e5, "dualpath": 1.9e5, "oracle": 2.4e5}

runner = CliRunner()


def _fake_result(sc: scn.Scenario, policy: str, invariants: list[str] | None = None) -> RunResult:
    tput = THROUGHPUT[policy]
    summary = RunSummary(
        policy=policy,
        seed=sc.run.seed,
        scenario_name=sc.name,
        scenario_hash=sc.content_hash(),
        jct_s=1e8 / tput,
        rounds=100,
        rounds_total=100,
        agents=sc.workload.agents,
        prompt_tokens_per_s=tput,
        generated_tokens_per_s=tput / 100,
        ttft_s=Percentiles(p50=0.4, p90=1.0, p99=2.0, mean=0.5),
        tpot_s=Percentiles(p50=0.02, p90=0.03, p99=0.045, mean=0.025),
        slo_attainment=0.5 if policy == "basic" else 0.995,
        snic_read_utilization={"prefill": 0.9, "decode": 0.0 if policy != "dualpath" else 0.8},
        snic_imbalance=1.1,
        bottleneck="snic",
        bottleneck_sentence="Storage NIC reads bind.",
        bound=Bound(policy=policy, max_rounds_per_s=10.0, binding_resource="snic"),
        sim_events=1234,
        wall_s=0.01,
    )
    return RunResult(summary, pl.DataFrame(), pl.DataFrame(), sc.to_toml(), invariants or [])


@dataclass
class FakeCore:
    """Records calls; optionally raises inside the simulation."""

    raise_exc: BaseException | None = None
    invariants: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def simulate(self, sc: scn.Scenario, policy: str | None = None, **kw: Any) -> RunResult:
        self.calls.append({"scenario": sc, "policy": policy, **kw})
        if kw.get("progress"):
            kw["progress"](Progress(sim_time_s=1.0, rounds_done=1, rounds_total=2, wall_s=0.0))
        if self.raise_exc is not None:
            raise self.raise_exc
        return _fake_result(sc, policy or sc.policy.name, self.invariants)

    def compare(self, sc: scn.Scenario, policies: list[str], **kw: Any) -> api.CompareResult:
        self.calls.append({"scenario": sc, "policies": policies, **kw})
        if self.raise_exc is not None:
            raise self.raise_exc
        runs = [_fake_result(sc.with_policy(p), p) for p in policies]
        ratios = {f"{a}_vs_{b}": THROUGHPUT[a] / THROUGHPUT[b] for a in policies for b in policies if a != b}
        return api.CompareResult(runs=runs, ratios=ratios)


@dataclass
class FakeStore:
    """In-memory stand-in for dualpath_twin.store.Store (only what the CLI calls)."""

    begun: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished: dict[str, RunResult] = field(default_factory=dict)
    marks: dict[str, tuple[str, str]] = field(default_factory=dict)
    closed: int = 0

    def begin_run(self, scenario_toml: str, scenario_name: str, policy: str, seed: int) -> str:
        rid = f"r{len(self.begun):03d}{policy}"
        self.begun[rid] = {"name": scenario_name, "policy": policy, "seed": seed, "toml": scenario_toml}
        return rid

    def finish_run(self, run_id: str, result: RunResult) -> None:
        self.finished[run_id] = result

    def mark_run(self, run_id: str, status: str, error: str = "") -> None:
        self.marks[run_id] = (status, error)

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def core(monkeypatch: pytest.MonkeyPatch) -> FakeCore:
    fake = FakeCore()
    monkeypatch.setattr(api, "simulate", fake.simulate)
    monkeypatch.setattr(api, "compare", fake.compare)
    return fake


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    fake = FakeStore()
    monkeypatch.setattr(cli.common, "open_store", lambda db: fake)
    return fake


def _json(out: str) -> Any:
    return json.loads(out)


# ------------------------------------------------------------------ run


def test_run_json_is_one_object_with_the_contract_keys(core: FakeCore, store: FakeStore) -> None:
    r = runner.invoke(cli.app, ["run", QUICK, "--json", "--policy", "basic", "--set", "run.seed=3"])
    assert r.exit_code == 0, r.stderr
    obj = _json(r.stdout)
    assert REQUIRED_RUN_KEYS <= set(obj)
    assert obj["policy"] == "basic" and obj["seed"] == 3
    assert set(obj["ttft_s"]) >= {"p50", "p90", "p99"} and set(obj["snic_read_utilization"]) == {
        "prefill",
        "decode",
    }
    assert obj["run_id"] in store.finished and store.closed == 1
    sc_used = core.calls[0]["scenario"]
    assert sc_used.policy.name == "basic" and sc_used.run.seed == 3


def test_run_no_save_does_not_touch_the_store(core: FakeCore, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(db: Any) -> None:
        raise AssertionError("store opened despite --no-save")

    monkeypatch.setattr(cli.common, "open_store", boom)
    r = runner.invoke(cli.app, ["run", QUICK, "--json", "--no-save"])
    assert r.exit_code == 0, r.stderr
    assert "run_id" not in _json(r.stdout)


def test_run_table_output(core: FakeCore, store: FakeStore) -> None:
    r = runner.invoke(cli.app, ["run", QUICK])
    assert r.exit_code == 0, r.stderr
    for label in ("JCT (s)", "TTFT p50/p90/p99 (s)", "SLO attainment", "bottleneck", "run id"):
        assert label in r.stdout
    assert "Storage NIC reads bind." in r.stdout


def test_run_checks_pass_fail_and_junit(core: FakeCore, store: FakeStore, tmp_path: Path) -> None:
    junit = tmp_path / "checks.xml"
    ok = runner.invoke(
        cli.app, ["run", QUICK, "--no-save", "--check", "slo_attainment>=0.99", "--junit", str(junit)]
    )
    assert ok.exit_code == 0, ok.stderr
    assert "ok   slo_attainment = 0.995" in ok.stderr
    bad = runner.invoke(
        cli.app,
        ["run", QUICK, "--json", "--no-save", "--check", "slo_attainment>=0.99", "--check", "ttft_s.p99<=1.5",
         "--junit", str(junit)],
    )  # fmt: skip
    assert bad.exit_code == 1
    assert "FAIL ttft_s.p99 = 2 (limit <= 1.5)" in bad.stderr
    assert _json(bad.stdout)["policy"] == "dualpath"  # JSON still printed, alone on stdout
    cases = ET.parse(junit).getroot().findall("./testsuite/testcase")
    assert len(cases) == 2 and cases[1].find("failure") is not None


def test_run_github_step_summary(core: FakeCore, store: FakeStore, tmp_path: Path) -> None:
    target = tmp_path / "step.md"
    r = runner.invoke(
        cli.app, ["run", QUICK, "--no-save", "--check", "jct_s<=1"], env={"GITHUB_STEP_SUMMARY": str(target)}
    )
    assert r.exit_code == 1
    text = target.read_text()
    assert "1 of 1 checks FAILED" in text and "`jct_s`" in text


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--check", "slo_attainment=0.99"], "use '=='"),
        (["--check", "slo_atainment>=0.99"], "did you mean slo_attainment"),
        (["--check", "ratio.dualpath_vs_basic>=1"], "only in `compare`"),
        (["--set", "cluster.prefil_nodes=2"], "did you mean cluster.prefill_nodes"),
        (["--set", "network.snic_gbps=-1"], "network.snic_gbps = -1"),
        (["--set", "noequals"], "expected path=value"),
        (["--policy", "fastest"], "policy.name"),
    ],
)
def test_run_user_errors_exit_2_before_simulating(
    core: FakeCore, store: FakeStore, args: list[str], fragment: str
) -> None:
    r = runner.invoke(cli.app, ["run", QUICK, "--no-save", *args])
    assert r.exit_code == 2, r.stdout
    assert fragment in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert core.calls == []


def test_missing_and_invalid_scenario_files_exit_2(core: FakeCore, tmp_path: Path) -> None:
    r = runner.invoke(cli.app, ["run", str(tmp_path / "nope.toml"), "--no-save"])
    assert r.exit_code == 2 and "file not found" in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[cluster]\nprefill_nodes = 0\n[netwrk]\nx = 1\n")
    r = runner.invoke(cli.app, ["run", str(bad), "--no-save"])
    assert r.exit_code == 2
    assert (
        "cluster.prefill_nodes = 0" in r.stderr and "netwrk: unknown key" in r.stderr and str(bad) in r.stderr
    )
    assert "Traceback" not in r.stderr


def test_run_failure_marks_the_run_failed(core: FakeCore, store: FakeStore) -> None:
    core.raise_exc = RuntimeError("engine exploded")
    r = runner.invoke(cli.app, ["run", QUICK])
    assert r.exit_code != 0 and isinstance(r.exception, RuntimeError)
    (rid,) = store.begun
    assert store.marks[rid][0] == "failed" and "engine exploded" in store.marks[rid][1]
    assert not store.finished and store.closed == 1


def test_run_ctrl_c_marks_the_run_cancelled(core: FakeCore, store: FakeStore) -> None:
    core.raise_exc = KeyboardInterrupt()
    r = runner.invoke(cli.app, ["run", QUICK])
    assert r.exit_code == 130
    assert "interrupted" in r.stderr
    (rid,) = store.begun
    assert store.marks[rid][0] == "cancelled" and not store.finished


def test_user_error_from_the_core_is_exit_2_and_marks_failed(core: FakeCore, store: FakeStore) -> None:
    class WorkloadError(ValueError):
        pass

    core.raise_exc = WorkloadError("trace.jsonl:3: negative input_length; fix the line")
    r = runner.invoke(cli.app, ["run", QUICK])
    assert r.exit_code == 2 and "trace.jsonl:3: negative input_length" in r.stderr
    assert next(iter(store.marks.values()))[0] == "failed"


def test_run_cancellable_sets_cancel_on_interrupt() -> None:
    cancel = threading.Event()
    started = threading.Event()

    def work() -> int:
        started.set()
        assert cancel.wait(5), "cancel was never set"
        return 1

    ticks = iter([None])

    def tick() -> None:
        started.wait(5)
        if next(ticks, "done") is None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cli.common.run_cancellable(work, cancel, tick)
    assert cancel.is_set()


def test_check_invariants(core: FakeCore, store: FakeStore) -> None:
    r = runner.invoke(cli.app, ["run", QUICK, "--no-save", "--json", "--check-invariants"])
    assert r.exit_code == 0 and _json(r.stdout)["invariants"] == []
    assert core.calls[-1]["check_invariants"] is True
    core.invariants = ["P0.snic rx above capacity at t=3 s"]
    r = runner.invoke(cli.app, ["run", QUICK, "--no-save", "--check-invariants"])
    assert r.exit_code == 1 and "invariant violated: P0.snic rx above capacity" in r.stderr


# ------------------------------------------------------------------ compare


def test_compare_json_runs_and_ratios(core: FakeCore, store: FakeStore) -> None:
    r = runner.invoke(cli.app, ["compare", QUICK, "--json", "--policies", "basic,dualpath", "--workers", "2"])
    assert r.exit_code == 0, r.stderr
    obj = _json(r.stdout)
    assert [run["policy"] for run in obj["runs"]] == ["basic", "dualpath"]
    for run in obj["runs"]:
        assert REQUIRED_RUN_KEYS <= set(run) and run["run_id"] in store.finished
    assert obj["ratios"]["dualpath_vs_basic"] == pytest.approx(1.9)
    assert core.calls[0]["policies"] == ["basic", "dualpath"] and core.calls[0]["workers"] == 2
    assert {b["policy"] for b in store.begun.values()} == {"basic", "dualpath"}


def test_compare_checks(core: FakeCore, store: FakeStore, tmp_path: Path) -> None:
    junit = tmp_path / "c.xml"
    args = ["compare", QUICK, "--no-save", "--policies", "basic,dualpath", "--junit", str(junit)]
    ok = runner.invoke(
        cli.app,
        [*args, "--check", "ratio.dualpath_vs_basic>=1.5", "--check", "dualpath.slo_attainment>=0.99"],
    )
    assert ok.exit_code == 0, ok.stderr
    bad = runner.invoke(cli.app, [*args, "--check", "slo_attainment>=0.9"])
    assert bad.exit_code == 1
    assert "FAIL basic.slo_attainment = 0.5 (limit >= 0.9)" in bad.stderr
    assert "ok   dualpath.slo_attainment" in bad.stderr
    assert len(ET.parse(junit).getroot().findall("./testsuite/testcase")) == 2
    err = runner.invoke(cli.app, [*args, "--check", "ratio.dualpath_vs_basik>=1.5"])
    assert err.exit_code == 2 and "did you mean ratio.dualpath_vs_basic" in err.stderr


def test_compare_table_and_bad_policies(core: FakeCore, store: FakeStore) -> None:
    r = runner.invoke(cli.app, ["compare", QUICK, "--no-save"])
    assert r.exit_code == 0, r.stderr
    assert all(p in r.stdout for p in THROUGHPUT) and "dualpath_vs_basic = 1.9" in r.stdout
    r = runner.invoke(cli.app, ["compare", QUICK, "--policies", "basic,turbo"])
    assert r.exit_code == 2 and "turbo" in r.stderr and "choose from basic" in r.stderr
    assert len(core.calls) == 1  # the bad invocation never reached the core


def test_compare_ctrl_c_cancels_every_run(core: FakeCore, store: FakeStore) -> None:
    core.raise_exc = KeyboardInterrupt()
    r = runner.invoke(cli.app, ["compare", QUICK, "--policies", "basic,dualpath,oracle"])
    assert r.exit_code == 130
    assert sorted(s for s, _ in store.marks.values()) == ["cancelled"] * 3


# ------------------------------------------------------------------ validate


def test_validate_prints_resolved_toml_with_defaults() -> None:
    r = runner.invoke(cli.app, ["validate", QUICK, "--set", "workload.agents=8"])
    assert r.exit_code == 0, r.stderr
    resolved = scn.from_toml(r.stdout)  # the output is itself a valid scenario (derived values are comments)
    assert resolved.workload.agents == 8 and resolved.compute.gemm_mfu == scn.ComputeConfig().gemm_mfu
    assert "# ---- derived values" in r.stdout and "# ---- bottleneck-free P/D range" in r.stdout


def test_validate_json_and_errors(tmp_path: Path) -> None:
    r = runner.invoke(cli.app, ["validate", QUICK, "--json"])
    assert r.exit_code == 0, r.stderr
    obj = _json(r.stdout)
    assert obj["valid"] is True and obj["scenario"]["name"] == "quick"
    assert {"derived", "pd_range", "bounds"} <= set(obj)
    bad = tmp_path / "bad.toml"
    bad.write_text("[network]\nsnic_gbps = -400.0\n")
    r = runner.invoke(cli.app, ["validate", str(bad), "--json"])
    assert r.exit_code == 2
    obj = _json(r.stdout)
    assert obj["valid"] is False and obj["problems"][0].startswith("network.snic_gbps = -400.0")
    r = runner.invoke(cli.app, ["validate", str(bad)])
    assert r.exit_code == 2 and "network.snic_gbps = -400.0" in r.stderr and "Traceback" not in r.stderr


def test_validate_paths() -> None:
    r = runner.invoke(cli.app, ["validate", "--paths"])
    assert r.exit_code == 0
    assert r.stdout.split() == scn.all_paths()
    rows = _json(runner.invoke(cli.app, ["validate", "--paths", "--json"]).stdout)
    by_path = {row["path"]: row for row in rows}
    assert by_path["network.snic_gbps"]["default"] == 400.0
    assert "storage NIC" in by_path["network.snic_gbps"]["description"]


def test_version_and_help() -> None:
    r = runner.invoke(cli.app, ["--version"])
    assert r.exit_code == 0 and r.stdout.startswith("dualpath-twin ")
    r = runner.invoke(cli.app, ["--help"])
    for cmd in ("validate", "run", "compare", "runs", "show", "export", "gc", "report", "workload"):
        assert cmd in r.stdout


def test_report_error_keeps_the_run_and_exits_2(
    core: FakeCore, store: FakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    class ReportError(RuntimeError):
        pass

    def no_pdf(store_: Any, run_ids: list[str], results: list[RunResult], out: Path) -> Path:
        raise ReportError("PDF export needs Chromium at /usr/bin/chromium; install it or write .html")

    monkeypatch.setattr(cli.common, "write_report", no_pdf)
    r = runner.invoke(cli.app, ["run", QUICK, "--json", "--report", "r.pdf"])
    assert r.exit_code == 2 and "report not written: PDF export needs Chromium" in r.stderr
    assert _json(r.stdout)["run_id"] in store.finished  # the run itself is saved and printed
