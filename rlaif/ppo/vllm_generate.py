"""The hold-out's replies from the run's vLLM engine (generation.backend vllm): the same engine,
weights and sampling code as the rollouts, so "before" and "after" are measured on what training
sampled from.

    VLLMGenerator   a stand-in for `rlaif.models.generate.generate` (same arguments, same
                    `Generation` back): the policy's weights as they are now synced to the
                    engine, prompts cut on the left as `generate` cuts them, a seed per sample
                    derived from the hold-out's seed and the sample's index (the same seeds
                    before and after training), replies cut after their first EOS
                    (`rlaif.engines.generate.engine_generate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlaif.engines.generate import engine_generate
from rlaif.models.generate import Generation
from rlaif.models.load import load_lm
from rlaif.ppo.vllm_rollout import VLLMRollouts


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
        model_name = self.rollouts.sync(self.policy)
        gen = engine_generate(self.rollouts.client, model_name, self.policy.base_model(), tok, prompts,
                              gen_kwargs=gen_kwargs, seed=seed, chat=chat, system_prompt=system_prompt)
        gen.lm = lm  # the policy as trained (the hold-out's perplexity and KL read it)
        return gen
