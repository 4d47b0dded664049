"""Rollout logprobs and values taken from generation itself, saving the policy's rollout forward.

While a causal LM generates, every forward call feeds the vocabulary projection (`lm_head`)
the final hidden state of the position that predicts the next token. Those are exactly the
states a separate rollout forward over prompt + response would compute (the value head reads
the same states), only computed incrementally with the KV cache. A forward pre-hook on the
output embeddings keeps them, (B, 1, H) per generated token, so logprobs, entropy and values
of the sampled tokens cost one `lm_head` and value-head pass instead of a full forward.

Numerically the incremental pass differs from a full forward by float rounding (1e-6 in
float32; more under bf16 autocast): PPO's first ratio is then 1 only to that precision.
`ppo.rollout_logprobs: forward` keeps the bit-exact full forward.

Only architectures whose logits are `lm_head(final hidden state)` and nothing else qualify:
models that scale or soft-cap logits after the projection (Gemma 2, Cohere) or rescale the
state before it (T5) would give wrong logprobs, so they, and seq2seq policies, use the forward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

# config.model_type values whose causal-LM head computes `logits = lm_head(hidden_states[-1])`.
CAPTURE_MODEL_TYPES = frozenset({
    "gpt2", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3",
    "qwen3_moe", "phi3", "olmo", "olmo2", "smollm3", "starcoder2",
})
# Config fields that, when set, mean the logits are transformed after the projection.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling",
                     "output_multiplier_scale")


def capture_unsupported_reason(config: Any, is_seq2seq: bool) -> str | None:
    """Why generation-time capture cannot be used for this model, or None when it can."""
    if is_seq2seq:
        return "seq2seq policies are scored with a forward pass"
    model_type = getattr(config, "model_type", None)
    if model_type not in CAPTURE_MODEL_TYPES:
        return (f"model_type {model_type!r} is not known to compute logits as lm_head(final "
                f"hidden state); known: {', '.join(sorted(CAPTURE_MODEL_TYPES))}")
    for name in _LOGIT_TRANSFORMS:
        value = getattr(config, name, None)
        if value not in (None, 1, 1.0):
            return f"config.{name}={value!r} transforms the logits after lm_head"
    return None


def use_generation_states(mode: str, config: Any, is_seq2seq: bool) -> bool:
    """Whether rollout logprobs and values come from generation (`ppo.rollout_logprobs`)."""
    reason = capture_unsupported_reason(config, is_seq2seq)
    if mode == "generate" and reason is not None:
        raise ValueError(f"ppo.rollout_logprobs=generate cannot be used: {reason}; "
                         "set ppo.rollout_logprobs to auto or forward")
    return mode != "forward" and reason is None


@contextlib.contextmanager
def capture_head_inputs(output_embeddings: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Within the block, keep the last position's input to `output_embeddings` on every call.

    Yields the list the states land in, one (B, 1, H) tensor per forward call.
    """
    states: list[torch.Tensor] = []

    def keep(_module: nn.Module, args: tuple[Any, ...]) -> None:
        states.append(args[0][:, -1:].detach())

    handle = output_embeddings.register_forward_pre_hook(keep)
    try:
        yield states
    finally:
        handle.remove()


def stack_states(states: list[torch.Tensor], response_len: int) -> torch.Tensor:
    """The captured states as (B, R, H); each generated token must have come from one call."""
    if len(states) != response_len:
        raise RuntimeError(
            f"generation made {len(states)} forward calls for {response_len} new tokens; "
            "generation-time scoring needs one call per token (plain sampling or greedy, no "
            "assisted decoding or beam search); set ppo.rollout_logprobs=forward"
        )
    return torch.cat(states, dim=1)
