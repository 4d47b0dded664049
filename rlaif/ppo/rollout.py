"""A PPO rollout on one process: responses sampled from the policy, and how they are scored.

    sample_responses   tokenised queries -> one batched `generate` -> EOS-truncated responses
                       (plus the hidden states generation computed, when they are used)
    policy_pass        the policy's logprobs, values and entropy (no grad; "old" logprobs)
    reference_pass     the reference model's logprobs (no grad)
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
    # (B, R): each token's logprob under the engine that sampled it, when that is not the trainer
    # (generation.backend vllm); 0 at padding
    sampler_logprobs: torch.Tensor | None = None


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
    # Another engine sampled the rollout (generation.backend vllm): per-token KL(sampler ||
    # trainer) for the mismatch metric, and the truncated importance weights (ppo.tis_cap)
    sampler_kl: torch.Tensor | None = None
    is_weights: torch.Tensor | None = None


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


def _by_length(query_mask: torch.Tensor, response_mask: torch.Tensor, chunk: int | None,
               run: Any) -> list[torch.Tensor]:
    """`run(rows)` over chunks of `chunk` samples taken in order of length (each chunk is padded
    only to its own longest sample); its float32 outputs concatenated back in batch order."""
    batch = query_mask.size(0)
    chunk = chunk or batch
    order = torch.arange(batch, device=query_mask.device)
    if chunk < batch:
        lengths = query_mask.sum(1) + response_mask.sum(1)  # (B,)
        order = torch.sort(lengths, stable=True).indices
    parts: list[tuple[torch.Tensor, ...]] = []
    # inference_mode: no autograd bookkeeping at all; the copies below (outside it) turn the
    # results into ordinary tensors that the update's losses may use.
    with torch.inference_mode():
        for s in range(0, batch, chunk):
            parts.append(tuple(t.float() for t in run(order[s:s + chunk])))
    inverse = torch.argsort(order)  # sorted position of each sample
    return [torch.cat(p)[inverse] for p in zip(*parts)]


def policy_pass(policy: Any, query_ids: torch.Tensor, query_mask: torch.Tensor,
                response_ids: torch.Tensor, response_mask: torch.Tensor, *,
                states: torch.Tensor | None, temperature: float, chunk: int | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The policy's logprobs, values and entropy (B, R) of the sampled responses (PPO's "old"
    logprobs): from the generation `states` when given (`PolicyWithValueHead.score_states`), else
    a forward pass, `chunk` samples at a time (None: the whole batch)."""
    def run(rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if states is not None:
            out = policy.score_states(states[rows], response_ids[rows], temperature=temperature)
        else:
            out = policy.forward_response(query_ids[rows], query_mask[rows], response_ids[rows],
                                          response_mask[rows], temperature=temperature)
        return out.logprobs, out.values, out.entropy

    logprobs, values, entropy = _by_length(query_mask, response_mask, chunk, run)
    return logprobs, values, entropy


def reference_pass(policy: Any, query_ids: torch.Tensor, query_mask: torch.Tensor,
                   response_ids: torch.Tensor, response_mask: torch.Tensor, *, temperature: float,
                   chunk: int | None) -> torch.Tensor:
    """The reference model's logprobs (B, R) of the sampled responses, `chunk` samples at a time."""
    def run(rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ref = policy.forward_response(query_ids[rows], query_mask[rows], response_ids[rows],
                                      response_mask[rows], reference=True, with_entropy=False,
                                      temperature=temperature)
        return (ref.logprobs,)

    (ref_logprobs,) = _by_length(query_mask, response_mask, chunk, run)
    return ref_logprobs
