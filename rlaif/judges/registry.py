"""Make a Judge from a spec: `build_judge(spec | name | path | dict, **overrides)`.

The one place that knows every judge type: it builds an ensemble's member judges (each
distinct member once, recursively; member paths were resolved when the ensemble file was
loaded, next to it: `rlaif.judges.spec.member_ref`) and hands them to `EnsembleJudge`, and
wraps a spec with `cache:` set in the persistent score cache. Judge modules are imported on first use, so
building a function judge never imports torch, nor an Anthropic judge boto3.

`load_pairwise_judge(ref)` gives a `PairwiseJudge` for `rlaif label` and friends: Claude's
pairwise judge for a `type: pairwise` spec, any other judge wrapped in `PointwisePairwise`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlaif.judges.base import Judge, JudgeError
from rlaif.judges.pairwise import PairwiseJudge, PointwisePairwise
from rlaif.judges.spec import (
    AnySpec, ClassifierSpec, EmbeddingSpec, EnsembleSpec, FunctionSpec, LLMSpec, PairwiseSpec,
    RelevanceSpec, load_spec, parse_spec,
)


def build_judge(spec: AnySpec | str | Path | dict[str, Any], **overrides: Any) -> Judge:
    """Make a Judge from a spec object, a dict, a built-in name or a path.

    `overrides` replace spec fields (e.g. `device="cpu"`, `base_url=...`) and are validated.
    A spec with `cache:` set is wrapped in the persistent score cache.
    """
    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    elif isinstance(spec, dict):
        spec = parse_spec(spec)
    if overrides:
        spec = parse_spec({**spec.model_dump(), **overrides}, source=f"{spec.name or spec.type} + overrides")
    judge: Judge
    if isinstance(spec, PairwiseSpec):
        raise JudgeError(
            f"judge {spec.name or 'pairwise'!r} is a pairwise judge (type: pairwise): it compares two "
            "responses and cannot score one; use it with `rlaif label` / load_pairwise_judge, or "
            "give a pointwise judge (type: llm, classifier, function, embedding, relevance, ensemble) here"
        )
    if isinstance(spec, ClassifierSpec):
        from rlaif.judges.local.classifier import ClassifierJudge

        judge = ClassifierJudge(spec)
    elif isinstance(spec, EmbeddingSpec):
        from rlaif.judges.local.embedding import EmbeddingJudge

        judge = EmbeddingJudge(spec)
    elif isinstance(spec, RelevanceSpec):
        from rlaif.judges.local.relevance import RelevanceJudge

        judge = RelevanceJudge(spec)
    elif isinstance(spec, FunctionSpec):
        from rlaif.judges.local.function import FunctionJudge

        judge = FunctionJudge(spec)
    elif isinstance(spec, LLMSpec):
        from rlaif.judges.llm.pointwise import LLMJudge

        judge = LLMJudge(spec)
    elif isinstance(spec, EnsembleSpec):
        judge = _build_ensemble(spec)
    else:  # pragma: no cover - the union is closed
        raise JudgeError(f"unknown judge spec type {type(spec).__name__}")
    if spec.cache:
        from rlaif.judges.cache import CachedJudge

        judge = CachedJudge(judge, path=spec.cache, key=spec.fingerprint())
    return judge


def _build_ensemble(spec: EnsembleSpec) -> Judge:
    """Build each distinct member judge once, in spec order; the ensemble owns (closes) them."""
    from rlaif.judges.ensemble import EnsembleJudge

    judges: dict[str, Judge] = {}
    specs: dict[str, AnySpec] = {}
    try:
        for member in spec.members:
            key = member.judge_key()
            if key in judges:
                continue  # shared judge: built once, called once per batch
            specs[key] = load_spec(member.judge) if isinstance(member.judge, str) else member.judge
            judges[key] = build_judge(specs[key])
        return EnsembleJudge(spec, judges, member_specs=specs, owns_judges=True)
    except BaseException:
        for judge in judges.values():  # release the members already built
            judge.close()
        raise


def _merged_spec(
    ref: str | Path | dict[str, Any] | AnySpec | PairwiseSpec, overrides: dict[str, Any] | None, cache: str | None
) -> AnySpec | PairwiseSpec:
    """The spec `ref` names (built-in, path, dict or spec) with `overrides` deep-merged, `cache` set."""
    from rlaif.overrides import deep_merge

    if isinstance(ref, (str, Path)):
        spec, source = load_spec(ref), str(ref)
    elif isinstance(ref, dict):
        spec, source = parse_spec(ref), "inline judge spec"
    else:
        spec, source = ref, ref.name or ref.type
    if overrides or cache:
        data = deep_merge(spec.model_dump(mode="json"), overrides or {})
        if cache:
            data["cache"] = cache
        spec = parse_spec(data, source=f"{source} + --set/--cache")
    return spec


def load_judge(ref: str, overrides: dict[str, Any] | None = None, cache: str | None = None) -> Judge:
    """Load a spec by name or path, deep-merge `overrides` (and `cache`), build the judge."""
    return build_judge(_merged_spec(ref, overrides, cache))


def load_pairwise_judge(
    ref: str | Path | dict[str, Any] | AnySpec | PairwiseSpec,
    overrides: dict[str, Any] | None = None,
    cache: str | None = None,
) -> PairwiseJudge:
    """A pairwise judge from any judge reference (built-in name, YAML path, dict, spec).

    A `type: pairwise` spec builds Claude's pairwise judge (`PairwiseLLMJudge`); any other
    judge (classifier, function, llm, ensemble, ...) is built as usual and wrapped in
    `PointwisePairwise`, which compares its two scores. `overrides` are deep-merged into the
    spec; for a wrapped pointwise judge the key `tie_margin` goes to the wrapper instead.
    """
    overrides = dict(overrides or {})
    tie_margin = overrides.pop("tie_margin", 0.0)
    spec = _merged_spec(ref, overrides, cache)
    if isinstance(spec, PairwiseSpec):
        if tie_margin:
            raise JudgeError(f"tie_margin applies to a pointwise judge compared pairwise, not to the "
                             f"pairwise judge {spec.name or 'pairwise'!r}; drop it")
        from rlaif.judges.llm.pairwise import PairwiseLLMJudge

        return PairwiseLLMJudge(spec)
    try:
        margin = float(tie_margin)
    except (TypeError, ValueError):
        raise JudgeError(f"tie_margin must be a number >= 0, got {tie_margin!r}") from None
    judge = build_judge(spec)
    try:
        return PointwisePairwise(judge, tie_margin=margin)
    except ValueError as exc:
        judge.close()
        raise JudgeError(str(exc)) from None
