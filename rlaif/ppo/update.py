"""Step 6 of PPO: epochs over shuffled minibatches of a rollout, clipped policy and value
losses (`core.py`), gradient accumulation and clipping, AdamW and the LR schedule."""

from __future__ import annotations

from typing import Any

import torch

from rlaif.config import PPOConfig
from rlaif.ppo.core import policy_loss, value_loss
from rlaif.ppo.finite import check_value, check_weights
from rlaif.ppo.rollout import Rollout

# What one update reports: each the mean over the minibatches that held a scored sample.
UPDATE_METRICS = ("ppo/loss/policy", "ppo/loss/value", "ppo/loss/total", "ppo/policy/clipfrac",
                  "ppo/policy/approxkl", "ppo/val/clipfrac")


def ppo_update(rollout: Rollout, wrapped_policy: Any, policy: Any, optimizer: Any, scheduler: Any,
               accelerator: Any, *, ppo: PPOConfig, temperature: float, step: int) -> dict[str, float]:
    """Train `policy` (through its DDP / DeepSpeed wrapper) on `rollout` for `ppo.ppo_epochs`
    epochs; returns `UPDATE_METRICS` (NaN where no minibatch held a scored sample).

    Steps `optimizer` and `scheduler` in place; the policy is left in eval mode. A non-finite
    loss, gradient norm or weight raises `TrainingDiverged` naming it and `step`.
    """
    stats: dict[str, list[float]] = {key: [] for key in UPDATE_METRICS}
    policy.train()
    for _ in range(ppo.ppo_epochs):
        perm = torch.randperm(rollout.query_ids.size(0)).to(accelerator.device)
        for start in range(0, len(perm), ppo.mini_batch_size):
            mb = perm[start:start + ppo.mini_batch_size]
            mb_mask = rollout.loss_mask[mb]
            with accelerator.accumulate(wrapped_policy):
                out = wrapped_policy(rollout.query_ids[mb], rollout.query_mask[mb],
                                     rollout.response_ids[mb], rollout.response_mask[mb],
                                     temperature=temperature, with_entropy=False)
                if mb_mask.sum() == 0:
                    # Only unscored samples here: a zero loss that still touches every
                    # parameter, so DDP's gradient all-reduce stays in step.
                    loss = 0.0 * (out.logprobs.sum() + out.values.sum())
                else:
                    mb_weights = rollout.is_weights[mb] if rollout.is_weights is not None else None
                    pg_loss, pg_stats = policy_loss(out.logprobs, rollout.logprobs[mb],
                                                    rollout.advantages[mb], mb_mask, ppo.cliprange,
                                                    weights=mb_weights)
                    vf_loss, vf_stats = value_loss(out.values, rollout.values[mb], rollout.returns[mb],
                                                   mb_mask, ppo.cliprange_value)
                    loss = pg_loss + ppo.vf_coef * vf_loss
                    check_value(step, "the PPO loss", loss.detach())
                    for key, value in zip(UPDATE_METRICS, (pg_loss, vf_loss, loss, pg_stats["clipfrac"],
                                                           pg_stats["approxkl"], vf_stats["vf_clipfrac"])):
                        stats[key].append(float(value.detach()))
                accelerator.backward(loss)
                if accelerator.sync_gradients and ppo.max_grad_norm is not None:
                    norm = accelerator.clip_grad_norm_(wrapped_policy.parameters(), ppo.max_grad_norm)
                    if norm is not None:  # DeepSpeed clips inside its engine and returns None
                        check_value(step, "the gradient norm", norm)
                optimizer.step()
                if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                    scheduler.step()
                optimizer.zero_grad()
    policy.eval()
    check_weights(step, policy.named_parameters())
    return {key: sum(vals) / len(vals) if vals else float("nan") for key, vals in stats.items()}
