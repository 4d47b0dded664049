"""A PPO rollout on one process: responses sampled from the policy, and how they are scored.

    sample_responses   tokenised queries -> one batched `generate` -> EOS-truncated responses
                       (plus the hidden states generation computed, when they are used)
    score_rollout      policy logprobs, values and entropy, and reference logprobs (no grad)
    Rollout            the step's experience the PPO update trains on

Nothing here touches the optimiser; `trainer.py` strings these together step by step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rlaif.models.generate import tokenize_queries, truncate_response


@dataclass
class Responses:
    """Sampled responses on this process: queries (B, Q), responses cut after their first EOS (B, R)."""

    query_ids: torch.Tensor  # (B, Q), padded on the tokenizer's side
    query_mask: torch.Tensor  # (B, Q)
    response_ids: torch.Tensor  # (B, R), pad after the first EOS
    response_mask: torch.Tensor  # (B, R), 1 up to and including the first EOS
    states: torch.Tensor | None  # (B, R, H): final hidden states that predicted each token


@dataclass
class Rollout:
    """One step's experience on this process; tensors are (B, R) unless noted."""

    query_ids: torch.Tensor  # (B, Q)
    query_mask: torch.Tensor  # (B, Q)
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    scored: torch.Tensor  # (B,) bool: the judge gave the sample a score
    loss_mask: torch.Tensor  # response_mask with unscored samples' rows zeroed
    logprobs: torch.Tensor  # the policy's, at sampling time
    values: torch.Tensor
    entropy: torch.Tensor
    kl: torch.Tensor  # per-token KL(policy || reference) estimate
    non_score_rewards: torch.Tensor  # -kl_coef * kl on scored samples' tokens
    advantages: torch.Tensor
    returns: torch.Tensor


def sample_responses(policy: Any, tokenizer: Any, prompts: Sequence[str], *,
                     gen_kwargs: dict[str, Any], max_prompt_tokens: int, capture: bool,
                     accelerator: Any, chat: bool = False,
                     system_prompt: str | None = None) -> Responses:
    """One batched `generate` call on `prompts` (chat: rendered through the chat template);
    everything after a response's first EOS (`gen_kwargs["eos_token_id"]`, every id the model
    declares) becomes padding. Puts the policy in eval mode."""
    policy.eval()
    query_ids, query_mask = tokenize_queries(tokenizer, prompts, max_prompt_tokens, accelerator.device,
                                             chat=chat, system_prompt=system_prompt)
    with torch.no_grad(), accelerator.autocast():
        raw_response_ids, states = policy.generate_with_states(
            query_ids, query_mask, capture=capture, **gen_kwargs)  # (B, R), (B, R, H) | None
    response_ids, response_mask = truncate_response(
        raw_response_ids, gen_kwargs["eos_token_id"], tokenizer.pad_token_id)
    return Responses(query_ids, query_mask, response_ids, response_mask, states)


def score_rollout(policy: Any, query_ids: torch.Tensor, query_mask: torch.Tensor,
                  response_ids: torch.Tensor, response_mask: torch.Tensor, *,
                  states: torch.Tensor | None, temperature: float, chunk: int | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Policy logprobs, values, entropy and reference logprobs (B, R) of a batch of responses.

    The policy side comes from the generation `states` when given (`PolicyWithValueHead.
    score_states`), else from a forward pass. Passes take `chunk` samples at a time (None: the
    whole batch) in order of length, so each is padded only to its own longest sample
    (`forward_response` drops the shared padding); results come back in batch order, float32.
    """
    batch = query_ids.size(0)
    chunk = chunk or batch
    order = torch.arange(batch, device=query_ids.device)
    if chunk < batch:
        lengths = query_mask.sum(1) + response_mask.sum(1)  # (B,)
        order = torch.sort(lengths, stable=True).indices
    parts: list[tuple[torch.Tensor, ...]] = []
    # inference_mode: no autograd bookkeeping at all; the copies below (outside it) turn the
    # results into ordinary tensors that the update's losses may use.
    with torch.inference_mode():
        for s in range(0, batch, chunk):
            rows = order[s:s + chunk]
            args = (query_ids[rows], query_mask[rows], response_ids[rows], response_mask[rows])
            if states is not None:
                out = policy.score_states(states[rows], response_ids[rows], temperature=temperature)
            else:
                out = policy.forward_response(*args, temperature=temperature)
            ref = policy.forward_response(*args, reference=True, with_entropy=False,
                                          temperature=temperature)
            parts.append((out.logprobs.float(), out.values.float(), out.entropy.float(),
                          ref.logprobs.float()))
    inverse = torch.argsort(order)  # sorted position of each sample
    logprobs, values, entropy, ref_logprobs = (torch.cat(p)[inverse] for p in zip(*parts))
    return logprobs, values, entropy, ref_logprobs
