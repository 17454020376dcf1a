"""Trace readers: bundled files reproduce the data card; malformed lines name file, line and fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dualpath_twin.workload import (
    WorkloadError,
    detect_format,
    read_azure,
    read_claude_code,
    read_mooncake,
    read_trace,
)

TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"
MOONCAKE = TRACES / "mooncake" / "conversation_trace.jsonl"
AZURE_CONV = TRACES / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv"
CLAUDE = TRACES / "weka_claude_code" / "requests.jsonl"


def _mc(ts: int, inp: int, out: int, ids: list[int]) -> str:
    return json.dumps({"timestamp": ts, "input_length": inp, "output_length": out, "hash_ids": ids})


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


# ---------------------------------------------------------------- bundled files


def test_mooncake_bundled_hit_ratio_matches_data_card() -> None:
    wl = read_mooncake(MOONCAKE, block_tokens=64)
    assert wl.n_trajectories == wl.n_rounds == 12031
    assert wl.open_loop and wl.offset_s is not None
    assert wl.hit_tokens.sum() / wl.prompt_tokens.sum() == pytest.approx(0.374, abs=0.01)
    assert wl.meta["native_block_hit_ratio"] == pytest.approx(0.366, abs=0.01)
    assert wl.arrival_s[-1] == pytest.approx(3537.0, abs=1.0)  # span from the card
    assert np.median(wl.prompt_tokens) == 6909
    assert wl.validate(64) == []


def test_mooncake_time_scale_divides_arrivals() -> None:
    lines = MOONCAKE.read_text(encoding="utf-8").splitlines()[:50]
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = _write(Path(d), "mc.jsonl", lines)
        a = read_mooncake(p).arrival_s
        b = read_mooncake(p, time_scale=2.0).arrival_s
    np.testing.assert_allclose(b, a / 2)


def test_azure_bundled_lengths_and_rate() -> None:
    wl = read_azure(AZURE_CONV)
    assert wl.n_rounds == 19366
    assert (wl.hit_tokens == 0).all()
    assert np.median(wl.prompt_tokens) == 1020 and wl.prompt_tokens.max() == 14050
    assert wl.n_rounds / wl.arrival_s[-1] == pytest.approx(5.53, abs=0.05)


def test_claude_code_bundled_subset() -> None:
    wl = read_claude_code(CLAUDE, block_tokens=64)
    assert wl.meta["conversations"] == 102
    assert wl.n_rounds == 7146
    ratio = wl.hit_tokens.sum() / wl.prompt_tokens.sum()
    assert ratio == pytest.approx(0.965, abs=0.005)  # subset; the full file gives 96.3% (docs/workloads.md)
    assert wl.validate(64) == []
    # delays come from think_time; first rounds have none
    assert (wl.delay_s[wl.round_offsets[:-1]] == 0).all()
    assert wl.delay_s.max() > 60


def test_detect_format_on_bundled_files() -> None:
    assert detect_format(MOONCAKE) == "mooncake"
    assert detect_format(AZURE_CONV) == "azure"
    assert detect_format(CLAUDE) == "claude-code"


# ---------------------------------------------------------------- hit semantics


def test_mooncake_hits_are_leading_seen_blocks(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "t.jsonl",
        [
            _mc(0, 1100, 10, [1, 2, 3]),
            _mc(1000, 1300, 10, [1, 2, 4]),  # 2 leading blocks seen -> 1024
            _mc(2000, 700, 5, [9, 2]),  # first block unseen -> 0 even though 2 was seen
            _mc(3000, 1000, 5, [1, 2]),  # all seen: capped at input_length, then block-rounded
        ],
    )
    wl = read_mooncake(p, block_tokens=64)
    assert wl.hit_tokens.tolist() == [0, 1024, 0, 960]
    assert wl.arrival_s.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert read_mooncake(p, block_tokens=512).hit_tokens.tolist() == [0, 1024, 0, 512]


def test_claude_code_hits_per_conversation_and_subagents(tmp_path: Path) -> None:
    def row(
        trace: str, ctx: str, i: int, inp: int, runs: list[list[int]], t: float = 0.0, think: float = 0.0
    ) -> str:
        return json.dumps(
            {
                "trace": trace,
                "ctx": ctx,
                "i": i,
                "t": t,
                "t_abs": t,
                "in": inp,
                "out": 7,
                "think_time": think,
                "hash_runs": runs,
            }
        )

    p = _write(
        tmp_path,
        "r.jsonl",
        [
            row("c1", "main", 0, 200, [[1, 3]]),
            row("c1", "main", 1, 300, [[1, 4]], t=5, think=2.5),
            row("c1", "sa:a", 0, 260, [[1, 2], [7, 8]], t=6),  # shares c1's namespace
            row("c2", "main", 0, 200, [[1, 3]]),  # new conversation: ids are local, nothing seen
        ],
    )
    wl = read_claude_code(p, block_tokens=64)
    assert wl.n_trajectories == 3
    assert wl.round_offsets.tolist() == [0, 2, 3, 4]
    assert wl.hit_tokens.tolist() == [0, 192, 128, 0]
    assert wl.delay_s.tolist() == [0.0, 2.5, 0.0, 0.0]
    assert wl.meta["trajectory_group"] == [0, 0, 1]


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ('{"timestamp": 5, "input_length": 10', "invalid JSON"),
        (json.dumps({"timestamp": 5, "output_length": 3, "hash_ids": [1]}), "missing field 'input_length'"),
        (_mc(5, -3, 3, [1]), "'input_length' = -3 must be >= 1"),
        (_mc(5, 100, -1, [1]), "'output_length' = -1 must be >= 0"),
        (_mc(0, 100, 3, [1]), "earlier than the previous"),
        ("[1, 2, 3]", "expected a JSON object"),
        (json.dumps({"timestamp": 5, "input_length": 10, "output_length": 3, "hash_ids": "x"}), "hash_ids"),
    ],
)
def test_mooncake_bad_line_names_file_and_line(tmp_path: Path, bad: str, needle: str) -> None:
    p = _write(tmp_path, "bad.jsonl", [_mc(1, 100, 3, [1]), _mc(2, 100, 3, [1]), bad, _mc(9, 100, 3, [1])])
    with pytest.raises(WorkloadError) as ei:
        read_mooncake(p)
    msg = str(ei.value)
    assert f"{p}:3:" in msg and needle in msg
    assert ei.value.line == 3


def test_skip_bad_lines_counts(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "mixed.jsonl",
        [
            _mc(1, 100, 3, [1]),
            "{truncated",
            _mc(2, -1, 3, [1]),
            _mc(3, 100, 3, [1, 2]),
            "",
            _mc(1, 50, 1, [3]),
        ],
    )
    wl = read_mooncake(p, skip_bad_lines=True)
    assert wl.n_rounds == 2
    assert wl.meta["skipped_lines"] == 3
    assert any(":2:" in e for e in wl.meta["skipped_examples"])


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.jsonl"
    p.write_bytes(b"")
    with pytest.raises(WorkloadError, match=r"empty\.jsonl:1: empty trace file"):
        read_trace(p, "mooncake")


def test_binary_file(tmp_path: Path) -> None:
    p = tmp_path / "blob.jsonl"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    with pytest.raises(WorkloadError, match=r"blob\.jsonl:1: .*(binary|UTF-8)"):
        read_mooncake(p)
    with pytest.raises(WorkloadError, match="no valid requests"):
        read_mooncake(p, skip_bad_lines=True)


def test_missing_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="trace_path"):
        read_trace(tmp_path / "nope.jsonl")


def test_azure_bad_lines(tmp_path: Path) -> None:
    head = "TIMESTAMP,ContextTokens,GeneratedTokens"
    ok = "2023-11-16 18:17:03.9799600,4808,10"
    p = _write(tmp_path, "az.csv", [head, ok, "2023-11-16 18:17:04.1,12", "2023-11-16 18:17:05.0,-5,3"])
    with pytest.raises(WorkloadError, match=r"az\.csv:3: expected 3 comma-separated fields"):
        read_azure(p)
    wl = read_azure(p, skip_bad_lines=True)
    assert wl.n_rounds == 1 and wl.meta["skipped_lines"] == 2
    p2 = _write(tmp_path, "nohead.csv", [ok])
    with pytest.raises(WorkloadError, match=r"nohead\.csv:1: header lacks column"):
        read_azure(p2)


def test_claude_code_bad_lines(tmp_path: Path) -> None:
    good = {"trace": "c", "ctx": "main", "i": 0, "t": 0, "in": 100, "out": 5, "hash_runs": [[1, 1]]}
    skipped_index = dict(good, i=2)
    bad_runs = dict(good, i=1, hash_runs=[[5, 2]])
    p = _write(tmp_path, "cc.jsonl", [json.dumps(good), json.dumps(skipped_index)])
    with pytest.raises(WorkloadError, match=r"cc\.jsonl:2: call index i = 2 in c/main, expected 1"):
        read_claude_code(p)
    p2 = _write(tmp_path, "cc2.jsonl", [json.dumps(good), json.dumps(bad_runs)])
    with pytest.raises(WorkloadError, match=r"cc2\.jsonl:2: hash_runs entry"):
        read_claude_code(p2)
    again = dict(good, trace="d")
    p3 = _write(tmp_path, "cc3.jsonl", [json.dumps(good), json.dumps(again), json.dumps(dict(good, i=1))])
    with pytest.raises(WorkloadError, match=r"cc3\.jsonl:3: conversation 'c' appears again"):
        read_claude_code(p3)
