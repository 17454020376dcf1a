"""Calibration of the paper datasets against the DualPath paper's published dataset statistics (run: python -m dualpath_twin.workload.calibrate).

Metric definitions (docs/workloads.md explains why these make the published table consistent):
rounds = mean rounds per trajectory; append and generated per round = mean over trajectories of
each trajectory's own per-round mean (append over rounds >= 1); context = mean prompt length
over all rounds; total = mean over trajectories of the final context (last prompt + generated).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import numpy as np

from dualpath_twin.workload.datasets import AgenticSpec, LogNormal, get_dataset
from dualpath_twin.workload.synthetic import generate_agentic
from dualpath_twin.workload.types import Workload


@dataclass
class DatasetMetrics:
    """The published dataset table's columns for one workload, plus the alternative (pooled) definitions."""

    rounds: float
    append_tokens: float
    gen_tokens: float
    total_tokens: float
    context_tokens: float
    rounds_round_weighted: float
    append_tokens_pooled: float
    gen_tokens_pooled: float
    context_tokens_per_traj: float

    def residuals(self, spec: AgenticSpec) -> dict[str, float]:
        """Relative error of each calibrated column against the dataset's targets."""
        t = spec.target
        return {
            k: getattr(self, k) / getattr(t, k) - 1.0
            for k in ("rounds", "append_tokens", "gen_tokens", "total_tokens", "context_tokens")
        }


def dataset_metrics(wl: Workload) -> DatasetMetrics:
    """Compute the published dataset columns of a multi-round workload."""
    n = wl.n_trajectories
    counts = np.diff(wl.round_offsets)
    tid = np.repeat(np.arange(n), counts)
    first = np.zeros(wl.n_rounds, dtype=bool)
    first[wl.round_offsets[:-1][counts > 0]] = True
    prev = np.zeros(wl.n_rounds, dtype=np.int64)
    prev[1:] = wl.prompt_tokens[:-1] + wl.gen_tokens[:-1]
    append = (wl.prompt_tokens - prev)[~first]
    atid = tid[~first]
    a_cnt = np.bincount(atid, minlength=n)
    a_sum = np.bincount(atid, weights=append, minlength=n)
    has = a_cnt > 0
    ends = wl.round_offsets[1:] - 1
    prompt = wl.prompt_tokens.astype(np.float64)
    return DatasetMetrics(
        rounds=float(counts.mean()),
        append_tokens=float((a_sum[has] / a_cnt[has]).mean()),
        gen_tokens=float((np.bincount(tid, weights=wl.gen_tokens, minlength=n) / counts).mean()),
        total_tokens=float((wl.prompt_tokens[ends] + wl.gen_tokens[ends]).mean()),
        context_tokens=float(prompt.mean()),
        rounds_round_weighted=float((counts.astype(np.float64) ** 2).sum() / counts.sum()),
        append_tokens_pooled=float(append.mean()),
        gen_tokens_pooled=float(wl.gen_tokens.mean()),
        context_tokens_per_traj=float((np.bincount(tid, weights=prompt, minlength=n) / counts).mean()),
    )


_KEYS = [
    ("initial_prompt", "mean"),
    ("initial_prompt", "sigma"),
    ("rounds", "mean"),
    ("rounds", "sigma"),
    ("append", "mean"),
    ("append", "sigma"),
    ("append", "traj_sigma"),
    ("gen", "mean"),
    ("gen", "sigma"),
    ("gen", "traj_sigma"),
    ("", "rounds_append_elasticity"),
]


def _with(spec: AgenticSpec, x: np.ndarray) -> AgenticSpec:
    parts: dict[str, dict[str, float]] = {}
    top: dict[str, float] = {}
    for (sec, key), v in zip(_KEYS, np.exp(x), strict=True):
        if not sec:
            top[key] = float(min(v, 4.0))
            continue
        cur = parts.setdefault(sec, getattr(spec, sec).model_dump(exclude_none=True))
        cur[key] = float(min(v, 3.0) if "sigma" in key else v)
    return spec.model_copy(update={**{k: LogNormal(**v) for k, v in parts.items()}, **top})


def fit(name: str, n_trajectories: int = 500, seed: int = 1, seeds: int = 3, iters: int = 300) -> AgenticSpec:
    """Nelder-Mead on log-parameters minimising squared log-ratios to the targets (common random numbers)."""
    spec = get_dataset(name)
    assert isinstance(spec, AgenticSpec)
    x0 = np.log([max(float(getattr(getattr(spec, s), k) if s else getattr(spec, k)), 0.05) for s, k in _KEYS])

    def f(x: np.ndarray) -> float:
        cand = _with(spec, x)
        err = 0.0
        for sd in range(seed, seed + seeds):  # mean squared error over seeds = bias^2 + variance
            m = dataset_metrics(generate_agentic(cand, n_trajectories, sd))
            err += float(sum(np.log1p(r) ** 2 for r in m.residuals(spec).values()))
        return err / seeds

    dim = len(x0)
    simplex = [x0] + [x0 + 0.2 * np.eye(dim)[i] for i in range(dim)]
    vals = [f(s) for s in simplex]
    for _ in range(iters):
        order = np.argsort(vals)
        simplex, vals = [simplex[i] for i in order], [vals[i] for i in order]
        c = np.mean(simplex[:-1], axis=0)
        xr = c + (c - simplex[-1])
        fr = f(xr)
        if fr < vals[0]:
            xe = c + 2 * (c - simplex[-1])
            fe = f(xe)
            simplex[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            simplex[-1], vals[-1] = xr, fr
        else:
            xc = c + 0.5 * (simplex[-1] - c)
            fc = f(xc)
            if fc < vals[-1]:
                simplex[-1], vals[-1] = xc, fc
            else:
                simplex = [simplex[0]] + [simplex[0] + 0.5 * (s - simplex[0]) for s in simplex[1:]]
                vals = [vals[0]] + [f(s) for s in simplex[1:]]
    return _with(spec, simplex[int(np.argmin(vals))])


def report(name: str, n_trajectories: int = 500, seed: int = 0) -> str:
    """Table of metrics and residuals of the shipped parameters."""
    spec = get_dataset(name)
    assert isinstance(spec, AgenticSpec)
    m = dataset_metrics(generate_agentic(spec, n_trajectories, seed))
    res = m.residuals(spec)
    lines = [f"{name}: {n_trajectories} trajectories, seed {seed}"]
    for k, v in asdict(m).items():
        tail = f"  target {getattr(spec.target, k):>9,.0f}  residual {res[k]:+.1%}" if k in res else ""
        lines.append(f"  {k:<26}{v:>10,.1f}{tail}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """``calibrate NAME [--fit]``: print residuals, or re-fit and print the parameters for datasets.toml."""
    for name in [a for a in argv if not a.startswith("--")] or ["paper-32k", "paper-48k", "paper-64k"]:
        if "--fit" in argv:
            spec = fit(name)
            for sec in ("initial_prompt", "rounds", "append", "gen"):
                print(f"{name}.{sec} = {getattr(spec, sec).model_dump(exclude_none=True)}")
            print(f"{name}.rounds_append_elasticity = {spec.rounds_append_elasticity}", flush=True)
        else:
            print(report(name))


if __name__ == "__main__":
    main(sys.argv[1:])
