"""A diverged run stops: a non-finite rollout quantity, loss, gradient or weight fails its step.

A NaN or inf never reaches a checkpoint or `final/`. Found before the update (in the rollout),
the trainer saves the last finished step, whose weights were finite (`interrupt.save_after_abort`);
found during or after the update, nothing new is saved and the last checkpoint stays.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class TrainingDiverged(ValueError):
    """A training quantity became NaN or infinite."""


def _fail(step: int, what: str) -> None:
    raise TrainingDiverged(
        f"step {step}: {what} is not finite (NaN or inf): the run diverged; nothing of this step is "
        "kept. Lower ppo.learning_rate (or ppo.vf_coef, the reward scale), keep ppo.max_grad_norm "
        "set, and start again or --resume from the last checkpoint")


def check_finite(step: int, mask: torch.Tensor, **tensors: torch.Tensor) -> None:
    """Every tensor finite where `mask` (B, R) is set, else TrainingDiverged naming it."""
    keep = mask.bool()
    for name, tensor in tensors.items():
        if not bool(torch.isfinite(tensor[keep]).all()):
            _fail(step, name)


def check_value(step: int, name: str, value: torch.Tensor | float) -> None:
    """A scalar (a loss, a gradient norm) finite, else TrainingDiverged naming it."""
    if not bool(torch.isfinite(torch.as_tensor(value)).all()):
        _fail(step, name)


def check_weights(step: int, named: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Every trainable weight finite after an update, else TrainingDiverged naming the first."""
    for name, param in named:
        if param.requires_grad and not bool(torch.isfinite(param.detach()).all()):
            _fail(step, f"weight {name} after the update")
