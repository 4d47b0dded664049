"""The judge contract: a judge scores a batch of (prompt, response) samples.

The batch is the unit of work: it is what makes classifiers fast (one padded forward pass)
and API judges concurrent (many requests in flight). Every judge is async at heart
(`ascore`); `score` is the sync wrapper for scripts and notebooks, and runs on the judge's
own long-lived event loop (`rlaif.judges.loop`), so API clients open once per judge.

What a caller may rely on, on every judge (pointwise or pairwise, wrapped or not; wrappers
such as the score cache and ensembles forward it, so no caller looks inside): `spec` (the
spec it was built from, None for a hand-built judge), `load()` (load weights, check API
credentials now, so a missing model or key fails before any scoring), `stats()` (a `JudgeStats` of its score
cache, None when it keeps none), `usage()` (requests, tokens, dollars so far) and `close()`.

A `Score.value` of None means "could not score" and `Score.error` says why. It is never
silently 0 or the scale's minimum: what to do with an unscored sample (skip it, fail the
step) is the caller's configured policy.
"""

from __future__ import annotations

import math
import operator
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from rlaif.judges.loop import JudgeLoop

T = TypeVar("T")
J = TypeVar("J", bound="JudgeBase")


class JudgeError(RuntimeError):
    """A judge cannot work (bad spec, missing model, unreachable API after retries, budget).

    `partial` holds what was finished before the failure, one entry per input sample
    (a Score, or None where nothing was computed), so callers such as the score cache
    keep every score already paid for.
    """

    def __init__(self, message: str, partial: list[Score | None] | None = None) -> None:
        super().__init__(message)
        self.partial = partial


class BudgetExceeded(JudgeError):
    """A judge hit its configured spending limit; scores already paid for are kept."""


@dataclass(frozen=True)
class Scale:
    """The declared score range of a judge; higher is always better."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ValueError(
                f"scale must be two finite numbers with low < high, got ({self.low}, {self.high})"
            )

    def contains(self, value: float) -> bool:
        """Whether `value` lies inside [low, high]."""
        return self.low <= value <= self.high

    def to_unit(self, value: float) -> float:
        """Map `value` from this scale onto [-1, 1] (affine)."""
        return 2.0 * (value - self.low) / (self.high - self.low) - 1.0

    def refusal(self, value: float, judge: str, fix: str) -> str | None:
        """Why `value` cannot be `judge`'s score (not finite, or outside [low, high]); None
        when it is a valid score. `fix` says what to change."""
        if math.isfinite(value) and self.contains(value):
            return None
        return (f"judge {judge!r}: value {value!r} is outside its declared scale "
                f"[{self.low:g}, {self.high:g}]; {fix}")


@dataclass(frozen=True)
class Sample:
    """One thing to judge: the prompt the policy saw and the response it gave."""

    prompt: str
    response: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Usage:
    """What scoring cost: API requests, tokens, dollars, and wall time."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0

    def _fieldwise(self, other: Usage, op: Callable[[Any, Any], Any]) -> Usage:
        return Usage(*(op(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)))

    def __add__(self, other: Usage) -> Usage:
        return self._fieldwise(other, operator.add)

    def __sub__(self, other: Usage) -> Usage:
        """What was used since `other` (an earlier reading of the same counter)."""
        return self._fieldwise(other, operator.sub)


@dataclass(frozen=True)
class MemberScore:
    """One ensemble member's part in an ensemble Score.

    raw: the member's value on its own scale (None when it has no score, `error` says why).
    normalized: the value after the ensemble's normalisation (None when raw is None).
    weight: the member's weight in the aggregate (0: logged, never aggregated).
    """

    raw: float | None
    normalized: float | None
    weight: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: raw, normalized, weight, and error only when there is one."""
        out: dict[str, Any] = {"raw": self.raw, "normalized": self.normalized, "weight": self.weight}
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemberScore:
        """Inverse of `to_dict`."""
        return cls(data.get("raw"), data.get("normalized"), float(data.get("weight", 1.0)), data.get("error"))


@dataclass
class Score:
    """A judge's verdict on one sample.

    value: the score on the judge's scale, or None when the judge could not score.
    error: why value is None (required then, None otherwise).
    rationale: the judge's short justification, when it gives one.
    raw: the raw model output (text, or a JSON dump of logits), for audit.
    usage: cost of producing this score (None for free local judges).
    details: free-form extras (the model, how the score was read, the cache flag).
    criteria: named sub-scores of a multi-criteria LLM judge ({criterion: value}), else None.
    members: an ensemble's member scores ({member name: MemberScore}), else None.
    """

    value: float | None
    rationale: str | None = None
    raw: str | None = None
    usage: Usage | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    criteria: dict[str, float] | None = None
    members: dict[str, MemberScore] | None = None

    def __post_init__(self) -> None:
        if self.value is None and not self.error:
            raise ValueError("a Score with value None must say why in `error`")
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(f"a Score value must be finite, got {self.value!r}")

    @property
    def ok(self) -> bool:
        """True when the judge produced a value."""
        return self.value is not None

    @classmethod
    def failed(cls, error: str, raw: str | None = None, usage: Usage | None = None) -> Score:
        """A score the judge could not produce, carrying the reason."""
        return cls(value=None, error=error, raw=raw, usage=usage)


def member_raw_values(scores: Iterable[Score]) -> dict[str, list[float]]:
    """Each ensemble member's own-scale values over `scores`, by member name, in order.

    A member that never scored still appears, with an empty list; scores without members
    (failed ones included) add nothing."""
    out: dict[str, list[float]] = {}
    for score in scores:
        for name, member in (score.members or {}).items():
            values = out.setdefault(name, [])
            if member.raw is not None:
                values.append(float(member.raw))
    return out


def as_samples(items: Sequence[Sample | tuple[str, str] | dict[str, Any]]) -> list[Sample]:
    """Accept Samples, (prompt, response) pairs or {"prompt", "response"} dicts."""
    out: list[Sample] = []
    for i, item in enumerate(items):
        if isinstance(item, Sample):
            out.append(item)
        elif isinstance(item, tuple) and len(item) == 2:
            out.append(Sample(str(item[0]), str(item[1])))
        elif isinstance(item, dict) and "response" in item:
            meta = {k: v for k, v in item.items() if k not in ("prompt", "response")}
            out.append(Sample(str(item.get("prompt", "")), str(item["response"]), meta))
        else:
            raise TypeError(
                f"sample {i}: expected Sample, (prompt, response) or a dict with 'response', "
                f"got {type(item).__name__}"
            )
    return out


@dataclass(frozen=True)
class JudgeStats:
    """What a judge's score cache did: hits and misses of this object, entries in the file.

    path: the cache file (several files joined by ", " for an ensemble whose members cache);
    key: the spec fingerprint the entries are stored under (None when summed over several)."""

    path: str
    hits: int
    misses: int
    entries: int
    key: str | None = None

    @property
    def hit_rate(self) -> float:
        """Share of the looked-up samples answered from the file (0 before any lookup)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field and the hit rate."""
        return {"path": self.path, "key": self.key, "hits": self.hits, "misses": self.misses,
                "hit_rate": self.hit_rate, "entries": self.entries}


def sum_stats(parts: Iterable[JudgeStats | None]) -> JudgeStats | None:
    """Several caches' stats as one (counts summed, distinct paths listed); None if none."""
    got = [p for p in parts if p is not None]
    if not got:
        return None
    if len(got) == 1:
        return got[0]
    paths = ", ".join(dict.fromkeys(p.path for p in got))
    return JudgeStats(paths, sum(p.hits for p in got), sum(p.misses for p in got),
                      sum(p.entries for p in got))


_LOOP_LOCK = threading.Lock()  # creating a judge's loop: two threads' first calls at once


class JudgeBase(ABC):
    """What every judge, pointwise (`Judge`) or pairwise, offers its callers (module doc).

    Subclasses that override `close` call `super().close()`, which stops the judge's loop."""

    name: str
    spec: Any = None  # the spec it was built from (rlaif.judges.spec); None when hand-built
    _judge_loop: JudgeLoop | None = None  # what sync calls run on; started on first use

    def load(self) -> None:
        """Load model weights / check API credentials now, so a missing model or key fails
        before any scoring (otherwise done on first use)."""

    def stats(self) -> JudgeStats | None:
        """Its score cache's statistics; None when it keeps no cache."""
        return None

    def usage(self) -> Usage:
        """Total usage so far (API judges override; local judges cost nothing)."""
        return Usage()

    def run_on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on this judge's own event loop (started on first use) and wait for it."""
        with _LOOP_LOCK:
            loop = self._judge_loop
            if loop is None or not loop.usable:
                loop = self._judge_loop = JudgeLoop(getattr(self, "name", type(self).__name__))
                # A judge dropped without close() still stops its thread when collected.
                weakref.finalize(self, loop.close, wait=False)
        return loop.run(coro)

    def close(self) -> None:
        """Release clients, models, files, and the judge's loop. Safe to call twice."""
        with _LOOP_LOCK:
            loop, self._judge_loop = self._judge_loop, None
        if loop is not None:
            loop.close()

    def __enter__(self: J) -> J:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Judge(JudgeBase):
    """Base class for every judge. Subclasses implement `ascore` over a batch."""

    scale: Scale

    @abstractmethod
    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        """Score a batch; returns one Score per sample, in input order."""

    def score(self, samples: Sequence[Sample | tuple[str, str] | dict[str, Any]]) -> list[Score]:
        """Synchronous wrapper over `ascore`, on the judge's own loop (works in Jupyter too)."""
        batch = as_samples(samples)
        return self.run_on_loop(self.ascore(batch))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, scale=({self.scale.low}, {self.scale.high}))"
