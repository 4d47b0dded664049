"""The numbers of a judge comparison on preference pairs: verdicts, ranks, Spearman, agreement.

Scores are compared (and ranked) at 12 significant digits (`comparable`), so float rounding in
an ensemble's weighted sum (0.19999999999999993 vs 0.2) is not read as a preference. Spearman
is Pearson on average ranks (ties share the mean of their ranks, as scipy's rankdata).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def mean_or_none(values: Sequence[float]) -> float | None:
    """The mean, None for no values."""
    return float(np.mean(values)) if len(values) else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile, None for no values."""
    return float(np.percentile(values, q)) if len(values) else None


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, tied values sharing the average of their ranks (as scipy's rankdata)."""
    arr = np.asarray(x, dtype=np.float64)
    order = np.argsort(arr, kind="mergesort")
    sorted_vals = arr[order]
    ranks = np.empty(len(arr), dtype=np.float64)
    start = 0
    while start < len(arr):
        end = start
        while end + 1 < len(arr) and sorted_vals[end + 1] == sorted_vals[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1  # mean of ranks start+1 .. end+1
        start = end + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman rank correlation (Pearson on average ranks of the `comparable` values);
    None if either side is constant."""
    if len(a) != len(b):
        raise ValueError(f"spearman needs equal lengths, got {len(a)} and {len(b)}")
    if len(a) < 2:
        return None
    ra, rb = average_ranks([comparable(v) for v in a]), average_ranks([comparable(v) for v in b])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else None


def comparable(value: float) -> float:
    """`value` at 12 significant digits: what wins, ties and ranks are decided on."""
    return float(f"{value:.12g}")


def verdict(c: float, r: float) -> int:
    """1 if chosen wins, 0 on a tie, -1 if rejected wins."""
    c, r = comparable(c), comparable(r)
    return (c > r) - (c < r)


def matrices(sides: Mapping[str, tuple[Sequence[float | None], Sequence[float | None]]]
             ) -> tuple[list[list[float | None]], int, list[list[float | None]]]:
    """Spearman over replies every judge scored; pair agreement over pairs both scored.

    `sides`: judge name -> (chosen values, rejected values), None where unscored."""
    names = list(sides)
    columns = {n: list(c) + list(r) for n, (c, r) in sides.items()}
    common = [i for i in range(len(next(iter(columns.values()), [])))
              if all(columns[n][i] is not None for n in names)]
    rho: list[list[float | None]] = []
    agree: list[list[float | None]] = []
    for a in names:
        rho_row: list[float | None] = []
        agree_row: list[float | None] = []
        for b in names:
            rho_row.append(spearman([columns[a][i] for i in common], [columns[b][i] for i in common]))
            pa, pb = zip(*sides[a]), zip(*sides[b])
            both = [(verdict(ca, ra), verdict(cb, rb)) for (ca, ra), (cb, rb) in zip(pa, pb)
                    if None not in (ca, ra, cb, rb)]
            agree_row.append(sum(x == y for x, y in both) / len(both) if both else None)
        rho.append(rho_row)
        agree.append(agree_row)
    return rho, len(common), agree
