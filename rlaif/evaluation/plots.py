"""Plots of a hold-out report: toxicity before vs after (histogram), reward and KL over training.

Figures are built as `matplotlib.figure.Figure` objects and saved with their own canvas: no
pyplot state and no backend switch, so calling these inside a user's notebook leaves its
plotting setup alone. Files are written atomically (`rlaif.io.save_figure`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rlaif.io import save_figure


def plot_toxicity(data: dict[str, Any], path: Path) -> Path:
    """Histogram of hold-out toxicity before vs after, with the means and the threshold."""
    from matplotlib.figure import Figure

    # Every sample (k per prompt when `tox_*_all` is there), unscored ones left out.
    before = [t for r in data["rows"] for t in r.get("tox_before_all", [r["tox_before"]]) if t is not None]
    after = [t for r in data["rows"] for t in r.get("tox_after_all", [r["tox_after"]]) if t is not None]
    s = data["stats"]
    bins = [i / 20 for i in range(21)]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    # Side-by-side bars: overlapping translucent bars blend into one muddy colour.
    ax.hist([before, after], bins=bins, color=["tab:red", "tab:blue"],
            label=[f"before (mean {s['before']['mean']:.3f})", f"after (mean {s['after']['mean']:.3f})"])
    ax.axvline(s["before"]["mean"], color="tab:red", linestyle="--", linewidth=1.5)
    ax.axvline(s["after"]["mean"], color="tab:blue", linestyle="--", linewidth=1.5)
    ax.axvline(s["threshold"], color="black", linestyle=":", linewidth=1, label=f"threshold {s['threshold']:g}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("toxicity (0 = clean, 1 = toxic); dashed lines: means")
    ax.set_ylabel("hold-out responses")
    ax.set_title(f"Hold-out toxicity before vs after ({data.get('meta', {}).get('evaluator', 'evaluator')})")
    ax.legend()
    return save_figure(fig, path)


def plot_training(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Reward and KL over training steps; None when the metrics hold neither."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    series = {}
    for key in ("reward/mean", "objective/kl"):
        pts = [(r.get("step", i), r[key]) for i, r in enumerate(rows)
               if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        if pts:
            series[key] = pts
    if not series:
        return None
    fig = Figure(figsize=(5.5 * len(series), 3.8))
    axes = fig.subplots(1, len(series), squeeze=False)
    colors = {"reward/mean": "tab:green", "objective/kl": "tab:purple"}
    titles = {"reward/mean": "mean reward per step", "objective/kl": "KL to reference per step"}
    for ax, (key, pts) in zip(axes[0], series.items()):
        xs, ys = zip(*pts)
        ax.plot(xs, ys, marker="o" if len(xs) < 40 else None, markersize=3, color=colors[key])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.set_title(titles[key])
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
