"""Training the demo's two small models from the bundled sample (called by rlaif.demo.assets).

- `lm_texts`, `reply_labels`: the sample's examples as the two models' training data.
- `build_policy`: a small GPT-2 (built by `rlaif.models.tiny`), causal-LM training on
  length-bucketed batches with a warm-up + cosine schedule.
- `build_toy_evaluator`: a small RoBERTa toxicity classifier on TRAIN replies (plus pieces of
  clean replies, so short clean text is not called toxic), with its accuracy on TEST.
"""

from __future__ import annotations

import logging
import math
import random
import re
from pathlib import Path
from typing import Any

from rlaif.batching import pad_rows
from rlaif.demo.settings import EvaluatorSettings, PolicySettings
from rlaif.models.tiny import (EOS, GPT2Settings, RobertaSettings, build_gpt2,
                               build_roberta_classifier, save_model)

logger = logging.getLogger(__name__)


def lm_texts(examples: list[Any]) -> list[str]:
    """Both full transcripts of every TRAIN example, each ending in EOS after the final reply."""
    texts = []
    for ex in examples:
        for reply in (ex.chosen, ex.rejected):
            texts.append(f"{ex.prompt} {reply}{EOS}")
    return texts


def reply_labels(examples: list[Any]) -> list[tuple[str, int]]:
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
    model, tokenizer = build_gpt2(texts, GPT2Settings(
        vocab_size=settings.vocab_size, model_max_length=settings.max_length * 2,
        n_positions=settings.max_length * 2, n_embd=settings.n_embd, n_layer=settings.n_layer,
        n_head=settings.n_head, seed=settings.seed,
    ))
    eos = tokenizer.eos_token_id
    # Keep the end of over-long transcripts: the final reply is what the policy must learn.
    ids = [row[-settings.max_length:] for row in tokenizer(texts)["input_ids"]]
    losses = _train_lm(model, ids, eos, settings)
    model.eval()
    model.generation_config.pad_token_id = eos
    save_model(out_dir, model, tokenizer)
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
        input_ids, attention = pad_rows([ids[i] for i in batch], pad_id, side="right")
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


# ----------------------------------------------------------------------------- evaluator


def build_toy_evaluator(out_dir: Path, train: list[tuple[str, int]], test: list[tuple[str, int]],
                    settings: EvaluatorSettings) -> dict[str, Any]:
    """Train a small RoBERTa toxicity classifier on `train`, report its `test` accuracy, save it."""
    model, tokenizer = build_roberta_classifier([t for t, _ in train], RobertaSettings(
        vocab_size=settings.vocab_size, model_max_length=settings.max_length,
        hidden_size=settings.hidden_size, num_layers=settings.num_layers,
        num_heads=settings.num_heads, intermediate_size=settings.hidden_size * 4,
        max_position_embeddings=settings.max_length + 2, seed=settings.seed,
    ))
    # Pieces of clean replies are clean too. Without them the classifier learns "not one of
    # the polite templates = toxic" and calls any short or broken reply ("Got it.") toxic.
    rng = random.Random(settings.seed)
    extra = clean_fragments(train, settings.clean_fragments, rng)
    _train_classifier(model, tokenizer, train + extra, settings)
    model.eval()
    save_model(out_dir, model, tokenizer)
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
