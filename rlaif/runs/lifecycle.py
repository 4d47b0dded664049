"""One run, start to end, for every method: `rlaif train` (PPO), `rlaif dpo`, `rlaif demo` and
the notebook go through `run_method`.

    1. folder    the run folder is claimed: a folder holding a run is refused unless --resume
                 or --overwrite (`rlaif.runs.folder`), before anything is loaded or written
    2. method    the method is built (its policy, judge, optimizer, ...; `rlaif.ppo.method`,
                 `rlaif.dpo.method`), and on --resume restored from its checkpoint
    3. before    the start model answers the hold-out prompts; the evaluator (and the
                 eval.helpfulness judge) scores them; their perplexity under the start model and
                 the eval.floors rows are measured (all saved to <run>/eval_before.json first: a
                 resumed run keeps its true start); eval.split prompts carry cluster labels
    4. train     the method trains (metrics.jsonl, checkpoints/step-N, resumable)
    5. after     same prompts, seed and generation settings; hold-out KL to the start model at
                 the sampling temperature, whose pass also gives the after replies' perplexity
    6. report    report.md / report.json / plots in the run folder
    7. final     <run>/final/: the trained model as a standard HF folder with the model card as
                 README.md; the trackers of output.report_to get the hold-out table and plots
    8. total     timings_s["total"], setup to final/ written, into report.json

The evaluator defaults to the RoBERTa hate-speech classifier (toxicity = P(hate)); it is best
a different judge than the reward, so reward hacking shows up in the report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlaif.evaluation.holdout import training_kl
from rlaif.runs.finish import finish_run, reward_judge_view, run_summary, track_report, write_final_model
from rlaif.runs.holdout import control_summary, make_control, make_holdout
from rlaif.runs.folder import RunFolder
from rlaif.runs.method import MethodOutcome, TrainingMethod

if TYPE_CHECKING:
    from rlaif.config import RunConfig
    from rlaif.dpo.config import DPORunConfig
    from rlaif.evaluation.holdout import Holdout, HoldoutReport


@dataclass
class RunResult:
    """Where the run went, what training did, the hold-out report (when evaluated), the report
    and model files, and the timings (seconds per phase)."""

    run_dir: Path
    train: MethodOutcome
    holdout: HoldoutReport | None = None
    paths: dict[str, Path] = field(default_factory=dict)  # report files, "final", "card"
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def history(self) -> list[dict[str, Any]]:
        """This session's training log rows."""
        return self.train.history


def train_ppo(config: RunConfig, *, extra: dict[str, Any] | None = None, progress: bool = True,
              folder: RunFolder | None = None) -> RunResult:
    """Run `config` with PPO: the before/after hold-out evaluation when `eval.enabled`.
    `extra` goes into report.json as it is (e.g. what the demo built and how long it took);
    `folder`: the run folder when the caller claimed it already (the demo), else output.dir."""
    from rlaif.ppo.method import PPOMethod

    started = time.perf_counter()  # timings_s["total"]: from here to final/ written
    method = PPOMethod.build(config, folder)
    return run_method(config, method, test_prompts=method.test_prompts, extra=extra,
                      progress=progress, started=started)


def train_dpo(config: DPORunConfig, *, extra: dict[str, Any] | None = None,
              progress: bool = True) -> RunResult:
    """Run `config` with DPO on its labelled pairs, the same hold-out flow as `train_ppo`."""
    from rlaif.dpo.method import DPOMethod

    started = time.perf_counter()
    method = DPOMethod.build(config, progress=progress)
    return run_method(config, method, test_prompts=method.test_prompts, extra=extra,
                      progress=progress, started=started)


def run_method(config: RunConfig | DPORunConfig, method: TrainingMethod, *, test_prompts: list[str],
               extra: dict[str, Any] | None, progress: bool, started: float) -> RunResult:
    """Steps 3-8 of the module docstring for a built `method` (whose folder is claimed)."""
    try:
        result = _run(config, method, test_prompts, dict(extra or {}), progress, started)
    finally:
        method.close()
    if method.is_main:
        print(run_summary(result.paths, method.tracker), flush=True)
    return result


def _run(config: RunConfig | DPORunConfig, method: TrainingMethod, test_prompts: list[str], extra: dict[str, Any],
         progress: bool, started: float) -> RunResult:
    folder, timings = method.folder, {}

    def save_final() -> dict[str, Path]:
        final = method.final_model()
        return write_final_model(folder, final.model, final.tokenizer, merge_lora=final.merge_lora,
                                 gen_kwargs=final.gen_kwargs)

    holdout: Holdout | None = None
    control: Holdout | None = None
    if config.eval.enabled and method.is_main:
        holdout = make_holdout(config, test_prompts, progress, batch_size=method.holdout_batch_size,
                               reward_judge=method.reward_judge)
        control = make_control(config, progress, batch_size=method.holdout_batch_size)
        for side in (holdout, control):  # the replies from the engine training sampled with
            if side is not None:
                side.generator = method.generator
    try:
        if holdout is not None:
            t0 = time.perf_counter()
            print(f"hold-out before: {len(holdout.prompts)} prompts, evaluator "
                  f"{holdout.evaluator.judge.name}", flush=True)
            before = holdout.before(method.model, method.tokenizer, saved=folder.before)
            before.generation = None  # not kept in memory through training
            if control is not None:
                control_before = control.before(method.model, method.tokenizer, saved=folder.control_before)
                control_before.generation = None
            timings["before"] = time.perf_counter() - t0
        method.wait()
        if method.is_main:
            print(f"run folder {folder.path}: metrics.jsonl, checkpoints/; at the end final/ "
                  "(model + README.md card)" + "".join(f"; {w}" for w in method.tracker.where()),
                  flush=True)
        t0 = time.perf_counter()
        outcome = method.train()
        timings[method.name] = time.perf_counter() - t0
        extra = {**extra, **outcome.extra}
        if not method.is_main:
            return RunResult(folder.path, outcome, timings=timings)
        if holdout is None:
            paths = finish_run(folder, None, extra, timings, started, save_final)
            return RunResult(folder.path, outcome, paths=paths, timings=timings)
        t0 = time.perf_counter()
        print(f"hold-out after: {len(holdout.prompts)} prompts", flush=True)
        after = holdout.score(method.model, method.tokenizer)
        if config.eval.reward_judge_view:
            extra["reward_judge"] = reward_judge_view(method.reward_judge, holdout, before, after)
        # KL to the start model (the same pass gives the after replies' perplexity under it)
        kl = {} if outcome.kl_estimator is None else training_kl(
            outcome.history, temperature=config.generation.temperature, estimator=outcome.kl_estimator)
        report = holdout.compare(before, after, kl={**kl, **holdout.kl(after, method)})
        if control is not None:
            extra["control"] = control_summary(control, control_before,
                                               control.score(method.model, method.tokenizer))
        timings["after"] = time.perf_counter() - t0
        paths = finish_run(folder, report, extra, timings, started, save_final)
        track_report(method.tracker, report, paths, outcome.step)
        return RunResult(folder.path, outcome, holdout=report, paths=paths, timings=timings)
    finally:
        for side in (holdout, control):
            if side is not None:
                side.close()
