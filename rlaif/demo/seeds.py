"""Several PPO seeds of one demo: each seed's headline numbers side by side, and their spread.

One seed on one machine is an anecdote: the same command's PPO trajectory moves with the
seed (and with the CPU's float rounding), while the "before" side does not. `rlaif demo
--seeds N` runs seeds 0..N-1 into `<out>/seed-<s>/` and this module writes `<out>/seeds.md`
and `seeds.json` from their report.json files: one row per metric, one column per seed, then
the mean, the sample standard deviation and the range.
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rlaif.io import atomic_write_json, atomic_write_text
from rlaif.markdown import md_escape
from rlaif.runs.folder import BEFORE_FILE, CONTROL_BEFORE_FILE

SEED_DIR = "seed-{seed}"
BEFORE_FILES = (BEFORE_FILE, CONTROL_BEFORE_FILE)


def reuse_before(source_run: Path, target_run: Path) -> list[Path]:
    """Copy the "before" files of one run into another (the pipeline still checks that their
    prompts and settings match, and recomputes them when they do not)."""
    copied = []
    for name in BEFORE_FILES:
        if (Path(source_run) / name).is_file():
            copied.append(Path(shutil.copy2(Path(source_run) / name, Path(target_run) / name)))
    return copied


def _get(*keys: str | int) -> Callable[[dict[str, Any]], float | None]:
    def get(report: dict[str, Any]) -> float | None:
        value: Any = report
        for key in keys:
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and isinstance(key, int) and key < len(value):
                value = value[key]
            else:
                return None
        return float(value) if isinstance(value, (int, float)) else None
    return get


# (row name, how to read it from report.json). Rows a report does not hold are left out.
HEADLINE: tuple[tuple[str, Callable[[dict[str, Any]], float | None]], ...] = (
    ("mean toxicity, before", _get("stats", "before", "mean")),
    ("mean toxicity, after", _get("stats", "after", "mean")),
    ("mean toxicity, improvement", _get("stats", "improvement_mean")),
    ("mean difference, 95% CI low", _get("stats", "difference", "ci_low")),
    ("mean difference, 95% CI high", _get("stats", "difference", "ci_high")),
    ("toxicity probability, before", _get("stats", "rtp", "before", "toxicity_probability")),
    ("toxicity probability, after", _get("stats", "rtp", "after", "toxicity_probability")),
    ("expected max toxicity, before", _get("stats", "rtp", "before", "expected_max_toxicity")),
    ("expected max toxicity, after", _get("stats", "rtp", "after", "expected_max_toxicity")),
    *((f"{name}, {side}", _get("metrics", side, *keys)) for name, keys in (
        ("helpfulness", ("helpfulness_mean",)),
        ("deflection share", ("deflection_share",)),
        ("reply length median (tokens)", ("length", "median")),
        ("replies <= 3 tokens, share", ("length", "share_at_most_3")),
        ("distinct-2", ("distinct", "2")),
        ("perplexity under the start model", ("perplexity", "value")),
    ) for side in ("before", "after")),
    ("helpfulness difference (after - before)", _get("stats", "helpfulness", "difference", "estimate")),
    ("hold-out KL(after || start), k1, per token", lambda r: _kl(r, "k1, per token")),
    ("hold-out KL(after || start), k1, per reply", lambda r: _kl(r, "k1, per reply")),
)


def _kl(report: dict[str, Any], kind: str) -> float | None:
    for key, value in (report.get("kl") or {}).items():
        if key.startswith("hold-out KL") and kind in key and isinstance(value, (int, float)):
            return float(value)
    return None


def seed_rows(reports: Sequence[dict[str, Any]],
              extra: Sequence[tuple[str, Callable[[dict[str, Any]], float | None]]] = ()
              ) -> list[dict[str, Any]]:
    """One row per headline metric: each seed's value, mean, sample std (n-1) and range."""
    rows = []
    for name, get in (*HEADLINE, *extra):
        values = [get(r) for r in reports]
        if all(v is None for v in values):
            continue
        present = [v for v in values if v is not None]
        rows.append({"metric": name, "values": values, "mean": statistics.fmean(present),
                     "std": statistics.stdev(present) if len(present) > 1 else None,
                     "min": min(present), "max": max(present)})
    return rows


def write_seed_summary(out: Path, reports: Sequence[dict[str, Any]], seeds: Sequence[int],
                       extra: Sequence[tuple[str, Callable[[dict[str, Any]], float | None]]] = ()
                       ) -> str:
    """`<out>/seeds.json` and `seeds.md` from the seeds' reports; returns the markdown table."""
    rows = seed_rows(reports, extra)
    head = "| metric | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | std | range |"
    lines = [head, "|---" * (len(seeds) + 4) + "|"]
    for row in rows:
        cells = [_fmt(v) for v in row["values"]]
        lines.append(f"| {md_escape(row['metric'])} | " + " | ".join(cells)
                     + f" | {_fmt(row['mean'])} | {_fmt(row['std'])} | "
                     f"{_fmt(row['min'])} .. {_fmt(row['max'])} |")
    table = "\n".join(lines)
    atomic_write_json(out / "seeds.json", {"seeds": list(seeds), "rows": rows,
                                           "runs": [SEED_DIR.format(seed=s) for s in seeds]})
    atomic_write_text(out / "seeds.md", "# The demo across PPO seeds\n\nEach seed's report is in "
                      + ", ".join(f"`{SEED_DIR.format(seed=s)}/report.md`" for s in seeds)
                      + ". std is the sample standard deviation over seeds (n - 1).\n\n" + table + "\n")
    return table


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
