"""Statistics used across rlaif: running moments, mean/std of a list, bootstrap intervals (plain
and cluster).

Plain Python and NumPy; no torch. Population statistics (ddof = 0) throughout, as the
walk-through's `np.std` and PPO's reward normalisation use them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


class RunningMoments:
    """Running count, mean and population variance of every value seen.

    Batches merge with Chan et al.'s parallel formula, single values with Welford's update;
    both give the same numbers as computing over everything at once (to rounding)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.var = 0.0  # population variance

    def update(self, values: Sequence[float]) -> None:
        """Merge a batch of values into the running statistics."""
        n = len(values)
        if n == 0:
            return
        batch_mean = sum(values) / n
        batch_var = sum((v - batch_mean) ** 2 for v in values) / n
        total = self.count + n
        delta = batch_mean - self.mean
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.mean += delta * n / total
        self.count = total

    def push(self, value: float) -> None:
        """Merge one value."""
        self.update([value])

    @property
    def std(self) -> float:
        """Population standard deviation of everything seen (0 before two values)."""
        return math.sqrt(self.var) if self.count >= 2 else 0.0

    def normalize(self, value: float, eps: float = 1e-8) -> float:
        """(value - mean) / std; while std is ~0 (one value seen, or all equal) only centred."""
        return (value - self.mean) / (self.std if self.std > eps else 1.0)

    def zscore(self, value: float) -> float:
        """(value - mean) / std; 0 while std is 0 (fewer than two values, or all equal)."""
        return (value - self.mean) / self.std if self.std > 0 else 0.0

    def state_dict(self) -> dict[str, float]:
        """For checkpoints."""
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, d: dict[str, float]) -> None:
        """Restore `state_dict` output."""
        self.mean, self.var, self.count = float(d["mean"]), float(d["var"]), int(d["count"])


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std; NaN for an empty list (nothing was measured)."""
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def mean_or_none(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def bootstrap_mean_ci(diffs: Sequence[float] | None = None, *, a: Sequence[float] | None = None,
                      b: Sequence[float] | None = None, n_boot: int = 2000, seed: int = 0,
                      confidence: float = 0.95) -> dict[str, Any]:
    """Percentile bootstrap interval of a mean difference.

    Paired: pass `diffs` (one difference per item), resampled together. Unpaired: pass `a`
    and `b`; each is resampled on its own and the interval is of mean(a) - mean(b)."""
    rng = np.random.default_rng(seed)
    if diffs is not None:
        d = np.asarray(diffs, dtype=float)
        boots = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
        estimate, n = float(d.mean()), int(d.size)
    else:
        xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        boots = (xa[rng.integers(0, xa.size, size=(n_boot, xa.size))].mean(axis=1)
                 - xb[rng.integers(0, xb.size, size=(n_boot, xb.size))].mean(axis=1))
        estimate, n = float(xa.mean() - xb.mean()), int(min(xa.size, xb.size))
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(boots, [tail, 100 - tail])
    return {"estimate": estimate, "ci_low": float(lo), "ci_high": float(hi),
            "confidence": confidence, "n": n, "n_boot": n_boot, "seed": seed}


def cluster_bootstrap_mean_ci(values: Sequence[float], clusters: Sequence[Any], *, n_boot: int = 2000,
                              seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """Percentile cluster (block) bootstrap interval of the mean of `values`.

    Items of one cluster (e.g. prompts from the same template or conversation) are not
    independent, so each draw resamples whole clusters with replacement and takes every item of
    each drawn cluster; the statistic is the mean over all items drawn (clusters of different
    sizes weigh by their size, as in the full-sample mean). Clusters are numbered in order of
    first appearance, so with one item per cluster, in item order, the draws (and the interval)
    are those of `bootstrap_mean_ci(values)` with the same seed.
    """
    if len(values) != len(clusters):
        raise ValueError(f"{len(values)} values but {len(clusters)} cluster labels; pass one label per value")
    if not len(values):
        raise ValueError("no values to bootstrap")
    index: dict[Any, int] = {}
    ids = np.asarray([index.setdefault(c, len(index)) for c in clusters])  # (N,) first-appearance order
    x = np.asarray(values, dtype=float)
    sums = np.bincount(ids, weights=x)  # (C,) sum of each cluster's values
    sizes = np.bincount(ids).astype(float)  # (C,) items per cluster
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, sums.size, size=(n_boot, sums.size))  # (n_boot, C) drawn clusters
    boots = sums[draws].sum(axis=1) / sizes[draws].sum(axis=1)  # (n_boot,) mean over drawn items
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(boots, [tail, 100 - tail])
    return {"estimate": float(x.mean()), "ci_low": float(lo), "ci_high": float(hi),
            "confidence": confidence, "n": int(x.size), "n_clusters": int(sums.size),
            "n_boot": n_boot, "seed": seed}
