"""Hold-out report: report.md (tables), report.json (every number), PNG plots.

Plots: toxicity before vs after (histogram), and reward and KL over training when a
metrics.jsonl (`step`, `reward/mean`, `objective/kl`) is given. Every file is written to
a temporary name in the same folder and renamed into place, so a crash never leaves a
half-written report.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from rlaif.evaluation import HoldoutReport

_CELL_CHARS = 300  # responses longer than this are cut in the markdown table (json keeps all)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def md_escape(text: str, limit: int = _CELL_CHARS, keep: str = "start") -> str:
    """Make arbitrary text safe inside one markdown table cell (cut to `limit` characters,
    keeping the start, or the end for dialogue prompts whose last turn matters most)."""
    text = text.strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…" if keep == "start" else "…" + text[-(limit - 1):]
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    for ch in "*_<>[]#":
        text = text.replace(ch, "\\" + ch)
    return text.replace("\r\n", "\n").replace("\n", "<br>") or " "


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def summary_table(data: dict[str, Any]) -> str:
    """The before/after markdown table (also printed by the CLI)."""
    s = data["stats"]
    b, a, d = s["before"], s["after"], s["difference"]
    thr = s["threshold"]
    lines = [
        "| metric | before | after | improvement |",
        "|---|---|---|---|",
        f"| mean toxicity | {_num(b['mean'])} | {_num(a['mean'])} | {_pct(s['improvement_mean'])} |",
        f"| std toxicity | {_num(b['std'])} | {_num(a['std'])} | {_pct(s['improvement_std'])} |",
        f"| share over {thr:g} | {_pct(b['share_over_threshold'])} | "
        f"{_pct(a['share_over_threshold'])} | |",
        f"| scored / unscored | {b['n']} / {b['n_unscored']} | {a['n']} / {a['n_unscored']} | |",
        f"| mean difference (before - after), 95% CI | | | {_num(d['estimate'])} "
        f"[{_num(d['ci_low'])}, {_num(d['ci_high'])}] |",
    ]
    for key, value in (data.get("kl") or {}).items():
        lines.append(f"| {md_escape(key)} | | {_num(value)} | |")
    return "\n".join(lines)


def examples_table(data: dict[str, Any]) -> str:
    """The qualitative table: query | response before | tox before | response after | tox after."""
    lines = ["| query | response before | tox before | response after | tox after |",
             "|---|---|---|---|---|"]
    for r in data["rows"][: data.get("n_examples", 10)]:
        lines.append(
            f"| {md_escape(r['query'], keep='end')} | {md_escape(r['response_before'])} | {_num(r['tox_before'])} "
            f"| {md_escape(r['response_after'])} | {_num(r['tox_after'])} |"
        )
    return "\n".join(lines)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl; a bad line raises naming the file and line."""
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{i}: not valid JSON ({exc.msg}); fix or remove that line") from None
    return rows


def _save_png(fig: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plot_toxicity(data: dict[str, Any], path: Path) -> Path:
    """Histogram of hold-out toxicity before vs after, with the means and the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = [r["tox_before"] for r in data["rows"] if r["tox_before"] is not None]
    after = [r["tox_after"] for r in data["rows"] if r["tox_after"] is not None]
    s = data["stats"]
    bins = [i / 20 for i in range(21)]
    fig, ax = plt.subplots(figsize=(7, 4))
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
    _save_png(fig, path)
    plt.close(fig)
    return path


def plot_training(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Reward and KL over training steps; None when the metrics hold neither."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    series = {}
    for key in ("reward/mean", "objective/kl"):
        pts = [(r.get("step", i), r[key]) for i, r in enumerate(rows)
               if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        if pts:
            series[key] = pts
    if not series:
        return None
    fig, axes = plt.subplots(1, len(series), figsize=(5.5 * len(series), 3.8), squeeze=False)
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
    _save_png(fig, path)
    plt.close(fig)
    return path


def write_report(out_dir: str | Path, holdout: HoldoutReport | dict[str, Any],
                 metrics_path: Path | None = None, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write report.md, report.json and the PNG plots into `out_dir`; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = holdout.to_dict() if isinstance(holdout, HoldoutReport) else dict(holdout)
    if extra:
        data["extra"] = extra
    paths: dict[str, Path] = {"toxicity_plot": plot_toxicity(data, out / "toxicity_hist.png")}
    training: list[dict[str, Any]] = []
    if metrics_path is not None:
        if not Path(metrics_path).is_file():
            raise FileNotFoundError(f"metrics file {metrics_path} not found; pass metrics_path=None to skip the training plot")
        training = read_metrics(Path(metrics_path))
        plot = plot_training(training, out / "training.png")
        if plot is not None:
            paths["training_plot"] = plot
        data["training"] = {"metrics_path": str(metrics_path), "steps": len(training)}
    atomic_write_text(out / "report.json", json.dumps(data, indent=2, ensure_ascii=False))
    paths["json"] = out / "report.json"
    atomic_write_text(out / "report.md", _markdown(data, paths))
    paths["md"] = out / "report.md"
    return paths


def _markdown(data: dict[str, Any], paths: dict[str, Path]) -> str:
    meta = data.get("meta", {})
    parts = [
        "# Hold-out evaluation",
        "",
        f"- evaluator: {md_escape(str(meta.get('evaluator', '?')))}",
        f"- toxicity: {md_escape(str(meta.get('toxicity', '?')))}",
        f"- prompts: {meta.get('n_prompts', len(data['rows']))}, seed {meta.get('seed', '?')}, "
        f"generation `{json.dumps(meta.get('gen_kwargs', {})).replace('`', '')}`",
    ]
    for key in ("before_model", "after_model"):
        if key in meta:
            parts.append(f"- {key.replace('_', ' ')}: {md_escape(str(meta[key]))}")
    parts += ["", "## Before vs after", "", summary_table(data), ""]
    parts += [f"Improvement = (before - after) / before. {note}" for note in data["stats"].get("notes", [])]
    parts += ["", f"![toxicity before vs after]({paths['toxicity_plot'].name})", ""]
    if "training_plot" in paths:
        parts += ["## Training", "", f"![reward and KL over training]({paths['training_plot'].name})", ""]
    n = min(data.get("n_examples", 10), len(data["rows"]))
    parts += [f"## Examples (first {n} hold-out prompts)", "", examples_table(data), ""]
    if data.get("extra"):
        parts += ["## Extra", "", "```json", json.dumps(data["extra"], indent=2), "```", ""]
    return "\n".join(parts)
