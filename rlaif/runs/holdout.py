"""A run's hold-out set, from any run config with `data`, `generation` and `eval` sections (PPO's
or DPO's), so PPO and DPO runs of one data section answer the same held-out prompts:

    holdout_prompts   the first eval.n prompts of eval.split, or of the held-out share
    holdout_clusters  one cluster label per prompt (eval.split), for the cluster bootstrap
    make_holdout      the Holdout with the evaluator, helpfulness judge, floors, sampling settings
    make_control      the control prompts' Holdout (eval.control_source), or None
    control_summary   their before/after toxicity, helpfulness and length for report.json
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlaif.config import RunConfig
    from rlaif.dpo.config import DPORunConfig
    from rlaif.evaluation.holdout import Holdout, HoldoutSide

    AnyRunConfig = RunConfig | DPORunConfig

log = logging.getLogger(__name__)

DEFAULT_EVALUATOR = "roberta-hate"
CONTROL_EXAMPLES = 5


def holdout_prompts(config: AnyRunConfig, test_prompts: list[str]) -> list[str]:
    """The first `eval.n` hold-out prompts: of the split `eval.split`, or the held-out share."""
    from rlaif.data.prompts import load_split_prompts

    data, ev = config.data, config.eval
    if ev.split is not None:
        return load_split_prompts(data.source, split=ev.split, task=data.task, n=ev.n,
                                  data_dir=data.data_dir, on_bad_row=data.on_bad_row,
                                  context=data.context)
    if not test_prompts:
        raise ValueError(
            "eval.enabled is true but no held-out prompt is left; set data.test_size > 0 (now "
            f"{data.test_size!r}) or eval.split to a split of {data.source!r}, or eval.enabled=false"
        )
    return test_prompts[: ev.n]


def holdout_clusters(config: AnyRunConfig) -> list[str] | None:
    """One cluster label per hold-out prompt (its template or conversation, aligned with
    `holdout_prompts`) when `eval.split` names a split; None (prompts resampled one by one) else."""
    data, ev = config.data, config.eval
    if ev.split is None:
        return None
    from rlaif.data.prompts import load_split_clusters

    return load_split_clusters(data.source, split=ev.split, n=ev.n, data_dir=data.data_dir,
                               on_bad_row=data.on_bad_row, context=data.context)


def build_holdout(config: AnyRunConfig, prompts: list[str], progress: bool, *, batch_size: int,
                  **settings: Any) -> Holdout:
    """A Holdout with the run's evaluator, helpfulness judge, floors and generation settings (any
    run config with `data`, `generation` and `eval` sections: PPO's or DPO's); `batch_size`
    unless `eval.batch_size`; `settings` (Holdout's keywords) win over the config's."""
    from rlaif.evaluation.holdout import Holdout

    ev = config.eval
    settings = {"helpfulness": ev.helpfulness, "floors": ev.floors, **settings}
    return Holdout(prompts, ev.evaluator if ev.evaluator is not None else DEFAULT_EVALUATOR,
                   gen_kwargs=config.generation.generate_kwargs(), seed=config.data.seed,
                   threshold=ev.threshold, batch_size=ev.batch_size or batch_size,
                   chat=config.data.task == "chat", system_prompt=config.data.system_prompt,
                   progress=progress, **settings)


def make_holdout(config: AnyRunConfig, test_prompts: list[str], progress: bool, *, batch_size: int,
                 reward_judge: str | dict[str, Any] | None = None) -> Holdout:
    """The hold-out set; warns when the evaluator or the helpfulness judge is `reward_judge`
    (the judge the policy was trained to please)."""
    if reward_judge is not None and (config.eval.evaluator or DEFAULT_EVALUATOR) == reward_judge:
        log.warning("the evaluator is the reward judge (%s): reward hacking would not show in "
                    "the report; set eval.evaluator to a different judge", reward_judge)
    if reward_judge is not None and config.eval.helpfulness == reward_judge:
        log.warning("eval.helpfulness is the reward judge (%s): the policy was trained to please "
                    "it, so its helpfulness numbers are no independent measure; set eval.helpfulness "
                    "to a different judge", reward_judge)
    return build_holdout(config, holdout_prompts(config, test_prompts), progress, batch_size=batch_size,
                         samples_per_prompt=config.eval.samples_per_prompt,
                         clusters=holdout_clusters(config))


def make_control(config: AnyRunConfig, progress: bool, *, batch_size: int) -> Holdout | None:
    """The control hold-out set (`eval.control_source`), or None."""
    ev = config.eval
    if ev.control_source is None:
        return None
    from rlaif.data.prompts import load_split_prompts

    prompts = load_split_prompts(ev.control_source, split=ev.control_split, task=config.data.task,
                                 n=ev.control_n, on_bad_row=config.data.on_bad_row,
                                 context=config.data.context)
    # Toxicity, helpfulness and length only: no floors, no perplexity pass.
    return build_holdout(config, prompts, progress, batch_size=batch_size, floors=(), fluency=False)


def control_summary(control: Holdout, before: HoldoutSide, after: HoldoutSide) -> dict[str, Any]:
    """Toxicity, helpfulness (when a judge ran) and reply length of the control prompts
    before/after, and a few examples."""
    report = control.compare(before, after)
    stats, metrics = report.stats, report.metrics or {}
    help_stats = stats.get("helpfulness")
    return {
        "source": f"{len(control.prompts)} prompts", "evaluator": control.evaluator.judge.name,
        "toxicity_mean": {"before": stats["before"]["mean"], "after": stats["after"]["mean"]},
        "share_over_threshold": {"before": stats["before"]["share_over_threshold"],
                                 "after": stats["after"]["share_over_threshold"]},
        "difference": stats["difference"],
        "helpfulness": None if help_stats is None else {
            "judge": help_stats["judge"],
            "mean": {side: metrics[side]["helpfulness_mean"] for side in ("before", "after")},
            "difference": help_stats["difference"]},
        "response_tokens_mean": report.meta.get("response_tokens_mean"),
        "length": {side: metrics[side]["length"] for side in ("before", "after")} if metrics else None,
        "deflection_share": {side: metrics[side]["deflection_share"] for side in ("before", "after")}
        if metrics else None,
        "examples": report.rows[:CONTROL_EXAMPLES],
    }


