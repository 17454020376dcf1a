"""The --check grammar, evaluation, JUnit XML and the GitHub step summary (dualpath_twin.checks)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from dualpath_twin import checks as chk
from dualpath_twin.results import Percentiles, RunSummary


def _summary(policy: str = "dualpath", **kw: object) -> RunSummary:
    base: dict[str, object] = dict(
        policy=policy,
        seed=0,
        jct_s=1200.0,
        rounds=100,
        prompt_tokens_per_s=5.0e5,
        slo_attainment=0.995,
        ttft_s=Percentiles(p50=0.5, p90=1.5, p99=3.0, mean=0.8),
        snic_read_utilization={"prefill": 0.6, "decode": 0.55},
        bottleneck="snic",
    )
    base.update(kw)
    return RunSummary(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "metric", "op", "limit"),
    [
        ("slo_attainment>=0.99", "slo_attainment", ">=", 0.99),
        ("  jct_s <= 4000 ", "jct_s", "<=", 4000.0),
        ("ttft_s.p99<4", "ttft_s.p99", "<", 4.0),
        ("ratio.dualpath_vs_basic > 1.5", "ratio.dualpath_vs_basic", ">", 1.5),
        (
            "dualpath.snic_read_utilization.decode != -1e-3",
            "dualpath.snic_read_utilization.decode",
            "!=",
            -0.001,
        ),
        ("rounds == 100", "rounds", "==", 100.0),
        ("x>=.5", "x", ">=", 0.5),
    ],
)
def test_parse_valid(text: str, metric: str, op: str, limit: float) -> None:
    c = chk.parse_check(text)
    assert (c.metric, c.op, c.limit) == (metric, op, limit)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("slo_attainment=0.99", "use '=='"),
        ("slo_attainment 0.99", "missing a comparison operator"),
        ("jct_s <= abc", "expected '<metric> <op> <number>'"),
        ("__import__('os').system('x') > 1", "expected"),
        ("jct_s <= 1 or 1", "expected"),
        ("", "expected"),
        ("jct_s >= nan", "expected"),
    ],
)
def test_parse_rejects_malformed(text: str, fragment: str) -> None:
    with pytest.raises(chk.CheckError) as e:
        chk.parse_check(text)
    assert fragment in str(e.value)
    assert repr(text) in str(e.value)  # names the offending expression


def test_parse_checks_reports_all_problems_at_once() -> None:
    with pytest.raises(chk.CheckError) as e:
        chk.parse_checks(["a=1", "jct_s<1", "b 2"])
    msg = str(e.value)
    assert "'a=1'" in msg and "'b 2'" in msg and "'jct_s<1'" not in msg


def test_evaluate_pass_and_fail_messages() -> None:
    metrics = chk.run_metrics(_summary())
    res = chk.evaluate(chk.parse_checks(["slo_attainment>=0.99", "ttft_s.p99<=2", "jct_s<1200"]), metrics)
    assert [r.passed for r in res] == [True, False, False]
    fail = res[1]
    assert fail.metric == "ttft_s.p99" and fail.value == 3.0
    assert (
        "ttft_s.p99 = 3" in fail.message and "limit <= 2" in fail.message and fail.message.startswith("FAIL")
    )
    assert not chk.all_passed(res)


@pytest.mark.parametrize(
    ("op", "value", "limit", "expected"),
    [
        (">=", 1.0, 1.0, True),
        (">", 1.0, 1.0, False),
        ("<=", 0.1 + 0.2, 0.3, True),
        ("==", 0.1 + 0.2, 0.3, True),
        ("!=", 0.1 + 0.2, 0.3, False),
        ("<", 2.0, 3.0, True),
        ("<", 3.0, 2.0, False),
    ],
)
def test_comparison_semantics(op: str, value: float, limit: float, expected: bool) -> None:
    res = chk.evaluate([chk.parse_check(f"m {op} {limit!r}")], {"m": value})
    assert res[0].passed is expected


def test_unknown_metric_lists_close_matches() -> None:
    metrics = chk.run_metrics(_summary())
    with pytest.raises(chk.CheckError) as e:
        chk.evaluate([chk.parse_check("ttft.p99 <= 4")], metrics)
    assert "unknown metric 'ttft.p99'" in str(e.value)
    assert "ttft_s.p99" in str(e.value)


def test_null_value_fails_and_text_value_is_an_error() -> None:
    metrics = chk.run_metrics(_summary(jct_s=None))
    res = chk.evaluate([chk.parse_check("jct_s <= 10")], metrics)
    assert not res[0].passed and "missing" in res[0].message
    with pytest.raises(chk.CheckError, match="not numeric"):
        chk.evaluate([chk.parse_check("bottleneck == 1")], metrics)


def test_compare_metrics_ratio_policy_and_unqualified() -> None:
    runs = [_summary("basic", slo_attainment=0.5, jct_s=3000.0), _summary("dualpath")]
    metrics = chk.compare_metrics(runs, {"dualpath_vs_basic": 2.5})
    assert metrics["basic.jct_s"] == 3000.0 and metrics["ratio.dualpath_vs_basic"] == 2.5
    checks = chk.parse_checks(["ratio.dualpath_vs_basic>=1.5", "dualpath.jct_s<=2000", "slo_attainment>=0.9"])
    res = chk.evaluate(checks, metrics, policies=["basic", "dualpath"])
    assert [(r.metric, r.passed) for r in res] == [
        ("ratio.dualpath_vs_basic", True),
        ("dualpath.jct_s", True),
        ("basic.slo_attainment", False),  # an unqualified check must hold for every policy
        ("dualpath.slo_attainment", True),
    ]
    with pytest.raises(chk.CheckError, match="did you mean ratio.dualpath_vs_basic"):
        chk.evaluate([chk.parse_check("ratio.dualpath_vs_basik>1")], metrics, policies=["basic", "dualpath"])


def test_precheck_rejects_impossible_metrics_before_running() -> None:
    chk.precheck(chk.parse_checks(["snic_read_utilization.decode>0.1", "bound.max_rounds_per_s>1"]))
    with pytest.raises(chk.CheckError, match="only in `compare`"):
        chk.precheck([chk.parse_check("ratio.dualpath_vs_basic>1")])
    with pytest.raises(chk.CheckError, match="did you mean slo_attainment"):
        chk.precheck([chk.parse_check("slo_atainment>0.9")])
    chk.precheck(
        [chk.parse_check("dualpath.jct_s<1"), chk.parse_check("ratio.x>1")], policies=["basic", "dualpath"]
    )
    with pytest.raises(chk.CheckError, match="dualpath.jct_s"):
        chk.precheck([chk.parse_check("dualpath.jtc_s<1")], policies=["basic", "dualpath"])


def test_junit_xml_one_testcase_per_check(tmp_path) -> None:
    metrics = chk.run_metrics(_summary())
    res = chk.evaluate(chk.parse_checks(["slo_attainment>=0.99", "ttft_s.p99<=2"]), metrics)
    out = chk.write_junit(res, tmp_path / "sub" / "checks.xml", suite_name="quick.dualpath")
    root = ET.parse(out).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["slo_attainment >= 0.99", "ttft_s.p99 <= 2"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None and "ttft_s.p99 = 3" in (failure.get("message") or "")


def test_github_step_summary_appends_markdown(tmp_path) -> None:
    res = chk.evaluate(chk.parse_checks(["jct_s<=4000"]), chk.run_metrics(_summary()))
    target = tmp_path / "summary.md"
    assert chk.append_github_summary(res, "quick", env={}) is None
    chk.append_github_summary(res, "quick", env={"GITHUB_STEP_SUMMARY": str(target)})
    chk.append_github_summary(res, "again", env={"GITHUB_STEP_SUMMARY": str(target)})
    text = target.read_text()
    assert "### quick: all checks passed" in text and "### again" in text
    assert "| ✅ | `jct_s` | 1200 | <= 4000 |" in text
