"""The pairs to label: (a) HH chosen/rejected pairs, or (b) two samples per prompt from a policy.

(a) HH rows keep their human label. To measure the judge's position bias against it, the
human-chosen reply is shown first (`a`) on even rows and second (`b`) on odd rows; a pointwise
judge has no position, a pairwise one is asked in both orders when its spec says so.

(b) A policy answers every prompt twice (two seeded sampling passes, the chat template when
`chat`); the two replies are `a` and `b` in the order drawn. Prompts stay plain HH dialogues:
that is what the judge sees (`rlaif.data.chat`).

Each pair has a `key` (a hash of prompt, a and b): a rerun skips the keys already labelled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlaif.judges.pairwise import Pair


@dataclass(frozen=True)
class LabelItem:
    """One pair to label and the fields its output row keeps (source, row, human label)."""

    key: str
    pair: Pair
    info: dict[str, Any] = field(default_factory=dict)


def pair_key(prompt: str, a: str, b: str) -> str:
    """A stable id of the pair as shown (16 hex digits of a sha256)."""
    return hashlib.sha256(json.dumps([prompt, a, b]).encode("utf-8")).hexdigest()[:16]


def hh_items(source: str = "sample", *, split: str = "train", data_dir: str | None = None,
             limit: int | None = None, on_bad_row: str = "raise") -> list[LabelItem]:
    """HH pairs, human-chosen shown first on even rows and second on odd rows."""
    from rlaif.data.hh import load_hh

    dataset = load_hh(source, data_dir=data_dir, split=split, limit=limit,
                      on_bad_row=on_bad_row)  # type: ignore[arg-type]
    items = []
    for i, ex in enumerate(dataset.examples):
        chosen_first = i % 2 == 0
        a, b = (ex.chosen, ex.rejected) if chosen_first else (ex.rejected, ex.chosen)
        info = {"source": dataset.source, "row": ex.meta.get("row", i),
                "human_chosen": "a" if chosen_first else "b"}
        items.append(LabelItem(pair_key(ex.prompt, a, b), Pair(ex.prompt, a, b), info))
    if not items:
        raise ValueError(f"{dataset.source} (split {split!r}) holds no HH pair to label")
    return items


def policy_items(model: Any, tokenizer: Any, prompts: Sequence[str], *, gen_kwargs: dict[str, Any],
                 seed: int = 0, batch_size: int = 16, chat: bool = True,
                 system_prompt: str | None = None, progress: bool = True,
                 engine: str = "hf") -> list[LabelItem]:
    """Two samples per prompt from `model` (seeds `seed` and `seed + 1`): `a` and `b`;
    `engine` "vllm": sampled on a vLLM engine started for `model` (`rlaif.engines.generate`)."""
    from rlaif.models.generate import generate

    if not prompts:
        raise ValueError("no prompt to sample pairs for; pass at least one prompt")
    if not gen_kwargs.get("do_sample", False):
        raise ValueError("two samples per prompt need sampling (do_sample=true): greedy decoding "
                         "would answer both times the same")
    if engine == "vllm":
        from rlaif.engines.generate import generate_on_vllm

        runs = generate_on_vllm(model, prompts, gen_kwargs=gen_kwargs, seeds=(seed, seed + 1),
                                chat=chat, system_prompt=system_prompt)
    else:
        runs = [generate(model, tokenizer, prompts, gen_kwargs=gen_kwargs, seed=s,
                         batch_size=batch_size, progress=progress, chat=chat,
                         system_prompt=system_prompt)
                for s in (seed, seed + 1)]
    items = []
    for i, (prompt, a, b) in enumerate(zip(prompts, runs[0].texts, runs[1].texts)):
        info = {"source": "policy", "prompt_index": i}
        items.append(LabelItem(pair_key(prompt, a, b), Pair(prompt, a, b), info))
    return items
