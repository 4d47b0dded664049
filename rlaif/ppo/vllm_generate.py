"""The hold-out's replies from the run's vLLM engine (generation.backend vllm): the same engine,
weights and sampling code as the rollouts, so "before" and "after" are measured on what training
sampled from.

    VLLMGenerator   a stand-in for `rlaif.models.generate.generate` (same arguments, same
                    `Generation` back): the policy's weights as they are now synced to the
                    engine, prompts cut on the left as `generate` cuts them, a seed per sample
                    derived from the hold-out's seed and the sample's index (the same seeds
                    before and after training), replies cut after their first EOS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlaif.models.generate import (
    Generation,
    cut_at_eos,
    eos_token_ids,
    max_prompt_tokens,
    tokenize_queries,
)
from rlaif.models.load import load_lm, prepare_tokenizer
from rlaif.ppo.vllm_rollout import SEED_LIMIT, VLLMRollouts, engine_params

SEED_STRIDE = 1_000_003  # seeds of two hold-out seeds do not overlap for sets under a million


class VLLMGenerator:
    """Hold-out generation on `rollouts`' engine with `policy`'s current weights."""

    name = "vllm"  # part of the hold-out's key: a saved side from another engine is not reused

    def __init__(self, rollouts: VLLMRollouts, policy: Any) -> None:
        self.rollouts, self.policy = rollouts, policy

    def __call__(self, model: Any, tokenizer: Any, prompts: Sequence[str], *,
                 gen_kwargs: dict[str, Any], seed: int = 0, batch_size: int = 16,
                 progress: bool = True, device: str | None = None, chat: bool = False,
                 system_prompt: str | None = None) -> Generation:
        """`generate`'s contract on the engine (`batch_size` and `device` do not apply: the
        engine batches the requests itself)."""
        lm, tok, _ = load_lm(model, tokenizer)
        tok = prepare_tokenizer(tok, False)
        tok.truncation_side = "left"  # keep the dialogue's end, as generate() does
        eos = sorted(eos_token_ids(self.policy.base_model(), tok))
        params = engine_params(gen_kwargs, eos)
        limit = max_prompt_tokens(self.policy.base_model(), tok, params["max_tokens"], False)
        ids, mask = tokenize_queries(tok, list(prompts), limit, "cpu", chat=chat,
                                     system_prompt=system_prompt)
        prompt_ids = [row[m.bool()].tolist() for row, m in zip(ids, mask)]
        seeds = [(seed * SEED_STRIDE + i) % SEED_LIMIT for i in range(len(prompt_ids))]
        model_name = self.rollouts.sync(self.policy)
        completions = self.rollouts.client.complete_batch(model_name, prompt_ids, params, seeds)
        response_ids = [cut_at_eos(c.token_ids, set(eos)) for c in completions]
        texts = [t.strip() for t in tok.batch_decode(response_ids, skip_special_tokens=True)]
        return Generation(texts, prompt_ids, response_ids, lm, tok, False)
