"""One output row per labelled pair: TRL's preference columns plus what the judge said and cost.

    prompt, chosen, rejected      TRL's preference format; chosen/rejected are null for a tie
                                  or an unscored pair (kept for the record, left out of DPO)
    verdict, strength, rationale, error, consistent     the judge's Preference
    cost_usd, requests, judge_calls                     what it cost (judge_calls: responses
                                  scored by a pointwise judge, or orders asked of a pairwise one)
    a, b, key, source, row | prompt_index               the pair as shown, and where it came from
    human_chosen, agrees_with_human                     HH pairs only
"""

from __future__ import annotations

from typing import Any

from rlaif.judges.pairwise import Preference
from rlaif.workbench.pairs import LabelItem

DECIDED = ("a", "b")


def label_row(item: LabelItem, pref: Preference, judge_calls: int) -> dict[str, Any]:
    """The output row of `item` judged as `pref`."""
    pair = item.pair
    if pref.verdict == "a":
        chosen, rejected = pair.a, pair.b
    elif pref.verdict == "b":
        chosen, rejected = pair.b, pair.a
    else:
        chosen = rejected = None
    row: dict[str, Any] = {
        "prompt": pair.prompt, "chosen": chosen, "rejected": rejected,
        "verdict": pref.verdict, "strength": pref.strength, "rationale": pref.rationale,
        "error": pref.error, "consistent": pref.consistent,
        "cost_usd": pref.usage.cost_usd, "requests": pref.usage.requests, "judge_calls": judge_calls,
        "a": pair.a, "b": pair.b, "key": item.key, **item.info,
    }
    if "human_chosen" in item.info:
        row["agrees_with_human"] = (pref.verdict == item.info["human_chosen"]) \
            if pref.verdict in DECIDED else None
    return row


def is_labelled(row: dict[str, Any]) -> bool:
    """A row a rerun keeps: the judge gave a verdict (a, b or tie). Unscored rows are asked again
    (the judge's cache still holds whatever part of them was paid for)."""
    return row.get("verdict") is not None
