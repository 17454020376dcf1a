"""Synthetic dataset parameters, loaded from the shipped ``datasets.toml`` (validated with pydantic)."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dualpath_twin.workload.errors import WorkloadError

DATASETS_FILE = Path(__file__).with_name("datasets.toml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class LogNormal(_Strict):
    """A lognormal quantity given by its mean or its median (p50) and shape sigma (std of log)."""

    mean: float | None = Field(None, gt=0, description="mean of the distribution")
    median: float | None = Field(None, gt=0, description="median (p50) of the distribution")
    sigma: float = Field(..., ge=0, description="std of the underlying normal")
    traj_sigma: float = Field(0.0, ge=0, description="per-trajectory scale factor (mean 1) shape; 0 = none")

    @model_validator(mode="after")
    def _one_location(self) -> LogNormal:
        if (self.mean is None) == (self.median is None):
            raise ValueError("give exactly one of mean or median")
        return self

    @property
    def mu(self) -> float:
        """Mean of the underlying normal."""
        if self.median is not None:
            return float(np.log(self.median))
        return float(np.log(self.mean) - self.sigma**2 / 2)  # type: ignore[arg-type]

    @property
    def mean_value(self) -> float:
        """Mean of the distribution (without the per-trajectory scale)."""
        if self.mean is not None:
            return float(self.mean)
        return float(np.exp(self.mu + self.sigma**2 / 2))

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw ``size`` values (float32 for speed: token counts need no more precision)."""
        z = rng.standard_normal(size, dtype=np.float32)
        z *= np.float32(self.sigma)
        z += np.float32(self.mu)
        return np.exp(z, out=z)

    def draw_stratified(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw ``size`` values (float64) by stratified sampling: one draw per 1/size quantile band, shuffled.

        Used for per-trajectory quantities so that a few hundred trajectories already match the
        distribution's mean (heavy-tailed scales otherwise make small sets noisy).
        """
        return np.exp(self.mu + self.sigma * stratified_normal(rng, size))

    def traj_scale(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Per-trajectory multiplicative scale with mean 1, stratified (all ones when traj_sigma = 0)."""
        if self.traj_sigma == 0:
            return np.ones(size)
        s = self.traj_sigma
        return np.exp(-s * s / 2 + s * stratified_normal(rng, size))


def stratified_normal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Standard normals, one per equal-probability band of the distribution, in random order."""
    u = (rng.permutation(size) + rng.random(size)) / size
    inv = NormalDist().inv_cdf
    return np.fromiter((inv(min(max(x, 1e-12), 1 - 1e-12)) for x in u), dtype=np.float64, count=size)


class Targets(_Strict):
    """Published averages a dataset is calibrated to (DualPath paper); definitions in docs/workloads.md."""

    rounds: float
    append_tokens: float
    gen_tokens: float
    total_tokens: float
    context_tokens: float


class AgenticSpec(_Strict):
    """The paper's coding-agent RL rollout datasets (paper-32k/48k/64k)."""

    kind: Literal["agentic"]
    description: str = ""
    mal_tokens: int = Field(
        ..., ge=128, description="maximum agent length: trajectories end before exceeding it"
    )
    initial_prompt: LogNormal = Field(..., description="round 0 prompt (system + task), tokens")
    rounds: LogNormal = Field(..., description="natural task length in rounds before MAL truncation")
    append: LogNormal = Field(..., description="tokens appended per round (rounds >= 1)")
    gen: LogNormal = Field(..., description="tokens generated per round")
    rounds_append_elasticity: float = Field(
        0.0,
        ge=0,
        le=4,
        description="natural rounds scale as (trajectory append scale)^-k: tasks that append more end sooner",
    )
    target: Targets
    fit: dict[str, float | int | str] = Field(
        default_factory=dict, description="calibration record (seed, residuals)"
    )


class ClaudeCodeSpec(_Strict):
    """Claude Code sessions (shaped on the public WEKA Claude Code traces and their data card)."""

    kind: Literal["claude-code"]
    description: str = ""
    context_cap_tokens: int = Field(
        ..., ge=1024, description="context window; reaching it triggers a compaction"
    )
    system_prompt: LogNormal = Field(..., description="tool + system prompt, tokens")
    first_prompt: LogNormal = Field(..., description="first user message (incl. resumed context), tokens")
    calls: LogNormal = Field(..., description="LLM calls per conversation")
    max_calls: int = Field(2000, ge=1)
    tool_step_share: float = Field(
        ..., ge=0, le=1, description="share of calls (after the first) that follow a tool result"
    )
    tool_append: LogNormal
    user_append: LogNormal
    tool_idle_s: LogNormal
    user_idle_s: LogNormal
    output: LogNormal
    reset_share: float = Field(
        ..., ge=0, le=1, description="share of calls whose prefix is not reused (context reset)"
    )
    compaction_summary: LogNormal = Field(
        ..., description="context kept after a reset/compaction on top of the system prompt"
    )


DatasetSpec = AgenticSpec | ClaudeCodeSpec


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, DatasetSpec]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise WorkloadError(f"cannot read dataset parameters: {err}", path) from None
    out: dict[str, DatasetSpec] = {}
    for name, raw in data.items():
        cls = ClaudeCodeSpec if isinstance(raw, dict) and raw.get("kind") == "claude-code" else AgenticSpec
        try:
            out[name] = cls.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise WorkloadError(f"[{name}] {loc}: {first['msg']}; fix the dataset table", path) from None
    return out


def load_datasets(path: Path | None = None) -> dict[str, DatasetSpec]:
    """All dataset specs by name (default: the shipped datasets.toml)."""
    return dict(_load(str(path or DATASETS_FILE)))


def get_dataset(name: str, path: Path | None = None) -> DatasetSpec:
    """One dataset spec, or WorkloadError naming the known datasets."""
    specs = load_datasets(path)
    if name not in specs:
        raise WorkloadError(
            f"unknown synthetic dataset {name!r}; set workload.dataset to one of {', '.join(sorted(specs))}"
        )
    return specs[name]
