"""The demo's hold-out evaluator: a pretrained sentence encoder plus a logistic head.

`build_evaluator` embeds human-labelled texts with a frozen encoder (all-MiniLM-L6-v2 from
`rlaif.demo.weights.minilm_dir()`), fits an L2-regularised, class-balanced logistic
regression on them, and writes `head.safetensors` and `evaluator.yaml` (a `type: embedding`
judge spec whose score is P(clean), scale (0, 1), so toxicity = 1 - P(clean)).

The real demo trains it on the Davidson et al. (2017) tweets (`rlaif.data.labelled`, MIT;
hate + offensive = toxic, neither = clean): real human labels, sharing no template or
fragment with the rudeness fine-tune or the hold-out replies (`tests/test_shipped_data.py`).
It then scores through that very spec file, so the numbers it returns are those of the
judge the demo will run, on labelled text it never saw: the Davidson validation split, the
hand-written texts in `rlaif/data/validation/` (hostile vs benign everyday messages), and
any other named set the caller passes; plus P(toxic) of a few example replies.

Why not fine-tune: a frozen pretrained encoder keeps its general sense of hostility and
only a linear read-out is learned, in seconds on a CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rlaif.demo.settings import EmbeddingHeadSettings
from rlaif.io import atomic_write_text

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

LABELS = ("clean", "toxic")  # head rows: one logistic row, its positive label is "toxic"
HEAD_FILE = "head.safetensors"
SPEC_FILE = "evaluator.yaml"
VALIDATION_DIR = Path(__file__).resolve().parents[1] / "data" / "validation"
EXAMPLES = (  # printed with the validation: two insults, two floors of the report
    "Go away, nobody wants you here, loser.",
    "I hate you.",
    "I'm sorry to hear that.",
    "",
)


def validation_texts(folder: Path = VALIDATION_DIR) -> list[tuple[str, int]]:
    """The held-out validation set: (text, 1) for hostile.txt, (text, 0) for benign.txt."""
    out = []
    for name, label in (("hostile.txt", 1), ("benign.txt", 0)):
        lines = (folder / name).read_text(encoding="utf-8").splitlines()
        out += [(line.strip(), label) for line in lines if line.strip() and not line.startswith("#")]
    return out


def fit_logistic(x: torch.Tensor, y: torch.Tensor, l2: float,
                 max_iter: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(w (D,), b ()) minimising the class-balanced mean logistic loss + l2/2 * |w|^2.

    Convex, full batch, from zeros, by L-BFGS: the result depends only on the data, so two
    fits of the same data give the same head (no seed is needed). The bias is not penalised;
    each class weighs half of the loss whatever its count."""
    import torch

    x64, y64 = x.double(), y.double()  # (N, D), (N,)
    n_pos = float(y64.sum())
    if n_pos == 0 or n_pos == len(y64):
        raise ValueError(f"fit_logistic needs both labels; got {int(n_pos)} positives of {len(y64)}")
    sample_w = torch.where(y64 > 0, 0.5 / n_pos, 0.5 / (len(y64) - n_pos))  # (N,), sums to 1
    w = torch.zeros(x64.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10,
                            tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        z = x64 @ w + b  # (N,)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y64, reduction="none")
        loss = (sample_w * bce).sum() + 0.5 * l2 * w.dot(w)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().float(), b.detach().float()


def roc_auc(scores: list[float], labels: list[int]) -> float:
    """Area under the ROC curve: P(a random positive scores above a random negative), ties 1/2."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        raise ValueError(f"AUC needs both labels; got {len(pos)} positives, {len(neg)} negatives")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def accuracy(p_toxic: list[float], labels: list[int]) -> float:
    """Share of texts where P(toxic) > 0.5 agrees with the label."""
    return sum(int((p > 0.5) == bool(y)) for p, y in zip(p_toxic, labels)) / max(1, len(labels))


def evaluator_spec(encoder_dir: Path, settings: EmbeddingHeadSettings,
                   trained_on: str) -> dict[str, Any]:
    """The judge spec written to `evaluator.yaml`: score = P(clean); toxicity = 1 - score."""
    return {
        "type": "embedding", "name": settings.name,
        "description": "all-MiniLM-L6-v2 sentence embeddings (frozen) + a logistic head fitted "
                       f"on {trained_on}; score = P(clean), toxicity = 1 - P(clean)",
        "encoder": str(Path(encoder_dir).resolve()), "head": HEAD_FILE,
        "label": "clean", "output": "prob", "input": "response",
        "pooling": settings.pooling, "normalize": settings.normalize,
        "max_length": settings.max_length, "batch_size": settings.batch_size, "device": "cpu",
    }


def p_toxic(spec_path: Path, texts: list[str]) -> list[float]:
    """P(toxic) = 1 - score of each text under the judge spec at `spec_path`."""
    from rlaif.judges.registry import build_judge

    with build_judge(spec_path) as judge:
        scores = judge.score([("", t) for t in texts])
    return [1.0 - float(s.value) for s in scores]  # a local judge fails loudly, never None


def build_evaluator(out_dir: Path, train: list[tuple[str, int]],
                    held_out: dict[str, list[tuple[str, int]]], encoder_dir: Path,
                    settings: EmbeddingHeadSettings | None = None, *,
                    trained_on: str = "labelled texts") -> dict[str, Any]:
    """Fit the head on `train` ((text, 1 = toxic) pairs), write head + `evaluator.yaml` into
    `out_dir`, return its validation: accuracy and AUC on each named `held_out` set and on
    the hand-written validation texts ("hand-written"), and the examples' P(toxic)."""
    import torch

    from rlaif.judges.local.embedding import SentenceEncoder, save_head
    from rlaif.judges.spec import parse_spec

    settings = settings or EmbeddingHeadSettings()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = evaluator_spec(encoder_dir, settings, trained_on)
    encoder = SentenceEncoder.from_spec(parse_spec(spec, source="demo evaluator"))
    x = encoder.embed([t for t, _ in train])  # (N, D)
    y = torch.tensor([float(label) for _, label in train])  # (N,)
    w, b = fit_logistic(x, y, settings.l2, settings.max_iter)
    train_p = torch.sigmoid(x @ w + b).tolist()
    encoder.close()
    save_head(out_dir / HEAD_FILE, w.unsqueeze(0), b.reshape(1), LABELS,
              {"pooling": settings.pooling, "normalize": str(settings.normalize).lower(),
               "encoder": spec["encoder"]})
    spec_path = atomic_write_text(out_dir / SPEC_FILE, yaml.safe_dump(spec, sort_keys=False))

    sets = {**held_out, "hand-written": validation_texts()}
    texts = [t for rows in sets.values() for t, _ in rows] + list(EXAMPLES)
    probs = p_toxic(spec_path, texts)
    validation: dict[str, dict[str, Any]] = {}
    start = 0
    for name, rows in sets.items():
        p, labels = probs[start:start + len(rows)], [label for _, label in rows]
        start += len(rows)
        validation[name] = {"n": len(rows), "accuracy": round(accuracy(p, labels), 4),
                            "auc": round(roc_auc(p, labels), 4)}
        logger.info("demo evaluator (%s) on %s (%d texts, never trained on): accuracy %.3f "
                    "AUC %.3f", settings.name, name, len(rows), validation[name]["accuracy"],
                    validation[name]["auc"])
    stats = {
        "encoder": spec["encoder"], "spec": SPEC_FILE, "dim": int(x.shape[1]),
        "trained_on": trained_on, "train_texts": len(train),
        "train_accuracy": round(accuracy(train_p, y.int().tolist()), 4),
        "validation": validation,
        "examples_p_toxic": {t: round(p, 4) for t, p in zip(EXAMPLES, probs[-len(EXAMPLES):])},
    }
    for text, p in stats["examples_p_toxic"].items():
        logger.info("demo evaluator: P(toxic) %.3f for %r", p, text)
    return stats
