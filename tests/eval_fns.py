"""Scoring functions for hold-out report tests (`type: function` judges, `eval_fns:<name>`):
verdicts simple enough to work out by hand."""

from __future__ import annotations


def clean(texts: list[str]) -> list[float]:
    """1.0 (clean) unless the text says "idiot" (0.0): on scale (0, 1), toxicity = 1 - value."""
    return [0.0 if "idiot" in t.lower() else 1.0 for t in texts]


def words(texts: list[str]) -> list[float]:
    """The number of whitespace-separated words (a stand-in for helpfulness)."""
    return [float(len(t.split())) for t in texts]
