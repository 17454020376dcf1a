"""workload_stats and format_stats_table on scenarios, trace files and scenario TOML files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dualpath_twin.scenario import Scenario
from dualpath_twin.workload import Workload, format_stats_table, workload_stats

TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"


@dataclass
class _Model:
    kv_bytes_per_token: float


def test_stats_of_handmade_workload() -> None:
    wl = Workload(
        name="tiny",
        arrival_s=np.zeros(2),
        round_offsets=np.array([0, 2, 3]),
        prompt_tokens=np.array([100, 250, 64]),
        hit_tokens=np.array([0, 128, 0]),
        gen_tokens=np.array([20, 10, 5]),
        delay_s=np.array([0.0, 1.5, 0.0]),
    )
    st = workload_stats(wl, model_spec=_Model(1000.0), block_tokens=64)
    assert st.trajectories == 2 and st.rounds == 3
    assert st.hit_ratio_tokens == pytest.approx(128 / 414)
    assert st.hit_ratio_blocks == pytest.approx(2 / (2 + 4 + 1))
    assert st.append_tokens is not None and st.append_tokens.max == 130  # 250 - (100 + 20)
    assert st.final_context_tokens is not None and st.final_context_tokens.max == 260
    assert st.kv_load_bytes_per_round is not None and st.kv_load_bytes_per_round.max == 128_000
    assert st.kv_load_bytes_total == 128_000
    assert st.delay_s is not None and st.delay_s.count == 1
    d = st.to_dict()
    json.dumps(d)
    assert d["rounds"] == 3


def test_stats_mooncake_file_reproduces_card() -> None:
    st = workload_stats(TRACES / "mooncake" / "conversation_trace.jsonl")
    assert st.rounds == 12031
    assert st.hit_ratio_tokens == pytest.approx(0.374, abs=0.01)
    assert st.native_block_hit_ratio == pytest.approx(0.366, abs=0.01)
    assert st.prompt_tokens is not None and st.prompt_tokens.p50 == 6909 and st.prompt_tokens.max == 126195
    assert st.gen_tokens is not None and st.gen_tokens.p50 == 350
    assert st.rounds_per_s == pytest.approx(3.40, abs=0.02)
    table = format_stats_table(st)
    assert "37.4% of tokens" in table and "12,031" in table


def test_stats_of_scenario_with_model() -> None:
    sc = Scenario()
    sc.workload.agents = 100
    st = workload_stats(sc, model_spec=_Model(40016))
    assert st.hit_ratio_tokens > 0.98  # SYSTEM.md §1: ~98.7% for the 64K set
    assert st.kv_load_bytes_per_round is not None
    assert st.kv_load_bytes_per_round.mean == pytest.approx(
        40016 * st.prompt_tokens.mean * st.hit_ratio_tokens, rel=1e-6
    )
    assert "KV load bytes/round" in format_stats_table(st)


def test_stats_of_scenario_toml(tmp_path: Path) -> None:
    sc = Scenario()
    sc.workload.kind = "trace"
    sc.workload.trace_path = "azure.csv"
    (tmp_path / "azure.csv").write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808,10\n2023-11-16 18:17:05.0,300,3\n",
        encoding="utf-8",
    )
    path = tmp_path / "s.toml"
    path.write_text(sc.to_toml(), encoding="utf-8")
    st = workload_stats(path)
    assert st.rounds == 2 and st.hit_ratio_tokens == 0.0
    assert st.arrival_span_s == pytest.approx(1.02, abs=1e-3)
