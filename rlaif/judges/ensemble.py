"""Weighted ensembles of judges (`type: ensemble`).

Each member is a judge (built-in name, path or inline spec; a relative path in an ensemble
file is relative to that file's folder) with a weight and, for a multi-criteria LLM judge,
the `criterion` whose named sub-score it takes. Members that
reference the same judge share ONE judge instance and ONE `ascore` call per batch: the
three HHH criteria of `hhh-claude` cost one request per sample, not three. The member
judges are built by `rlaif.judges.registry.build_judge` and handed to `EnsembleJudge`.

Per sample, each member value is normalised, then aggregated over the members present:

    normalize  range   declared scale -> [-1, 1] (`Scale.to_unit`), clipped to [-1, 1]
               zscore  (x - running mean) / running std per member (`RunningMoments`:
                       population variance over every value seen so far, this batch included);
                       warm-up: while a member has fewer than 2 values (or std 0) it gives 0
               none    the raw value
    aggregate  weighted_mean   sum(w x) / sum(w)
               min             worst case over present members (weight-0 members excluded)
               mean_minus_std  weighted mean - std_coef * weighted population std
                               (uncertainty penalty, Coste et al. 2023)

Weight-0 members are scored and logged but never aggregated, and their absence never
triggers the missing policy. `on_missing`: `skip` fails the sample naming the missing
members, `renormalize` aggregates over the members present (fails only when none is),
`fail` raises JudgeError naming the member and the sample index (finished scores in
`.partial`).

Declared scale: range -> (-1, 1); zscore -> (-3, 3), a nominal band (z-scores beyond 3
happen and are not clipped); none -> the hull of the member scales. With mean_minus_std
the low end is widened to the worst case: for values in [c - h, c + h] the penalised mean
is at least c - h * sqrt(1 + std_coef**2) (Bhatia-Davis bound on the variance).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rlaif.judges.base import Judge, JudgeError, JudgeStats, MemberScore, Sample, Scale, Score, Usage, sum_stats
from rlaif.judges.spec import EnsembleSpec, LLMSpec
from rlaif.stats import RunningMoments

ZSCORE_BAND = 3.0  # nominal half-width of the z-score scale


@dataclass
class _Slot:
    """One ensemble member after building: which judge, how to read and weigh it."""

    name: str
    key: str
    weight: float
    criterion: str | None
    scale: Scale
    stats: RunningMoments = field(default_factory=RunningMoments)


def aggregate(values: Sequence[float], weights: Sequence[float], how: str, std_coef: float = 1.0) -> float:
    """Combine normalised member values with weights > 0 by `how` (see module doc)."""
    if not values or len(values) != len(weights):
        raise ValueError(f"aggregate needs as many values as weights (>0), got {len(values)} and {len(weights)}")
    if how == "min":
        return min(values)
    total = sum(weights)
    mean = sum(w * x for w, x in zip(weights, values)) / total
    if how == "weighted_mean":
        return mean
    if how == "mean_minus_std":
        var = sum(w * (x - mean) ** 2 for w, x in zip(weights, values)) / total
        return mean - std_coef * math.sqrt(var)
    raise ValueError(f"unknown aggregate {how!r}; use weighted_mean, min or mean_minus_std")


def ensemble_scale(spec: EnsembleSpec, member_scales: Sequence[Scale]) -> Scale:
    """The ensemble's declared scale for its normalisation and aggregation (module doc)."""
    if spec.normalize == "range":
        low, high = -1.0, 1.0
    elif spec.normalize == "zscore":
        low, high = -ZSCORE_BAND, ZSCORE_BAND
    else:
        low, high = min(s.low for s in member_scales), max(s.high for s in member_scales)
    if spec.aggregate == "mean_minus_std" and spec.std_coef > 0:
        center, half = (low + high) / 2, (high - low) / 2
        low = center - half * math.sqrt(1 + spec.std_coef**2)
    return Scale(low, high)


class EnsembleJudge(Judge):
    """A weighted combination of judges; member scores kept in `Score.members`.

    `judges`: the member judges, keyed by `Member.judge_key()` (for a member named by
    reference, its ref string); members with the same key share that judge.
    `member_specs` (same keys, optional) lets the ensemble check each `criterion:` against
    the criteria the judge's spec scores. With `owns_judges` the ensemble closes the
    judges when it is closed (as built by the registry); otherwise they stay open.
    """

    def __init__(self, spec: EnsembleSpec, judges: Mapping[str, Judge], *,
                 member_specs: Mapping[str, object] | None = None, owns_judges: bool = False) -> None:
        self.spec = spec
        self.name = spec.name or "ensemble"
        self._judges: dict[str, Judge] = {}
        for i, member in enumerate(spec.members):
            key = member.judge_key()
            if key not in judges:
                raise JudgeError(
                    f"ensemble {self.name!r} member {i}: no judge given for {key!r}; "
                    "build ensembles from their spec with rlaif.judges.registry.build_judge"
                )
            self._judges[key] = judges[key]
        self._slots = self._make_slots(member_specs or {})
        self._owned: list[Judge] = list(self._judges.values()) if owns_judges else []
        sc = spec.scale
        self.scale = Scale(*sc) if sc else ensemble_scale(spec, [s.scale for s in self._slots])

    def _make_slots(self, specs: Mapping[str, object]) -> list[_Slot]:
        """Name each member (criterion or judge name, made unique) and check criteria."""
        slots: list[_Slot] = []
        for i, member in enumerate(self.spec.members):
            key = member.judge_key()
            judge = self._judges[key]
            member_spec = specs.get(key)
            if (
                member.criterion is not None
                and isinstance(member_spec, LLMSpec)
                and member_spec.criteria is not None
                and member.criterion not in member_spec.criteria
            ):
                raise JudgeError(
                    f"ensemble {self.name!r} member {i}: judge {judge.name!r} has no criterion "
                    f"{member.criterion!r}; its criteria are {member_spec.criteria}. "
                    "Fix `criterion:` or the judge's `criteria:` list."
                )
            base = member.criterion or judge.name
            slots.append(_Slot(base, key, member.weight, member.criterion, judge.scale))
        counts: dict[str, int] = {}
        for slot in slots:
            counts[slot.name] = counts.get(slot.name, 0) + 1
        seen: dict[str, int] = {}
        for slot in slots:
            if counts[slot.name] > 1:
                # "roberta-hate.harmlessness" style first; a plain repeat gets "#2", "#3".
                judge_name = self._judges[slot.key].name
                qualified = f"{judge_name}.{slot.criterion}" if slot.criterion else slot.name
                seen[qualified] = seen.get(qualified, 0) + 1
                slot.name = qualified if seen[qualified] == 1 else f"{qualified}#{seen[qualified]}"
        return slots

    async def _call_members(self, samples: Sequence[Sample]) -> dict[str, list[Score | None]]:
        """Score the batch once per distinct judge, concurrently."""
        keys = list(self._judges)
        results = await asyncio.gather(
            *(self._judges[k].ascore(samples) for k in keys), return_exceptions=True
        )
        out: dict[str, list[Score | None]] = {}
        failure: tuple[str, JudgeError] | None = None
        for key, res in zip(keys, results):
            if isinstance(res, JudgeError):
                partial = res.partial or [None] * len(samples)
                out[key] = list(partial)
                failure = failure or (key, res)
            elif isinstance(res, BaseException):
                raise res
            else:
                if len(res) != len(samples):
                    raise JudgeError(
                        f"ensemble {self.name!r}: member judge {self._judges[key].name!r} returned "
                        f"{len(res)} scores for {len(samples)} samples"
                    )
                out[key] = list(res)
        if failure is not None:
            key, exc = failure
            # Finish every sample whose members all answered, so nothing paid for is lost.
            complete = [i for i in range(len(samples)) if all(out[k][i] is not None for k in keys)]
            partial_scores: list[Score | None] = [None] * len(samples)
            done, _ = self._combine([{k: out[k][i] for k in keys} for i in complete], complete)
            for i, score in zip(complete, done):
                partial_scores[i] = score if score.ok or self.spec.on_missing != "fail" else None
            raise JudgeError(
                f"ensemble {self.name!r}: member judge {self._judges[key].name!r} failed: {exc}",
                partial=partial_scores,
            ) from exc
        return out

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        """Score the batch with every distinct member judge, then normalise and aggregate."""
        if not samples:
            return []
        by_key = await self._call_members(samples)
        rows = [{k: by_key[k][i] for k in by_key} for i in range(len(samples))]
        scores, failure = self._combine(rows, list(range(len(samples))))
        if failure is not None:
            raise JudgeError(failure, partial=[s if s.ok else None for s in scores])
        return scores

    def _read(self, slot: _Slot, score: Score | None) -> tuple[float | None, str | None]:
        """A member's raw value for one sample, or None and why it is missing."""
        if score is None:
            return None, "not scored"
        if not score.ok:
            return None, score.error
        if slot.criterion is None:
            return score.value, None
        criteria = score.criteria or {}
        value = criteria.get(slot.criterion)
        if value is None:
            return None, f"no criterion {slot.criterion!r} in the judge's scores (got {sorted(criteria)})"
        return float(value), None

    def _combine(
        self, rows: Sequence[Mapping[str, Score | None]], indices: Sequence[int]
    ) -> tuple[list[Score], str | None]:
        """Normalise and aggregate per sample (`indices`: batch positions, for messages).

        Returns the Scores and, under on_missing=fail, the first failure message.
        """
        raws = [[self._read(slot, row[slot.key]) for slot in self._slots] for row in rows]
        if self.spec.normalize == "zscore":
            # Stats include this batch before normalising it (documented warm-up above).
            for member_values in raws:
                for slot, (value, _) in zip(self._slots, member_values):
                    if value is not None:
                        slot.stats.push(value)
        out: list[Score] = []
        first_failure: str | None = None
        for row, member_values, index in zip(rows, raws, indices):
            score, failure = self._one(row, member_values, index)
            out.append(score)
            first_failure = first_failure or failure
        return out, first_failure

    def _normalize(self, slot: _Slot, value: float) -> float:
        if self.spec.normalize == "range":
            return max(-1.0, min(1.0, slot.scale.to_unit(value)))
        if self.spec.normalize == "zscore":
            return slot.stats.zscore(value)
        return value

    def _one(
        self, row: Mapping[str, Score | None], member_values: Sequence[tuple[float | None, str | None]], index: int
    ) -> tuple[Score, str | None]:
        """One sample's ensemble Score, and the on_missing=fail message if it applies."""
        members: dict[str, MemberScore] = {}
        values, weights, missing = [], [], []
        for slot, (raw, error) in zip(self._slots, member_values):
            if raw is None:
                members[slot.name] = MemberScore(None, None, slot.weight, error)
                if slot.weight > 0:
                    missing.append(f"{slot.name} ({error})")
            else:
                x = self._normalize(slot, raw)
                members[slot.name] = MemberScore(raw, x, slot.weight)
                if slot.weight > 0:
                    values.append(x)
                    weights.append(slot.weight)
        usage = self._usage_of(row)
        rationale = ", ".join(
            f"{n}={m.raw:.4g}" if m.raw is not None else f"{n}=missing" for n, m in members.items()
        )
        policy = self.spec.on_missing
        if missing and policy == "fail":
            msg = (
                f"ensemble {self.name!r}, sample {index}: member {missing[0]} has no score and "
                "on_missing is 'fail' (use 'renormalize' or 'skip' to go on without it)"
            )
            return Score(None, rationale, None, usage, f"member missing: {', '.join(missing)}",
                         members=members), msg
        if missing and (policy == "skip" or not values):
            why = "no member scored" if not values else "members missing (on_missing: skip)"
            return Score(None, rationale, None, usage, f"{why}: {'; '.join(missing)}", members=members), None
        value = aggregate(values, weights, self.spec.aggregate, self.spec.std_coef)
        return Score(value, rationale, None, usage, None, members=members), None

    def _usage_of(self, row: Mapping[str, Score | None]) -> Usage | None:
        """Sum of the distinct member judges' usage for one sample (shared judges once)."""
        usages = [s.usage for s in row.values() if s is not None and s.usage is not None]
        if not usages:
            return None
        total = Usage()
        for u in usages:
            total = total + u
        return total

    def load(self) -> None:
        """Load every distinct member judge now."""
        for judge in self._judges.values():
            judge.load()

    def stats(self) -> JudgeStats | None:
        """The member judges' cache statistics summed (None when no member caches)."""
        return sum_stats(judge.stats() for judge in self._judges.values())

    def usage(self) -> Usage:
        """Total usage of the distinct member judges."""
        total = Usage()
        for judge in self._judges.values():
            total = total + judge.usage()
        return total

    def close(self) -> None:
        """Close the member judges this ensemble built (pre-built ones stay open), then its loop."""
        owned, self._owned = self._owned, []
        for judge in owned:
            judge.close()
        super().close()
