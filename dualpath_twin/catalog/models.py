"""Model specs: architecture numbers from catalog/data/models.toml and everything derived from them.

Conventions (docs/catalog.md explains each choice):
- Parameter counts are derived from the architecture (embedding, attention, dense MLP, experts,
  routers, optional q/k/v biases); norms and small biases are ignored (< 0.1%).
- ``linear_flops_per_token`` = 2 x (active params - input embedding - LM head): the embedding is
  a lookup and prefill computes logits for a request's last token only.
- Attention FLOPs per new token at context L (DualPath paper, docs/catalog.md): GQA 4 x heads x head_dim x L
  per layer (L capped at the window for sliding-window layers); MLA 2 x heads x (kv_lora_rank +
  rope + kv_lora_rank) x L' per layer with L' = min(L, sparse_topk) for sparse attention, plus
  the indexer 2 x indexer_heads x indexer_head_dim x L per layer.
- KV bytes per token count only layers that cache the whole context; sliding-window layers keep
  at most ``sliding_window`` tokens (see ``kv_bytes_for_context``).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields, replace
from typing import Any

from dualpath_twin.catalog._data import CatalogError, canonical_names, lookup

FP8_SCALE_BLOCK = 128  # elements per FP32 scale in FlashMLA's FP8 latent cache and DeepEP's FP8 dispatch
FP32_BYTES = 4
KV_DTYPE_BYTES = {"bf16": 2, "fp8": 1}


@dataclass(frozen=True)
class ModelSpec:
    """One model's architecture (catalog numbers plus overrides) and the quantities derived from it."""

    name: str
    attention: str  # "mla" | "gqa"
    layers: int
    hidden: int
    vocab: int
    heads: int
    weight_bytes_per_param: float
    kv_format: str
    # GQA
    kv_heads: int = 0
    head_dim: int = 0
    qkv_bias: bool = False
    sliding_window: int = 0  # tokens; 0 = no sliding-window layers
    sliding_window_layers: int = 0
    # MLA
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # DeepSeek Sparse Attention
    sparse_topk: int = 0  # 0 = dense attention
    indexer_heads: int = 0
    indexer_head_dim: int = 0
    # MLP / MoE
    dense_layers: int = 0  # leading layers with a dense MLP (all layers for a non-MoE model)
    intermediate: int = 0
    moe_intermediate: int = 0
    experts_routed: int = 0
    experts_shared: int = 0
    experts_active: int = 0
    mlp_matrices: int = 3  # 3 = gated (SwiGLU), 2 = plain
    expert_weight_bytes_per_param: float = 0.0  # 0 = same as weight_bytes_per_param
    tie_embeddings: bool = False
    kv_layer_bytes: int = 0  # >0 replaces the derived KV bytes per token per layer
    # provenance (not architecture)
    source: str = ""
    published_total_params: float = 0.0
    published_active_params: float = 0.0

    def __post_init__(self) -> None:
        if self.experts_routed == 0:
            object.__setattr__(self, "dense_layers", self.layers)
        if self.expert_weight_bytes_per_param == 0:
            object.__setattr__(self, "expert_weight_bytes_per_param", self.weight_bytes_per_param)
        problems = _spec_problems(self)
        if problems:
            raise CatalogError(f"model {self.name}: " + "; ".join(problems), "overrides", detail="; ".join(problems))

    # ------------------------------------------------------------ structure
    @property
    def is_moe(self) -> bool:
        """Whether the model has routed experts."""
        return self.experts_routed > 0

    @property
    def moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts."""
        return self.layers - self.dense_layers if self.is_moe else 0

    @property
    def has_indexer(self) -> bool:
        """Whether the model has a DeepSeek Sparse Attention lightning indexer."""
        return self.indexer_heads > 0 and self.indexer_head_dim > 0

    @property
    def full_attention_layers(self) -> int:
        """Layers that attend to (and cache) the whole context."""
        return self.layers - self.sliding_window_layers

    # ------------------------------------------------------------ parameters
    @property
    def embedding_params(self) -> int:
        """Input embedding parameters."""
        return self.vocab * self.hidden

    @property
    def lm_head_params(self) -> int:
        """Output projection parameters (0 when tied to the embedding)."""
        return 0 if self.tie_embeddings else self.vocab * self.hidden

    @property
    def attention_params_per_layer(self) -> int:
        """Attention projection parameters of one layer (plus the indexer's, if any)."""
        h, n = self.hidden, self.heads
        if self.attention == "mla":
            qk = self.qk_nope_head_dim + self.qk_rope_head_dim
            q = h * self.q_lora_rank + self.q_lora_rank * n * qk if self.q_lora_rank else h * n * qk
            kv_a = h * (self.kv_lora_rank + self.qk_rope_head_dim)
            kv_b = self.kv_lora_rank * n * (self.qk_nope_head_dim + self.v_head_dim)
            o = n * self.v_head_dim * h
            p = q + kv_a + kv_b + o
            if self.has_indexer:
                q_in = self.q_lora_rank or h
                p += q_in * self.indexer_heads * self.indexer_head_dim + h * self.indexer_head_dim + h * self.indexer_heads
            return p
        q_dim, kv_dim = n * self.head_dim, self.kv_heads * self.head_dim
        p = h * q_dim + 2 * h * kv_dim + q_dim * h
        if self.qkv_bias:
            p += q_dim + 2 * kv_dim
        return p

    @property
    def expert_params_each(self) -> int:
        """Parameters of one routed (or shared) expert."""
        return self.mlp_matrices * self.hidden * self.moe_intermediate

    @property
    def expert_params(self) -> int:
        """All routed-expert parameters (split across GPUs under expert parallelism)."""
        return self.moe_layers * self.experts_routed * self.expert_params_each

    @property
    def total_params(self) -> int:
        """All parameters (embeddings, attention, dense MLPs, shared and routed experts, routers)."""
        per_moe_layer = (self.experts_routed + self.experts_shared) * self.expert_params_each + self.hidden * self.experts_routed
        return (
            self.embedding_params
            + self.lm_head_params
            + self.layers * self.attention_params_per_layer
            + self.dense_layers * self.mlp_matrices * self.hidden * self.intermediate
            + self.moe_layers * per_moe_layer
        )

    @property
    def dense_params(self) -> int:
        """Parameters every GPU holds under EP: all but the routed experts (attention, shared experts, embeddings)."""
        return self.total_params - self.expert_params

    @property
    def active_params(self) -> int:
        """Parameters used per token (embeddings included, as model cards count them)."""
        return self.dense_params + self.moe_layers * self.experts_active * self.expert_params_each

    # ------------------------------------------------------------ weights
    def weight_bytes_total(self) -> float:
        """Bytes of all weights at the catalog's weight precision."""
        return self.dense_params * self.weight_bytes_per_param + self.expert_params * self.expert_weight_bytes_per_param

    def weight_bytes_per_gpu(self, ep_gpus: int, tp: int = 1) -> float:
        """Weight bytes on one GPU: non-expert params replicated (split by tp), routed experts split over ep_gpus."""
        if ep_gpus < 1 or tp < 1:
            raise ValueError(f"ep_gpus ({ep_gpus}) and tp ({tp}) must be >= 1")
        return (
            self.dense_params * self.weight_bytes_per_param / tp
            + self.expert_params * self.expert_weight_bytes_per_param / ep_gpus
        )

    # ------------------------------------------------------------ KV cache
    @property
    def indexer_key_bytes_per_layer(self) -> int:
        """Bytes of one token's indexer key in one layer (FP8 + one FP32 scale); 0 without an indexer."""
        return self.indexer_head_dim + FP32_BYTES if self.has_indexer else 0

    def _base_format(self) -> tuple[str, bool]:
        base, _, extra = self.kv_format.partition("+")
        return base, extra == "indexer"

    @property
    def attention_kv_bytes_per_layer(self) -> int:
        """Bytes of one token's attention cache (MLA latent+RoPE key, or GQA K and V) in one layer."""
        base, with_idx = self._base_format()
        if self.kv_layer_bytes:
            return max(0, self.kv_layer_bytes - (self.indexer_key_bytes_per_layer if with_idx else 0))
        if self.attention == "mla":
            if base == "fp8":  # FlashMLA layout: FP8 latent, FP32 scale per 128 elements, BF16 RoPE key
                scales = math.ceil(self.kv_lora_rank / FP8_SCALE_BLOCK) * FP32_BYTES
                return self.kv_lora_rank + scales + 2 * self.qk_rope_head_dim
            return KV_DTYPE_BYTES[base] * (self.kv_lora_rank + self.qk_rope_head_dim)
        return 2 * self.kv_heads * self.head_dim * KV_DTYPE_BYTES[base]

    @property
    def kv_bytes_per_token_per_layer(self) -> int:
        """Bytes one token adds to the KV cache of one (full-attention) layer, in this kv_format."""
        if self.kv_layer_bytes:
            return self.kv_layer_bytes
        _, with_idx = self._base_format()
        return self.attention_kv_bytes_per_layer + (self.indexer_key_bytes_per_layer if with_idx else 0)

    @property
    def kv_bytes_per_token(self) -> int:
        """KV bytes per context token stored and loaded (full-attention layers only)."""
        return self.kv_bytes_per_token_per_layer * self.full_attention_layers

    def kv_bytes_for_context(self, context_tokens: int) -> int:
        """KV bytes of a context: full layers for every token, sliding-window layers for the last window."""
        windowed = min(context_tokens, self.sliding_window) * self.sliding_window_layers
        return context_tokens * self.kv_bytes_per_token + windowed * self.kv_bytes_per_token_per_layer

    def decode_kv_read_bytes(self, context_tokens: int) -> float:
        """KV bytes one decode step reads for one request (sparse MLA: top-k latents + indexer keys over all)."""
        L = context_tokens
        if self.attention == "mla" and self.sparse_topk:
            return self.layers * (min(L, self.sparse_topk) * self.attention_kv_bytes_per_layer + L * self.indexer_key_bytes_per_layer)
        if self.attention == "mla":
            return self.layers * L * self.attention_kv_bytes_per_layer
        return self.kv_bytes_for_context(L)

    def decode_linear_forms(self, indexer_weight: float = 1.0) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
        """``(a, b, T)`` for KV-read bytes and attention FLOPs per decode step: cost(L) = a*min(L, T) + b*L.

        ``indexer_weight`` scales the sparse-attention indexer's FLOPs (0.5: it runs at an FP8 peak
        twice the BF16 one, so its FLOPs count half in BF16-peak time).

        Both ``decode_kv_read_bytes`` and ``attention_flops_per_token`` are of this form (sparse top-k
        or sliding windows give the capped part), so a decode batch's cost needs only the sum of its
        contexts and of their capped values; ``tests/test_catalog.py`` checks the forms agree.
        """
        if self.attention == "mla":
            att = float(self.attention_kv_bytes_per_layer)
            idx = float(self.indexer_key_bytes_per_layer)
            per_ctx = 2.0 * self.heads * (2 * self.kv_lora_rank + self.qk_rope_head_dim)
            idx_flops = 2.0 * self.indexer_heads * self.indexer_head_dim * indexer_weight if self.has_indexer else 0.0
            if self.sparse_topk:
                kv = (self.layers * att, self.layers * idx, self.sparse_topk)
                fl = (self.layers * per_ctx, self.layers * idx_flops, self.sparse_topk)
            else:
                kv = (0.0, self.layers * att, 0)
                fl = (0.0, self.layers * (per_ctx + idx_flops), 0)
            return kv, fl
        kv = (float(self.sliding_window_layers * self.kv_bytes_per_token_per_layer), float(self.kv_bytes_per_token),
              self.sliding_window)
        per_ctx = 4.0 * self.heads * self.head_dim
        if self.sliding_window:
            fl = (per_ctx * self.sliding_window_layers, per_ctx * self.full_attention_layers, self.sliding_window)
        else:
            fl = (0.0, per_ctx * (self.full_attention_layers + self.sliding_window_layers), 0)
        return kv, fl

    # ------------------------------------------------------------ FLOPs
    def linear_flops_per_token(self) -> float:
        """2 x active parameters, excluding the embedding lookup and the LM head (applied to one token per prefill)."""
        return 2.0 * (self.active_params - self.embedding_params - self.lm_head_params)

    def lm_head_flops_per_token(self) -> float:
        """FLOPs of the output projection for one token (decode pays it every step)."""
        return 2.0 * self.vocab * self.hidden

    def attention_flops_per_token(self, context_tokens: int, indexer_weight: float = 1.0) -> float:
        """Attention FLOPs of one new token attending to ``context_tokens`` earlier tokens (all layers; indexer x weight)."""
        L = max(0, context_tokens)
        if self.attention == "mla":
            per_ctx = 2.0 * self.heads * (2 * self.kv_lora_rank + self.qk_rope_head_dim)  # QK over 576, AV over 512
            attended = min(L, self.sparse_topk) if self.sparse_topk else L
            flops = self.layers * per_ctx * attended
            if self.has_indexer:
                flops += self.layers * 2.0 * self.indexer_heads * self.indexer_head_dim * L * indexer_weight
            return flops
        per_ctx = 4.0 * self.heads * self.head_dim  # QK and AV
        windowed = min(L, self.sliding_window) if self.sliding_window else L
        return per_ctx * (self.full_attention_layers * L + self.sliding_window_layers * windowed)

    def prefill_attention_flops(self, new_tokens: int, context_start: int, indexer_weight: float = 1.0) -> float:
        """Attention FLOPs of computing ``new_tokens`` after ``context_start`` cached tokens (all layers).

        Dense MLA can run prefill in either of its two forms, and engines take the cheaper: the
        absorbed (MQA) form attends over the 576/512-wide latent; the MHA form attends with the
        per-head 192-wide keys and 128-wide values but must first expand the cached latents of
        the context (kv_b projection: 2 x kv_lora_rank x heads x (nope + v) per cached token).
        Sparse MLA (DSA) and GQA have one form.
        """
        if new_tokens <= 0:
            return 0.0
        mid = context_start + new_tokens / 2.0
        absorbed = new_tokens * self.attention_flops_per_token(int(mid), indexer_weight)
        if self.attention != "mla" or self.sparse_topk:
            return absorbed
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        mha = new_tokens * self.layers * 2.0 * self.heads * (qk + self.v_head_dim) * mid
        expand = self.layers * 2.0 * self.kv_lora_rank * self.heads * (self.qk_nope_head_dim + self.v_head_dim) * context_start
        return min(absorbed, mha + expand)

    def flops_per_token(self, context_tokens: int) -> float:
        """Linear plus attention FLOPs of one new token at ``context_tokens`` of context."""
        return self.linear_flops_per_token() + self.attention_flops_per_token(context_tokens)

    # ------------------------------------------------------------ communication and ratios
    def ep_alltoall_bytes_per_token(self) -> float:
        """Bytes one token sends (FP8 dispatch + scales) and receives (BF16 combine) over all MoE layers; 0 if dense."""
        if not self.is_moe:
            return 0.0
        dispatch = self.hidden + math.ceil(self.hidden / FP8_SCALE_BLOCK) * FP32_BYTES
        combine = 2 * self.hidden
        return float(self.moe_layers * self.experts_active * (dispatch + combine))

    def cache_to_compute_gb_per_pflop(self, context_tokens: int, append_tokens: int) -> float:
        """KV bytes of the hit context per FLOP of computing the append at that context, in GB/PFLOP."""
        if append_tokens <= 0:
            raise ValueError("append_tokens must be > 0")
        flops = append_tokens * self.flops_per_token(context_tokens)
        return self.kv_bytes_for_context(context_tokens) / 1e9 / (flops / 1e15)


# ---------------------------------------------------------------- construction

_PROVENANCE = {"name", "source", "published_total_params", "published_active_params"}
_FIELDS = {f.name: f for f in fields(ModelSpec)}
ARCHITECTURE_FIELDS: tuple[str, ...] = tuple(n for n in _FIELDS if n not in _PROVENANCE | {"kv_format"})
"""Fields a catalog entry or ``model.overrides`` may set (kv_format has its own scenario field)."""
_TOML_ONLY = {"aliases"}


def _spec_problems(m: ModelSpec) -> list[str]:
    """Consistency problems of an architecture (empty when fine)."""
    p: list[str] = []
    for f in ("layers", "hidden", "vocab", "heads"):
        if getattr(m, f) < 1:
            p.append(f"{f} = {getattr(m, f)} must be >= 1")
    if m.attention not in ("mla", "gqa"):
        p.append(f"attention = {m.attention!r} must be 'mla' or 'gqa'")
    elif m.attention == "mla":
        for f in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            if getattr(m, f) < 1:
                p.append(f"{f} = {getattr(m, f)} must be >= 1 for MLA attention")
    else:
        if m.kv_heads < 1 or m.head_dim < 1:
            p.append(f"kv_heads = {m.kv_heads} and head_dim = {m.head_dim} must be >= 1 for GQA attention")
        elif m.heads % m.kv_heads:
            p.append(f"heads = {m.heads} must be a multiple of kv_heads = {m.kv_heads}")
    if not 0 <= m.sliding_window_layers <= m.layers:
        p.append(f"sliding_window_layers = {m.sliding_window_layers} must be between 0 and layers = {m.layers}")
    if m.sliding_window_layers and m.sliding_window < 1:
        p.append("sliding_window must be >= 1 tokens when sliding_window_layers > 0")
    if m.sparse_topk < 0:
        p.append(f"sparse_topk = {m.sparse_topk} must be >= 0 (0 = dense attention)")
    if m.sparse_topk and (m.attention != "mla" or not m.has_indexer):
        p.append("sparse_topk > 0 needs MLA attention with indexer_heads and indexer_head_dim >= 1")
    if m.is_moe:
        if not 1 <= m.experts_active <= m.experts_routed:
            p.append(f"experts_active = {m.experts_active} must be between 1 and experts_routed = {m.experts_routed}")
        if m.moe_intermediate < 1:
            p.append("moe_intermediate must be >= 1 for a MoE model")
        if not 0 <= m.dense_layers <= m.layers:
            p.append(f"dense_layers = {m.dense_layers} must be between 0 and layers = {m.layers}")
    if m.dense_layers > 0 and m.intermediate < 1:
        p.append("intermediate must be >= 1 when there are dense MLP layers")
    if m.mlp_matrices not in (2, 3):
        p.append(f"mlp_matrices = {m.mlp_matrices} must be 2 (plain) or 3 (gated)")
    if m.weight_bytes_per_param <= 0 or m.expert_weight_bytes_per_param < 0:
        p.append("weight_bytes_per_param must be > 0")
    base, _, extra = m.kv_format.partition("+")
    if base not in KV_DTYPE_BYTES or extra not in ("", "indexer") or (extra and not m.has_indexer):
        p.append(f"kv_format = {m.kv_format!r} must be bf16 or fp8 (+indexer for models with an indexer)")
    if m.kv_layer_bytes < 0:
        p.append("kv_layer_bytes must be >= 0 (0 = derive from kv_format)")
    for f in ("kv_heads", "head_dim", "sliding_window", "q_lora_rank", "indexer_heads", "indexer_head_dim",
              "intermediate", "experts_shared"):
        if getattr(m, f) < 0:
            p.append(f"{f} = {getattr(m, f)} must be >= 0")
    return p


def _coerce(field_name: str, value: Any, where: str) -> Any:
    """Check a value against ModelSpec's field type; errors read ``<where> = <value> must be ...``."""
    typ = str(_FIELDS[field_name].type)
    reason = ""
    if typ == "bool":
        if not isinstance(value, bool):
            reason = "must be true or false"
    elif typ == "int":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value != int(value):
            reason = "must be a whole number"
        else:
            value = int(value)
    elif typ == "float":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            reason = "must be a finite number"
        else:
            value = float(value)
    elif not isinstance(value, str):
        reason = "must be a string"
    if reason:
        raise CatalogError(f"{where} = {value!r} {reason}", where, detail=reason)
    return value


def kv_formats_for(spec: ModelSpec) -> list[str]:
    """KV formats a model supports; the default first."""
    out = ["bf16", "fp8"]
    if spec.has_indexer:
        out += ["fp8+indexer", "bf16+indexer"]
    return [spec.kv_format] + [f for f in out if f != spec.kv_format]


def _from_entry(name: str) -> ModelSpec:
    entry = lookup("models", name, "model")
    allowed = set(_FIELDS) - {"name"}
    kwargs: dict[str, Any] = {"name": entry.name}
    for key, value in entry.data.items():
        if key in _TOML_ONLY:
            continue
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"allowed: {', '.join(sorted(allowed))}"
            raise CatalogError(f"{entry.origin}: unknown field {key!r}; {hint}", entry.origin, close)
        kwargs[key] = _coerce(key, value, f"{entry.origin} {key}")
    required = ("attention", "layers", "hidden", "vocab", "heads", "weight_bytes_per_param", "kv_format")
    missing = [r for r in required if r not in kwargs]
    if missing:
        raise CatalogError(f"{entry.origin}: missing field(s) {', '.join(missing)}", entry.origin)
    try:
        return ModelSpec(**kwargs)
    except CatalogError as err:
        raise CatalogError(f"{entry.origin}: {err}", entry.origin) from None


def get_model(name: str, kv_format: str | None = None, overrides: dict[str, Any] | None = None) -> ModelSpec:
    """The model named ``name`` with an optional KV format and architecture overrides.

    Raises CatalogError (a ValueError) naming the bad part: ``name`` (with close matches),
    ``kv_format`` (with the supported ones) or ``overrides.<key>``.
    """
    spec = _from_entry(name)
    if overrides:
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in ARCHITECTURE_FIELDS:
                close = difflib.get_close_matches(key, ARCHITECTURE_FIELDS, n=3)
                hint = f"did you mean {', '.join(close)}?" if close else f"allowed: {', '.join(ARCHITECTURE_FIELDS)}"
                msg = f"unknown architecture field {key!r}; {hint}"
                raise CatalogError(msg, f"overrides.{key}", close, detail=msg)
            changes[key] = _coerce(key, value, f"overrides.{key}")
        try:
            spec = replace(spec, **changes)
        except CatalogError as err:
            key = next(iter(changes)) if len(changes) == 1 else ""
            detail = f"inconsistent model after overrides: {err.detail}"
            raise CatalogError(detail, f"overrides.{key}" if key else "overrides", detail=detail) from None
    if kv_format is not None:
        fmt = kv_format.strip().lower().replace(" ", "")
        supported = kv_formats_for(spec)
        if fmt not in supported:
            close = difflib.get_close_matches(fmt, supported, n=3)
            raise CatalogError(
                f"kv_format {kv_format!r} is not offered for {spec.name}; use one of {', '.join(supported)}",
                "kv_format",
                close,
            )
        spec = replace(spec, kv_format=fmt)
    return spec


def list_models() -> list[str]:
    """Canonical model names in the catalog."""
    return canonical_names("models")


def list_kv_formats(name: str) -> list[str]:
    """KV formats offered for a model, the default first."""
    return kv_formats_for(_from_entry(name))
