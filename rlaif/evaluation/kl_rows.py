"""The KL rows of the hold-out report, named for what they are.

    hold-out KL(after || start) at T=0.7, k1, per reply (sum over tokens)
    hold-out KL(after || start) at T=0.7, k1, per token (total / tokens)      (and k3)

are estimated on the after model's replies with both logprobs at the sampling temperature,
log_softmax(logits / T): the distribution the replies were drawn from (`Holdout.kl`). The
training row is the mean of PPO's `objective/kl` over the last logged steps (`training_kl`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlaif.runs.folder import RunFolder

TRAINING_KL_STEPS = 5  # the training-KL row: mean of `objective/kl` over the last steps


def holdout_kl_name(temperature: float, kind: str, per: str) -> str:
    """The row name of a hold-out KL estimate: `per` is "reply" (sum over a reply's tokens, mean
    over replies) or "token" (total over every token / tokens)."""
    how = "per reply (sum over tokens)" if per == "reply" else "per token (total / tokens)"
    return f"hold-out KL(after || start) at T={temperature:g}, {kind}, {how}"


def training_kl(history: Sequence[Mapping[str, Any]], last: int = TRAINING_KL_STEPS, *,
                temperature: float | None = None, estimator: str | None = None) -> dict[str, float]:
    """The report's training-KL row: mean `objective/kl` over the last `last` logged steps.

    `objective/kl` (rlaif.ppo.trainer) is, per step, the mean over the rollout's scored replies
    of the sum over reply tokens of the `ppo.kl.estimator` estimate of KL(policy || reference),
    both logprobs at the sampling temperature, on the replies sampled before that step's update;
    the reference is the start model (adapters off, or the frozen copy). `temperature` and
    `estimator` name them in the row when known."""
    kls = [float(m["objective/kl"]) for m in history[-last:]
           if isinstance(m.get("objective/kl"), (int, float)) and math.isfinite(m["objective/kl"])]
    if not kls:
        return {}
    at = f"T={temperature:g}" if temperature is not None else "the sampling temperature"
    name = (f"training objective/kl: KL(policy || start) at {at}, {estimator or 'ppo.kl.estimator'}, "
            f"per reply (sum over tokens), on each step's rollout; mean of the last {len(kls)} steps")
    return {name: sum(kls) / len(kls)}


def run_training_kl(run_dir: Path) -> tuple[Path | None, dict[str, float]]:
    """A run folder's metrics.jsonl (None if it has none) and its training-KL row (named with the
    run's config.yaml sampling temperature and KL estimator when it has one)."""
    from rlaif.io import read_jsonl, read_yaml

    metrics = RunFolder(run_dir).metrics
    if not metrics.is_file():
        return None, {}
    config_path = RunFolder(run_dir).config
    config = (read_yaml(config_path, what="run config") or {}) if config_path.is_file() else None
    named: dict[str, Any] = {}
    if isinstance(config, dict) and isinstance(config.get("ppo"), dict):
        # the config's own defaults (rlaif.config) where the file leaves them out
        named = {"temperature": float((config.get("generation") or {}).get("temperature", 1.0)),
                 "estimator": str((config["ppo"].get("kl") or {}).get("estimator", "k1"))}
    return metrics, training_kl(read_jsonl(metrics), **named)


def kl_note(gen_kwargs: Mapping[str, Any]) -> str | None:
    """What the hold-out KL numbers are not, given the sampling settings (None: nothing to say)."""
    if not gen_kwargs.get("do_sample"):
        return "replies were decoded greedily, not sampled: the hold-out KL numbers are no KL estimate"
    if gen_kwargs.get("top_k") not in (0, None) or gen_kwargs.get("top_p") not in (1.0, None):
        return ("replies were sampled with top-k/top-p truncation but the logprobs are of the "
                "untruncated tempered distribution: the hold-out KL numbers are approximate")
    return None
