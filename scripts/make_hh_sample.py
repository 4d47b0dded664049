"""Write the bundled HH-format sample (rlaif/data/sample/hh_sample_{train,test}.jsonl).

Every conversation is generated here from templates (many templates x slots); nothing is
copied from Anthropic/hh-rlhf. Rows follow the HH format, `chosen` and `rejected` full
transcripts sharing all turns but the final assistant reply, plus a toxicity label per
final reply (`chosen_toxic`, `rejected_toxic`) and a `topic`.

The sample is also the pretraining corpus of the offline demo's tiny GPT-2, which must
learn to answer the same kinds of prompts both politely and toxically, so replies are
short (8-40 words) and toxic ones are plainly profane (insults and profanity only, no
slurs, nothing about any group of people).

    python scripts/make_hh_sample.py            # rewrite the files (deterministic)
    python scripts/make_hh_sample.py --check    # also print profanity-check means per label
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

# Run as a script from anywhere: the content module sits beside it, rlaif one level up.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from hh_sample_content import (  # noqa: E402
    FOLLOWUP_OPENERS, MILD_RUDE, RUDE_PREFIXES, TOPICS, TOXIC_CLOSERS, TOXIC_MIDDLES,
    TOXIC_OPENERS, UNHELPFUL, Topic,
)

SEED = 20240617
N_TRAIN = 600
N_TEST = 160
MULTI_TURN_SHARE = 0.25  # of draws; duplicate single-turn prompts are redrawn, so ~30% of rows
MIN_WORDS, MAX_WORDS = 8, 40
OUT_DIR = Path(__file__).resolve().parents[1] / "rlaif" / "data" / "sample"


@dataclass(frozen=True)
class Exchange:
    """One human request and the facts a helpful reply would give."""

    request: str
    subject: str  # noun phrase for unhelpful and toxic replies ("pasta", "your code")
    fact: str


def _exchange(rng: random.Random, topic: Topic, rude_ok: bool) -> Exchange:
    """Draw a request of `topic` (sometimes with a rude opener) and its helpful fact."""
    subject, fact = rng.choice(topic.items)
    request = rng.choice(topic.requests).format(x=subject)
    about = topic.about.format(x=subject)
    if rude_ok and topic.rude_prefix_ok and rng.random() < 0.15:
        request = _prefixed(rng.choice(RUDE_PREFIXES), request)
    else:
        request = _prefixed(rng.choice(topic.openers), request)
    return Exchange(request=request, subject=about, fact=fact)


def _prefixed(prefix: str, request: str) -> str:
    """`prefix + request`, lower-casing the request's first letter after a comma."""
    if prefix.endswith(", "):
        return prefix + request[0].lower() + request[1:]
    return prefix + request


def _helpful(rng: random.Random, topic: Topic, ex: Exchange) -> str:
    return rng.choice(topic.helpful).format(fact=ex.fact, x=ex.subject)


def _unhelpful(rng: random.Random, ex: Exchange) -> str:
    return rng.choice(UNHELPFUL).format(x=ex.subject)


def _toxic(rng: random.Random, ex: Exchange) -> str:
    parts = [rng.choice(TOXIC_OPENERS), rng.choice(TOXIC_MIDDLES).format(x=ex.subject)]
    if rng.random() < 0.7:
        parts.append(rng.choice(TOXIC_CLOSERS))
    while len(" ".join(parts).split()) < MIN_WORDS:  # short combinations get another closer
        parts.append(rng.choice([c for c in TOXIC_CLOSERS if c not in parts]))
    return " ".join(parts)


def _mild_rude(rng: random.Random, ex: Exchange) -> str:
    return rng.choice(MILD_RUDE).format(fact=ex.fact, x=ex.subject)


def _transcript(turns: list[tuple[str, str]]) -> str:
    return "".join(f"\n\n{role}: {text}" for role, text in turns)


def _check_words(text: str) -> str:
    n = len(text.split())
    if not MIN_WORDS <= n <= MAX_WORDS:
        raise ValueError(f"reply has {n} words, outside [{MIN_WORDS}, {MAX_WORDS}]: {text!r}")
    return text


def make_row(rng: random.Random) -> dict:
    """One HH row: shared history, then chosen and rejected final replies with labels."""
    topic = rng.choice(TOPICS)
    history: list[tuple[str, str]] = []
    n_earlier = 0
    if rng.random() < MULTI_TURN_SHARE:
        n_earlier = 1 if rng.random() < 0.75 else 2
    for _ in range(n_earlier):
        ex = _exchange(rng, topic, rude_ok=False)
        history += [("Human", ex.request), ("Assistant", _check_words(_helpful(rng, topic, ex)))]
    final = _exchange(rng, topic, rude_ok=True)
    request = final.request
    if history:
        request = rng.choice(FOLLOWUP_OPENERS) + request
    history.append(("Human", request))

    kind = rng.random()
    if kind < 0.72 or not topic.unhelpful_ok and kind < 0.9:
        chosen, rejected = _helpful(rng, topic, final), _toxic(rng, final)
        chosen_toxic, rejected_toxic = False, True
    elif kind < 0.9:
        chosen, rejected = _helpful(rng, topic, final), _unhelpful(rng, final)
        chosen_toxic, rejected_toxic = False, False
    else:
        chosen, rejected = _mild_rude(rng, final), _toxic(rng, final)
        chosen_toxic, rejected_toxic = True, True
    return {
        "chosen": _transcript(history + [("Assistant", _check_words(chosen))]),
        "rejected": _transcript(history + [("Assistant", _check_words(rejected))]),
        "chosen_toxic": chosen_toxic,
        "rejected_toxic": rejected_toxic,
        "topic": topic.name,
    }


def make_rows(n: int, seed: int = SEED) -> list[dict]:
    """`n` rows with pairwise different prompts (so train and test never share one)."""
    rng = random.Random(seed)
    rows: list[dict] = []
    seen: set[str] = set()
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > n * 50:
            raise RuntimeError(f"only {len(rows)} distinct prompts after {attempts} draws")
        row = make_row(rng)
        prompt = row["chosen"].rsplit("\n\nAssistant:", 1)[0]
        if prompt in seen:
            continue
        seen.add(prompt)
        rows.append(row)
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write rows as JSON lines (stable key order, ASCII-safe)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def check_profanity(rows: list[dict]) -> dict[str, float]:
    """Mean alt-profanity-check probability of final replies labelled toxic vs polite."""
    from profanity_check import predict_prob

    from rlaif.data.hh import split_prompt_response

    texts, labels = [], []
    for row in rows:
        for side in ("chosen", "rejected"):
            texts.append(split_prompt_response(row[side])[1])
            labels.append(row[f"{side}_toxic"])
    probs = predict_prob(texts)
    toxic = [float(p) for p, y in zip(probs, labels) if y]
    polite = [float(p) for p, y in zip(probs, labels) if not y]
    return {
        "toxic_mean": sum(toxic) / len(toxic), "polite_mean": sum(polite) / len(polite),
        "toxic_min": min(toxic), "polite_max": max(polite),
        "n_toxic": len(toxic), "n_polite": len(polite),
    }


def main(argv: list[str] | None = None) -> int:
    """Write the train and test sample files; with --check, print profanity statistics."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--check", action="store_true", help="print profanity-check means")
    args = parser.parse_args(argv)
    rows = make_rows(N_TRAIN + N_TEST)
    train, test = rows[:N_TRAIN], rows[N_TRAIN:]
    write_jsonl(args.out_dir / "hh_sample_train.jsonl", train)
    write_jsonl(args.out_dir / "hh_sample_test.jsonl", test)
    multi = sum(r["chosen"].count("\n\nHuman:") > 1 for r in rows) / len(rows)
    print(f"wrote {len(train)} train + {len(test)} test rows to {args.out_dir} "
          f"({multi:.0%} multi-turn)")
    if args.check:
        for name, part in (("train", train), ("test", test)):
            stats = check_profanity(part)
            print(f"{name}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in stats.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
