"""Train with hold-out evaluation around it: what `rlaif train` runs.

    1. before   the start policy answers the held-out prompts; the evaluator scores them
    2. PPO      the trainer's run (resumable)
    3. after    same prompts, seed and generation settings; report.md/json + PNGs

The evaluator defaults to the RoBERTa hate-speech classifier (toxicity = P(hate)); it is
best a different judge than the reward, so reward hacking shows up in the report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from rlaif.config import RunConfig

log = logging.getLogger(__name__)

DEFAULT_EVALUATOR = "roberta-hate"


@dataclass
class PipelineResult:
    """The training result and, when evaluation ran, the hold-out report."""

    train: Any  # rlaif.ppo.trainer.TrainResult
    holdout: Any | None = None  # rlaif.evaluation.HoldoutReport


def train_and_evaluate(config: RunConfig) -> PipelineResult:
    """Run `config`: PPO, with the before/after hold-out evaluation when `eval.enabled`."""
    from rlaif.evaluation import run_holdout_evaluation
    from rlaif.ppo.trainer import PPOTrainer

    trainer = PPOTrainer(config)
    ev = config.eval
    evaluate = ev.enabled and trainer.accelerator.is_main_process
    if ev.enabled and not trainer.eval_prompts:
        raise ValueError(
            "eval.enabled is true but the data split left no held-out prompts; set "
            f"data.test_size > 0 (now {config.data.test_size!r}) or eval.enabled=false"
        )
    evaluator = ev.evaluator if ev.evaluator is not None else DEFAULT_EVALUATOR
    if evaluator == config.judge.ref:
        log.warning("the evaluator is the reward judge (%s): reward hacking would not show in "
                    "the report; set eval.evaluator to a different judge", evaluator)
    prompts = trainer.eval_prompts[: ev.n]
    common: dict[str, Any] = dict(
        gen_kwargs=config.generation.generate_kwargs(), seed=config.data.seed,
        threshold=ev.threshold, batch_size=config.ppo.batch_size,
    )
    if evaluate:
        print(f"hold-out before: {len(prompts)} prompts, evaluator {evaluator}", flush=True)
        run_holdout_evaluation("before", trainer.policy, trainer.tokenizer, prompts, evaluator,
                               trainer.run_dir, **common)
    trainer.accelerator.wait_for_everyone()
    result = trainer.train()
    holdout = None
    if evaluate:
        kls = [m["objective/kl"] for m in result.history[-5:] if m.get("objective/kl") is not None]
        kl = {"training objective/kl, mean of the last steps": sum(kls) / len(kls)} if kls else None
        print(f"hold-out after: {len(prompts)} prompts", flush=True)
        holdout = run_holdout_evaluation(
            "after", trainer.policy, trainer.tokenizer, prompts, evaluator, trainer.run_dir,
            kl=kl, metrics_path=trainer.run_dir / "metrics.jsonl", **common,
        )
    return PipelineResult(train=result, holdout=holdout)
