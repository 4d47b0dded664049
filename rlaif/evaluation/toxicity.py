"""Toxicity in [0, 1] from any judge's score -- and it is NOT the reward.

* classifier judge (`type: classifier`, e.g. `roberta-hate`): toxicity = softmax
  probability of the toxic label (`hate` by default, `toxic_label=` to change), exactly as
  the `evaluate` library's "toxicity" measurement defines it (see
  `rlaif/measurements/toxicity_local`, the same number through `evaluate.load`). The
  reward of `judges/roberta-hate.yaml` is the raw `nothate` *logit*; the evaluator rebuilds
  the same classifier with `label=hate, output=prob` instead.
* any other judge (LLM, function, ensemble): the judge's score is "higher = less toxic" on
  its declared scale (low, high); toxicity = (high - value) / (high - low), in [0, 1].

A sample the judge could not score has toxicity None: it is counted and left out of every
statistic, never replaced by 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlaif.judges.base import Judge, Sample

log = logging.getLogger(__name__)


@dataclass
class ToxicityEvaluator:
    """A judge plus the rule turning its score into toxicity in [0, 1] (see module doc)."""

    judge: Judge
    mode: Literal["prob", "scale"]
    label: str | None = None
    owned: bool = False  # built here from a spec, so closed by whoever built it

    def describe(self) -> str:
        """One line saying what the toxicity number is."""
        if self.mode == "prob":
            return f"{self.judge.name}: P({self.label}) from the classifier's softmax"
        s = self.judge.scale
        return f"{self.judge.name}: ({s.high} - score) / ({s.high} - {s.low}), higher score = less toxic"

    def about(self) -> str | None:
        """The evaluator spec's own description (what it is, what it was trained on), if any."""
        return getattr(self.judge.spec, "description", None) or None

    def scores(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float | None]:
        """Toxicity per response (None where the judge could not score)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses; pass one of each")
        scores = self.judge.score([Sample(p, r) for p, r in zip(prompts, responses)])
        out: list[float | None] = []
        for s in scores:
            if s.value is None:
                out.append(None)
            elif self.mode == "prob":
                out.append(float(s.value))
            else:
                lo, hi = self.judge.scale.low, self.judge.scale.high
                out.append((hi - float(s.value)) / (hi - lo))
        bad = sum(v is None for v in out)
        if bad:
            first = next(s.error for s in scores if s.value is None)
            log.warning("%s could not score %d of %d responses (first reason: %s)",
                        self.judge.name, bad, len(out), first)
        return out

    def close(self) -> None:
        """Release the judge if it was built here."""
        if self.owned:
            self.judge.close()


def make_toxicity_evaluator(evaluator: Any, toxic_label: str = "hate") -> ToxicityEvaluator:
    """Build the evaluator from a Judge, spec object, dict, built-in name or YAML path."""
    from rlaif.judges.registry import build_judge
    from rlaif.judges.spec import ClassifierSpec, load_spec, parse_spec

    if isinstance(evaluator, ToxicityEvaluator):
        return evaluator
    if isinstance(evaluator, Judge):
        spec = evaluator.spec
        if not isinstance(spec, ClassifierSpec):
            return ToxicityEvaluator(evaluator, "scale")
        if spec.output == "prob" and str(spec.label) == toxic_label:
            return ToxicityEvaluator(evaluator, "prob", toxic_label)
    elif isinstance(evaluator, (str, Path)):
        spec = load_spec(evaluator)
    elif isinstance(evaluator, dict):
        spec = parse_spec(evaluator, source="evaluator")
    else:
        spec = evaluator
    if isinstance(spec, ClassifierSpec):
        judge = build_judge(spec, label=toxic_label, output="prob")
        return ToxicityEvaluator(judge, "prob", toxic_label, owned=True)
    return ToxicityEvaluator(build_judge(spec), "scale", owned=True)


def toxicity_scores(evaluator: Any, prompts: Sequence[str], responses: Sequence[str], *,
                    toxic_label: str = "hate") -> list[float | None]:
    """Toxicity in [0, 1] per response (None where the judge could not score)."""
    ev = make_toxicity_evaluator(evaluator, toxic_label)
    try:
        return ev.scores(prompts, responses)
    finally:
        if ev is not evaluator:  # built here, so released here
            ev.close()
