"""What training does to the LMs it trains, beyond loading them (`rlaif.models.load`): frozen copies,
dropout off, activation checkpointing. Each changes the model it is given, except `frozen_copy`."""

from __future__ import annotations

import copy

from torch import nn


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy with every parameter frozen, in eval mode (the full-copy reference)."""
    ref = copy.deepcopy(model)
    ref.requires_grad_(False)
    return ref.eval()


def enable_checkpointing(model: nn.Module) -> None:
    """Turn on non-reentrant activation checkpointing in `model`, and its KV cache off (config.use_cache)."""
    # Non-reentrant checkpointing needs no input grads, so it works under frozen LoRA bases.
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False


def disable_dropout(model: nn.Module) -> None:
    """Set every nn.Dropout in `model` to p=0 (PPO ratios must be 1 on unchanged weights)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
