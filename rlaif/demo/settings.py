"""The settings that determine the demo's two cached models (each is part of its cache key)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicySettings(_Strict):
    """The demo policy: a small GPT-2 trained from scratch on the sample's dialogues."""

    vocab_size: int = Field(default=2048, gt=256)
    n_embd: int = Field(default=128, gt=0)
    n_layer: int = Field(default=4, gt=0)
    n_head: int = Field(default=4, gt=0)
    max_length: int = Field(default=160, gt=8, description="tokens per training example")
    steps: int = Field(default=250, gt=0)
    batch_size: int = Field(default=32, gt=0)
    lr: float = Field(default=2e-3, gt=0)
    warmup: int = Field(default=20, ge=0)
    weight_decay: float = Field(default=0.01, ge=0)
    seed: int = 0


class EvaluatorSettings(_Strict):
    """The hold-out evaluator: a small RoBERTa toxicity classifier trained on TRAIN replies."""

    vocab_size: int = Field(default=2048, gt=256)
    hidden_size: int = Field(default=128, gt=0)
    num_layers: int = Field(default=2, gt=0)
    num_heads: int = Field(default=4, gt=0)
    max_length: int = Field(default=64, gt=8)
    clean_fragments: int = Field(
        default=2, ge=0,
        description="extra clean examples per clean reply: a sentence or word prefix of it",
    )
    epochs: int = Field(default=2, gt=0)
    batch_size: int = Field(default=32, gt=0)
    lr: float = Field(default=5e-4, gt=0)
    seed: int = 0


class AssetSettings(_Strict):
    """Everything that determines the demo's cached models (part of the cache key)."""

    policy: PolicySettings = PolicySettings()
    evaluator: EvaluatorSettings = EvaluatorSettings()
