"""From judge scores to the rewards PPO sees: the judge call for a batch, the unscored policy
(`judge.on_unscored`), running normalisation and clipping, and the reward metrics.

A score the judge could not give stays unscored (`Score.value is None`): the sample is
masked out of the update and counted in `reward/unscored`, never given a made-up reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlaif.config import JudgeConfig
from rlaif.judges.base import (
    Judge,
    JudgeError,
    Sample,
    Score,
    Usage,
    member_raw_values,
)
from rlaif.stats import RunningMoments, mean_std


def score_samples(judge: Judge, prompts: Sequence[str], responses: Sequence[str],
                  on_unscored: str) -> list[Score]:
    """Judge the (prompt, response) pairs; apply the `fail` policy."""
    samples = [Sample(p, r) for p, r in zip(prompts, responses)]
    scores = judge.score(samples)  # on the judge's own loop: its clients open once
    if len(scores) != len(samples):
        raise JudgeError(f"judge {judge.name!r} returned {len(scores)} scores for "
                         f"{len(samples)} samples; a judge must return one score per sample")
    if on_unscored == "fail":
        for i, (sample, score) in enumerate(zip(samples, scores)):
            if not score.ok:
                raise JudgeError(unscored_error(i, sample.prompt, sample.response, score, judge.name))
    return scores


class JudgeUsageMeter:
    """What this process's judge spent since the last reading: the `usage()` delta as the
    metrics `judge/requests` and `judge/cost_usd` (offline judges: 0 requests, $0).

    A failed step's requests count in the next reading: they were paid for all the same."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.last: Usage = judge.usage()

    def take(self) -> dict[str, float]:
        """Requests and dollars since the previous `take` (or since construction)."""
        now = self.judge.usage()
        spent, self.last = now - self.last, now
        return {"judge/requests": float(spent.requests), "judge/cost_usd": float(spent.cost_usd)}


def unscored_error(index: int, sample_prompt: str, response: str, score: Score,
                   judge_name: str) -> str:
    """The message for `judge.on_unscored: fail`: which sample, and the judge's reason."""
    def preview(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= 80 else text[:77] + "..."

    return (
        f"judge {judge_name!r} could not score sample {index} of the batch "
        f"(prompt {preview(sample_prompt)!r}, response {preview(response)!r}): {score.error}. "
        "judge.on_unscored is 'fail'; set judge.on_unscored=skip to train on the scored samples "
        "and count the others in reward/unscored"
    )


def score_rows(scores: Sequence[Score]) -> list[dict[str, Any]]:
    """What other processes need of each score (picklable): its value and member values."""
    return [{"value": s.value, "members": member_raw_values([s]) if s.ok else {}}
            for s in scores]


def gather_score_rows(scores: Sequence[Score] | BaseException, accelerator: Any) -> list[dict[str, Any]]:
    """`score_rows` of every process's scores, in process order (the same list everywhere).

    `scores` may be the error this process's judge raised instead: every process then raises
    it (a JudgeError marked `agreed`, naming the process), so all of them stop at the same
    point and can save the last finished step together."""
    if accelerator.num_processes == 1:
        if isinstance(scores, BaseException):
            raise scores
        return score_rows(scores)
    from accelerate.utils import gather_object

    failed = isinstance(scores, BaseException)
    local = [{"error": f"{type(scores).__name__}: {scores}"}] if failed else score_rows(scores)
    everyone = gather_object([(accelerator.process_index, row) for row in local])
    errors = [(rank, row["error"]) for rank, row in everyone if "error" in row]
    if errors:
        rank, message = errors[0]
        exc = JudgeError(f"process {rank}: {message}")
        exc.agreed = True  # type: ignore[attr-defined]
        raise exc from (scores if failed else None)
    return [row for _, row in everyone]


def process_rewards(scores: Sequence[Score], everyone: Sequence[dict[str, Any]], judge: JudgeConfig,
                    stats: RunningMoments) -> tuple[list[float], dict[str, Any]]:
    """This process's rewards after optional running normalisation and clipping (0 where
    unscored: those samples are masked out), and reward metrics over `everyone`'s rows.

    `stats` (the running reward statistics) is updated with every scored value of `everyone`
    when `judge.normalize` is "running", so it stays identical on every process.
    """
    scored = [row["value"] for row in everyone if row["value"] is not None]
    if judge.normalize == "running":
        stats.update(scored)

    def process(value: float) -> float:
        if judge.normalize == "running":
            value = stats.normalize(value)
        if judge.clip is not None:
            value = max(-judge.clip, min(judge.clip, value))
        return value

    processed = [process(s.value) if s.value is not None else 0.0 for s in scores]
    mean, std = mean_std(scored)
    metrics: dict[str, Any] = {
        "reward/mean": mean, "reward/std": std,
        "reward/unscored": len(everyone) - len(scored), "reward/scored": len(scored),
        "reward/processed_mean": mean_std([process(v) for v in scored])[0],
    }
    members: dict[str, list[float]] = {}
    for row in everyone:
        for name, vals in row["members"].items():
            members.setdefault(name, []).extend(vals)
    for name, vals in members.items():
        metrics[f"reward/{name}/mean"] = mean_std(vals)[0]
    return processed, metrics


def check_scored_steps(history: Sequence[dict[str, Any]], limit: int, judge_name: str,
                       final: bool = False) -> None:
    """Raise when the last `limit` steps (or, at the end of a run, all of them) scored nothing."""
    streak = 0
    for row in reversed(history):
        if row.get("reward/scored"):
            break
        streak += 1
    if streak >= limit or (final and history and streak == len(history)):
        raise JudgeError(
            f"judge {judge_name!r} scored no sample in the last {streak} step(s) (judge.on_unscored "
            f"is 'skip'; judge.max_unscored_steps={limit}): PPO trained on nothing. Check the "
            "judge (endpoint, key, model; `rlaif score` on a few replies shows its errors); the "
            "finished steps are saved, continue with --resume once it scores"
        )
