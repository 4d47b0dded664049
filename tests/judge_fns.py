"""Tiny scoring functions for function-judge tests (`type: function`, `judge_fns:<name>`).

Word counts make expected judge verdicts easy to work out by hand.
"""

from __future__ import annotations

import math
import re

POLITE = re.compile(r"please|thank", re.IGNORECASE)
INSULT = re.compile(r"idiot|stupid", re.IGNORECASE)


def politeness(texts: list[str]) -> list[float]:
    """How many times a text says "please" or "thank" (any case; "Thanks" counts)."""
    return [float(len(POLITE.findall(t))) for t in texts]


def insults(texts: list[str]) -> list[float]:
    """How many insults ("idiot", "stupid") a text holds; NaN (unscorable) if it says "Fine"."""
    return [math.nan if "Fine" in t else float(len(INSULT.findall(t))) for t in texts]


def always_nan(texts: list[str]) -> list[float]:
    """A broken scorer: NaN for every text (the function judge reports each as unscored)."""
    return [float("nan")] * len(texts)
