"""Shared helpers for the PPO trainer tests: small judges, a config builder, a sharpened model.

Importable as `ppo_helpers` (pytest puts tests/ on sys.path; torchrun workers run from here),
so `ppo_helpers:e_share` also works as a `type: function` judge.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    import pytest
except ImportError:  # vLLM's environment runs tests/vllm_inprocess_ppo.py with these helpers
    pytest = None

from rlaif.config import RunConfig, load_config
from rlaif.judges.base import Judge, MemberScore, Sample, Scale, Score


def _one_thread():
    """Tiny models run fastest on one thread when the machine's cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


one_thread = pytest.fixture(scope="module", name="one_thread")(_one_thread) if pytest else None


def e_share(texts: list[str]) -> list[float]:
    """Share of the non-space characters of each text that are the letter "e" (0 if empty)."""
    out = []
    for text in texts:
        chars = [c for c in text if not c.isspace()]
        out.append(sum(c == "e" for c in chars) / len(chars) if chars else 0.0)
    return out


class LetterJudge(Judge):
    """Scores `e_share` of each response; records every batch; can fail or crash on cue.

    fail_every=k: samples at batch positions k-1, 2k-1, ... get Score.failed.
    fail_all: every sample fails. crash_on_call=n: the n-th call (1-based) raises RuntimeError,
    standing in for a killed process.
    """

    name = "e-share"
    scale = Scale(0.0, 1.0)

    def __init__(self, fail_every: int = 0, fail_all: bool = False, crash_on_call: int = 0,
                 members: bool = False) -> None:
        self.fail_every, self.fail_all, self.crash_on_call = fail_every, fail_all, crash_on_call
        self.members = members
        self.calls: list[tuple[list[Sample], list[Score]]] = []

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        if self.crash_on_call and len(self.calls) + 1 == self.crash_on_call:
            raise RuntimeError("simulated crash inside the judge")
        values = e_share([s.response for s in samples])
        scores = []
        for i, value in enumerate(values):
            if self.fail_all or (self.fail_every and i % self.fail_every == self.fail_every - 1):
                scores.append(Score.failed(f"scripted failure at batch position {i}"))
            elif self.members:
                # Ensemble-style members: member "a" is the value, member "b" is 1 - value.
                scores.append(Score(value=value, members={
                    "a": MemberScore(value, 2 * value - 1, 1.0),
                    "b": MemberScore(1 - value, 1 - 2 * value, 1.0)}))
            else:
                scores.append(Score(value=value))
        self.calls.append((list(samples), scores))
        return scores


class TokenSetJudge(Judge):
    """Reward = share of the response's tokens whose text contains `letter`: a dense reward
    a tiny random model can learn (about 1 token in 8 qualifies at the start)."""

    name = "token-set"
    scale = Scale(0.0, 1.0)

    def __init__(self, tokenizer: Any, letter: str = "e") -> None:
        self.tokenizer = tokenizer
        self.good = {i for i in range(len(tokenizer)) if letter in tokenizer.decode([i])}

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        out = []
        for s in samples:
            ids = self.tokenizer(s.response, add_special_tokens=False)["input_ids"]
            out.append(Score(value=sum(i in self.good for i in ids) / len(ids) if ids else 0.0))
        return out


PROMPTS = [
    "Human: hello there. Assistant:",
    "Human: What is the capital of France? Assistant:",
    "Human: Tell me a joke. Assistant:",
    "Human: You are stupid. Assistant:",
]
# A header every prompt starts with, as chat templates add one: batches of these prompts take
# the shared-prefix path (rlaif.models.prefix).
PREAMBLE = "System: you are a careful, polite and helpful assistant who answers briefly.\n\n"


def make_config(model_path: str | Path, out_dir: str | Path, *overrides: str, **sections: Any) -> RunConfig:
    """A small CPU run config for the model at `model_path`; `overrides` are `a.b=c` strings."""
    data: dict[str, Any] = {
        "model": {"name_or_path": str(model_path)},
        "judge": {"ref": {"type": "function", "function": "ppo_helpers:e_share", "scale": [0, 1]}},
        "ppo": {"batch_size": 4, "mini_batch_size": 2, "steps": 2, "learning_rate": 1e-3},
        "generation": {"min_new_tokens": 4, "max_new_tokens": 6},
        "data": {"max_prompt_tokens": 64},
        "output": {"dir": str(out_dir)},
        "accelerate": {"cpu": True},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return load_config(data=data, overrides=list(overrides))


def sharpen(model_dir: str | Path, out_dir: str | Path, factor: float = 10.0) -> Path:
    """Copy a tiny causal LM with its (tied) token embeddings scaled by `factor`.

    A random tiny GPT-2 (embedding std 0.02) has near-uniform logits (|logit| < 0.5) that
    LoRA on attention layers cannot sharpen with the embeddings frozen; real pretrained LMs
    have peaked logits. Scaling the embeddings gives the tiny model that property.
    """
    import torch
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    shutil.copytree(model_dir, out, dirs_exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(factor)
    model.save_pretrained(out)
    return out


def save_gpt2_tokenizer_llama(tokenizer_dir: Path, path: Path, *, hidden: int, intermediate: int,
                              heads: int, kv_heads: int, head_scale: float = 1.0) -> Path:
    """A 2-layer Llama (RoPE, RMSNorm, grouped-query attention, untied head) on the tiny GPT-2's
    tokenizer, seeded, saved with that tokenizer to `path`; `head_scale` multiplies the output
    head (peaked next-token distributions, like a trained model's)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=256, bos_token_id=tok.eos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    if head_scale != 1.0:
        with torch.no_grad():
            model.lm_head.weight.mul_(head_scale)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
