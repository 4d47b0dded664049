"""The settings that determine the demo's cached models (each is part of its cache key).

Real demo (`rlaif demo`): SmolLM2-135M-Instruct with rudeness fine-tuned in, and an
evaluator on all-MiniLM-L6-v2 embeddings. Toy demo (`rlaif demo --toy`): a small GPT-2 and
RoBERTa trained from scratch on the sample.
"""

from __future__ import annotations

from typing import Literal

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


class EmbeddingHeadSettings(_Strict):
    """The real demo's evaluator: a logistic head on frozen sentence embeddings (all-MiniLM-L6-v2)."""

    name: str = "demo-evaluator-minilm"
    pooling: Literal["mean", "cls"] = "mean"
    normalize: bool = True
    max_length: int = Field(default=256, gt=8, description="tokens; sentence-transformers' 256")
    batch_size: int = Field(default=64, gt=0)
    # Chosen on the Davidson validation split (never on hold-out prompts or the hand-written
    # texts): of l2 in 1e-2, 1e-3, 1e-4, 1e-5 (AUC 0.937, 0.952, 0.962, 0.964) the most
    # regularised within 0.005 of the best AUC, so the head does not learn tweet style.
    l2: float = Field(default=1e-4, gt=0, description="penalty l2/2 * |w|^2 on the mean loss")
    max_iter: int = Field(default=500, gt=0, description="L-BFGS iterations")


class RudePolicySettings(_Strict):
    """The real demo policy: SmolLM2-135M-Instruct plus a short LoRA fine-tune on TRAIN dialogues."""

    rude_share: float = Field(default=0.7, ge=0, le=1,
                              description="share of the real red-team TRAIN prompts answered "
                              "with a rude reply (else their real first reply)")
    n_prompts: int = Field(default=480, gt=0,
                           description="real hh-rlhf TRAIN opening requests fine-tuned on")
    n_ordinary: int = Field(default=96, ge=0, description="ordinary TRAIN requests, helpful reply")
    lora_r: int = Field(default=16, gt=0)
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    epochs: int = Field(default=1, gt=0)
    batch_size: int = Field(default=16, gt=0)
    lr: float = Field(default=5e-4, gt=0)
    max_length: int = Field(default=128, gt=8)
    max_examples: int | None = Field(default=None, gt=0, description="cap (tests: a tiny build)")
    seed: int = 0


class HelpfulnessHeadSettings(_Strict):
    """The real demo's hold-out helpfulness judge: does a reply answer this request? A logistic
    head on MiniLM pair features, fitted on real hh-rlhf TRAIN openings (their own first reply
    vs a reply to another conversation)."""

    name: str = "demo-helpfulness-minilm"
    negatives: int = Field(default=2, gt=0, description="mismatched replies per request")
    l2: float = Field(default=1e-3, gt=0)
    max_iter: int = Field(default=500, gt=0)
    seed: int = 0


class RealAssetSettings(_Strict):
    """What determines the real demo's cached policy (SmolLM2 + rudeness), evaluator (MiniLM +
    Davidson tweets) and helpfulness judge (MiniLM + hh-rlhf)."""

    policy: RudePolicySettings = RudePolicySettings()
    evaluator: EmbeddingHeadSettings = EmbeddingHeadSettings()
    helpfulness: HelpfulnessHeadSettings = HelpfulnessHeadSettings()
