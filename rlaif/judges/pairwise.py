"""Pairwise judges: which of two responses to one prompt is better (A, B or a tie).

    judge = load_pairwise_judge("claude-pairwise-anthropic")   # or any pointwise judge ref
    prefs = judge.compare([Pair("How do I ...?", "reply one", "reply two")])
    prefs[0].verdict, prefs[0].strength, consistency_rate(prefs)

A `Pair` is one comparison; `a` is shown first in the canonical order. A `Preference` is
the verdict ("a", "b", "tie"), a strength in [0, 1] (how clearly the verdict holds: 0 = no
difference, 1 = as clear as it gets) and a rationale, or verdict None with `error` saying why
(never a made-up verdict). `orders` keeps what each asking of the pair returned, un-swapped
to the canonical names a/b; `consistent` says whether the two orders agreed.

Position-bias control (LLM judges, `rlaif.judges.llm.pairwise`): with `orders: both` each
pair is asked as (a, b) and as (b, a); `combine_orders` merges the two answers:

- both scored, same verdict: that verdict, strength = the mean of the two; consistent True;
- both scored, different verdicts: consistent False, and by `disagreement:`
  `tie` -> verdict "tie" with strength 0 (no preference survives the swap), or
  `unscored` -> verdict None with the two verdicts in `error`;
- either order unscored: the pair is unscored (a one-order verdict carries exactly the
  position bias the control removes); the order that was scored is kept in `orders` (and in
  the cache, so a rerun asks only the missing one).

With `orders: single` the pair is asked once, as (a, b); `consistent` is None.

`PointwisePairwise` makes any pointwise `Judge` (classifier, function, Claude, ensemble) a
pairwise one: it scores a and b alone (no position to be biased by) and compares the scores.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rlaif.judges.base import BudgetExceeded, Judge, JudgeBase, JudgeError, JudgeStats, Sample, Score, Usage

Verdict = Literal["a", "b", "tie"]
VERDICTS: tuple[str, ...] = ("a", "b", "tie")


@dataclass(frozen=True)
class Pair:
    """One comparison: the prompt and two responses; `a` is shown first in the canonical order."""

    prompt: str
    a: str
    b: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Preference:
    """A pairwise verdict, or None (unscored) with `error` saying why.

    verdict: "a", "b" or "tie"; None when the judge could not decide (see `error`).
    strength: how clearly the verdict holds, in [0, 1]; None when unscored.
    usage: what this comparison cost (every order asked, retries included).
    consistent: both orders gave the same verdict; None when asked once or unscored.
    orders: one dict per asking, un-swapped to a/b: order ("ab"/"ba"), verdict, strength,
        rationale, error, cached.
    """

    verdict: Verdict | None
    strength: float | None
    rationale: str = ""
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    consistent: bool | None = None
    orders: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.verdict is None:
            if not self.error:
                raise ValueError("a Preference with verdict None must say why in `error`")
            if self.strength is not None:
                raise ValueError("an unscored Preference has no strength")
            return
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS} or None, got {self.verdict!r}")
        if self.strength is None or not (math.isfinite(self.strength) and 0.0 <= self.strength <= 1.0):
            raise ValueError(f"strength must be a number in [0, 1] when there is a verdict, got {self.strength!r}")

    @property
    def ok(self) -> bool:
        """True when there is a verdict."""
        return self.verdict is not None

    @classmethod
    def failed(cls, error: str, usage: Usage | None = None, orders: list[dict[str, Any]] | None = None) -> Preference:
        """A comparison the judge could not make, carrying the reason."""
        return cls(None, None, error=error, usage=usage or Usage(), orders=list(orders or []))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, usage as a dict."""
        return {
            "verdict": self.verdict, "strength": self.strength, "rationale": self.rationale,
            "error": self.error, "consistent": self.consistent, "orders": [dict(o) for o in self.orders],
            "usage": asdict(self.usage),
        }


class PairwiseError(JudgeError):
    """A pairwise judge stopped mid-batch; `partial` holds one Preference (or None where
    nothing was asked) per input pair, so callers keep every comparison paid for."""

    def __init__(self, message: str, partial: list[Preference | None] | None = None) -> None:
        super().__init__(message)
        self.partial = partial  # type: ignore[assignment]  # Preferences, not Scores


class PairwiseBudgetExceeded(PairwiseError, BudgetExceeded):
    """A pairwise judge hit its budget; `partial` keeps every comparison paid for."""


def as_pairs(items: Sequence[Pair | tuple[str, str, str] | dict[str, Any]]) -> list[Pair]:
    """Accept Pairs, (prompt, a, b) tuples or {"prompt", "a", "b"} dicts."""
    out: list[Pair] = []
    for i, item in enumerate(items):
        if isinstance(item, Pair):
            out.append(item)
        elif isinstance(item, tuple) and len(item) == 3:
            out.append(Pair(*(str(x) for x in item)))
        elif isinstance(item, dict) and "a" in item and "b" in item:
            meta = {k: v for k, v in item.items() if k not in ("prompt", "a", "b")}
            out.append(Pair(str(item.get("prompt", "")), str(item["a"]), str(item["b"]), meta))
        else:
            raise TypeError(
                f"pair {i}: expected Pair, (prompt, a, b) or a dict with 'a' and 'b', got {type(item).__name__}"
            )
    return out


class PairwiseJudge(JudgeBase):
    """Base class of every pairwise judge. Subclasses implement `acompare` over a batch.

    `spec`, `load()`, `stats()`, `usage()` and `close()` are the judge contract of
    `rlaif.judges.base.JudgeBase`, as on a pointwise judge."""

    @abstractmethod
    async def acompare(self, pairs: Sequence[Pair]) -> list[Preference]:
        """Compare a batch; one Preference per pair, in input order."""

    def compare(self, pairs: Sequence[Pair | tuple[str, str, str] | dict[str, Any]]) -> list[Preference]:
        """Synchronous wrapper over `acompare`, on the judge's own loop (works in Jupyter too)."""
        return self.run_on_loop(self.acompare(as_pairs(pairs)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def unswap(shown: Verdict, order: str) -> Verdict:
    """The canonical verdict of an answer given with the pair shown in `order` ("ab"/"ba")."""
    if order == "ab" or shown == "tie":
        return shown
    return "b" if shown == "a" else "a"


def combine_orders(
    asked: Sequence[dict[str, Any]], usage: Usage, disagreement: Literal["tie", "unscored"] = "tie"
) -> Preference:
    """One Preference from the per-order answers (already un-swapped); rules in the module doc."""
    orders = [dict(o) for o in asked]
    missing = [o for o in orders if o.get("verdict") is None]
    if missing:
        why = "; ".join(f"order {o['order']}: {o.get('error') or 'not asked'}" for o in missing)
        return Preference.failed(f"not every order was scored ({why})", usage, orders)
    if len(orders) == 1:
        (only,) = orders
        return Preference(only["verdict"], float(only["strength"]), only.get("rationale") or "",
                          usage=usage, orders=orders)
    verdicts = [o["verdict"] for o in orders]
    rationale = "\n".join(f"[{o['order']}] {o.get('rationale') or ''}".rstrip() for o in orders)
    if len(set(verdicts)) == 1:
        strength = sum(float(o["strength"]) for o in orders) / len(orders)
        return Preference(verdicts[0], strength, rationale, usage=usage, consistent=True, orders=orders)
    said = ", ".join(f"{o['order']} -> {o['verdict']}" for o in orders)
    if disagreement == "tie":
        return Preference("tie", 0.0, rationale, usage=usage, consistent=False, orders=orders)
    return Preference(None, None, rationale, f"the two orders disagree ({said}); disagreement: unscored",
                      usage, consistent=False, orders=orders)


def consistency_rate(prefs: Sequence[Preference]) -> float | None:
    """Share of pairs asked both ways, both scored, whose two verdicts agree after un-swapping.

    None when no pair qualifies (single order, or nothing scored)."""
    judged = [p.consistent for p in prefs if p.consistent is not None]
    if not judged:
        return None
    return sum(judged) / len(judged)


def _usage_of(scores: Sequence[Score | None]) -> Usage:
    total = Usage()
    for s in scores:
        if s is not None and s.usage is not None:
            total = total + s.usage
    return total


class PointwisePairwise(PairwiseJudge):
    """Any pointwise Judge as a pairwise one: score a and b alone, compare the two values.

    verdict: "a" or "b" when the scores differ by more than `tie_margin` (on the judge's own
    scale), else "tie". strength: |score_a - score_b| / (high - low) of the judge's scale,
    capped at 1. Either score missing -> unscored, naming the side and the reason. Closing
    this closes the wrapped judge.
    """

    def __init__(self, judge: Judge, tie_margin: float = 0.0) -> None:
        if not (math.isfinite(tie_margin) and tie_margin >= 0):
            raise ValueError(f"tie_margin must be a finite number >= 0, got {tie_margin!r}")
        self.judge = judge
        self.tie_margin = float(tie_margin)
        self.name = judge.name

    @property
    def spec(self) -> Any:  # type: ignore[override]  # the wrapped judge's
        """The wrapped judge's spec."""
        return self.judge.spec

    def load(self) -> None:
        """Load the wrapped judge."""
        self.judge.load()

    def stats(self) -> JudgeStats | None:
        """The wrapped judge's cache statistics."""
        return self.judge.stats()

    def usage(self) -> Usage:
        """The wrapped judge's usage."""
        return self.judge.usage()

    def close(self) -> None:
        """Close the wrapped judge, then this wrapper's loop."""
        self.judge.close()
        super().close()

    def __repr__(self) -> str:
        return f"PointwisePairwise({self.judge!r}, tie_margin={self.tie_margin:g})"

    async def acompare(self, pairs: Sequence[Pair]) -> list[Preference]:
        """Score every a and b in one batch of the wrapped judge, then compare per pair."""
        pairs = list(pairs)
        samples = [Sample(p.prompt, r, dict(p.meta)) for p in pairs for r in (p.a, p.b)]
        if not samples:
            return []
        try:
            scores: list[Score | None] = list(await self.judge.ascore(samples))
        except JudgeError as exc:
            partial = list(exc.partial or [None] * len(samples))
            prefs: list[Preference | None] = [
                self._prefer(sa, sb) if sa is not None and sb is not None else None
                for sa, sb in zip(partial[0::2], partial[1::2])
            ]
            kind = PairwiseBudgetExceeded if isinstance(exc, BudgetExceeded) else PairwiseError
            done = sum(p is not None for p in prefs)
            raise kind(f"{exc} ({done} of {len(pairs)} pairs compared, kept in .partial)", prefs) from exc
        if len(scores) != len(samples):
            raise JudgeError(f"judge {self.name!r} returned {len(scores)} scores for {len(samples)} samples")
        return [self._prefer(sa, sb) for sa, sb in zip(scores[0::2], scores[1::2])]  # type: ignore[arg-type]

    def _prefer(self, sa: Score, sb: Score) -> Preference:
        usage = _usage_of([sa, sb])
        orders = [{"order": "ab", "score_a": sa.value, "score_b": sb.value,
                   "error": "; ".join(f"{side}: {s.error}" for side, s in (("a", sa), ("b", sb)) if not s.ok) or None}]
        if not (sa.ok and sb.ok):
            return Preference.failed(f"pointwise judge {self.name!r} could not score {orders[0]['error']}",
                                     usage, orders)
        diff = float(sa.value) - float(sb.value)  # type: ignore[arg-type]
        verdict: Verdict = "tie" if abs(diff) <= self.tie_margin else ("a" if diff > 0 else "b")
        span = self.judge.scale.high - self.judge.scale.low
        strength = min(1.0, abs(diff) / span)
        orders[0].update(verdict=verdict, strength=strength)
        rationale = f"{self.name}: a scored {sa.value:g}, b scored {sb.value:g}"
        return Preference(verdict, strength, rationale, usage=usage, orders=orders)
