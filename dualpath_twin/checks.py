"""CI checks: ``--check "EXPR"`` parsed by a small safe grammar (no eval), JUnit XML, GitHub summary.

Grammar (whitespace is free)::

    check  := metric op number
    metric := name ("." name)*            e.g. slo_attainment, ttft_s.p99, ratio.dualpath_vs_basic
    op     := ">=" | "<=" | ">" | "<" | "==" | "!="
    number := a decimal or scientific literal, e.g. 0.99, 4000, 1e-3

A metric is a dotted key of ``RunSummary.flat()`` (plus ``tpot_ms.p50``... = TPOT in ms, as tables show it); in a comparison also ``ratio.<name>``
(``CompareResult.ratios``) and ``<policy>.<metric>``. An unqualified metric in a comparison is
checked for every policy of the comparison (it must hold for all).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dualpath_twin.results import RunSummary

OPS = (">=", "<=", "==", "!=", ">", "<")

_CHECK_RE = re.compile(
    r"""^\s*
    (?P<metric>[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*)
    \s*(?P<op>>=|<=|==|!=|>|<)\s*
    (?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
    \s*$""",
    re.VERBOSE,
)
_EXAMPLES = "e.g. 'slo_attainment>=0.99', 'ttft_s.p99<=4', 'ratio.dualpath_vs_basic>=1.5'"


class CheckError(ValueError):
    """A --check expression is malformed or names an unknown metric (a user error, exit code 2)."""


@dataclass(frozen=True)
class Check:
    """One parsed check: ``metric op limit``."""

    metric: str
    op: str
    limit: float
    text: str

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {_fmt(self.limit)}"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check against one metric value."""

    check: Check
    metric: str  # the concrete metric evaluated (an unqualified compare check expands per policy)
    value: float | None
    passed: bool
    message: str


def parse_check(text: str) -> Check:
    """Parse ``<metric> <op> <number>``, raising CheckError with the fix on malformed input."""
    m = _CHECK_RE.match(text)
    if m is None:
        hint = ""
        if re.search(r"(?<![<>=!])=(?!=)", text):
            hint = " (use '==' for equality)"
        elif not any(op in text for op in OPS):
            hint = f" (missing a comparison operator: one of {' '.join(OPS)})"
        raise CheckError(f"--check {text!r}: expected '<metric> <op> <number>'{hint}; {_EXAMPLES}")
    number = float(m.group("number"))
    if not math.isfinite(number):
        raise CheckError(f"--check {text!r}: the limit must be a finite number")
    return Check(metric=m.group("metric"), op=m.group("op"), limit=number, text=text.strip())


def parse_checks(texts: Iterable[str]) -> list[Check]:
    """Parse several check expressions; all problems are reported in one CheckError."""
    out: list[Check] = []
    problems: list[str] = []
    for t in texts:
        try:
            out.append(parse_check(t))
        except CheckError as err:
            problems.append(str(err))
    if problems:
        raise CheckError("\n".join(problems))
    return out


def known_summary_fields() -> list[str]:
    """Top-level RunSummary field names (the first component of a run metric)."""
    return sorted(RunSummary.model_fields)


def precheck(checks: Iterable[Check], policies: list[str] | None = None) -> None:
    """Reject checks whose metric cannot exist, before a (possibly long) simulation starts.

    Only the first component is verified here (nested keys like ``snic_read_utilization.decode``
    depend on the run); ``policies`` given means a comparison (``ratio.`` and ``<policy>.`` allowed).
    """
    fields = set(known_summary_fields())
    allowed = set(fields)
    if policies is not None:
        allowed |= {"ratio", *policies}
    problems = []
    for c in checks:
        head = c.metric.split(".", 1)[0]
        if head in allowed:
            if head in (policies or []) and "." in c.metric and c.metric.split(".")[1] not in fields:
                problems.append(_unknown(c, c.metric.split(".", 1)[1], sorted(fields), f"{head}."))
            continue
        if head == "ratio" and policies is None:
            problems.append(f"--check {c.text!r}: ratio.* metrics exist only in `compare`, not `run`")
            continue
        problems.append(_unknown(c, c.metric, sorted(allowed)))
    if problems:
        raise CheckError("\n".join(problems))


def _unknown(c: Check, metric: str, known: list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(metric, known, n=4, cutoff=0.5)
    if close:
        hint = "did you mean " + ", ".join(prefix + k for k in close) + "?"
    else:
        shown = ", ".join(prefix + k for k in known[:20]) + (", ..." if len(known) > 20 else "")
        hint = f"known metrics: {shown}"
    return f"--check {c.text!r}: unknown metric {prefix + metric!r}; {hint}"


def run_metrics(summary: RunSummary) -> dict[str, Any]:
    """Metrics available to checks on a single run: ``RunSummary.flat()`` plus TPOT in ms (``tpot_ms.p99``)."""
    out = summary.flat()
    for k, v in list(out.items()):
        if k.startswith("tpot_s.") and isinstance(v, int | float):
            out["tpot_ms." + k.split(".", 1)[1]] = v * 1000.0  # as the tables show it
    return out


def compare_metrics(summaries: list[RunSummary], ratios: Mapping[str, float]) -> dict[str, Any]:
    """Metrics available to checks on a comparison: ``<policy>.<metric>`` and ``ratio.<name>``."""
    out: dict[str, Any] = {}
    for s in summaries:
        for k, v in run_metrics(s).items():
            out[f"{s.policy}.{k}"] = v
    for name, v in ratios.items():
        out[f"ratio.{name}"] = v
    return out


def evaluate(
    checks: Iterable[Check], metrics: Mapping[str, Any], policies: list[str] | None = None
) -> list[CheckResult]:
    """Evaluate checks against metrics; unknown metrics raise CheckError listing close matches.

    With ``policies`` (a comparison), a metric that is neither ``ratio.*`` nor policy-qualified
    is evaluated once per policy as ``<policy>.<metric>``.
    """
    results: list[CheckResult] = []
    problems: list[str] = []
    known = sorted(metrics)
    for c in checks:
        names = [c.metric]
        head = c.metric.split(".", 1)[0]
        if policies is not None and head != "ratio" and head not in policies:
            names = [f"{p}.{c.metric}" for p in policies]
        for name in names:
            if name not in metrics:
                problems.append(_unknown(c, name, known))
                continue
            results.append(_evaluate_one(c, name, metrics[name]))
    if problems:
        raise CheckError("\n".join(problems))
    return results


def _evaluate_one(c: Check, name: str, raw: Any) -> CheckResult:
    if raw is None:
        return CheckResult(
            c, name, None, False, f"FAIL {name} {c.op} {_fmt(c.limit)}: value is missing (null) in this run"
        )
    if isinstance(raw, bool):
        raw = float(raw)
    if not isinstance(raw, int | float):
        raise CheckError(
            f"--check {c.text!r}: metric {name!r} is not numeric (value {raw!r}); pick a numeric metric"
        )
    value = float(raw)
    passed = _compare(value, c.op, c.limit)
    word = "ok  " if passed else "FAIL"
    return CheckResult(
        c, name, value, passed, f"{word} {name} = {_fmt(value)} (limit {c.op} {_fmt(c.limit)})"
    )


def _compare(value: float, op: str, limit: float) -> bool:
    if math.isnan(value):
        return op == "!="
    close = math.isclose(value, limit, rel_tol=1e-9, abs_tol=1e-12)
    if op == "==":
        return close
    if op == "!=":
        return not close
    if op == ">=":
        return value >= limit or close
    if op == "<=":
        return value <= limit or close
    if op == ">":
        return value > limit and not close
    return value < limit and not close


def _fmt(x: float | None) -> str:
    if x is None:
        return "null"
    return f"{x:.6g}"


def all_passed(results: Iterable[CheckResult]) -> bool:
    """True when every check passed."""
    return all(r.passed for r in results)


def write_junit(results: list[CheckResult], path: str | Path, suite_name: str = "dualpath-twin") -> Path:
    """Write JUnit XML with one testcase per evaluated check; returns the path."""
    failures = sum(not r.passed for r in results)
    suites = ET.Element("testsuites", name="dualpath-twin", tests=str(len(results)), failures=str(failures))
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=suite_name,
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    for r in results:
        case = ET.SubElement(
            suite, "testcase", classname=suite_name, name=f"{r.metric} {r.check.op} {_fmt(r.check.limit)}"
        )
        ET.SubElement(case, "system-out").text = r.message
        if not r.passed:
            fail = ET.SubElement(case, "failure", message=r.message, type="CheckFailed")
            fail.text = f"check {r.check.text!r}: {r.metric} = {_fmt(r.value)}, limit {r.check.op} {_fmt(r.check.limit)}"
    out = Path(path)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suites).write(out, encoding="utf-8", xml_declaration=True)
    return out


def markdown_summary(results: list[CheckResult], title: str) -> str:
    """A Markdown table of check outcomes (for GITHUB_STEP_SUMMARY)."""
    n_fail = sum(not r.passed for r in results)
    verdict = "all checks passed" if n_fail == 0 else f"{n_fail} of {len(results)} checks FAILED"
    lines = [f"### {title}: {verdict}", "", "| | metric | value | limit |", "|---|---|---:|---|"]
    for r in results:
        mark = "✅" if r.passed else "❌"
        lines.append(f"| {mark} | `{r.metric}` | {_fmt(r.value)} | {r.check.op} {_fmt(r.check.limit)} |")
    return "\n".join(lines) + "\n\n"


def append_github_summary(
    results: list[CheckResult], title: str, env: Mapping[str, str] | None = None
) -> Path | None:
    """Append the Markdown summary to $GITHUB_STEP_SUMMARY when it is set; returns the path written."""
    env = os.environ if env is None else env
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    p = Path(target)
    with p.open("a", encoding="utf-8") as f:
        f.write(markdown_summary(results, title))
    return p
