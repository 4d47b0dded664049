"""PPO's training metrics: the sums and means over all processes (one JSON line per step goes
to `<run>/metrics.jsonl` through `rlaif.runs.metrics_log`), and the closing summary.

Keys use "/" namespaces (`objective/kl`, `reward/mean`, `ppo/policy/clipfrac`, ...); the
full list is `METRIC_KEYS` plus `reward/<member>/mean` for each ensemble member.
Non-finite numbers are written as null (JSON has no NaN), never as a made-up 0.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rlaif.runs.folder import METRICS_FILE

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
    "judge/requests",            # API requests the reward judge made this step (retries included), all processes
    "judge/cost_usd",            # what they cost (USD), all processes; 0 for offline judges
    "time/generate",             # each phase of the step on its own (seconds)
    "time/reward",               # the judge, the score gather and reward processing
    "time/old_logprobs",         # the policy's logprobs and values of the responses (no grad)
    "time/ref",                  # the reference model's logprobs (no grad)
    "time/advantages",           # per-token rewards, whitening, GAE
    "time/update",               # the PPO epochs (forward + backward + optimizer)
    "time/step",
    "tokens/per_second",         # response tokens generated per second of step time
)
# Only when another engine samples the rollouts (generation.backend vllm):
SAMPLER_METRIC_KEYS = (
    "time/weight_sync",          # the policy's weights (or adapter) written and loaded on the engine
    "rollout/stale",             # 1: the batch came from the weights one step before the trainer's
                                 # (ppo.async_rollout; sampled while the last step updated), 0: fresh
    "rollout/sampler_kl",        # KL(sampler || trainer) per generated token (k3 estimate)
    "rollout/tis_capped",        # ppo.tis_cap set: share of generated tokens whose weight hit the cap
)


@contextlib.contextmanager
def timed(times: dict[str, float], key: str) -> Iterator[None]:
    """Record the block's wall-clock seconds as `times[key]`."""
    start = time.perf_counter()
    try:
        yield
    finally:
        times[key] = time.perf_counter() - start


def reduce_metrics(accelerator: Any, sums: Mapping[str, float],
                   means: Mapping[str, float]) -> dict[str, float]:
    """`sums` summed and `means` averaged over all processes, matched by name (every process
    must pass the same names); one all-reduce each."""
    import torch

    out: dict[str, float] = {}
    for values, reduction in ((sums, "sum"), (means, "mean")):
        if not values:
            continue
        keys = sorted(values)
        local = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                             device=accelerator.device)
        out.update(zip(keys, accelerator.reduce(local, reduction=reduction).tolist()))
    return out


def usage_metrics(totals: Mapping[str, float]) -> dict[str, Any]:
    """The judge's requests (a count) and cost of a step, from `reduce_metrics` sums of
    `JudgeUsageMeter.take()` over every process."""
    return {"judge/requests": round(totals["judge/requests"]),
            "judge/cost_usd": totals["judge/cost_usd"]}


def training_summary(history: Sequence[Mapping[str, Any]], run_dir: str | Path,
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
        f"  metrics: {Path(run_dir) / METRICS_FILE}",
    ]
    if checkpoint is not None:
        lines.append(f"  checkpoint: {checkpoint}")
    return "\n".join(lines)
