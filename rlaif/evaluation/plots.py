"""Plots of a hold-out report: toxicity and reply length before vs after (histograms), reward
and KL over training.

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


def plot_lengths(data: dict[str, Any], path: Path) -> Path | None:
    """Histogram of reply lengths (tokens, EOS excluded) before vs after; None when the report's
    rows hold no token counts (a report written before they existed)."""
    from matplotlib.figure import Figure

    rows = data["rows"]
    if not rows or not all("tokens_before_all" in r and "tokens_after_all" in r for r in rows):
        return None
    before = [n for r in rows for n in r["tokens_before_all"]]
    after = [n for r in rows for n in r["tokens_after_all"]]
    top = max(before + after + [1])
    step = max(1, math.ceil((top + 1) / 40))  # at most ~40 bins, whole tokens each
    bins = list(range(0, top + step + 1, step))
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.hist([before, after], bins=bins, color=["tab:red", "tab:blue"],
            label=[f"before (median {_median(before):g})", f"after (median {_median(after):g})"])
    ax.set_xlabel("reply length (tokens, EOS excluded)")
    ax.set_ylabel("hold-out replies")
    ax.set_title("Hold-out reply length before vs after")
    ax.legend()
    return save_figure(fig, path)


def _median(values: list[int]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


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
