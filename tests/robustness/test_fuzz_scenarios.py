"""Item 1: bad scenarios. Hypothesis fuzzing of the loader and ``--set`` overrides, then the CLI.

Every input must end in either a valid Scenario or a ScenarioError whose every line names a
dotted scenario path (or says the TOML syntax is wrong) -- never another exception or a hang.
"""

from __future__ import annotations

import math
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dualpath_twin import scenario as scn
from robustness.helpers import CLI, QUICK, set_args, subprocess_env

pytestmark = pytest.mark.timeout(300)  # a hang fails the suite instead of blocking CI

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
SECTIONS = sorted(f for f in scn.Scenario.model_fields if f not in ("name", "description"))
PATHS = scn.all_paths()
TOP = set(scn.Scenario.model_fields)
# a problem line starts with a dotted path whose first part is a scenario field, <root>, the TOML
# syntax, a quoted override path or a --set item
_PROBLEM = re.compile(r"^(?:<root>|TOML syntax error|--set |'[^']*'|(?P<head>[A-Za-z_][\w-]*)(?:\.[\w-]+)*\b)")

# counts of examples actually run, reported by the last test for docs/robustness.md
CASES: dict[str, int] = {}

weird_numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 1, 2**31, 10**12, -(10**12), 2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0]),
)
scalars = st.one_of(weird_numbers, st.booleans(), st.text(max_size=12), st.sampled_from(["H800", "basic", "trace", ""]))
values = st.recursive(
    scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(min_size=1, max_size=8), kids, max_size=3)),
    max_leaves=6,
)


def _assert_clear(err: scn.ScenarioError) -> None:
    """Every problem line names the field (dotted path) or the TOML syntax."""
    assert err.problems, "a ScenarioError must list at least one problem"
    for line in err.problems:
        m = _PROBLEM.match(line)
        assert m is not None, f"problem does not name a field: {line!r}"
        head = m.group("head")
        named = head is None or head in TOP or "unknown key" in line or "unknown scenario path" in line
        assert named or line.startswith(("file not found", "cannot read")), (
            f"problem names no scenario field: {line!r}"
        )
    assert "Traceback" not in str(err)


def _outcome(fn: Any, *args: Any) -> scn.Scenario | None:
    """Call a loader; a ScenarioError is checked for clarity, any other exception fails the test."""
    try:
        return fn(*args)
    except scn.ScenarioError as err:
        _assert_clear(err)
        return None


def _set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    node = doc
    parts = path.split(".")
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = node[p] = {}
        node = nxt
    node[parts[-1]] = value


@st.composite
def mutated_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid scenario with a few fields replaced by odd values, sections dropped or keys invented."""
    doc = tomllib.loads(QUICK.read_text())
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "drop", "unknown", "wrongtype"]))
        if op == "set":
            _set_path(doc, draw(st.sampled_from(PATHS)), draw(values))
        elif op == "drop" and doc:
            doc.pop(draw(st.sampled_from(sorted(doc))), None)
        elif op == "unknown":
            sec = draw(st.sampled_from(SECTIONS + [""]))
            key = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10))
            _set_path(doc, f"{sec}.{key}" if sec else key, draw(scalars))
        else:
            _set_path(doc, draw(st.sampled_from(SECTIONS)), draw(scalars))  # a scalar where a section belongs
    return doc


@given(doc=mutated_docs())
@FUZZ
def test_mutated_documents(doc: dict[str, Any]) -> None:
    """Odd values, wrong types, missing sections, unknown keys: valid or a field-named error."""
    CASES["mutated documents"] = CASES.get("mutated documents", 0) + 1
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):
        return  # not expressible in TOML (e.g. an int beyond 64 bits); from_dict covers it below
    sc = _outcome(scn.from_toml, text, "fuzz.toml")
    if sc is not None:  # accepted: it must be finite and round-trip
        assert scn.from_toml(sc.to_toml()) == sc
        for v in sc.model_dump(mode="python").values():
            if isinstance(v, float):
                assert math.isfinite(v)
    _outcome(scn.from_dict, doc, "fuzz")


@given(doc=st.dictionaries(st.sampled_from(SECTIONS + ["name", "bogus"]), values, max_size=5))
@FUZZ
def test_random_documents(doc: dict[str, Any]) -> None:
    """Random tables of random values at the top level."""
    CASES["random documents"] = CASES.get("random documents", 0) + 1
    _outcome(scn.from_dict, doc, "fuzz")


@given(
    text=st.one_of(
        st.text(max_size=200),
        st.builds(lambda t, i, junk: t[:i] + junk + t[i:], st.just(QUICK.read_text()), st.integers(0, 2000), st.text(max_size=8)),
        st.builds(lambda t, i: t[:i], st.just(QUICK.read_text()), st.integers(0, 2000)),
    )
)
@FUZZ
def test_random_text(text: str) -> None:
    """Arbitrary text, the bundled scenario with junk inserted or truncated mid-way."""
    CASES["random text"] = CASES.get("random text", 0) + 1
    _outcome(scn.from_toml, text, "fuzz.toml")


@given(
    items=st.lists(
        st.one_of(
            st.builds(lambda p, v: f"{p}={v}", st.sampled_from(PATHS), st.text(max_size=12)),
            st.builds(
                lambda p, v: f"{p}={v}",
                st.sampled_from(PATHS),
                st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e400", "9" * 30, "[1,2]", "{a=1}", "true", '"x"', ""]),
            ),
            st.text(max_size=20),
            st.builds(lambda p: f"{p}=1", st.text(alphabet="abc._", min_size=1, max_size=12)),
        ),
        min_size=1,
        max_size=4,
    )
)
@FUZZ
def test_set_overrides(items: list[str]) -> None:
    """``--set`` items: malformed, unknown paths, NaN/inf, huge and negative numbers, wrong types."""
    CASES["--set overrides"] = CASES.get("--set overrides", 0) + 1
    base = scn.load(QUICK)

    def go() -> scn.Scenario:
        return scn.apply_overrides(base, scn.parse_assignments(items))

    _outcome(go)


@pytest.mark.parametrize(
    "text, path",
    [
        ("[cluster]\nprefill_nodes = -3\n", "cluster.prefill_nodes"),
        ("[cluster]\nprefill_nodes = 99999999999999\n", "cluster.prefill_nodes"),
        ("[network]\nsnic_gbps = nan\n", "network.snic_gbps"),
        ("[network]\nsnic_gbps = inf\n", "network.snic_gbps"),
        ("[run]\nmax_sim_time_s = -inf\n", "run.max_sim_time_s"),
        ("[workload]\nagents = \"many\"\n", "workload.agents"),
        ("[workload]\nagnets = 4\n", "workload.agnets"),
        ("cluster = 3\n", "cluster"),
        ("[policy]\nname = \"fastest\"\n", "policy.name"),
        ("[cluster\n", "TOML syntax"),
    ],
)
def test_named_examples(text: str, path: str) -> None:
    """Hand-picked cases: the message names the exact field."""
    with pytest.raises(scn.ScenarioError) as ei:
        scn.from_toml(text, "x.toml")
    _assert_clear(ei.value)
    assert path in str(ei.value)


def test_file_errors(tmp_path: Path) -> None:
    """Missing file, a directory, binary and non-UTF-8 files give a ScenarioError, not OSError."""
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\x00\xff\xfe" * 100)
    latin = tmp_path / "latin.toml"
    latin.write_bytes("name = 'caf\xe9'".encode("latin-1"))
    for p in (tmp_path / "missing.toml", tmp_path, binary, latin):
        with pytest.raises(scn.ScenarioError) as ei:
            scn.load(p)
        assert str(p) in str(ei.value)


BAD_FILES = {
    "syntax": "[cluster\nprefill_nodes = 2\n",
    "nan": "[network]\nsnic_gbps = nan\n",
    "type": "[workload]\nagents = \"lots\"\n",
    "unknown": "[run]\nsede = 1\n",
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_cli_bad_scenario_exits_2(runner: Any, db: Path, tmp_path: Path, kind: str, command: str) -> None:
    """`validate` and `run` on a bad file: exit 2, the message on stderr, no traceback, nothing stored."""
    from dualpath_twin.cli import app

    bad = tmp_path / f"{kind}.toml"
    bad.write_text(BAD_FILES[kind])
    res = runner.invoke(app, [command, str(bad)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)
    assert str(bad) in res.output
    assert not db.exists() or "running" not in db.read_bytes().decode("latin-1")


@pytest.mark.parametrize(
    "sets, field",
    [
        (["cluster.decode_nodes=-1"], "cluster.decode_nodes"),
        (["network.snic_gbps=nan"], "network.snic_gbps"),
        (["workload.agentz=3"], "workload.agentz"),
        (["no-equals-sign"], "--set"),
        (["run.seed=1e400"], "run.seed"),
    ],
)
def test_cli_bad_set_exits_2(runner: Any, db: Path, sets: list[str], field: str) -> None:
    """Bad ``--set`` overrides on `run`: exit 2 naming the field."""
    from dualpath_twin.cli import app

    res = runner.invoke(app, ["run", str(QUICK), "--no-save", *set_args(sets)])
    assert res.exit_code == 2, res.output
    assert field in res.output
    assert "Traceback" not in res.output


def test_cli_subprocess_bad_scenario(tmp_path: Path) -> None:
    """A real process: exit code 2, the field on stderr, nothing on stdout, no traceback."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[network]\nsnic_gbps = -400\n[workload]\nagnets = 3\n")
    env = subprocess_env(tmp_path / "twin.duckdb")
    for cmd in (["validate", str(bad)], ["run", str(bad), "--json"]):
        p = subprocess.run(CLI + cmd, capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 2, p.stderr
        assert "network.snic_gbps" in p.stderr and "workload.agnets" in p.stderr
        assert "did you mean agents" in p.stderr
        assert "Traceback" not in p.stderr and p.stdout == ""


def test_zz_report_counts() -> None:
    """Print how many fuzz cases ran (copied into docs/robustness.md)."""
    print("fuzz cases:", CASES, "total", sum(CASES.values()))
