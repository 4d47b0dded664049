"""Every rlaif judge as a TRL GRPO / RLOO reward function.

    from trl import GRPOConfig, GRPOTrainer
    from rlaif.integrations.trl import reward_function

    trainer = GRPOTrainer(model="Qwen/Qwen2.5-0.5B-Instruct",
                          reward_funcs=[reward_function("hhh-ensemble")],
                          args=GRPOConfig(...), train_dataset=dataset)

The function is async (TRL runs async reward functions concurrently, which keeps API
judges busy), takes standard ("text") or conversational (lists of {role, content})
prompts and completions, and returns one float per completion -- or None where the judge
could not score, which TRL leaves out of the reward instead of treating it as 0. Its
`__name__` is the judge's name, which TRL uses in `rewards/<name>/mean`. When TRL passes
`log_metric`, it also logs `<name>/unscored` and, for ensembles, `<name>/<member>/mean`.

Prefer this over passing a classifier to TRL directly: TRL reads a model's `logits[:, 0]`
on its own tokenization of prompt + completion, which is not the judge's configured label,
input or scale.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from rlaif.judges.base import Judge, Sample, Score, member_raw_values

_ROLE_NAMES = {"user": "Human", "assistant": "Assistant", "system": "System"}

RewardFunction = Callable[..., Awaitable[list[float | None]]]


def _content_text(content: Any) -> str:
    """Text of a message's content: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type", "text") == "text")
    return "" if content is None else str(content)


def messages_to_text(messages: str | Sequence[dict[str, Any]], *, dialogue: bool) -> str:
    """Render a TRL prompt or completion as plain text.

    dialogue=True renders the HH way ("\\n\\nHuman: ...\\n\\nAssistant: ..."), which is
    what rlaif judges and prompt templates are written for; dialogue=False joins the
    message contents (a completion is usually one assistant message).
    """
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, Sequence) or not all(isinstance(m, dict) for m in messages):
        raise TypeError(
            f"expected a string or a list of {{'role', 'content'}} messages, got {type(messages).__name__}"
        )
    if not dialogue:
        return "".join(_content_text(m.get("content")) for m in messages)
    parts = []
    for m in messages:
        role = str(m.get("role", "user"))
        parts.append(f"\n\n{_ROLE_NAMES.get(role, role.capitalize())}: {_content_text(m.get('content'))}")
    return "".join(parts)


def _member_means(scores: Sequence[Score]) -> dict[str, float]:
    """Mean of each ensemble member's own-scale score (`Score.members`), members that scored."""
    means = {}
    for name, values in member_raw_values(scores).items():
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            means[name] = sum(finite) / len(finite)
    return means


def reward_function(judge: Judge | str, *, name: str | None = None,
                    missing: float | None = None) -> RewardFunction:
    """Wrap a judge (object, built-in name, or spec path) as an async TRL reward function.

    missing: the reward given to a sample the judge could not score. None (the default)
    lets TRL drop it from the reward; set a number only if you really mean that number.
    """
    if not isinstance(judge, Judge):
        from rlaif.judges.registry import build_judge

        judge = build_judge(judge)
    label = name or judge.name or "rlaif_judge"

    async def reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        samples = [
            Sample(messages_to_text(p, dialogue=True), messages_to_text(c, dialogue=False))
            for p, c in zip(prompts, completions)
        ]
        scores = await judge.ascore(samples)
        values = [s.value if s.value is not None else missing for s in scores]
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric(f"{label}/unscored", float(sum(s.value is None for s in scores)))
            for member, mean in _member_means(scores).items():
                log_metric(f"{label}/{member}/mean", mean)
        return values

    reward.__name__ = label
    reward.__qualname__ = label
    reward.judge = judge  # type: ignore[attr-defined]  # for callers that want usage() or close()
    return reward
