"""Shared fixtures. Every test runs offline: no hub, no network, no GPU."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny GPT-2, T5 and RoBERTa classifier saved to disk: {"gpt2", "t5", "roberta"} -> folder."""
    from rlaif.testing.tiny import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def tiny_llama(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama (RoPE, RMSNorm, grouped-query attention, untied head) with the tiny
    GPT-2's tokenizer, saved to disk."""
    from ppo_helpers import save_gpt2_tokenizer_llama

    return save_gpt2_tokenizer_llama(tiny_models["gpt2"], tmp_path_factory.mktemp("tiny-llama"),
                                     hidden=32, intermediate=64, heads=4, kv_heads=2)


@pytest.fixture(scope="session")
def vllm_llama(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama vLLM's CPU kernels can serve (head size 32, their smallest), the tiny
    GPT-2's BPE tokenizer, its output head scaled up so its next-token distributions are peaked
    like a trained model's (the vLLM engine tests)."""
    from ppo_helpers import save_gpt2_tokenizer_llama

    return save_gpt2_tokenizer_llama(tiny_models["gpt2"], tmp_path_factory.mktemp("vllm-llama"),
                                     hidden=64, intermediate=128, heads=2, kv_heads=1, head_scale=20.0)
