"""The demo's hold-out helpfulness judge: does a reply answer the request it was given?

`build_helpfulness` fits a logistic head on all-MiniLM-L6-v2 pair features (`type:
relevance` with a head, `rlaif.judges.local.relevance.pair_features`) of real red-team openings
(hh-rlhf harmless-base, even rows, TRAIN split; `rlaif.demo.openings`): each request with
its own first reply (answers) against replies to other conversations (unrelated). Its
validation is printed on the TEST openings, which it never saw, and it reports what the
report's floor replies (an empty reply, a canned apology) get, which it was never taught.

It is not part of the reward: the reward's relevance member is the head-free cosine of
the same encoder (`judges/minilm-relevance.yaml`); this one learned from how real assistants
answered real people. They share the encoder, so they can share its blind spots: the
report names both.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import yaml

from rlaif.demo.evaluator import accuracy, fit_logistic, roc_auc
from rlaif.demo.openings import Opening
from rlaif.demo.settings import HelpfulnessHeadSettings
from rlaif.io import atomic_write_text

logger = logging.getLogger(__name__)

LABELS = ("unrelated", "answers")
HEAD_FILE = "head.safetensors"
SPEC_FILE = "helpfulness.yaml"
FLOORS = ("", "I'm sorry to hear that.")


def labelled_pairs(ops: list[Opening], negatives: int, seed: int) -> list[tuple[str, str, int]]:
    """(request, reply, 1) for each opening with a reply, and `negatives` (request, reply of
    another conversation, 0) per request, drawn with `seed`."""
    rng = random.Random(seed)
    answered = [op for op in ops if op.reply]
    if len(answered) < 2:
        raise ValueError(f"{len(answered)} openings with a reply: need at least 2 to pair them")
    pairs = [(op.request, op.reply, 1) for op in answered]
    for i, op in enumerate(answered):
        for _ in range(negatives):
            j = rng.randrange(len(answered) - 1)
            other = answered[j + (j >= i)]  # any conversation but this one
            pairs.append((op.request, other.reply, 0))
    return pairs


def helpfulness_spec(encoder_dir: Path, settings: HelpfulnessHeadSettings) -> dict[str, Any]:
    """The judge spec written to `helpfulness.yaml`: score = P(the reply answers the request)."""
    return {
        "type": "relevance", "name": settings.name,
        "description": "all-MiniLM-L6-v2 (frozen) pair features of the last request and the "
                       "reply + a logistic head fitted on real hh-rlhf red-team openings (own "
                       "first reply vs a reply to another conversation); score = P(answers)",
        "encoder": str(Path(encoder_dir).resolve()), "head": HEAD_FILE, "label": "answers",
    }


def build_helpfulness(out_dir: Path, train: list[Opening], test: list[Opening], encoder_dir: Path,
                      settings: HelpfulnessHeadSettings | None = None) -> dict[str, Any]:
    """Fit the head on TRAIN openings, write head + `helpfulness.yaml`, return its validation."""
    import torch

    from rlaif.judges.local.embedding import SentenceEncoder, save_head
    from rlaif.judges.registry import build_judge
    from rlaif.judges.local.relevance import pair_features

    settings = settings or HelpfulnessHeadSettings()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = helpfulness_spec(encoder_dir, settings)
    rows = labelled_pairs(train, settings.negatives, settings.seed)
    encoder = SentenceEncoder(spec["encoder"], batch_size=64, name=settings.name)
    texts = sorted({t for req, rep, _ in rows for t in (req, rep)})
    vectors = dict(zip(texts, encoder.embed(texts)))
    encoder.close()
    x = pair_features(torch.stack([vectors[r] for r, _, _ in rows]),
                      torch.stack([vectors[a] for _, a, _ in rows]))  # (N, F)
    y = torch.tensor([float(label) for _, _, label in rows])
    w, b = fit_logistic(x, y, settings.l2, settings.max_iter)
    train_p = torch.sigmoid(x @ w + b).tolist()
    save_head(out_dir / HEAD_FILE, w.unsqueeze(0), b.reshape(1), LABELS,
              {"features": "relevance-pair-v1", "encoder": spec["encoder"]})
    spec_path = atomic_write_text(out_dir / SPEC_FILE, yaml.safe_dump(spec, sort_keys=False))

    test_rows = labelled_pairs(test, 1, settings.seed)
    answered = [op for op in test if op.reply]
    with build_judge(spec_path) as judge:
        def p(samples: list[tuple[str, str]]) -> list[float]:
            return [float(s.value) for s in judge.score(samples)]
        test_p = p([(_prompt(req), rep) for req, rep, _ in test_rows])
        floors = {text: round(sum(p([(op.prompt, text) for op in answered])) / len(answered), 4)
                  for text in FLOORS}
    test_y = [label for _, _, label in test_rows]
    stats = {
        "encoder": spec["encoder"], "spec": SPEC_FILE, "train_pairs": len(rows),
        "train_accuracy": round(accuracy(train_p, y.int().tolist()), 4),
        "test_pairs": len(test_rows), "test_accuracy": round(accuracy(test_p, test_y), 4),
        "test_auc": round(roc_auc(test_p, test_y), 4),
        "test_mean_p_own_reply": round(_mean([q for q, t in zip(test_p, test_y) if t]), 4),
        "test_mean_p_other_reply": round(_mean([q for q, t in zip(test_p, test_y) if not t]), 4),
        "floors_mean_p": floors,
    }
    logger.info("demo helpfulness judge: TEST openings (never trained on) accuracy %.3f AUC %.3f; "
                "floors %s", stats["test_accuracy"], stats["test_auc"], floors)
    return stats


def _prompt(request: str) -> str:
    return f"\n\nHuman: {request}\n\nAssistant:"


def _mean(values: list[float]) -> float:
    return sum(values) / max(1, len(values))
