"""The one internal workload form: trajectories of rounds, stored column-wise (numpy)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Workload:
    """Trajectories of rounds in columnar form; round r of trajectory t is index ``round_offsets[t] + r``.

    A round sends ``prompt_tokens`` (the whole context so far plus the append), of which
    ``hit_tokens`` (block-aligned) are already in storage and must be loaded, the rest computed;
    it then generates ``gen_tokens``. ``delay_s`` is the idle time (tool latency, think time)
    between the previous round's last token and this round's arrival; for round 0 it is unused
    and the trajectory starts at ``arrival_s``. ``open_loop`` rounds (trace replay) arrive at
    ``arrival_s + offset_s`` regardless of when the previous round finished.
    """

    name: str
    arrival_s: np.ndarray  # float64 [n_traj]
    round_offsets: np.ndarray  # int64 [n_traj + 1]
    prompt_tokens: np.ndarray  # int64 [n_rounds]
    hit_tokens: np.ndarray  # int64 [n_rounds], multiple of block_tokens, <= prompt_tokens
    gen_tokens: np.ndarray  # int64 [n_rounds], >= 1
    delay_s: np.ndarray  # float64 [n_rounds]
    open_loop: bool = False  # True: round arrival = arrival_s[t] + offset_s[i] (trace timestamps)
    offset_s: np.ndarray | None = None  # float64 [n_rounds], only for open_loop
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def n_trajectories(self) -> int:
        """Number of trajectories (agents or sessions)."""
        return int(len(self.arrival_s))

    @property
    def n_rounds(self) -> int:
        """Total number of rounds (requests)."""
        return int(len(self.prompt_tokens))

    def rounds_of(self, t: int) -> range:
        """Global round indices of trajectory t."""
        return range(int(self.round_offsets[t]), int(self.round_offsets[t + 1]))

    def validate(self, block_tokens: int) -> list[str]:
        """Return problems with the arrays (empty list when consistent)."""
        p: list[str] = []
        n = self.n_rounds
        for name in ("hit_tokens", "gen_tokens", "delay_s"):
            if len(getattr(self, name)) != n:
                p.append(f"{name} has {len(getattr(self, name))} entries, expected {n}")
        if len(self.round_offsets) != self.n_trajectories + 1 or (n and int(self.round_offsets[-1]) != n):
            p.append("round_offsets inconsistent with the number of rounds")
        if n:
            if (self.prompt_tokens < 1).any():
                p.append("prompt_tokens must be >= 1")
            if (self.gen_tokens < 1).any():
                p.append("gen_tokens must be >= 1")
            if (self.hit_tokens < 0).any() or (self.hit_tokens > self.prompt_tokens).any():
                p.append("hit_tokens must be within [0, prompt_tokens]")
            if (self.hit_tokens % block_tokens).any():
                p.append(f"hit_tokens must be multiples of block_tokens={block_tokens}")
        return p
