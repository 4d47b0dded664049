"""Classifier judge throughput: the walk-through's `pipeline` vs rlaif's ClassifierJudge.

The roberta-base architecture with random weights (built from `RobertaConfig()` defaults,
2 labels nothate/hate, no download) and a BPE tokenizer trained here; 512 HH-like texts of
mixed length (5-200 words). Measures texts/s of

  (a) the walk-through's way: transformers `pipeline("text-classification", batch_size=16,
      top_k=None, function_to_apply="none")`,
  (b) `ClassifierJudge` with default settings (loaded from the saved folder through the
      same `from_pretrained` path as a hub id),

in the same process on the same texts, alternating (a) and (b) across repeats so that load
from other processes hits both alike; checks that their logits agree; prints the ratio.

    python benchmarks/classifier_throughput.py            # full size, a few minutes on CPU
    python benchmarks/classifier_throughput.py --quick    # tiny model, seconds
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

OPENERS = [
    "Sure, here is what I would suggest.", "I am sorry, but I cannot help with that.",
    "That is a great question.", "You are an idiot and I hate you.",
    "Let me think about this step by step.", "Honestly, that sounds like a terrible idea.",
]
WORDS = (
    "the a you I we they it this that help people time day good bad kind please thank "
    "sorry question answer recipe bread water garden money work friend family problem idea "
    "maybe really very quite never always often because but and or so then first next "
    "finally stupid awful lovely careful safe dangerous advice doctor school music book"
).split()


def hh_like_texts(n: int, seed: int = 0, min_words: int = 5, max_words: int = 200) -> list[str]:
    """`n` assistant-style replies of uniformly random length in [min_words, max_words]."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        length = rng.randint(min_words, max_words)
        words = rng.choice(OPENERS).split()
        while len(words) < length:
            sentence = rng.choices(WORDS, k=rng.randint(4, 14))
            words += [sentence[0].capitalize(), *sentence[1:-1], sentence[-1] + rng.choice(".!?,")]
        texts.append(" ".join(words[:length]))
    return texts


def build_model(out_dir: Path, corpus: list[str], quick: bool) -> Path:
    """Save a random-weight RoBERTa classifier (roberta-base shape unless quick) + tokenizer."""
    from rlaif.models.tiny import RobertaSettings, build_roberta_classifier, save_model

    size = {"hidden_size": 64, "num_layers": 2, "num_heads": 2,
            "intermediate_size": 128} if quick else {}  # {} = roberta-base: 768 x 12 layers
    settings = RobertaSettings(vocab_size=1000 if quick else 8000, model_max_length=512, **size)
    return save_model(out_dir, *build_roberta_classifier(corpus, settings))


def main() -> None:
    """Run the benchmark and print texts/s of both ways and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="number of texts (default 512)")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds of each way")
    parser.add_argument("--quick", action="store_true", help="tiny model, for a smoke run")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
    from transformers.utils import logging as hf_logging

    from rlaif.judges.local.classifier import ClassifierJudge
    from rlaif.judges.spec import ClassifierSpec

    hf_logging.disable_progress_bar()
    texts = hh_like_texts(args.n)
    samples = [("", t) for t in texts]
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp), hh_like_texts(2000, seed=1), args.quick)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        pipe = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
        judge = ClassifierJudge(ClassifierSpec(model=str(folder), label="nothate", name="bench"))
        judge.load()
        lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
        print(f"model: {'tiny RoBERTa' if args.quick else 'roberta-base architecture'}, random "
              f"weights; {len(texts)} texts, {min(lengths)}-{max(lengths)} tokens "
              f"(mean {sum(lengths) / len(lengths):.0f}); torch threads {torch.get_num_threads()}")

        def way_a() -> list[list[float]]:
            out = pipe(texts, batch_size=16, top_k=None, function_to_apply="none")
            # top_k=None sorts labels by score; put them back in id order.
            return [[next(d["score"] for d in row if d["label"] == name)
                     for name in ("nothate", "hate")] for row in out]

        def way_b() -> list[float]:
            return [s.value for s in judge.score(samples)]

        way_a_warm, way_b_warm = texts[:16], samples[:16]
        pipe(way_a_warm, batch_size=16, top_k=None, function_to_apply="none")
        judge.score(way_b_warm)

        times: dict[str, list[float]] = {"a": [], "b": []}
        results: dict[str, object] = {}
        for r in range(args.repeats):
            for name in ("a", "b") if r % 2 == 0 else ("b", "a"):
                t0 = time.perf_counter()
                results[name] = way_a() if name == "a" else way_b()
                times[name].append(time.perf_counter() - t0)
                print(f"  round {r + 1} ({name}) {len(texts) / times[name][-1]:7.1f} texts/s")

        a_logits = torch.tensor(results["a"])  # (N, 2)
        b_values = torch.tensor(results["b"])  # (N,) nothate logits
        b_logits = judge.logits(texts)  # (N, 2)
        diff = max((a_logits - b_logits).abs().max().item(), (a_logits[:, 0] - b_values).abs().max().item())
        rate_a = len(texts) * len(times["a"]) / sum(times["a"])
        rate_b = len(texts) * len(times["b"]) / sum(times["b"])
        print(f"(a) pipeline(batch_size=16, top_k=None, function_to_apply='none'): {rate_a:7.1f} texts/s")
        print(f"(b) rlaif ClassifierJudge (defaults: batch_size 32, length-sorted): {rate_b:7.1f} texts/s")
        print(f"ratio (b)/(a): {rate_b / rate_a:.2f}x   (best round each: "
              f"{min(times['a']) / min(times['b']):.2f}x)")
        print(f"max |logit (a) - logit (b)|: {diff:.2e}")


if __name__ == "__main__":
    main()
