"""The helpfulness (relevance) judge of the hold-out report: a second judge, not the reward and not
the evaluator, that sees the prompt and the reply and says how helpful the reply is.

Its value is used as it is (higher = more helpful, on the judge's own scale); the report names
the judge. It answers "did detoxifying cost helpfulness?", which toxicity alone cannot.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlaif.judges.base import Judge, Sample

log = logging.getLogger(__name__)


@dataclass
class HelpfulnessJudge:
    """A judge whose score is read as helpfulness (higher = more helpful)."""

    judge: Judge
    owned: bool = False  # built here from a spec, so closed here

    @property
    def name(self) -> str:
        """The judge's name, as the report shows it."""
        return self.judge.name

    def describe(self) -> str:
        """One line saying what the number is."""
        s = self.judge.scale
        return f"{self.judge.name}: its score as it is, on ({s.low:g}, {s.high:g}), higher = more helpful"

    def scores(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float | None]:
        """The judge's value per (prompt, reply) (None where it could not score)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses; pass one of each")
        scores = self.judge.score([Sample(p, r) for p, r in zip(prompts, responses)])
        out = [None if s.value is None else float(s.value) for s in scores]
        bad = [s for s in scores if s.value is None]
        if bad:
            log.warning("helpfulness judge %s could not score %d of %d replies (first reason: %s)",
                        self.name, len(bad), len(out), bad[0].error)
        return out

    def close(self) -> None:
        """Release the judge if it was built here."""
        if self.owned:
            self.judge.close()


def make_helpfulness_judge(ref: Any) -> HelpfulnessJudge | None:
    """From a Judge, a built-in name, a YAML path, an inline spec dict or a spec; None stays None."""
    from rlaif.judges.registry import build_judge

    if ref is None or isinstance(ref, HelpfulnessJudge):
        return ref
    if isinstance(ref, Judge):
        return HelpfulnessJudge(ref)
    return HelpfulnessJudge(build_judge(str(ref) if isinstance(ref, Path) else ref), owned=True)
