"""PNG plots for `rlaif compare`: score distributions (chosen vs rejected) and the
Spearman agreement heatmap. Written with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlaif.compare import ComparisonReport


def _figure(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def _save(fig: Any, path: Path) -> Path:
    """Write the PNG atomically (temp file + rename) and free the figure."""
    import matplotlib.pyplot as plt

    from rlaif.report import _save_png  # shared atomic PNG writer of the reports

    try:
        _save_png(fig, path)
    finally:
        plt.close(fig)
    return path


def plot_distributions(report: ComparisonReport, path: Path) -> Path:
    """One panel per judge: histograms of chosen and rejected scores on shared bins."""
    names = report.names
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = _figure(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        result = report.results[name]
        chosen = [v for v in result.values("chosen") if v is not None]
        rejected = [v for v in result.values("rejected") if v is not None]
        lo, hi = result.scale
        everything = chosen + rejected
        if everything:  # classifier logits may fall outside the declared scale
            lo, hi = min(lo, min(everything)), max(hi, max(everything))
        bins = [lo + (hi - lo) * i / 20 for i in range(21)]
        ax.hist(chosen, bins=bins, alpha=0.6, label=f"chosen (n={len(chosen)})", color="tab:green")
        ax.hist(rejected, bins=bins, alpha=0.6, label=f"rejected (n={len(rejected)})", color="tab:red")
        acc = result.metrics()["accuracy"]
        ax.set_title(f"{name}: accuracy {'n/a' if acc is None else f'{100 * acc:.1f}%'}", fontsize=10)
        ax.set_xlabel("score")
        ax.set_ylabel("replies")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(f"Score distributions on {report.n_pairs} HH pairs", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_agreement(report: ComparisonReport, path: Path) -> Path:
    """Heatmap of the Spearman rank correlation between judges (n/a cells left grey)."""
    import numpy as np

    names = report.names
    n = len(names)
    matrix = np.array([[np.nan if v is None else v for v in row] for row in report.spearman], dtype=float)
    size = 1.2 + 0.9 * n
    fig, ax = _figure(figsize=(size + 1.2, size))
    ax.set_facecolor("0.85")
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="RdBu", vmin=-1, vmax=1)
    ax.set_xticks(range(n), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(n), labels=names)
    for i in range(n):
        for j in range(n):
            v = matrix[i, j]
            ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center", va="center",
                    color="white" if not np.isnan(v) and abs(v) > 0.6 else "black", fontsize=9)
    fig.colorbar(image, ax=ax, label="Spearman rho")
    ax.set_title(f"Judge agreement ({report.spearman_n} replies)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
