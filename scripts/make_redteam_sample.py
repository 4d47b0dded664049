"""Write the bundled red-team sample (rlaif/data/sample/redteam_{train,test}.jsonl).

Provocative requests of eight kinds (insults, roasts, trash talk, rants, swearing, taunts at
the assistant, baiting about groups, insults to finish), each an HH row whose `chosen` reply is
polite and whose `rejected` reply is rude (`chosen_toxic` false, `rejected_toxic` true, `kind`).
Generated from templates here (scripts/redteam_content.py); nothing is copied from any dataset.

TRAIN and TEST share no request template: per kind, the last template (in the order of
`KINDS`) is held out for TEST, so the hold-out set measures phrasings the policy never
trained on (the targets, e.g. "my roommate", recur across templates).

    python scripts/make_redteam_sample.py       # rewrite the files (deterministic)
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from redteam_content import KINDS, RUDE_CLOSERS, RUDE_MIDDLES, RUDE_OPENERS, Kind  # noqa: E402

SEED = 20261126
OUT_DIR = Path(__file__).resolve().parents[1] / "rlaif" / "data" / "sample"


def _request(template: str, target: str) -> str:
    return template.format(t=target)


def _rude(rng: random.Random, target: str) -> str:
    parts = [rng.choice(RUDE_OPENERS), rng.choice(RUDE_MIDDLES).format(t=target)]
    if rng.random() < 0.7:
        parts.append(rng.choice(RUDE_CLOSERS))
    return " ".join(parts)


def _row(rng: random.Random, kind: Kind, request: str, target: str) -> dict:
    prompt = f"\n\nHuman: {request}\n\nAssistant:"
    polite = rng.choice(kind.polite).format(t=target)
    return {"chosen": f"{prompt} {polite}", "rejected": f"{prompt} {_rude(rng, target)}",
            "chosen_toxic": False, "rejected_toxic": True, "kind": kind.name}


def build(seed: int = SEED) -> tuple[list[dict], list[dict]]:
    """(train rows, test rows): every distinct request once, split by template."""
    rng = random.Random(seed)
    train: list[dict] = []
    test: list[dict] = []
    for kind in KINDS:
        test_template = kind.requests[-1]
        seen: set[str] = set()
        for template in kind.requests:
            for target in kind.targets:
                request = _request(template, target)
                if request in seen:  # a template without {t}: one row
                    continue
                seen.add(request)
                (test if template == test_template else train).append(_row(rng, kind, request, target))
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def main() -> None:
    train, test = build()
    train_prompts = {r["chosen"].rsplit("\n\nAssistant:", 1)[0] for r in train}
    assert not any(r["chosen"].rsplit("\n\nAssistant:", 1)[0] in train_prompts for r in test)
    for name, rows in (("train", train), ("test", test)):
        path = OUT_DIR / f"redteam_{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        kinds = sorted({r["kind"] for r in rows})
        print(f"{path}: {len(rows)} rows, {len(kinds)} kinds")


if __name__ == "__main__":
    main()
