"""Statistics used across rlaif: running moments, mean/std of a list, the bootstrap interval.

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
