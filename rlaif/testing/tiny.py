"""Tiny models for tests: GPT-2 (causal), T5 (seq2seq), RoBERTa 2-label classifier.

Built offline by `rlaif.models.tiny` (tokenizers trained locally, random weights from small
configs) and saved with `save_pretrained`, so tests load them back through the very
`from_pretrained` path used for hub ids. No network is touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rlaif.models.tiny import (GPT2Settings, RobertaSettings, T5Settings, build_gpt2,
                               build_roberta_classifier, build_t5, save_model)

DEFAULT_CORPUS = [
    "Human: How do I bake bread? Assistant: Mix flour, water, salt and yeast, then knead.",
    "Human: What is the capital of France? Assistant: The capital of France is Paris.",
    "Human: You are stupid. Assistant: I am sorry you feel that way. How can I help?",
    "Human: Tell me a joke. Assistant: Why did the chicken cross the road?",
    "I like you. You are terrible and I hate you. Thank you, that is kind.",
    "Summarize the following conversation. The user asked for help and got it.",
    "You idiot, shut up. That is a horrible, hateful thing to say.",
    "Please be polite and respectful. Have a wonderful day, friend.",
    "0123456789 .,!?;:'\"()-",
]

MODEL_MAX_LENGTH = 128


def _corpus(corpus: Iterable[str] | None) -> list[str]:
    """The caller's texts (if any) followed by the default corpus, four times."""
    texts = list(corpus) if corpus is not None else []
    return texts + DEFAULT_CORPUS * 4


def build_tiny_gpt2(out_dir: str | Path, corpus: Iterable[str] | None = None,
                    vocab_size: int = 512, n_embd: int = 32, n_layer: int = 2, n_head: int = 2,
                    seed: int = 0) -> Path:
    """Save a tiny GPT-2 (random weights) and its locally trained tokenizer to `out_dir`."""
    settings = GPT2Settings(vocab_size=vocab_size, model_max_length=MODEL_MAX_LENGTH,
                            n_positions=MODEL_MAX_LENGTH * 2, n_embd=n_embd, n_layer=n_layer,
                            n_head=n_head, seed=seed)
    return save_model(out_dir, *build_gpt2(_corpus(corpus), settings))


def build_tiny_t5(out_dir: str | Path, corpus: Iterable[str] | None = None,
                  vocab_size: int = 384, d_model: int = 32, num_layers: int = 2,
                  num_heads: int = 2, seed: int = 0) -> Path:
    """Save a tiny T5 (random weights) and a locally trained Unigram tokenizer to `out_dir`."""
    settings = T5Settings(vocab_size=vocab_size, model_max_length=MODEL_MAX_LENGTH,
                          d_model=d_model, num_layers=num_layers, num_heads=num_heads, seed=seed)
    return save_model(out_dir, *build_t5(_corpus(corpus), settings))


def build_tiny_roberta_classifier(out_dir: str | Path, corpus: Iterable[str] | None = None,
                                  vocab_size: int = 512, hidden_size: int = 32,
                                  num_layers: int = 2, num_heads: int = 2, seed: int = 0) -> Path:
    """Save a tiny 2-label RoBERTa classifier (`id2label {0: nothate, 1: hate}`) to `out_dir`."""
    settings = RobertaSettings(
        vocab_size=vocab_size, model_max_length=MODEL_MAX_LENGTH, hidden_size=hidden_size,
        num_layers=num_layers, num_heads=num_heads, intermediate_size=hidden_size * 2,
        max_position_embeddings=MODEL_MAX_LENGTH + 2,
        # Larger init than the default 0.02 so different texts get visibly different logits.
        initializer_range=0.5, seed=seed,
    )
    return save_model(out_dir, *build_roberta_classifier(_corpus(corpus), settings))


def build_tiny_models(root: str | Path, corpus: Iterable[str] | None = None) -> dict[str, Path]:
    """Build all three tiny models under `root`; returns {"gpt2", "t5", "roberta"} -> folder."""
    root = Path(root)
    texts = list(corpus) if corpus is not None else None
    return {
        "gpt2": build_tiny_gpt2(root / "tiny-gpt2", texts),
        "t5": build_tiny_t5(root / "tiny-t5", texts),
        "roberta": build_tiny_roberta_classifier(root / "tiny-roberta", texts),
    }
