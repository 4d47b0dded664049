"""The one "before -> train -> after" flow, for `rlaif train`, `rlaif demo` and the notebook.

    1. data      TRAIN prompts (data.split, length filter, seeded split) and the hold-out
                 prompts (eval.split used as it is, or the data.test_size share)
    2. before    the start policy answers the hold-out prompts; the evaluator (and the
                 eval.helpfulness judge) scores them; their perplexity under the start model and
                 the eval.floors rows are measured (all saved to <run>/eval_before.json first: a
                 resumed run keeps its true start); eval.split prompts carry cluster labels
                 (`holdout_clusters`) so the intervals resample clusters
    3. PPO       the trainer's run on the TRAIN prompts (resumable)
    4. after     same prompts, seed and generation settings; hold-out KL to the start model at
                 the sampling temperature, whose pass also gives the after replies' perplexity
    5. report    report.md / report.json / plots in the run folder
    6. final     <run>/final/: the trained model as a standard HF folder (LoRA merged unless
                 output.merge_lora is false) with the model card as README.md (`rlaif.export`,
                 `rlaif.model_card`); the trackers of output.report_to get every step's
                 metrics, the config, and the hold-out table and plots (`rlaif.tracking`)
    7. total     timings_s["total"], setup to final/ written, into report.json (`finish_run`,
                 which `rlaif dpo` shares; `rlaif compare-runs` reads it as the wall-clock)

The evaluator defaults to the RoBERTa hate-speech classifier (toxicity = P(hate)); it is
best a different judge than the reward, so reward hacking shows up in the report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlaif.config import RunConfig

log = logging.getLogger(__name__)

DEFAULT_EVALUATOR = "roberta-hate"
BEFORE_FILE = "eval_before.json"
CONTROL_BEFORE_FILE = "eval_control_before.json"
CONTROL_EXAMPLES = 5


@dataclass
class PipelineResult:
    """The training result and, when evaluation ran, the hold-out report and its files."""

    train: Any  # rlaif.ppo.trainer.TrainResult
    holdout: Any | None = None  # rlaif.evaluation.HoldoutReport
    paths: dict[str, Path] = field(default_factory=dict)  # report files, "final", "card"
    timings: dict[str, float] = field(default_factory=dict)


def holdout_prompts(config: Any, test_prompts: list[str]) -> list[str]:
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


def holdout_clusters(config: Any) -> list[str] | None:
    """One cluster label per hold-out prompt (its template or conversation, aligned with
    `holdout_prompts`) when `eval.split` names a split; None (prompts resampled one by one) else."""
    data, ev = config.data, config.eval
    if ev.split is None:
        return None
    from rlaif.data.prompts import load_split_clusters

    return load_split_clusters(data.source, split=ev.split, n=ev.n, data_dir=data.data_dir,
                               on_bad_row=data.on_bad_row, context=data.context)


def train_and_evaluate(config: RunConfig, *, extra: dict[str, Any] | None = None,
                       progress: bool = True) -> PipelineResult:
    """Run `config`: PPO, with the before/after hold-out evaluation when `eval.enabled`.

    `extra` goes into report.json as it is (e.g. what the demo built and how long it took)."""
    from rlaif.data.prompts import load_prompt_split
    from rlaif.models.load import load_tokenizer
    from rlaif.ppo.trainer import make_accelerator
    from rlaif.tracking import make_tracker

    started = time.perf_counter()  # timings_s["total"]: from here to final/ written
    accelerator = make_accelerator(config)
    tokenizer = load_tokenizer(config.model.name_or_path)
    split = load_prompt_split(config.data, tokenizer)
    tracker = make_tracker(config, enabled=accelerator.is_main_process)
    try:
        result = _train_and_evaluate(config, split, tokenizer, accelerator, tracker, extra, progress,
                                     started)
    finally:
        tracker.finish()
    if accelerator.is_main_process:
        print(run_summary(result.paths, tracker), flush=True)
    return result


def run_summary(paths: dict[str, Path], tracker: Any) -> str:
    """The closing lines: where the model, its card, the report and the tracker output are."""
    lines = []
    if "final" in paths:
        lines.append(f"final model: {paths['final']}  (card: {paths['card']})")
    if "md" in paths:
        lines.append(f"report: {paths['md']}")
    lines += [f"tracking: {where}" for where in tracker.where()]
    return "\n".join(lines)


def _train_and_evaluate(config: RunConfig, split: Any, tokenizer: Any, accelerator: Any, tracker: Any,
                        extra: dict[str, Any] | None, progress: bool, started: float) -> PipelineResult:
    from rlaif.ppo.trainer import PPOTrainer

    timings: dict[str, float] = {}
    trainer = PPOTrainer(config, split.train, tokenizer=tokenizer, accelerator=accelerator,
                         tracker=tracker)
    holdout = _make_holdout(config, split.test, progress) \
        if config.eval.enabled and accelerator.is_main_process else None
    before = None
    control = _make_control(config, progress) if holdout is not None else None
    if holdout is not None:
        t0 = time.perf_counter()
        print(f"hold-out before: {len(holdout.prompts)} prompts, evaluator "
              f"{holdout.evaluator.judge.name}", flush=True)
        before = holdout.before(trainer.policy, trainer.tokenizer,
                                saved=trainer.run_dir / BEFORE_FILE)
        before.generation = None  # not kept in memory through training
        if control is not None:
            control_before = control.before(trainer.policy, trainer.tokenizer,
                                            saved=trainer.run_dir / CONTROL_BEFORE_FILE)
            control_before.generation = None
        timings["before"] = time.perf_counter() - t0
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        print(f"run folder {trainer.run_dir}: metrics.jsonl, checkpoints/; at the end final/ "
              "(model + README.md card)" + "".join(f"; {w}" for w in tracker.where()), flush=True)
    t0 = time.perf_counter()
    result = trainer.train()
    timings["ppo"] = time.perf_counter() - t0
    if holdout is None:
        paths = finish_run(trainer.run_dir, None, {}, timings, started, lambda: write_final_model(
            config, trainer)) if accelerator.is_main_process else {}
        return PipelineResult(train=result, paths=paths, timings=timings)
    try:
        t0 = time.perf_counter()
        print(f"hold-out after: {len(holdout.prompts)} prompts", flush=True)
        after = holdout.score(trainer.policy, trainer.tokenizer)
        report_extra = dict(extra or {})
        if config.eval.reward_judge_view:
            report_extra["reward_judge"] = reward_judge_view(config.judge.ref, holdout, before, after)
        # KL to the start model, which the policy holds as its PPO reference (the same pass
        # gives the after replies' perplexity under it).
        kl = {**_training_kl(result, config), **holdout.kl(after, trainer.policy)}
        report = holdout.compare(before, after, kl=kl)
        if control is not None:
            report_extra["control"] = _control_summary(
                control, control_before, control.score(trainer.policy, trainer.tokenizer))
        timings["after"] = time.perf_counter() - t0
        paths = finish_run(trainer.run_dir, report, report_extra, timings, started,
                           lambda: write_final_model(config, trainer))
        _track_report(tracker, report, paths, result.step)
    finally:
        holdout.close()
        if control is not None:
            control.close()
    return PipelineResult(train=result, holdout=report, paths=paths, timings=timings)


def build_holdout(config: Any, prompts: list[str], progress: bool, *, batch_size: int,
                  **settings: Any) -> Any:
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


def _make_holdout(config: RunConfig, test_prompts: list[str], progress: bool) -> Any:
    """The hold-out set; warns when the evaluator or the helpfulness judge is the reward judge."""
    if (config.eval.evaluator or DEFAULT_EVALUATOR) == config.judge.ref:
        log.warning("the evaluator is the reward judge (%s): reward hacking would not show in "
                    "the report; set eval.evaluator to a different judge", config.judge.ref)
    if config.eval.helpfulness is not None and config.eval.helpfulness == config.judge.ref:
        log.warning("eval.helpfulness is the reward judge (%s): the policy was trained to please "
                    "it, so its helpfulness numbers are no independent measure; set eval.helpfulness "
                    "to a different judge", config.judge.ref)
    return build_holdout(config, holdout_prompts(config, test_prompts), progress,
                         batch_size=config.ppo.batch_size, samples_per_prompt=config.eval.samples_per_prompt,
                         clusters=holdout_clusters(config))


def _make_control(config: RunConfig, progress: bool) -> Any:
    """The control hold-out set (`eval.control_source`), or None."""
    ev = config.eval
    if ev.control_source is None:
        return None
    from rlaif.data.prompts import load_split_prompts

    prompts = load_split_prompts(ev.control_source, split=ev.control_split, task=config.data.task,
                                 n=ev.control_n, on_bad_row=config.data.on_bad_row,
                                 context=config.data.context)
    # Toxicity, helpfulness and length only: no floors, no perplexity pass.
    return build_holdout(config, prompts, progress, batch_size=config.ppo.batch_size, floors=(),
                         fluency=False)


def _control_summary(control: Any, before: Any, after: Any) -> dict[str, Any]:
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


def _training_kl(result: Any, config: RunConfig) -> dict[str, float]:
    from rlaif.evaluation.holdout import training_kl

    return training_kl(result.history, temperature=config.generation.temperature,
                       estimator=config.ppo.kl.estimator)


def reward_judge_view(ref: Any, holdout: Any, before: Any, after: Any) -> dict[str, Any]:
    """The reward judge's (PPO) or labelling judge's (DPO) toxicity of the same hold-out replies,
    before and after, and of each floor text as every reply (`floors`: text -> mean); built
    anew: the trainer has closed its own judge."""
    from rlaif.evaluation.toxicity import make_toxicity_evaluator
    from rlaif.stats import mean_or_none

    judge = make_toxicity_evaluator(ref)
    try:
        view: dict[str, Any] = {"judge": judge.judge.name, "toxicity": judge.describe()}
        for name, side in (("before", before), ("after", after)):
            view[f"toxicity_mean_{name}"] = mean_or_none(judge.scores(holdout.samples, side.responses))
        # a floor text gets one score per prompt: its k identical replies score the same
        view["floors"] = {text: mean_or_none(judge.scores(holdout.prompts, [text] * len(holdout.prompts)))
                          for text in before.floors}
    finally:
        judge.close()
    return view


def finish_run(run_dir: Path, report: Any | None, extra: dict[str, Any], timings: dict[str, float],
               started: float, save_final: Callable[[], dict[str, Path]]) -> dict[str, Path]:
    """The end of every run (PPO, DPO): report.md/json + plots when evaluated (`extra` with
    `timings_s` so far), then final/ and its card (`save_final`, which reads report.json), then
    `timings["total"]` (from `started`, the run's setup, to final/ written) into `timings` and
    report.json's `extra.timings_s`. Returns the report's paths and `save_final`'s."""
    from rlaif.evaluation.report import rewrite_extra, write_report

    def rounded() -> dict[str, float]:
        return {k: round(v, 1) for k, v in timings.items()}

    paths: dict[str, Path] = {}
    if report is not None:
        metrics = run_dir / "metrics.jsonl"
        extra["timings_s"] = rounded()
        paths = write_report(run_dir, report, metrics_path=metrics if metrics.is_file() else None,
                             extra=extra)
    paths.update(save_final())
    timings["total"] = time.perf_counter() - started
    if report is not None:  # the total is known only now (the card does not show it)
        extra["timings_s"] = rounded()
        paths.update(rewrite_extra(run_dir, extra))
    return paths


def write_final_model(config: RunConfig, trainer: Any) -> dict[str, Path]:
    """<run>/final/ from the trained policy, with the card built from the run's files."""
    from rlaif.export import CARD_FILE, FINAL_DIR, generation_settings, write_final
    from rlaif.model_card import build_card, card_record_from_run

    policy, run_dir = trainer.policy, trainer.run_dir
    settings = generation_settings(policy.base_model(), trainer.tokenizer,
                                   config.generation.generate_kwargs())
    final = write_final(policy.model, trainer.tokenizer, run_dir / FINAL_DIR,
                        merge_lora=config.output.merge_lora, generation_config=settings,
                        card=build_card(card_record_from_run(run_dir)))
    return {"final": final, "card": final / CARD_FILE}


def _track_report(tracker: Any, report: Any, paths: dict[str, Path], step: int) -> None:
    """The hold-out table, its numbers, the example rows and the plots, to the trackers."""
    if not tracker.active:
        return
    from rlaif.evaluation.report import summary_table

    data = report.to_dict()
    numbers = {"holdout": {k: data["stats"][k] for k in ("before", "after", "difference")},
               "holdout_kl": data.get("kl") or {}}
    tracker.log_report(summary_table(data), numbers, step=step, rows=report.examples())
    tracker.log_images({f"holdout/{k}": p for k, p in paths.items() if k.endswith("plot")}, step=step)
