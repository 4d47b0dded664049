"""The demo's offline models, built once from the bundled HH sample and cached.

- **policy**: a small GPT-2 trained from scratch as a causal LM on the sample's TRAIN
  dialogues, both the chosen and the rejected transcripts, so it has learned to reply
  politely and toxically and sampling gives a real mix of both.
- **evaluator**: a small RoBERTa classifier (`id2label {0: nothate, 1: hate}`) trained on
  the sample's TRAIN final replies with their toxicity labels. It is the hold-out
  evaluator, deliberately a different model from the reward judge (profanity-check), so a
  policy that games the reward does not also fool the measurement.

Each lives under `$RLAIF_CACHE/demo-v<ASSET_VERSION>/{policy,evaluator}-<key>/` (default
root `~/.cache/rlaif`), where `key` hashes the sample files and that model's builder
settings: a changed sample or setting rebuilds that model; otherwise the second call is a
cache hit. A build is written to a temporary folder and renamed into place, so an
interrupted build never leaves a half-written cache behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

# Bump when the builders change in a way that changes the models they produce.
ASSET_VERSION = "1"
MANIFEST = "manifest.json"
EOS = "<|endoftext|>"
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


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


@dataclass(frozen=True)
class DemoAssets:
    """Where the built models are, whether they came from the cache, and their build stats."""

    root: Path
    policy: Path
    evaluator: Path
    key: str
    cache_hit: bool
    manifest: dict[str, Any]


def cache_root() -> Path:
    """`$RLAIF_CACHE` if set, else `~/.cache/rlaif`."""
    env = os.environ.get("RLAIF_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rlaif"


def sample_files() -> list[Path]:
    """The bundled sample's train and test files (both are hashed into the cache key)."""
    from rlaif.data.hh import sample_path

    return [sample_path("train"), sample_path("test")]


def asset_key(settings: BaseModel, files: list[Path] | None = None) -> str:
    """Hash of the sample files' bytes and the builder settings: the cache key."""
    h = hashlib.sha256()
    h.update(f"rlaif-demo-assets-v{ASSET_VERSION}:{type(settings).__name__}".encode())
    h.update(json.dumps(settings.model_dump(mode="json"), sort_keys=True).encode())
    for path in files if files is not None else sample_files():
        if not path.is_file():
            raise FileNotFoundError(
                f"bundled HH sample {path} is missing; reinstall rlaif or regenerate it with "
                "`python scripts/make_hh_sample.py`"
            )
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build_demo_assets(settings: AssetSettings | None = None, cache_dir: str | Path | None = None,
                      force: bool = False) -> DemoAssets:
    """Return the demo policy and evaluator, building and caching each when missing or stale."""
    settings = settings or AssetSettings()
    root = (Path(cache_dir).expanduser() if cache_dir else cache_root()) / f"demo-v{ASSET_VERSION}"
    rows: dict[str, list[Any]] = {}

    def sample_rows() -> dict[str, list[Any]]:
        if not rows:
            rows["train"], rows["test"] = _load_sample_rows()
        return rows

    policy_dir, policy_stats, policy_hit = _cached(
        root, "policy", settings.policy, force,
        lambda out: build_policy(out, _lm_texts(sample_rows()["train"]), settings.policy))
    evaluator_dir, evaluator_stats, evaluator_hit = _cached(
        root, "evaluator", settings.evaluator, force,
        lambda out: build_evaluator(out, _reply_labels(sample_rows()["train"]),
                                    _reply_labels(sample_rows()["test"]), settings.evaluator))
    manifest = {"asset_version": ASSET_VERSION, "policy": policy_stats,
                "evaluator": evaluator_stats}
    key = f"{policy_dir.name}+{evaluator_dir.name}"
    return DemoAssets(root, policy_dir / "model", evaluator_dir / "model", key,
                      policy_hit and evaluator_hit, manifest)


def _cached(root: Path, kind: str, settings: BaseModel, force: bool,
            build: Any) -> tuple[Path, dict[str, Any], bool]:
    """(folder, stats, cache hit) of one asset; `build(out_dir) -> stats` runs on a miss."""
    final = root / f"{kind}-{asset_key(settings)}"
    if (final / MANIFEST).is_file() and not force:
        logger.info("demo %s: cache hit %s", kind, final)
        return final, json.loads((final / MANIFEST).read_text()), True
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    try:
        logger.info("demo %s: building %s (first run only; cached afterwards)", kind, final)
        t0 = time.perf_counter()
        stats = build(tmp / "model")
        stats = {**stats, "build_s": round(time.perf_counter() - t0, 1),
                 "settings": settings.model_dump(mode="json")}
        (tmp / MANIFEST).write_text(json.dumps(stats, indent=2))
        if final.exists():  # a forced rebuild, or a stale half-entry without a manifest
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, stats, False


# ----------------------------------------------------------------------------- data


def _load_sample_rows() -> tuple[list[Any], list[Any]]:
    """The bundled sample's train and test examples."""
    from rlaif.data.hh import load_hh

    return load_hh("sample", split="train").examples, load_hh("sample", split="test").examples


def _lm_texts(examples: list[Any]) -> list[str]:
    """Both full transcripts of every TRAIN example, each ending in EOS after the final reply."""
    texts = []
    for ex in examples:
        for reply in (ex.chosen, ex.rejected):
            texts.append(f"{ex.prompt} {reply}{EOS}")
    return texts


def _reply_labels(examples: list[Any]) -> list[tuple[str, int]]:
    """(final reply, 1 if toxic else 0) for the chosen and rejected side of every example."""
    pairs = []
    for ex in examples:
        for side in ("chosen", "rejected"):
            label = ex.meta.get(f"{side}_toxic")
            if not isinstance(label, bool):
                raise ValueError(
                    f"{ex.meta.get('source')} row {ex.meta.get('row')}: field '{side}_toxic' "
                    f"must be true/false, got {label!r}; the demo's evaluator needs the "
                    "sample's per-reply toxicity labels"
                )
            pairs.append((getattr(ex, side), int(label)))
    return pairs


# ----------------------------------------------------------------------------- policy


def build_policy(out_dir: Path, texts: list[str], settings: PolicySettings) -> dict[str, Any]:
    """Train a small GPT-2 from scratch on `texts` (causal LM) and save it; returns stats."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from rlaif.testing.tiny import _bpe_tokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    raw = _bpe_tokenizer(texts, settings.vocab_size, [EOS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS,
        model_max_length=settings.max_length * 2, padding_side="left",
    )
    eos = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=settings.max_length * 2, n_embd=settings.n_embd,
        n_layer=settings.n_layer, n_head=settings.n_head, bos_token_id=eos, eos_token_id=eos,
        pad_token_id=eos,
    )
    torch.manual_seed(settings.seed)
    model = GPT2LMHeadModel(config)
    # Keep the end of over-long transcripts: the final reply is what the policy must learn.
    ids = [row[-settings.max_length:] for row in tokenizer(texts)["input_ids"]]
    losses = _train_lm(model, ids, eos, settings)
    model.eval()
    model.generation_config.pad_token_id = eos
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {
        "params": sum(p.numel() for p in model.parameters()), "texts": len(texts),
        "vocab": len(tokenizer), "first_loss": losses[0], "final_loss": losses[-1],
    }


def _train_lm(model: Any, ids: list[list[int]], pad_id: int,
              settings: PolicySettings) -> list[float]:
    """AdamW with warmup + cosine decay over random batches; returns smoothed losses."""
    import torch
    from tqdm.auto import tqdm

    rng = random.Random(settings.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                            weight_decay=settings.weight_decay, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _warmup_cosine(s, settings))
    model.train()
    batches: list[list[int]] = []
    ema, history = None, []
    bar = tqdm(range(settings.steps), desc="demo policy (causal LM)", unit="step", leave=False)
    for step in bar:
        if not batches:
            batches = _length_batches([len(r) for r in ids], settings.batch_size, rng)
        batch = batches.pop()
        input_ids, attention = _right_pad([ids[i] for i in batch], pad_id)
        labels = input_ids.masked_fill(attention == 0, -100)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step == 0 or (step + 1) % 25 == 0:
            history.append(round(ema, 4))
            bar.set_postfix(loss=f"{ema:.3f}")
    return history


def _length_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """One epoch of batches of similar length (little padding), in random order."""
    # Jittered sort: batches differ from epoch to epoch but stay nearly length-homogeneous.
    order = sorted(range(len(lengths)), key=lambda i: lengths[i] + rng.uniform(0, 8))
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def _warmup_cosine(step: int, settings: PolicySettings) -> float:
    """LR multiplier: linear warmup, then cosine decay to 10%."""
    if step < settings.warmup:
        return (step + 1) / settings.warmup
    progress = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _right_pad(rows: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    """Right-padded (input_ids, attention_mask) tensors for training."""
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    attention = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)] = torch.tensor(r)
        attention[i, : len(r)] = 1
    return input_ids, attention


# ----------------------------------------------------------------------------- evaluator


def build_evaluator(out_dir: Path, train: list[tuple[str, int]], test: list[tuple[str, int]],
                    settings: EvaluatorSettings) -> dict[str, Any]:
    """Train a small RoBERTa toxicity classifier on `train`, report its `test` accuracy, save it."""
    import torch
    from tokenizers import processors
    from transformers import (PreTrainedTokenizerFast, RobertaConfig,
                              RobertaForSequenceClassification)

    from rlaif.testing.tiny import _bpe_tokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    raw = _bpe_tokenizer([t for t, _ in train], settings.vocab_size, ROBERTA_SPECIALS)
    raw.post_processor = processors.RobertaProcessing(
        ("</s>", raw.token_to_id("</s>")), ("<s>", raw.token_to_id("<s>"))
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<s>", eos_token="</s>", sep_token="</s>",
        cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
        model_max_length=settings.max_length,
    )
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=settings.hidden_size,
        num_hidden_layers=settings.num_layers, num_attention_heads=settings.num_heads,
        intermediate_size=settings.hidden_size * 4, max_position_embeddings=settings.max_length + 2,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, num_labels=2,
        id2label={0: "nothate", 1: "hate"}, label2id={"nothate": 0, "hate": 1},
    )
    torch.manual_seed(settings.seed)
    model = RobertaForSequenceClassification(config)
    # Pieces of clean replies are clean too. Without them the classifier learns "not one of
    # the polite templates = toxic" and calls any short or broken reply ("Got it.") toxic.
    rng = random.Random(settings.seed)
    extra = clean_fragments(train, settings.clean_fragments, rng)
    _train_classifier(model, tokenizer, train + extra, settings)
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    test_fragments = clean_fragments(test, 1, random.Random(settings.seed + 1))
    stats = {
        "params": sum(p.numel() for p in model.parameters()), "train_replies": len(train),
        "train_clean_fragments": len(extra), "test_replies": len(test),
        "train_accuracy": round(classifier_accuracy(model, tokenizer, train), 4),
        "test_accuracy": round(classifier_accuracy(model, tokenizer, test), 4),
        "test_clean_fragment_accuracy": round(
            classifier_accuracy(model, tokenizer, test_fragments), 4),
    }
    logger.info("demo evaluator: accuracy on TEST replies %.3f, on pieces of clean TEST replies "
                "%.3f", stats["test_accuracy"], stats["test_clean_fragment_accuracy"])
    return stats


def clean_fragments(data: list[tuple[str, int]], per_reply: int,
                    rng: random.Random) -> list[tuple[str, int]]:
    """Up to `per_reply` pieces (a sentence, or the first few words) of every clean reply, label 0."""
    out = []
    for text, label in data:
        if label:
            continue
        sentences = [x.strip() for x in re.split(r"(?<=[.!?])\s+", text) if x.strip()]
        words = text.split()
        for _ in range(per_reply):
            if len(sentences) > 1 and rng.random() < 0.5:
                piece = rng.choice(sentences)
            else:
                piece = " ".join(words[: rng.randint(1, max(1, len(words) - 1))])
            out.append((piece, 0))
    return out


def _train_classifier(model: Any, tokenizer: Any, data: list[tuple[str, int]],
                      settings: EvaluatorSettings) -> None:
    """Cross-entropy fine-tuning over shuffled batches, linear LR decay."""
    import torch
    from tqdm.auto import tqdm

    rng = random.Random(settings.seed)
    steps = settings.epochs * math.ceil(len(data) / settings.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / steps)
    model.train()
    bar = tqdm(total=steps, desc="demo evaluator (classifier)", unit="step", leave=False)
    for _ in range(settings.epochs):
        order = rng.sample(range(len(data)), len(data))
        for start in range(0, len(order), settings.batch_size):
            batch = [data[i] for i in order[start: start + settings.batch_size]]
            enc = tokenizer([t for t, _ in batch], padding=True, truncation=True,
                            return_tensors="pt")
            labels = torch.tensor([y for _, y in batch])
            loss = model(**enc, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()


def classifier_accuracy(model: Any, tokenizer: Any, data: list[tuple[str, int]],
                        batch_size: int = 64) -> float:
    """Share of `data` whose argmax label equals the given label."""
    import torch

    correct = 0
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            batch = data[start: start + batch_size]
            enc = tokenizer([t for t, _ in batch], padding=True, truncation=True,
                            return_tensors="pt")
            pred = model(**enc).logits.argmax(-1).tolist()
            correct += sum(int(p == y) for p, (_, y) in zip(pred, batch))
    return correct / max(1, len(data))
