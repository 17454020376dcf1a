"""Named random streams derived from the scenario's root seed (same seed -> identical arrays)."""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, name: str) -> np.random.Generator:
    """A numpy Generator for the named stream ``name`` under root ``seed``.

    Each name maps to its own ``SeedSequence`` spawn key, so adding draws to one stream never
    shifts another (e.g. changing the arrival rate leaves the token lengths unchanged).
    """
    key = zlib.crc32(name.encode("utf-8"))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy=seed, spawn_key=(key,))))


def lognormal_mean(rng: np.random.Generator, mean: float, sigma: float, size: int) -> np.ndarray:
    """Lognormal draws parameterised by their mean (not the underlying normal's mean) and shape sigma."""
    if sigma <= 0:
        return np.full(size, float(mean))
    mu = np.log(mean) - sigma * sigma / 2.0
    return rng.lognormal(mu, sigma, size)


def lognormal_median(rng: np.random.Generator, median: float, sigma: float, size: int) -> np.ndarray:
    """Lognormal draws parameterised by their median (p50) and shape sigma."""
    if sigma <= 0:
        return np.full(size, float(median))
    return rng.lognormal(np.log(median), sigma, size)
