"""The judge of a job: its resolved spec, its fingerprint, its batch size and the budget left.

    choice = JudgeChoice.resolve("claude-toxicity-anthropic", {"max_concurrency": 4}, cache=None)
    judge = choice.pointwise(spent=Usage(requests=7))   # budget.max_requests lowered by 7

- `fingerprint`: a sha256 of the resolved spec without its runtime fields (base_url, cache,
  budget, concurrency: `RUNTIME_FIELDS`), its cache key (which adds the prompt template's
  text) and `tie_margin`. Unlike the cache key it also counts `orders` and `disagreement`,
  which change a label though not an answer. A file's answers belong to one (reference,
  fingerprint).
- `batch`: how many units the judge is asked at once. An API judge is asked `max_concurrency`
  samples (pairs: divided by the orders asked) at a time, so a kill loses at most the answers
  of those requests in flight; a local judge keeps the caller's larger batch (its speed).
- budgets carry across `--resume`: what the file's earlier rows cost is taken off the spec's
  `budget` (max_requests, max_usd) before the judge is built; a budget already spent refuses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlaif.judges.base import Judge, Usage
from rlaif.judges.pairwise import PairwiseJudge
from rlaif.judges.spec_base import RUNTIME_FIELDS
from rlaif.judges.spec import AnySpec, Budget, EnsembleSpec, LLMSpec, PairwiseSpec, load_spec, parse_spec


def resolve_spec(ref: str, overrides: Mapping[str, Any], cache: str | None) -> AnySpec | PairwiseSpec:
    """The spec `ref` names with `overrides` deep-merged and `cache` set."""
    from rlaif.overrides import deep_merge

    spec = load_spec(ref)
    if overrides or cache:
        data = deep_merge(spec.model_dump(mode="json"), dict(overrides))
        if cache:
            data["cache"] = cache
        spec = parse_spec(data, source=f"{ref} + --set/--cache")
    return spec


def api_concurrency(spec: AnySpec | PairwiseSpec) -> int | None:
    """The fewest requests in flight of the spec's API judges (members included); None: no API judge."""
    if isinstance(spec, (LLMSpec, PairwiseSpec)):
        return spec.max_concurrency
    if isinstance(spec, EnsembleSpec):
        found = [api_concurrency(load_spec(m.judge) if isinstance(m.judge, str) else m.judge)
                 for m in spec.members]
        return min((c for c in found if c is not None), default=None)
    return None


@dataclass(frozen=True)
class JudgeChoice:
    """A judge reference resolved to its spec (see the module doc)."""

    ref: str
    spec: AnySpec | PairwiseSpec
    tie_margin: float = 0.0

    @classmethod
    def resolve(cls, ref: str, overrides: Mapping[str, Any] | None = None,
                cache: str | None = None) -> JudgeChoice:
        """Resolve `ref` with `overrides` (the key `tie_margin` is kept apart for pairwise use)."""
        overrides = dict(overrides or {})
        tie_margin = overrides.pop("tie_margin", 0.0)
        return cls(ref, resolve_spec(ref, overrides, cache), tie_margin)

    @property
    def fingerprint(self) -> str:
        """16 hex digits of a sha256 of what decides the labels (module doc)."""
        payload = {"spec": self.spec.model_dump(mode="json", exclude=set(RUNTIME_FIELDS)),
                   "cache_key": self.spec.fingerprint(), "tie_margin": self.tie_margin}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def owner(self) -> dict[str, Any]:
        """The journal/meta record naming this judge: {ref, spec_fingerprint}."""
        return {"ref": self.ref, "spec_fingerprint": self.fingerprint}

    def batch(self, default: int, per_unit: int = 1) -> int:
        """Units per judge call: `default`, at most the API requests in flight / requests per unit."""
        concurrency = api_concurrency(self.spec)
        if concurrency is None:
            return default
        if isinstance(self.spec, PairwiseSpec):
            per_unit = 2 if self.spec.orders == "both" else 1
        return max(1, min(default, concurrency // per_unit))

    def with_budget_left(self, spent: Usage) -> AnySpec | PairwiseSpec:
        """The spec with `spent` taken off its budget; ValueError when nothing is left."""
        budget = self.spec.budget if isinstance(self.spec, (LLMSpec, PairwiseSpec)) else None
        if budget is None or (spent.requests == 0 and spent.cost_usd == 0):
            return self.spec
        left: dict[str, Any] = {}
        for field, used in (("max_requests", spent.requests), ("max_usd", spent.cost_usd)):
            limit = getattr(budget, field)
            if limit is None:
                continue
            if limit - used <= 0:
                raise ValueError(
                    f"judge {self.ref!r}: budget.{field} = {limit:g} is already spent on this file "
                    f"by earlier runs ({used:g}); raise it (e.g. --set budget.{field}=...) to "
                    "continue")
            left[field] = limit - used
        return self.spec.model_copy(update={"budget": Budget(**{**budget.model_dump(), **left})})

    def pointwise(self, spent: Usage = Usage()) -> Judge:
        """Build the pointwise judge, its budget lowered by `spent`."""
        from rlaif.judges.registry import build_judge

        return build_judge(self.with_budget_left(spent))

    def pairwise(self, spent: Usage = Usage()) -> PairwiseJudge:
        """Build the pairwise judge (a pointwise one compares its two scores), budget lowered by `spent`."""
        from rlaif.judges.registry import load_pairwise_judge

        return load_pairwise_judge(self.with_budget_left(spent), {"tie_margin": self.tie_margin})


def judge_names(refs: Sequence[str]) -> list[str]:
    """The name of each spec (built-in name or path), made unique: `x`, `x#2`, ..."""
    names: list[str] = []
    for ref in refs:
        name = load_spec(ref).name
        candidate, i = name, 2
        while candidate in names:
            candidate, i = f"{name}#{i}", i + 1
        names.append(candidate)
    return names


def split_overrides(items: list[str], names: list[str]) -> dict[str, list[str]]:
    """Sort `JUDGE.KEY=VALUE` strings into {judge: ["KEY=VALUE", ...]}."""
    out: dict[str, list[str]] = {n: [] for n in names}
    for item in items:
        target = item.partition("=")[0]
        # Longest matching judge name first, since names may themselves contain dots.
        judge = max((n for n in names if target.startswith(n + ".")), key=len, default=None)
        if "=" not in item or judge is None:
            raise ValueError(
                f"--set {item!r}: expected JUDGE.KEY=VALUE with JUDGE one of {names} "
                "(e.g. --set roberta-hate.batch_size=8)"
            )
        out[judge].append(item[len(judge) + 1:])
    return out


def build_judges(choices: Mapping[str, JudgeChoice], spent_by: Mapping[str, Usage] | None = None) -> dict[str, Judge]:
    """Build and load each pointwise judge by name, its budget lowered by `spent_by[name]`; if
    one fails, the judges already built are closed."""
    judges: dict[str, Judge] = {}
    try:
        for name, choice in choices.items():
            judges[name] = choice.pointwise(spent=(spent_by or {}).get(name, Usage()))
            judges[name].load()
    except BaseException:
        for judge in judges.values():
            judge.close()
        raise
    return judges
