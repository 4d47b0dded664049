"""A judge's answer as a journal row and back: the score, why not, and what it cost.

    {"score", "error", "rationale", "requests", "input_tokens", "output_tokens", "cost_usd",
     "latency_s"} + the fields that place it (row, side, pair, judge, sample hash)

`spent` sums what the rows of earlier runs cost, so a budget carries across `--resume`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rlaif.judges.base import Score, Usage

COST_FIELDS = ("requests", "input_tokens", "output_tokens", "cost_usd", "latency_s")


def score_record(score: Score, **where: Any) -> dict[str, Any]:
    """The journal row of one Score, placed by `where`."""
    usage = score.usage or Usage()
    return {**where, "score": score.value, "error": score.error, "rationale": score.rationale,
            **{f: getattr(usage, f) for f in COST_FIELDS}}


def score_from_record(row: Mapping[str, Any]) -> Score:
    """The Score a journal row holds (value, error, rationale and its usage)."""
    usage = Usage(*(type(getattr(Usage(), f))(row.get(f) or 0) for f in COST_FIELDS))
    return Score(row.get("score"), row.get("rationale"), usage=usage,
                 error=row.get("error") or (None if row.get("score") is not None else "no reason kept"))


def spent(rows: Iterable[Mapping[str, Any]]) -> Usage:
    """Requests and dollars the rows cost (rows without cost fields count 0)."""
    total = Usage()
    for row in rows:
        total = total + Usage(requests=int(row.get("requests") or 0),
                              cost_usd=float(row.get("cost_usd") or 0.0))
    return total
