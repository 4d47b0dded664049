"""What toxicity alone does not show: reply length, diversity (distinct-n), deflections,
helpfulness and fluency of one side (a model's replies, or a floor text given as every reply).

Definitions (on reply token ids, the EOS that ended a reply left out):

- length: tokens per reply; median and percentiles by linear interpolation (numpy's default),
  and the share of replies with at most `SHORT_TOKENS` (3) tokens.
- distinct-n (Li et al. 2016, as DExperts and Quark report it): per prompt, the unique n-grams
  among its k replies divided by all n-grams among them (n-grams never cross two replies),
  averaged over prompts. A prompt whose k replies hold no n-gram at all (every reply shorter
  than n tokens) counts as 0: nothing was said, so nothing diverse was said.
- deflections: `deflection.py`.
- fluency: perplexity under the start model (`fluency.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rlaif.evaluation.comparison import expected_max_toxicity, per_prompt, toxicity_probability
from rlaif.evaluation.deflection import deflection_share
from rlaif.evaluation.fluency import corpus_perplexity
from rlaif.evaluation.side import HoldoutSide
from rlaif.stats import mean_or_none

SHORT_TOKENS = 3  # replies of at most this many tokens count as "short"
DISTINCT_N = (1, 2, 3)
PERCENTILES = (10, 25, 50, 75, 90)


def distinct_n(groups: Sequence[Sequence[Sequence[int]]], n: int) -> float | None:
    """Mean over prompts of unique / total n-grams among the prompt's replies (token id lists);
    a prompt without any n-gram gives 0. None when there is no prompt."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    values = []
    for replies in groups:
        grams = [tuple(ids[i:i + n]) for ids in replies for i in range(len(ids) - n + 1)]
        values.append(len(set(grams)) / len(grams) if grams else 0.0)
    return float(np.mean(values)) if values else None


def length_summary(lengths: Sequence[int]) -> dict[str, Any] | None:
    """Mean, median, p10/p25/p75/p90 of reply lengths and the share of replies <= SHORT_TOKENS."""
    if not lengths:
        return None
    x = np.asarray(lengths, dtype=float)
    p10, p25, p50, p75, p90 = (float(v) for v in np.percentile(x, PERCENTILES))
    return {"mean": float(x.mean()), "median": p50, "p10": p10, "p25": p25, "p75": p75, "p90": p90,
            f"share_at_most_{SHORT_TOKENS}": float((x <= SHORT_TOKENS).mean()), "n": int(x.size)}


def side_metrics(side: HoldoutSide, *, k: int, threshold: float) -> dict[str, Any]:
    """Every headline number of one side (None where it was not measured)."""
    scored = [t for t in side.toxicity if t is not None]
    groups = per_prompt(side.toxicity, k)
    out: dict[str, Any] = {
        "toxicity_mean": float(np.mean(scored)) if scored else None,
        "share_over_threshold": float(np.mean([t > threshold for t in scored])) if scored else None,
        "expected_max_toxicity": expected_max_toxicity(groups),
        "toxicity_probability": toxicity_probability(groups, threshold),
        "helpfulness_mean": mean_or_none(side.helpfulness) if side.helpfulness else None,
        "deflection_share": deflection_share(side.responses),
        "length": length_summary([len(ids) for ids in side.token_ids]),
        "distinct": None, "perplexity": None,
    }
    if side.token_ids:
        replies = per_prompt(side.token_ids, k)
        out["distinct"] = {str(n): distinct_n(replies, n) for n in DISTINCT_N}
    tokens = side.reply_tokens()
    if side.start_nll and tokens is not None and len(tokens) == len(side.start_nll):
        out["perplexity"] = {"value": corpus_perplexity(side.start_nll, tokens),
                             "nll_total": float(sum(side.start_nll)), "tokens": int(sum(tokens)),
                             "lm": side.start_lm}
    return out
