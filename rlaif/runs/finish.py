"""The end of every run (PPO, DPO): the report files, final/ and its card, the trackers, the
total time, and the closing lines.

    finish_run         report.md/json + plots, then final/ (+ card, which reads report.json), then
                       timings_s["total"] into report.json
    write_final_model  <run>/final/ from a trained model: a standard HF folder, LoRA merged unless
                       asked otherwise, the run's sampling settings, the card as README.md
    reward_judge_view  the reward judge's own toxicity of the same hold-out replies
    track_report       the hold-out table, numbers, examples and plots to the trackers
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlaif.runs.folder import CARD_FILE, RunFolder

if TYPE_CHECKING:
    from rlaif.evaluation.holdout import Holdout, HoldoutReport, HoldoutSide
    from rlaif.tracking import Tracker


def run_summary(paths: dict[str, Path], tracker: Tracker) -> str:
    """The closing lines: where the model, its card, the report and the tracker output are."""
    lines = []
    if "final" in paths:
        lines.append(f"final model: {paths['final']}  (card: {paths['card']})")
    if "md" in paths:
        lines.append(f"report: {paths['md']}")
    lines += [f"tracking: {where}" for where in tracker.where()]
    return "\n".join(lines)


def reward_judge_view(ref: str | dict[str, Any], holdout: Holdout, before: HoldoutSide,
                      after: HoldoutSide) -> dict[str, Any]:
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


def finish_run(folder: RunFolder, report: HoldoutReport | None, extra: dict[str, Any],
               timings: dict[str, float], started: float,
               save_final: Callable[[], dict[str, Path]]) -> dict[str, Path]:
    """The end of every run (PPO, DPO): report.md/json + plots when evaluated (`extra` with
    `timings_s` so far), then final/ and its card (`save_final`, which reads report.json), then
    `timings["total"]` (from `started`, the run's setup, to final/ written) into `timings` and
    report.json's `extra.timings_s`. Returns the report's paths and `save_final`'s."""
    from rlaif.evaluation.report import rewrite_extra, write_report

    def rounded() -> dict[str, float]:
        return {k: round(v, 1) for k, v in timings.items()}

    paths: dict[str, Path] = {}
    if report is not None:
        extra["timings_s"] = rounded()
        paths = write_report(folder.path, report, extra=extra,
                             metrics_path=folder.metrics if folder.metrics.is_file() else None)
    paths.update(save_final())
    timings["total"] = time.perf_counter() - started
    if report is not None:  # the total is known only now (the card does not show it)
        extra["timings_s"] = rounded()
        paths.update(rewrite_extra(folder.path, extra))
    return paths


def write_final_model(folder: RunFolder, model: Any, tokenizer: Any, *, merge_lora: bool,
                      gen_kwargs: dict[str, Any]) -> dict[str, Path]:
    """<run>/final/ from the trained `model` (an HF or peft model), with the run's sampling
    settings and the card built from the run's files."""
    from rlaif.export import generation_settings, write_final
    from rlaif.model_card import build_card, card_record_from_run
    from rlaif.models.load import unwrap_lm

    settings = generation_settings(unwrap_lm(model), tokenizer, gen_kwargs)
    final = write_final(model, tokenizer, folder.final, merge_lora=merge_lora, generation_config=settings,
                        card=build_card(card_record_from_run(folder.path)))
    return {"final": final, "card": final / CARD_FILE}


def track_report(tracker: Tracker, report: HoldoutReport, paths: dict[str, Path], step: int) -> None:
    """The hold-out table, its numbers, the example rows and the plots, to the trackers."""
    if not tracker.active:
        return
    from rlaif.evaluation.report import summary_table

    data = report.to_dict()
    numbers = {"holdout": {k: data["stats"][k] for k in ("before", "after", "difference")},
               "holdout_kl": data.get("kl") or {}}
    tracker.log_report(summary_table(data), numbers, step=step, rows=report.examples())
    tracker.log_images({f"holdout/{k}": p for k, p in paths.items() if k.endswith("plot")}, step=step)
