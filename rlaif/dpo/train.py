"""`rlaif dpo`: before -> DPO -> after, the same hold-out flow and run folder as `rlaif train`.

    1. data      the labelled pairs (`data.py`); the hold-out prompts picked as `rlaif train`
                 picks them (`rlaif.pipeline.holdout_prompts`), so PPO and DPO runs of one data
                 section answer the same held-out prompts
    2. before    the start model answers them; the evaluator scores them (<run>/eval_before.json)
    3. DPO       TRL's `DPOTrainer` (LoRA: the reference is the model with adapters off; full
                 fine-tune: a frozen copy); every log line goes to <run>/metrics.jsonl
    4. after     same prompts, seed and settings; hold-out KL(after || start model)
    5. report    report.md / report.json / plots (`rlaif.evaluation.report`); final/ model + card

Causal LMs only: TRL's DPOTrainer trains decoder-only models.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlaif.config import save_config
from rlaif.dpo.config import DPORunConfig
from rlaif.dpo.data import PreferenceSet, load_preferences
from rlaif.io import append_jsonl

log = logging.getLogger(__name__)

BEFORE_FILE = "eval_before.json"
METRICS_FILE = "metrics.jsonl"
META_SUFFIX = ".meta.json"  # written by `rlaif label` beside its JSONL


@dataclass
class DPOResult:
    """Where the run went, the hold-out report (when evaluated), the training log and timings."""

    run_dir: Path
    history: list[dict[str, Any]]
    preferences: PreferenceSet
    holdout: Any | None = None  # rlaif.evaluation.HoldoutReport
    paths: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def check_causal(name_or_path: str) -> None:
    """Refuse an encoder-decoder model before anything is loaded, naming the fix."""
    from rlaif.models.load import load_config

    if getattr(load_config(name_or_path), "is_encoder_decoder", False):
        raise ValueError(
            f"model.name_or_path={name_or_path!r} is an encoder-decoder (seq2seq) model; TRL's "
            "DPOTrainer trains causal LMs only: use a decoder-only model, or `rlaif train` (PPO "
            "supports seq2seq)")


def label_meta(path: str | Path) -> dict[str, Any] | None:
    """The `.meta.json` `rlaif label` wrote beside a label file (judge, calls, cost), or None."""
    meta = Path(str(path) + META_SUFFIX)
    return json.loads(meta.read_text()) if meta.is_file() else None


def _peft_config(model: Any, config: DPORunConfig) -> Any:
    """peft LoraConfig from `model.lora`, the targets defaulting per architecture as in PPO."""
    from peft import LoraConfig, TaskType

    from rlaif.ppo.lora import default_lora_targets

    lora = config.model.lora
    model_type = model.config.model_type
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias=lora.bias,
                      target_modules=lora.target_modules or default_lora_targets(model_type),
                      task_type=TaskType.CAUSAL_LM, fan_in_fan_out=model_type == "gpt2")


def _dpo_args(config: DPORunConfig, run_dir: Path, progress: bool) -> Any:
    import torch
    from trl import DPOConfig

    d = config.dpo
    # TRL defaults to bf16; keep the model's own dtype (float32 on CPU) unless asked otherwise.
    bf16 = config.model.dtype == "bfloat16" and torch.cuda.is_available()
    return DPOConfig(
        output_dir=str(run_dir / "trl"), beta=d.beta, loss_type=[d.loss_type],
        learning_rate=d.learning_rate, num_train_epochs=d.num_train_epochs,
        max_steps=d.max_steps or -1, per_device_train_batch_size=d.per_device_train_batch_size,
        gradient_accumulation_steps=d.gradient_accumulation_steps, max_length=d.max_length,
        lr_scheduler_type=d.lr_scheduler_type, warmup_steps=d.warmup_steps,
        logging_steps=d.logging_steps, seed=d.seed, data_seed=d.seed, report_to=[],
        save_strategy="no", disable_tqdm=not progress, dataset_num_proc=None,
        remove_unused_columns=False, bf16=bf16, use_cpu=not torch.cuda.is_available(),
        **({"gradient_checkpointing": True} if config.model.gradient_checkpointing else {}))


class _Reference:
    """The KL anchor for `Holdout.kl`: `reference()` yields the start model (adapters off, or
    the frozen copy), as the PPO policy's `reference()` does."""

    def __init__(self, model: Any, frozen: Any = None) -> None:
        self.model, self.frozen = model, frozen

    @contextlib.contextmanager
    def reference(self) -> Iterator[Any]:
        if self.frozen is not None:
            yield self.frozen
            return
        with self.model.disable_adapter():
            yield self.model


def _metrics_callback(path: Path, history: list[dict[str, Any]]) -> Any:
    from transformers import TrainerCallback

    class MetricsToJsonl(TrainerCallback):
        """Every TRL log line (not the end-of-training summary) as one metrics.jsonl row."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if not logs or "train_runtime" in logs:
                return
            row = {"step": state.global_step, **{k: v for k, v in logs.items()
                                                 if isinstance(v, (int, float))}}
            history.append(row)
            append_jsonl(path, row)

    return MetricsToJsonl()


def _holdout(config: DPORunConfig, tokenizer: Any, progress: bool) -> Any:
    """The hold-out set, picked and set up as `rlaif train` does."""
    from rlaif.data.prompts import load_prompt_split
    from rlaif.evaluation.holdout import Holdout
    from rlaif.pipeline import DEFAULT_EVALUATOR, holdout_prompts

    ev = config.eval
    test = [] if ev.split is not None else load_prompt_split(config.data, tokenizer).test
    return Holdout(holdout_prompts(config, test),  # type: ignore[arg-type]  # reads .data/.eval only
                   ev.evaluator if ev.evaluator is not None else DEFAULT_EVALUATOR,
                   gen_kwargs=config.generation.generate_kwargs(), seed=config.data.seed,
                   threshold=ev.threshold, batch_size=ev.batch_size or config.dpo.per_device_train_batch_size,
                   chat=config.data.task == "chat", system_prompt=config.data.system_prompt,
                   progress=progress, samples_per_prompt=ev.samples_per_prompt)


def _reward_judge_view(ref: Any, holdout: Any, before: Any, after: Any) -> dict[str, Any]:
    """The labelling judge's toxicity of the same hold-out replies, before and after."""
    from rlaif.evaluation.toxicity import make_toxicity_evaluator
    from rlaif.stats import mean_or_none

    judge = make_toxicity_evaluator(ref)
    try:
        view: dict[str, Any] = {"judge": judge.judge.name, "toxicity": judge.describe()}
        for name, side in (("before", before), ("after", after)):
            view[f"toxicity_mean_{name}"] = mean_or_none(judge.scores(holdout.samples, side.responses))
    finally:
        judge.close()
    return view


def train_dpo(config: DPORunConfig, *, extra: dict[str, Any] | None = None,
              progress: bool = True) -> DPOResult:
    """Run `config`: DPO on the labelled pairs, with the before/after hold-out evaluation when
    `eval.enabled`; writes the run folder. `extra` goes into report.json as it is."""
    import torch
    from datasets import Dataset
    from trl import DPOTrainer

    from rlaif.models.load import load_base_model, load_tokenizer

    t_start = time.perf_counter()
    name = config.model.name_or_path
    check_causal(name)
    prefs = load_preferences(config.preferences, chat=config.data.task == "chat",
                             system_prompt=config.data.system_prompt)
    meta = label_meta(config.preferences.path)
    reward_ref = config.preferences.reward_judge or (meta or {}).get("judge_ref")
    if config.eval.enabled and config.eval.reward_judge_view and reward_ref is None:
        raise ValueError("eval.reward_judge_view is true but the labelling judge is unknown: set "
                         "preferences.reward_judge to the judge that labelled the pairs")
    print(prefs.summary(), flush=True)
    run_dir = Path(config.output.dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir)  # type: ignore[arg-type]  # any pydantic config dumps the same way
    metrics_path = run_dir / METRICS_FILE
    metrics_path.unlink(missing_ok=True)  # this run's log only

    tokenizer = load_tokenizer(name)
    if tokenizer.pad_token_id is None:
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 style tokenizers ship without one
    dtype = getattr(torch, config.model.dtype) if config.model.dtype not in (None, "auto") else None
    model = load_base_model(name, dtype=dtype)
    timings: dict[str, float] = {}
    holdout = _holdout(config, tokenizer, progress) if config.eval.enabled else None
    try:
        before = None
        if holdout is not None:
            t0 = time.perf_counter()
            print(f"hold-out before: {len(holdout.prompts)} prompts, evaluator "
                  f"{holdout.evaluator.judge.name}", flush=True)
            before = holdout.before(model, tokenizer, saved=run_dir / BEFORE_FILE)
            before.generation = None  # not kept in memory through training
            timings["before"] = time.perf_counter() - t0

        frozen = None
        if config.model.lora is None:
            frozen = copy.deepcopy(model).eval().requires_grad_(False)
        history: list[dict[str, Any]] = []
        trainer = DPOTrainer(
            model=model, ref_model=frozen, args=_dpo_args(config, run_dir, progress),
            train_dataset=Dataset.from_list(prefs.rows), processing_class=tokenizer,
            peft_config=_peft_config(model, config) if config.model.lora is not None else None,
            callbacks=[_metrics_callback(metrics_path, history)])
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # metrics.jsonl has every log line
        t0 = time.perf_counter()
        train_out = trainer.train()
        timings["dpo"] = time.perf_counter() - t0
        policy = trainer.model
        result = DPOResult(run_dir, history, prefs, timings=timings)
        report_extra = {**(extra or {}), "method": "dpo", "dpo": {
            "steps": trainer.state.global_step, "train_loss": train_out.training_loss,
            "pairs": len(prefs.rows), "left_out": prefs.left_out, "source": prefs.source,
            "beta": config.dpo.beta, "loss_type": config.dpo.loss_type}}
        if meta is not None:
            report_extra["labels"] = meta
        report = None
        if holdout is not None:
            t0 = time.perf_counter()
            print(f"hold-out after: {len(holdout.prompts)} prompts", flush=True)
            after = holdout.score(policy, tokenizer)
            kl = holdout.kl(after, _Reference(policy, frozen))
            report = holdout.compare(before, after, kl=kl)
            if config.eval.reward_judge_view:
                report_extra["reward_judge"] = _reward_judge_view(reward_ref, holdout, before, after)
            timings["after"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        report_extra["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
        if report is not None:
            from rlaif.evaluation.report import write_report

            result.holdout = report
            result.paths.update(write_report(
                run_dir, report, metrics_path=metrics_path if metrics_path.is_file() else None,
                extra=report_extra))
        result.paths["final"] = _save_final(policy, tokenizer, run_dir, config)
        _remove_if_empty(run_dir / "trl")
        return result
    finally:
        if holdout is not None:
            holdout.close()


def _remove_if_empty(folder: Path) -> None:
    """TRL creates its output_dir even when it saves nothing there."""
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _save_final(policy: Any, tokenizer: Any, run_dir: Path, config: DPORunConfig) -> Path:
    """The trained model as a standard Hugging Face folder in <run>/final (LoRA merged), with the
    run's sampling settings and its model card."""
    from rlaif.export import generation_settings, write_final
    from rlaif.models.load import unwrap_lm

    gen = generation_settings(unwrap_lm(policy), tokenizer, config.generation.generate_kwargs())
    return write_final(policy, tokenizer, run_dir / "final", merge_lora=config.model.lora is not None,
                       generation_config=gen, card=_card(run_dir))


def _card(run_dir: Path) -> str | None:
    """The model card built from the run folder (report.json, config.yaml, metrics.jsonl)."""
    from rlaif.model_card import build_card, card_record_from_run

    return build_card(card_record_from_run(run_dir))
