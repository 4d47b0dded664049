"""Training metrics: one JSON line per PPO step in `<run>/metrics.jsonl`, and the closing summary.

Keys use "/" namespaces (`objective/kl`, `reward/mean`, `ppo/policy/clipfrac`, ...); the
full list is `METRIC_KEYS` plus `reward/<member>/mean` for each ensemble member.
Non-finite numbers are written as null (JSON has no NaN), never as a made-up 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

METRICS_FILENAME = "metrics.jsonl"

METRIC_KEYS = (
    "step",
    "objective/kl",              # KL(policy || reference) summed over response tokens, mean over samples
    "objective/kl_coef",         # the KL coefficient used this step
    "objective/entropy",         # policy entropy per response token (nats)
    "objective/non_score_reward",  # -kl_coef * KL summed over tokens, mean over samples
    "reward/mean",               # the judge's scores (before normalisation/clipping)
    "reward/std",
    "reward/unscored",           # samples the judge could not score (skipped)
    "reward/scored",
    "reward/processed_mean",     # what PPO saw: after normalisation and clipping
    "ppo/policy/clipfrac",
    "ppo/policy/approxkl",
    "ppo/val/var_explained",
    "ppo/val/clipfrac",
    "ppo/loss/policy",
    "ppo/loss/value",
    "ppo/loss/total",
    "ppo/lr",
    "response/length",           # tokens per response, EOS included
    "batch/size",                # prompts this step, all processes together
    "time/generate",
    "time/judge",
    "time/update",               # rollout forward passes (policy, reference) + PPO epochs
    "time/step",
    "tokens/per_second",         # response tokens generated per second of step time
)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Appends one JSON object per step to `metrics.jsonl` (main process only)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True) -> None:
        self.path = Path(run_dir) / METRICS_FILENAME
        self.enabled = enabled

    def reset(self, keep_through_step: int = 0) -> None:
        """Drop lines of steps after `keep_through_step` (a resumed run rewrites them)."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [row for row in read_metrics(self.path) if row.get("step", 0) <= keep_through_step] \
            if self.path.exists() else []
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in kept))
        tmp.replace(self.path)

    def write(self, metrics: Mapping[str, Any]) -> None:
        """Append one step's metrics."""
        if not self.enabled:
            return
        with self.path.open("a") as fh:
            fh.write(json.dumps({k: _clean(v) for k, v in metrics.items()}) + "\n")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a metrics.jsonl (a run folder or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILENAME
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not a JSON line ({exc}); the file is damaged") from None
    return rows


def member_values(details: Iterable[Mapping[str, Any] | None]) -> dict[str, list[float]]:
    """Raw ensemble member values per member name, from Score.details of one batch."""
    out: dict[str, list[float]] = {}
    for d in details:
        members = (d or {}).get("members") or {}
        for name, entry in members.items():
            raw = entry.get("raw") if isinstance(entry, Mapping) else None
            out.setdefault(name, [])
            if raw is not None:
                out[name].append(float(raw))
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std; NaN for an empty list (nothing was measured)."""
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def summary(history: Sequence[Mapping[str, Any]], run_dir: str | Path,
            checkpoint: str | Path | None) -> str:
    """A few lines a person can read at the end of a run."""
    if not history:
        return f"no PPO step was run; run folder: {run_dir}"

    def fmt(key: str, row: Mapping[str, Any]) -> str:
        value = row.get(key)
        return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) \
            else f"{value:.4g}"

    first, last = history[0], history[-1]
    seconds = sum(row.get("time/step") or 0.0 for row in history)
    unscored = sum(row.get("reward/unscored") or 0 for row in history)
    lines = [
        f"PPO: {len(history)} step(s) (steps {first['step']}..{last['step']}) in {seconds:.1f}s",
        f"  reward/mean  {fmt('reward/mean', first)} -> {fmt('reward/mean', last)}",
        f"  objective/kl {fmt('objective/kl', first)} -> {fmt('objective/kl', last)}"
        f"  (kl_coef {fmt('objective/kl_coef', last)})",
        f"  unscored samples: {unscored}",
        f"  metrics: {Path(run_dir) / METRICS_FILENAME}",
    ]
    if checkpoint is not None:
        lines.append(f"  checkpoint: {checkpoint}")
    return "\n".join(lines)
