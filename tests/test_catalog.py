"""The hardware/model catalog: KV sizes, parameter counts, FLOPs and the paper's cache-to-compute ratios."""

from __future__ import annotations

import pytest

from dualpath_twin.catalog import (
    ENV_EXTRA_FILES,
    CatalogError,
    clear_cache,
    get_gpu,
    get_model,
    get_nic,
    list_gpus,
    list_kv_formats,
    list_models,
    list_nics,
)


# ---------------------------------------------------------------- KV bytes per token (SYSTEM.md section 3)
@pytest.mark.parametrize(
    ("name", "kv_format", "expected"),
    [
        ("DeepSeek-V3.2", None, 40_016),  # 61 x (512 FP8 + 16 scales + 128 BF16 RoPE)
        ("DeepSeek-V3.2", "fp8", 40_016),
        ("DeepSeek-V3.2", "bf16", 70_272),  # 61 x 576 x 2
        ("DeepSeek-V3.2", "fp8+indexer", 48_068),  # + 61 x (128 FP8 + 4 B scale), "~48 KB"
        ("DeepSeek-V3", None, 40_016),
        ("DS-27B", None, 19_680),  # 30 x 656
        ("DS-27B", "bf16", 34_560),
        ("DS-27B", "fp8+indexer", 21_720),  # "~21.7 KB"
        ("Qwen2.5-32B", None, 262_144),  # 64 x 8 x 128 x 2 x 2
        ("Qwen3-235B-A22B", "bf16", 192_512),  # 94 x 4 x 128 x 2 x 2
        ("Llama-3.1-70B", None, 327_680),  # 80 x 8 x 128 x 2 x 2
        ("GPT-OSS-120B", "bf16", 36_864),  # only the 18 full-attention layers keep the whole context
    ],
)
def test_kv_bytes_per_token(name: str, kv_format: str | None, expected: int) -> None:
    m = get_model(name, kv_format)
    assert m.kv_bytes_per_token == expected
    assert isinstance(m.kv_bytes_per_token, int)


def test_default_kv_format_and_listing() -> None:
    assert list_kv_formats("DeepSeek-V3.2")[0] == "fp8"
    assert set(list_kv_formats("DeepSeek-V3.2")) >= {"fp8", "bf16", "fp8+indexer"}
    assert "fp8+indexer" not in list_kv_formats("DeepSeek-V3")  # no indexer in V3
    assert list_kv_formats("Qwen2.5-32B")[0] == "bf16"
    assert get_model("DeepSeek-V3.2").kv_bytes_per_token_per_layer == 656


def test_sliding_window_layers_keep_only_the_window() -> None:
    m = get_model("GPT-OSS-120B", "bf16")
    per_layer = 8 * 64 * 2 * 2
    assert m.kv_bytes_for_context(100) == 100 * 36 * per_layer  # below the 128-token window: all layers
    assert m.kv_bytes_for_context(10_000) == 10_000 * 18 * per_layer + 128 * 18 * per_layer


# ---------------------------------------------------------------- parameter counts from the architecture
@pytest.mark.parametrize("name", ["DeepSeek-V3.2", "DeepSeek-V3", "Qwen2.5-32B", "Qwen3-235B-A22B", "GPT-OSS-120B", "Llama-3.1-70B", "DS-27B"])
def test_derived_params_match_published(name: str) -> None:
    m = get_model(name)
    assert m.total_params == pytest.approx(m.published_total_params, rel=0.02)
    if m.published_active_params:
        # model cards count the active parameters without the input embedding (a lookup)
        assert m.active_params - m.embedding_params == pytest.approx(m.published_active_params, rel=0.04)
    assert m.total_params == m.dense_params + m.expert_params


def test_moe_structure_and_weights_per_gpu() -> None:
    v32 = get_model("ds660b")
    assert (v32.is_moe, v32.moe_layers, v32.dense_layers, v32.experts_routed, v32.experts_active) == (True, 58, 3, 256, 8)
    assert v32.weight_bytes_per_param == 1.0 and v32.sparse_topk == 2048 and v32.attention == "mla"
    # 671B FP8 weights: do not fit one 8 x 80 GB node, do fit 16 GPUs
    assert v32.weight_bytes_per_gpu(8) > 80e9
    assert v32.weight_bytes_per_gpu(16) < 74e9
    # experts split over the EP group, the rest replicated
    assert v32.weight_bytes_per_gpu(16) - v32.weight_bytes_per_gpu(32) == pytest.approx(v32.expert_params / 32)
    assert v32.weight_bytes_per_gpu(1) == pytest.approx(v32.weight_bytes_total())
    q = get_model("qwen32b")
    assert not q.is_moe and q.moe_layers == 0 and q.dense_layers == 64 and q.expert_params == 0
    assert q.weight_bytes_per_param == 2.0
    assert q.weight_bytes_per_gpu(8) == pytest.approx(q.weight_bytes_total())  # dense: replicated
    assert q.weight_bytes_per_gpu(8, tp=2) == pytest.approx(q.weight_bytes_total() / 2)
    with pytest.raises(ValueError, match="ep_gpus"):
        q.weight_bytes_per_gpu(0)
    # GPT-OSS: MXFP4 experts, BF16 rest -> ~65 GB checkpoint
    assert get_model("GPT-OSS-120B").weight_bytes_total() == pytest.approx(65e9, rel=0.03)


# ---------------------------------------------------------------- FLOPs
def test_flop_formulas() -> None:
    q = get_model("Qwen2.5-32B")
    assert q.attention_flops_per_token(1000) == pytest.approx(4 * 64 * 40 * 128 * 1000)
    assert q.flops_per_token(0) == pytest.approx(q.linear_flops_per_token())
    assert q.linear_flops_per_token() == pytest.approx(2 * (q.active_params - q.embedding_params - q.lm_head_params))
    v32 = get_model("DeepSeek-V3.2")
    sparse = 2 * 61 * 128 * 2048 * (576 + 512)
    indexer = 2 * 61 * 64 * 128
    assert v32.attention_flops_per_token(65536) == pytest.approx(sparse + indexer * 65536)
    assert v32.attention_flops_per_token(1000) == pytest.approx(2 * 61 * 128 * 1000 * 1088 + indexer * 1000)
    v3 = get_model("DeepSeek-V3")
    assert v3.attention_flops_per_token(65536) == pytest.approx(2 * 61 * 128 * 65536 * 1088)
    oss = get_model("GPT-OSS-120B")
    # windowed layers cap at 128 tokens
    assert oss.attention_flops_per_token(10_000) == pytest.approx(4 * 64 * 64 * (18 * 10_000 + 18 * 128))


def test_decode_reads_and_alltoall() -> None:
    v32 = get_model("DeepSeek-V3.2")
    L = 65536
    assert v32.decode_kv_read_bytes(L) == 61 * (2048 * 656 + L * 132)  # top-k latents + all indexer keys
    assert v32.decode_kv_read_bytes(L) < L * v32.kv_bytes_per_token / 3
    assert get_model("DeepSeek-V3").decode_kv_read_bytes(L) == L * 40_016
    q = get_model("Qwen2.5-32B")
    assert q.decode_kv_read_bytes(L) == L * 262_144
    assert q.ep_alltoall_bytes_per_token() == 0
    # 58 MoE layers x 8 experts x (7168 FP8 + 56 x 4 B scales + 7168 x 2 B BF16)
    assert v32.ep_alltoall_bytes_per_token() == 58 * 8 * (7168 + 224 + 2 * 7168)


# ---------------------------------------------------------------- the paper's cache-to-compute ratios (SYSTEM.md section 1)
# (model, kv_format, published GB/PFLOP at 16K, at 64K, tolerance). The paper's Qwen3 and GPT-OSS
# figures are exactly half of what BF16 K/V gives: they imply an FP8 KV cache (docs/catalog.md).
PAPER_RATIOS = [
    ("Qwen2.5-32B", "bf16", 117, 267, 0.10),
    ("GPT-OSS-120B", "fp8", 47, 95, 0.10),
    ("Qwen3-235B-A22B", "fp8", 39, 60, 0.10),
    ("DeepSeek-V3.2", "fp8", 13, 36, 0.10),
    # Documented residual: with SYSTEM.md's MLA formula (2 x 128 heads x 1088 per context token)
    # and 656 B/layer, the ratio tends to 5.49 as L grows, below the published 5.8; we land at
    # -9.0% / -11.0%. No linear-FLOP convention can close it (docs/catalog.md).
    ("DeepSeek-V3", "fp8", 4.8, 5.8, 0.12),
]


@pytest.mark.parametrize(("name", "kv_format", "lo", "hi", "tol"), PAPER_RATIOS)
def test_cache_to_compute_ratio_matches_paper(name: str, kv_format: str, lo: float, hi: float, tol: float) -> None:
    m = get_model(name, kv_format)
    assert m.cache_to_compute_gb_per_pflop(16 * 1024, 429) == pytest.approx(lo, rel=tol)
    assert m.cache_to_compute_gb_per_pflop(64 * 1024, 429) == pytest.approx(hi, rel=tol)


def test_deepseek_v3_residual_is_within_ten_percent_at_16k() -> None:
    assert get_model("DeepSeek-V3").cache_to_compute_gb_per_pflop(16 * 1024, 429) == pytest.approx(4.8, rel=0.10)


def test_ratio_definition() -> None:
    m = get_model("Qwen2.5-32B")
    expected = 16384 * 262_144 / 1e9 / (429 * m.flops_per_token(16384) / 1e15)
    assert m.cache_to_compute_gb_per_pflop(16384, 429) == pytest.approx(expected)
    with pytest.raises(ValueError):
        m.cache_to_compute_gb_per_pflop(16384, 0)


# ---------------------------------------------------------------- names, aliases, errors
@pytest.mark.parametrize(
    ("alias", "canonical"),
    [("ds660b", "DeepSeek-V3.2"), ("DS 660B", "DeepSeek-V3.2"), ("deepseek-v3.2", "DeepSeek-V3.2"), ("ds27b", "DS-27B"),
     ("qwen32b", "Qwen2.5-32B"), ("QWEN2.5-32B", "Qwen2.5-32B"), ("deepseek-v3", "DeepSeek-V3"), ("llama70b", "Llama-3.1-70B")],
)
def test_model_aliases(alias: str, canonical: str) -> None:
    assert get_model(alias).name == canonical


def test_unknown_names_suggest_close_matches() -> None:
    with pytest.raises(CatalogError) as ei:
        get_model("DeepSeek-V3.3")
    assert isinstance(ei.value, ValueError)
    assert ei.value.field == "name"
    assert "DeepSeek-V3.2" in ei.value.suggestions and "did you mean" in str(ei.value)
    with pytest.raises(CatalogError, match="H800"):
        get_gpu("H880")
    with pytest.raises(CatalogError, match="cx7-400"):
        get_nic("cx7-40")
    with pytest.raises(CatalogError, match="known"):
        get_model("zzzzzzzz")
    with pytest.raises(CatalogError, match="use one of fp8, bf16") as ei2:
        get_model("DeepSeek-V3.2", kv_format="fp4")
    assert ei2.value.field == "kv_format"


def test_overrides_change_derived_values() -> None:
    base = get_model("DeepSeek-V3.2")
    half = get_model("DeepSeek-V3.2", overrides={"layers": 31, "dense_layers": 1})
    assert half.kv_bytes_per_token == 31 * 656
    assert half.total_params < base.total_params and half.moe_layers == 30
    assert get_model("DeepSeek-V3.2", overrides={"sparse_topk": 1024}).attention_flops_per_token(65536) < base.attention_flops_per_token(65536)
    assert get_model("Qwen2.5-32B", overrides={"kv_heads": 4}).kv_bytes_per_token == 131_072
    assert get_model("Qwen2.5-32B", overrides={"weight_bytes_per_param": 1}).weight_bytes_total() == pytest.approx(
        get_model("Qwen2.5-32B").weight_bytes_total() / 2
    )
    assert get_model("Qwen2.5-32B", overrides={"kv_layer_bytes": 1000}).kv_bytes_per_token == 64_000
    assert get_model("Qwen2.5-32B", overrides={"layers": 32.0}).layers == 32  # whole floats accepted (TOML/--set)


@pytest.mark.parametrize(
    ("overrides", "field", "text"),
    [
        ({"layer": 3}, "overrides.layer", "did you mean layers"),
        ({"layers": "many"}, "overrides.layers", "whole number"),
        ({"layers": 2.5}, "overrides.layers", "whole number"),
        ({"experts_active": 999}, "overrides.experts_active", "between 1 and experts_routed"),
        ({"name": "x"}, "overrides.name", "unknown architecture field"),
    ],
)
def test_bad_overrides_name_the_key(overrides: dict, field: str, text: str) -> None:
    with pytest.raises(CatalogError, match=text) as ei:
        get_model("DeepSeek-V3.2", overrides=overrides)
    assert ei.value.field == field


def test_gpus_and_nics() -> None:
    assert {"H800", "H100", "H200", "B200", "A100", "H20", "GB200"} <= set(list_gpus())
    h800 = get_gpu("h800")
    assert (h800.bf16_tflops, h800.fp8_tflops, h800.hbm_gb, h800.hbm_tbps) == (989.0, 1979.0, 80.0, 3.35)
    assert h800.nvlink_gbps == 1600.0  # 400 GB/s bidirectional = 200 GB/s per direction
    assert h800.peak_flops(fp8=True) == pytest.approx(1.979e15)
    assert h800.peak_flops(fp8=False) == pytest.approx(0.989e15)
    a100 = get_gpu("A100")
    assert not a100.has_fp8 and a100.peak_flops(fp8=True) == pytest.approx(312e12)  # falls back to BF16
    assert get_gpu("B200").hbm_gb > get_gpu("H200").hbm_gb > get_gpu("H100").hbm_gb
    assert {"cx6-200", "cx7-400", "cx8-800"} <= set(list_nics())
    assert get_nic("CX7").gbps == 400.0


def test_user_catalog_file_adds_a_model(tmp_path, monkeypatch) -> None:
    extra = tmp_path / "mine.toml"
    extra.write_text(
        '[models."Tiny-1B"]\naliases = ["tiny"]\nattention = "gqa"\nlayers = 16\nhidden = 2048\nvocab = 32000\n'
        'heads = 16\nkv_heads = 4\nhead_dim = 128\nintermediate = 8192\nweight_bytes_per_param = 2\nkv_format = "bf16"\n'
        '[gpus.X1]\nbf16_tflops = 100.0\nfp8_tflops = 0.0\nhbm_gb = 24.0\nhbm_tbps = 1.0\npcie_gen = 4\npcie_gbps = 256.0\nnvlink_gbps = 0.0\n'
    )
    monkeypatch.setenv(ENV_EXTRA_FILES, str(extra))
    clear_cache()
    try:
        m = get_model("tiny")
        assert m.name == "Tiny-1B" and "Tiny-1B" in list_models()
        assert m.kv_bytes_per_token == 16 * 4 * 128 * 2 * 2
        assert get_gpu("x1").hbm_gb == 24.0
    finally:
        monkeypatch.delenv(ENV_EXTRA_FILES)
        clear_cache()
    with pytest.raises(CatalogError):
        get_model("tiny")


def test_bad_catalog_entry_names_file_and_field(tmp_path, monkeypatch) -> None:
    extra = tmp_path / "bad.toml"
    extra.write_text('[models."Broken"]\nattention = "gqa"\nlayer = 16\n')
    monkeypatch.setenv(ENV_EXTRA_FILES, str(extra))
    clear_cache()
    try:
        with pytest.raises(CatalogError, match=r"bad\.toml.*Broken.*unknown field 'layer'.*layers"):
            get_model("Broken")
    finally:
        monkeypatch.delenv(ENV_EXTRA_FILES)
        clear_cache()


@pytest.mark.parametrize("name", list_models())
def test_decode_linear_forms_equal_the_per_request_formulas(name: str) -> None:
    """The decoder's batch sums rely on cost(L) = a*min(L, T) + b*L for every model and KV format."""
    for fmt in list_kv_formats(name) or [None]:
        m = get_model(name, fmt)
        (ka, kb, kt), (fa, fb, ft) = m.decode_linear_forms()
        for ctx in (1, 100, 127, 128, 129, 2047, 2048, 2049, 5000, 65536, 200_000):
            assert ka * min(ctx, kt) + kb * ctx == pytest.approx(m.decode_kv_read_bytes(ctx), rel=1e-12)
            assert fa * min(ctx, ft) + fb * ctx == pytest.approx(m.attention_flops_per_token(ctx), rel=1e-12)
