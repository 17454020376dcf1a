"""Semantic scenario validation: each problem names the dotted path, the value and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from dualpath_twin.scenario import Scenario, ScenarioError, apply_overrides, from_toml, load
from dualpath_twin.validation import DATASETS, dataset_stats, derived_values, semantic_problems


def problems_of(toml_text: str) -> list[str]:
    """The problems from_toml reports for a scenario text (fails if it validates)."""
    with pytest.raises(ScenarioError) as ei:
        from_toml(toml_text, "bad.toml")
    assert "bad.toml" in str(ei.value)
    return ei.value.problems


def one_problem(toml_text: str, path: str) -> str:
    probs = [p for p in problems_of(toml_text) if p.startswith(path)]
    assert probs, f"no problem starting with {path}"
    return probs[0]


def test_default_scenario_validates_cleanly() -> None:
    assert semantic_problems(Scenario()) == []
    assert from_toml("").model.name == "DeepSeek-V3.2"


def test_ds660b_1p1d_does_not_fit_but_ds27b_does() -> None:
    probs = problems_of("[cluster]\nprefill_nodes = 1\ndecode_nodes = 1\n")
    assert len(probs) == 2
    pre = next(p for p in probs if p.startswith("cluster.prefill_ep_nodes"))
    assert "99.7 GB per GPU" in pre and "80 GB HBM of H800" in pre
    assert ">= 2 node(s) (16 GPUs)" in pre and "cluster.prefill_nodes >= 2" in pre
    assert any(p.startswith("cluster.decode_ep_nodes") for p in probs)
    sc = from_toml('[cluster]\nprefill_nodes = 1\ndecode_nodes = 1\n[model]\nname = "ds27b"\n')
    assert sc.model.name == "ds27b"


def test_ep_group_size_counts() -> None:
    # 2 prefill nodes but EP groups of 1 node: too small; decode EP of 2 nodes (16 GPUs) fits
    msg = one_problem("[cluster]\nprefill_ep_nodes = 1\ndecode_ep_nodes = 2\n", "cluster.prefill_ep_nodes = 1")
    assert "EP group of 1 node(s) x 8 GPUs" in msg
    assert "decode" not in msg.split(":")[0]
    msg = one_problem("[cluster]\nprefill_ep_nodes = 3\n", "cluster.prefill_ep_nodes = 3")
    assert "at most 2" in msg
    msg = one_problem("[cluster]\ndecode_nodes = 6\ndecode_ep_nodes = 4\n", "cluster.decode_ep_nodes = 4")
    assert "whole number of EP groups" in msg


def test_dense_model_too_big_names_gpu() -> None:
    msg = one_problem('[model]\nname = "Llama-3.1-70B"\n', "cluster.gpu = 'H800'")
    assert "141.1 GB" in msg and "weight_bytes_per_param" in msg
    # the same model fits on a 180 GB B200, or with FP8 weights on H800
    from_toml('[cluster]\ngpu = "B200"\n[model]\nname = "Llama-3.1-70B"\n')
    from_toml('[model]\nname = "Llama-3.1-70B"\noverrides = { weight_bytes_per_param = 1 }\n')


def test_unknown_catalog_names_suggest() -> None:
    probs = problems_of('[cluster]\ngpu = "H880"\n[model]\nname = "DeepSeek V3.3"\n')
    gpu = next(p for p in probs if p.startswith("cluster.gpu = 'H880'"))
    assert "did you mean H800" in gpu
    model = next(p for p in probs if p.startswith("model.name = 'DeepSeek V3.3'"))
    assert "DeepSeek-V3.2" in model
    msg = one_problem('[model]\nkv_format = "fp4"\n', "model.kv_format = 'fp4'")
    assert "fp8+indexer" in msg


def test_bad_model_overrides_name_the_key() -> None:
    msg = one_problem("[model]\noverrides = { layer = 30 }\n", "model.overrides.layer = 30")
    assert "did you mean layers" in msg
    msg = one_problem('[model]\noverrides = { layers = "x" }\n', "model.overrides.layers = 'x'")
    assert "whole number" in msg
    msg = one_problem("[model]\noverrides = { dense_layers = 70 }\n", "model.overrides.dense_layers = 70")
    assert "between 0 and layers = 61" in msg


def test_overrides_flow_into_validation() -> None:
    # fewer layers -> smaller weights -> a 1P1D DeepSeek-V3.2 variant fits
    sc = from_toml("[cluster]\nprefill_nodes = 1\ndecode_nodes = 1\n[model]\noverrides = { layers = 20, dense_layers = 1 }\n")
    assert derived_values(sc)["kv_bytes_per_token"] == 20 * 656
    with pytest.raises(ScenarioError, match="model.overrides.expert_count"):
        apply_overrides(Scenario(), {"model.overrides.expert_count": 4})


def test_dram_buffer_smaller_than_one_request() -> None:
    msg = one_problem("[cluster]\ndram_buffer_gb = 2\n", "cluster.dram_buffer_gb = 2")
    assert "65536 tokens" in msg and "2.6 GB" in msg and "at least 3" in msg
    msg = one_problem("[cluster]\ndram_buffer_gb = 2\n[workload]\nmax_context_tokens = 100000\n", "cluster.dram_buffer_gb")
    assert "100000 tokens" in msg and "workload.max_context_tokens" in msg
    from_toml('[cluster]\ndram_buffer_gb = 2\n[workload]\ndataset = "paper-32k"\n')  # 1.3 GB fits


def test_nic_counts_must_match_gpus() -> None:
    msg = one_problem("[network]\ncnics_per_node = 3\n", "network.cnics_per_node = 3")
    assert "cluster.gpus_per_node = 8" in msg and "[1, 2, 4, 8]" in msg
    one_problem("[network]\ncnics_per_node = 16\n", "network.cnics_per_node = 16")
    one_problem("[network]\nsnics_per_node = 9\n", "network.snics_per_node = 9")
    from_toml("[network]\ncnics_per_node = 4\nsnics_per_node = 2\n")


def test_trace_workload_needs_existing_file(tmp_path: Path) -> None:
    msg = one_problem('[workload]\nkind = "trace"\n', "workload.trace_path")
    assert "required when workload.kind = 'trace'" in msg
    msg = one_problem(f'[workload]\nkind = "trace"\ntrace_path = "{tmp_path / "none.jsonl"}"\n', "workload.trace_path")
    assert "file not found" in msg
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"timestamp": 0, "input_length": 10, "output_length": 2, "hash_ids": [1]}\n')
    scen = tmp_path / "s.toml"
    scen.write_text('[workload]\nkind = "trace"\ntrace_path = "t.jsonl"\n')  # relative to the scenario file
    sc = load(scen)
    assert Path(sc.workload.trace_path) == trace.resolve()
    assert derived_values(sc)["max_context_tokens"] is None


def test_dataset_registry_matches_paper_table() -> None:
    stats = dataset_stats()
    for name in ("paper-32k", "paper-48k", "paper-64k"):
        assert stats[name].max_context_tokens == DATASETS[name].max_context_tokens
        assert stats[name].context_tokens_mean == DATASETS[name].context_tokens_mean
    assert stats["claude-code"].max_context_tokens == 200_000


def test_unknown_dataset_suggests() -> None:
    msg = one_problem('[workload]\ndataset = "paper-65k"\n', "workload.dataset = 'paper-65k'")
    assert "paper-64k" in msg


def test_several_problems_reported_together() -> None:
    probs = problems_of('[cluster]\ngpu = "X9"\n[network]\ncnics_per_node = 3\n[workload]\nkind = "trace"\n')
    paths = {p.split(" ")[0].rstrip(":") for p in probs}
    assert paths == {"cluster.gpu", "network.cnics_per_node", "workload.trace_path"}


def test_derived_values_of_default_scenario() -> None:
    d = derived_values(Scenario())
    assert d["kv_bytes_per_token"] == 40_016
    assert d["prefill_ep_gpus"] == 16 and d["decode_ep_gpus"] == 32
    assert 55e9 < d["weight_bytes_per_gpu_prefill"] < 62e9
    assert d["weight_bytes_per_gpu_decode"] < d["weight_bytes_per_gpu_prefill"]
    assert d["free_hbm_per_gpu_bytes_prefill"] == pytest.approx(80e9 - 6e9 - d["weight_bytes_per_gpu_prefill"])
    assert d["max_context_tokens"] == 65536
    assert d["context_tokens_mean"] == DATASETS["paper-64k"].context_tokens_mean
    assert d["kv_bytes_per_round_mean"] == 32721 * 40_016  # ~1.3 GB per round (SYSTEM.md section 1)
    assert 13 < d["cache_to_compute_gb_per_pflop"] < 36
    q = derived_values(from_toml('[model]\nname = "qwen32b"\n[cluster]\ndram_buffer_gb = 320\n'))
    assert q["kv_bytes_per_token"] == 262_144 and q["prefill_ep_gpus"] == 16
    assert q["weight_bytes_per_gpu_prefill"] == pytest.approx(q["weight_bytes_total"])
