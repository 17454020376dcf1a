"""Item 6: safe by default. Localhost binding, size-limited parsed uploads, no eval/exec of user
text, parameterised SQL, and a scenario's trace_path can neither write nor read elsewhere."""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

from dualpath_twin import api
from dualpath_twin import scenario as scn
from dualpath_twin.workload import WorkloadError
from robustness.helpers import REPO, tiny_scenario

PKG = REPO / "dualpath_twin"
SOURCES = sorted(PKG.rglob("*.py"))


def test_dashboard_listens_on_localhost_with_upload_limit() -> None:
    """.streamlit/config.toml binds 127.0.0.1 and caps uploads; the scenario upload has its own 1 MB cap."""
    cfg = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert 0 < cfg["server"]["maxUploadSize"] <= 200
    assert cfg["browser"]["gatherUsageStats"] is False


def test_uploaded_scenario_is_parsed_never_executed(tmp_path: Path) -> None:
    """Oversized, binary and code-carrying uploads are rejected as data errors; nothing runs."""
    from dualpath_twin.ui import backend

    with pytest.raises(scn.ScenarioError, match="too large"):
        backend.parse_uploaded_toml(b"#" * (backend.MAX_TOML_UPLOAD_BYTES + 1), "big.toml")
    with pytest.raises(scn.ScenarioError, match="not UTF-8"):
        backend.parse_uploaded_toml(b"\xff\xfe\x00", "bin.toml")
    marker = tmp_path / "pwned"
    payload = f'name = "__import__(\'os\').system(\'touch {marker}\')"\n[workload]\nagents = "{{{{7*7}}}}"\n'
    with pytest.raises(scn.ScenarioError, match="workload.agents"):
        backend.parse_uploaded_toml(payload.encode(), "evil.toml")
    sc = backend.parse_uploaded_toml(payload.split("[workload]")[0].encode(), "evil.toml")
    assert sc.name.startswith("__import__") and not marker.exists()


def test_trace_upload_name_is_sanitised() -> None:
    """The dashboard saves uploaded traces under a sanitised file name inside its own folder."""
    src = (PKG / "ui" / "builder.py").read_text()
    assert 're.sub(r"[^A-Za-z0-9._-]", "_", up.name)' in src
    assert "state.trace_dir() / safe" in src


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def test_no_eval_exec_or_shell_in_package() -> None:
    """No eval/exec/compile of text, no pickle/marshal loads, no shell=True anywhere in dualpath_twin/."""
    bad: list[str] = []
    for f in SOURCES:
        tree = ast.parse(f.read_text(), str(f))
        for c in _calls(tree):
            fn = c.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            if name in ("eval", "exec", "compile", "__import__") and isinstance(fn, ast.Name):
                bad.append(f"{f}:{c.lineno}: {name}()")
            if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name):
                if (fn.value.id, fn.attr) in {("pickle", "loads"), ("pickle", "load"), ("marshal", "loads"), ("yaml", "load")}:
                    bad.append(f"{f}:{c.lineno}: {fn.value.id}.{fn.attr}()")
            for kw in c.keywords:
                if kw.arg == "shell" and isinstance(kw.value, ast.Constant) and kw.value.value is True:
                    bad.append(f"{f}:{c.lineno}: shell=True")
    assert not bad, bad


def test_check_grammar_is_parsed_not_evaluated() -> None:
    """`--check` expressions with code in them are rejected by the grammar (CheckError), never run."""
    from dualpath_twin import checks

    for expr in ("__import__('os').system('true')>=0", "slo_attainment>=1 or 1", "jct_s<=(lambda: 1)()"):
        with pytest.raises(checks.CheckError):
            checks.parse_checks([expr])


# identifiers that may be interpolated into SQL text: table/column names and fragments built from
# module constants (checked by reading store/*.py); every user value goes through $parameters
SQL_SAFE_NAMES = {
    "table", "cols", "placeholders", "_LIST_COLUMNS", "where", "source", "src", "mfilter", "col", "typ",
    "expr", "_cols", "ROUNDS_COLUMNS", "TIMESERIES_COLUMNS", "path", "join",
    "name",  # db.py add-column: a parquet column name checked against [A-Za-z_][A-Za-z0-9_]* first
}  # fmt: skip


def test_store_sql_is_parameterised() -> None:
    """Every f-string SQL in store/*.py interpolates only names from the reviewed allow-list."""
    found = 0
    for f in sorted((PKG / "store").glob("*.py")):
        tree = ast.parse(f.read_text(), str(f))
        for c in _calls(tree):
            if not (isinstance(c.func, ast.Attribute) and c.func.attr in ("sql", "execute", "executemany")):
                continue
            if not c.args:
                continue
            arg = c.args[0]
            if isinstance(arg, ast.JoinedStr):
                found += 1
                for v in arg.values:
                    if isinstance(v, ast.FormattedValue):
                        names = {n.id for n in ast.walk(v.value) if isinstance(n, ast.Name)}
                        names |= {n.attr for n in ast.walk(v.value) if isinstance(n, ast.Attribute)}
                        assert names and names <= SQL_SAFE_NAMES, f"{f}:{c.lineno}: SQL interpolates {names - SQL_SAFE_NAMES}"
            elif isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod):
                pytest.fail(f"{f}:{c.lineno}: %-formatted SQL")
    assert found > 0  # the check looked at something


def test_sql_injection_attempts_are_inert(db: Path) -> None:
    """Hostile scenario names and filters are stored and matched as plain values."""
    from dualpath_twin.store import open_store
    from dualpath_twin.store.synthetic import synthetic_result

    store = open_store(db)
    evil = "x'); drop table runs; --"
    res = synthetic_result("basic")
    res.summary.scenario_name = evil
    rid = store.save_run(res)
    assert store.list_runs(scenario="' or 1=1 --").height == 0
    assert store.list_runs(policy="basic' or '1'='1").height == 0
    assert store.list_runs(scenario=evil)["run_id"].to_list() == [rid]
    assert store.get_summary(rid).scenario_name == evil


_OPENS: list[tuple[str, str]] = []
_RECORD = [False]


def _audit(event: str, args: tuple) -> None:
    if _RECORD[0] and event == "open" and isinstance(args[0], str | bytes | Path):
        _OPENS.append((str(args[0]), str(args[1])))


sys.addaudithook(_audit)


def test_trace_path_reads_only_that_file_and_writes_nothing(tmp_path: Path) -> None:
    """Loading and simulating a trace scenario opens only the given trace (plus the package's own
    data) and opens nothing for writing; a trace_path at a system file is read-only and rejected."""
    trace = tmp_path / "t.jsonl"
    trace.write_text(json.dumps({"timestamp": 0, "input_length": 900, "output_length": 5, "hash_ids": [1, 2]}) + "\n")
    sc = tiny_scenario({"workload.kind": "trace", "workload.trace_path": str(trace), "workload.trace_format": "auto"})
    _OPENS.clear()
    _RECORD[0] = True
    try:
        res = api.simulate(sc)
    finally:
        _RECORD[0] = False
    assert res.summary.status == "finished"
    data_opens = {p for p, _ in _OPENS if not p.startswith((str(PKG), sys.prefix, sys.base_prefix)) and not p.endswith((".py", ".pyc", ".so"))}
    assert data_opens == {str(trace)}, data_opens  # the trace itself was opened, nothing else
    writes = [(p, m) for p, m in _OPENS if re.search(r"[wax+]", m)]
    assert not writes, writes
    # a scenario pointing trace_path at a system file: read (the user asked) but rejected as a trace
    etc = tiny_scenario({"workload.kind": "trace", "workload.trace_path": "/etc/passwd"})
    before = Path("/etc/passwd").stat().st_mtime
    with pytest.raises(WorkloadError, match="/etc/passwd"):
        api.load_workload(etc)
    assert Path("/etc/passwd").stat().st_mtime == before


def test_scenario_has_no_output_paths() -> None:
    """No scenario field names a file to write: the only path field is workload.trace_path (read)."""
    path_like = [p for p in scn.all_paths() if re.search(r"(path|file|dir|output|db)$", p.split(".")[-1])]
    assert path_like == ["workload.trace_path"]
