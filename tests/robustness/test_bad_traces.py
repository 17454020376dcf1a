"""Item 2: bad traces. Every malformed line gives file:line and a fix, or is skipped and counted.

Also: the huge-file case (a sparse 512 MiB file: free on disk, one endless "line" of NUL bytes)
and a ~50 MB valid trace are read with bounded memory (tracemalloc).
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from dualpath_twin import api
from dualpath_twin import scenario as scn
from dualpath_twin.workload import WorkloadError, read_trace
from dualpath_twin.workload.readers import MAX_LINE_BYTES
from robustness.helpers import QUICK, tiny_scenario

pytestmark = pytest.mark.timeout(300)


def _mc(ts: float = 0, inp: Any = 1000, out: Any = 10, ids: Any = None) -> str:
    return json.dumps({"timestamp": ts, "input_length": inp, "output_length": out, "hash_ids": ids or [1, 2]})


GOOD = [_mc(0), _mc(5, 2000, 20, [1, 2, 3, 4]), _mc(10, 1500, 5, [1, 9])]

# (bad line, words the message must contain)
MOONCAKE_BAD = {
    "truncated": (_mc(7)[:25], "invalid JSON"),
    "not json": ("hello world", "invalid JSON"),
    "array": ("[1, 2, 3]", "JSON object"),
    "missing field": (json.dumps({"timestamp": 7, "output_length": 3, "hash_ids": [1]}), "input_length"),
    "missing hash_ids": (json.dumps({"timestamp": 7, "input_length": 3, "output_length": 3}), "hash_ids"),
    "negative length": (_mc(7, -5), ">= 1"),
    "fractional length": (_mc(7, 10.5), "integer"),
    "absurd length": (_mc(7, 10**15), "absurdly large"),
    "float overflow": (_mc(7, 1e300), "absurdly large"),
    "string length": (_mc(7, "1000"), "integer"),
    "nan timestamp": ('{"timestamp": NaN, "input_length": 5, "output_length": 1, "hash_ids": [1]}', "finite"),
    "bad hash ids": (_mc(7, 100, 1, ["a"]), "hash_ids"),
    "out of order": (_mc(1), "sort the trace"),
    "nul bytes": ("\x00\x00garbage", "binary"),
}


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("case", sorted(MOONCAKE_BAD))
def test_mooncake_bad_line_strict_and_skip(tmp_path: Path, case: str) -> None:
    """Strict: WorkloadError naming file and line 3 with a hint; skip mode: one line skipped, rest read."""
    bad, words = MOONCAKE_BAD[case]
    lines = GOOD[:2] + [bad] + [_mc(20)]
    p = _write(tmp_path / "t.jsonl", lines)
    with pytest.raises(WorkloadError) as ei:
        read_trace(p, "mooncake")
    msg = str(ei.value)
    assert msg.startswith(f"{p}:3: "), msg
    assert words in msg
    assert ei.value.line == 3
    wl = read_trace(p, "mooncake", skip_bad_lines=True)
    assert wl.meta["skipped_lines"] == 1 and wl.n_rounds == 3
    assert wl.meta["skipped_examples"][0].startswith(f"{p}:3: ")


def test_azure_and_claude_code_bad_lines(tmp_path: Path) -> None:
    """The other two readers: truncated CSV rows, absurd token counts, huge hash runs, out-of-order calls."""
    az = _write(
        tmp_path / "a.csv",
        [
            "TIMESTAMP,ContextTokens,GeneratedTokens",
            "2023-11-16 18:15:46.6805900,374,44",
            "2023-11-16 18:15:50.9951690,396",
            "2023-11-16 18:15:51.0000000,99999999999999999999999,5",
            "2023-11-16 18:15:40.0000000,10,5",
            "2023-11-16 18:15:52.0000000,-3,5",
            "2023-11-16 18:15:53.0000000,100,20",
        ],
    )
    with pytest.raises(WorkloadError, match=r"a\.csv:3: .*truncated"):
        read_trace(az, "azure")
    wl = read_trace(az, "azure", skip_bad_lines=True)
    assert wl.meta["skipped_lines"] == 4 and wl.n_rounds == 2
    cc_lines = [
        json.dumps({"trace": "c1", "ctx": "main", "i": 0, "in": 500, "out": 10, "t": 0.0, "hash_runs": [[0, 7]]}),
        json.dumps({"trace": "c1", "ctx": "main", "i": 1, "in": 900, "out": 10, "t": 1.0, "hash_runs": [[0, 10**12]]}),
        json.dumps({"trace": "c1", "ctx": "main", "i": 3, "in": 900, "out": 10, "t": 1.0, "hash_runs": [[0, 12]]}),
        json.dumps({"trace": "c1", "ctx": "main", "i": 1, "in": 900, "out": 10, "t": 2.0, "hash_runs": [[0, 12]]}),
    ]
    cc = _write(tmp_path / "c.jsonl", cc_lines)
    with pytest.raises(WorkloadError, match=r"c\.jsonl:2: .*hash_runs cover more than"):
        read_trace(cc, "claude-code")  # a 10^12-block range must not be expanded in memory
    wl = read_trace(cc, "claude-code", skip_bad_lines=True)
    assert wl.meta["skipped_lines"] == 2 and wl.n_rounds == 2


@pytest.mark.parametrize("fmt", ["auto", "mooncake", "azure", "claude-code"])
def test_empty_blank_binary_and_missing(tmp_path: Path, fmt: str) -> None:
    """Empty, whitespace-only, binary and missing files: a WorkloadError naming the file, in every format."""
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n   \n")
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(bytes(range(256)) * 64)
    for p in (empty, blank, binary, tmp_path / "missing.jsonl", tmp_path):
        with pytest.raises(WorkloadError) as ei:
            read_trace(p, fmt)
        assert str(p) in str(ei.value)
        with pytest.raises(WorkloadError):
            read_trace(p, fmt, skip_bad_lines=True)


def test_all_lines_bad_in_skip_mode(tmp_path: Path) -> None:
    """Skipping everything is not success: the error says how many lines were skipped."""
    p = _write(tmp_path / "t.jsonl", ["{", "nope", "[]"])
    with pytest.raises(WorkloadError, match="no valid requests \\(3 bad lines skipped\\)"):
        read_trace(p, "mooncake", skip_bad_lines=True)


def test_sparse_512mib_file_bounded_memory(tmp_path: Path) -> None:
    """A 512 MiB sparse file (no newline after the first line) is rejected at line 1 in strict mode and skipped in
    skip mode, each time with peak Python memory of a few line-chunks, not the file size."""
    p = tmp_path / "huge.jsonl"
    with p.open("wb") as f:
        f.write((GOOD[0] + "\n").encode())
        f.truncate(512 * 1024**2)  # sparse: costs no disk blocks
    tracemalloc.start()
    try:
        with pytest.raises(WorkloadError, match=r"huge\.jsonl:2: .*longer than"):
            read_trace(p, "mooncake")
        wl = read_trace(p, "mooncake", skip_bad_lines=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert wl.n_rounds == 1 and wl.meta["skipped_lines"] == 1
    assert peak < 4 * MAX_LINE_BYTES, f"peak {peak / 1e6:.0f} MB while reading a 512 MiB file"


def test_large_valid_trace_streams(tmp_path: Path) -> None:
    """A ~50 MB valid Mooncake trace: peak traced memory stays a small fraction of the file size."""
    p = tmp_path / "big.jsonl"
    ids = list(range(40))
    n = 0
    with p.open("w") as f:
        chunk = []
        for i in range(50_000):
            chunk.append(
                json.dumps(
                    {"timestamp": i, "input_length": 20_000, "output_length": 50, "hash_ids": ids, "pad": "x" * 800}
                )
            )
            if len(chunk) == 5000:
                f.write("\n".join(chunk) + "\n")
                chunk = []
        n = 50_000
    size = p.stat().st_size
    assert size > 45e6
    tracemalloc.start()
    try:
        wl = read_trace(p, "mooncake")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert wl.n_rounds == n
    # the columns themselves are ~8 arrays x 8 B x n (~7 MB); the file is never held whole
    assert peak < size / 3, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"


def _trace_scenario(tmp_path: Path, lines: list[str]) -> Path:
    trace = _write(tmp_path / "t.jsonl", lines)
    sc_path = tmp_path / "trace.toml"
    sc = tiny_scenario({"workload.kind": "trace", "workload.trace_path": str(trace), "workload.trace_format": "mooncake"})
    scn.save(sc, sc_path)
    return sc_path


def test_scenario_field_skip_bad_lines(tmp_path: Path) -> None:
    """workload.skip_bad_lines reaches the reader through api.load_workload."""
    sc_path = _trace_scenario(tmp_path, GOOD + ["{broken"])
    sc = scn.load(sc_path)
    with pytest.raises(WorkloadError, match=r"t\.jsonl:4: "):
        api.load_workload(sc)
    wl = api.load_workload(scn.apply_overrides(sc, {"workload.skip_bad_lines": True}))
    assert wl.meta["skipped_lines"] == 1 and wl.n_rounds == 3
    assert "skip_bad_lines" in scn.WorkloadConfig.model_fields
    assert scn.WorkloadConfig.model_fields["skip_bad_lines"].description


def test_cli_skip_bad_lines(runner: Any, db: Path, tmp_path: Path) -> None:
    """`workload stats`, `run` and `compare`: exit 2 with file:line, or --skip-bad-lines reports the count."""
    from dualpath_twin.cli import app

    sc_path = _trace_scenario(tmp_path, GOOD + ["{broken", _mc(30)])
    trace = tmp_path / "t.jsonl"
    res = runner.invoke(app, ["workload", "stats", str(trace)])
    assert res.exit_code == 2 and f"{trace}:4:" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["workload", "stats", str(trace), "--skip-bad-lines", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["skipped_lines"] == 1
    res = runner.invoke(app, ["workload", "stats", str(sc_path), "--skip-bad-lines"])
    assert res.exit_code == 0 and "skipped bad lines: 1" in res.output
    for cmd in (["run", str(sc_path), "-p", "basic"], ["compare", str(sc_path), "--policies", "basic,oracle", "-w", "1"]):
        res = runner.invoke(app, [*cmd, "--no-save", "--json"])
        assert res.exit_code == 2, res.output
        assert f"{trace}:4:" in res.output and "skip bad lines" in res.output
        res = runner.invoke(app, [*cmd, "--no-save", "--json", "--skip-bad-lines"])
        assert res.exit_code == 0, res.output
        assert "skipped 1 bad trace line(s)" in res.stderr


def test_trace_path_relative_to_scenario(tmp_path: Path) -> None:
    """A relative trace_path resolves against the scenario file's folder, wherever the CLI runs."""
    sub = tmp_path / "sc"
    sub.mkdir()
    _write(sub / "t.jsonl", GOOD)
    text = QUICK.read_text().replace('kind = "synthetic"', 'kind = "trace"\ntrace_path = "t.jsonl"')
    (sub / "s.toml").write_text(text)
    sc = scn.load(sub / "s.toml")
    assert Path(sc.workload.trace_path or "") == (sub / "t.jsonl").resolve()
    assert api.load_workload(sc).n_rounds == 3
