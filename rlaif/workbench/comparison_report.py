"""The files of a judge comparison: report.md, report.json and two PNG plots.

`write_comparison(report, out_dir)` writes them, each atomically. The plots (score
distributions, chosen vs rejected; the Spearman agreement heatmap) read the plain report
data (`ComparisonReport.to_dict()`, what report.json holds), so they can be redrawn from a
saved report. Figures are `matplotlib.figure.Figure` objects saved with their own canvas:
no pyplot state and no backend switch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlaif.io import atomic_write_text, save_figure
from rlaif.workbench.judge_comparison import ComparisonReport


def write_comparison(report: ComparisonReport, out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.json and the PNG plots into `out_dir`; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    paths = {
        "distributions": plot_distributions(data, out / "score_distributions.png"),
        "agreement": plot_agreement(data, out / "agreement.png"),
    }
    paths["json"] = out / "report.json"
    atomic_write_text(paths["json"], json.dumps(data, indent=2) + "\n")
    paths["md"] = out / "report.md"
    atomic_write_text(paths["md"], _markdown(report, paths))
    return paths


def _markdown(report: ComparisonReport, paths: Mapping[str, Path]) -> str:
    meta = report.meta
    settings = [f"- {k}: {v}" for k, v in meta.items() if k != "judges"]
    specs = [f"- judge **{n}**: {ref}" for n, ref in (meta.get("judges") or {}).items()]
    stopped = [f"- **{n}** stopped early: {r.stopped}" for n, r in report.results.items() if r.stopped]
    parts = [
        "# Judge comparison on preference pairs",
        "",
        f"{report.n_pairs} chosen/rejected pairs.",
        "",
        *settings,
        *specs,
        "",
        "Accuracy = pairs where chosen scores strictly higher than rejected, over pairs with "
        "both replies scored; ties (equal scores) are not wins and are reported apart. "
        "Latency is per request where the judge reports it, else per batch call.",
        "",
        report.table(),
        "",
        *(stopped + [""] if stopped else []),
        f"## Spearman rank correlation ({report.spearman_n} replies scored by every judge)",
        "",
        report.matrix_table("spearman"),
        "",
        "## Pair agreement (same verdict: chosen better / worse / tied)",
        "",
        report.matrix_table("agreement"),
        "",
        "## Plots",
        "",
        f"![score distributions]({paths['distributions'].name})",
        "",
        f"![agreement]({paths['agreement'].name})",
        "",
    ]
    return "\n".join(parts)


def plot_distributions(data: Mapping[str, Any], path: Path) -> Path:
    """One panel per judge: histograms of chosen and rejected scores on shared bins."""
    from matplotlib.figure import Figure

    judges: Mapping[str, Any] = data["judges"]
    names = list(judges)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, name in zip(axes.flat, names):
        scores = data["scores"][name]
        chosen = [v for v in scores["chosen"] if v is not None]
        rejected = [v for v in scores["rejected"] if v is not None]
        lo, hi = judges[name]["scale"]
        everything = chosen + rejected
        if everything:  # classifier logits may fall outside the declared scale
            lo, hi = min(lo, min(everything)), max(hi, max(everything))
        bins = [lo + (hi - lo) * i / 20 for i in range(21)]
        ax.hist(chosen, bins=bins, alpha=0.6, label=f"chosen (n={len(chosen)})", color="tab:green")
        ax.hist(rejected, bins=bins, alpha=0.6, label=f"rejected (n={len(rejected)})", color="tab:red")
        acc = judges[name]["accuracy"]
        ax.set_title(f"{name}: accuracy {'n/a' if acc is None else f'{100 * acc:.1f}%'}", fontsize=10)
        ax.set_xlabel("score")
        ax.set_ylabel("replies")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(f"Score distributions on {data['n_pairs']} HH pairs", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_agreement(data: Mapping[str, Any], path: Path) -> Path:
    """Heatmap of the Spearman rank correlation between judges (n/a cells left grey)."""
    import numpy as np
    from matplotlib.figure import Figure

    spearman = data["spearman"]
    names = list(spearman["judges"])
    n = len(names)
    matrix = np.array([[np.nan if v is None else v for v in row] for row in spearman["matrix"]], dtype=float)
    size = 1.2 + 0.9 * n
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.subplots()
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
    ax.set_title(f"Judge agreement ({spearman['n_responses']} replies)", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)
