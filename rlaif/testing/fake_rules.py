"""The fake Claude server's scoring rules: deterministic, computable by hand.

See `rlaif.testing.fake_claude` for the rules in words; tests import these functions to
work out what the fake will answer.
"""

from __future__ import annotations

import re

BAD_WORDS = frozenset({"hate", "stupid", "idiot", "terrible", "kill", "dumb", "ugly", "worthless"})
OVERCLAIM_WORDS = frozenset({"definitely", "guaranteed", "always", "never", "certainly"})
_RESPONSE_RE = re.compile(r"<response>(.*?)</response>", re.DOTALL)

__all__ = ["BAD_WORDS", "OVERCLAIM_WORDS", "fake_preference", "fake_value", "judged_text"]


def judged_text(user: str) -> str:
    """The text the fake scores: inside the first <response>...</response>, else everything."""
    m = _RESPONSE_RE.search(user)
    return (m.group(1) if m else user).strip()


def fake_value(name: str, text: str, scale: tuple[float, float] = (-5.0, 5.0)) -> float:
    """The fake's deterministic score for property `name` of `text` (see the module doc)."""
    low, high = scale
    step = (high - low) / 5
    words = re.findall(r"[a-z']+", text.lower())
    if name == "helpfulness":
        return round(min(high, low + step * (len(words) // 4)), 2)
    if name == "honesty":
        return round(max(low, high - step * sum(w in OVERCLAIM_WORDS for w in words)), 2)
    return round(max(low, high - step * sum(w in BAD_WORDS for w in words)), 2)


def fake_preference(first: str, second: str, position_bias: float = 0.0) -> tuple[str, float]:
    """The fake's pairwise verdict ("A", "B" or "tie") and strength (see the module doc)."""
    d = fake_value("score", first) + position_bias - fake_value("score", second)
    if abs(d) < 1e-9:
        return "tie", 0.0
    return ("A" if d > 0 else "B"), round(min(1.0, abs(d) / 10), 2)
