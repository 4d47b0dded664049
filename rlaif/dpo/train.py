"""`rlaif dpo`: before -> DPO -> after, the same hold-out flow and run folder as `rlaif train`.

    1. data      the labelled pairs (`data.py`); the hold-out prompts picked as `rlaif train`
                 picks them (`rlaif.pipeline.holdout_prompts`), so PPO and DPO runs of one data
                 section answer the same held-out prompts
    2. before    the start model answers them; the evaluator scores them (<run>/eval_before.json)
    3. DPO       TRL's `DPOTrainer` (LoRA: the reference is the model with adapters off; full
                 fine-tune: a frozen copy); every log line goes to <run>/metrics.jsonl, the
                 terminal gets a tqdm bar and a line every output.log_every steps (`callbacks.py`)
    4. after     same prompts, seed and settings; hold-out KL(after || start model)
    5. report    report.md / report.json / plots, then final/ model + card, then
                 timings_s["total"] (`rlaif.pipeline.finish_run`, shared with `rlaif train`)

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
from rlaif.dpo.callbacks import dpo_callbacks, quiet_callbacks
from rlaif.dpo.config import DPORunConfig
from rlaif.dpo.data import PreferenceSet, load_preferences
from rlaif.pipeline import finish_run, reward_judge_view

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


def _dpo_args(config: DPORunConfig, run_dir: Path) -> Any:
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
        save_strategy="no", disable_tqdm=True, dataset_num_proc=None,
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


def _holdout(config: DPORunConfig, tokenizer: Any, progress: bool) -> Any:
    """The hold-out set, picked and set up as `rlaif train` does."""
    from rlaif.data.prompts import load_prompt_split
    from rlaif.pipeline import build_holdout, holdout_clusters, holdout_prompts

    test = [] if config.eval.split is not None else load_prompt_split(config.data, tokenizer).test
    return build_holdout(config, holdout_prompts(config, test), progress,
                         batch_size=config.dpo.per_device_train_batch_size,
                         samples_per_prompt=config.eval.samples_per_prompt,
                         clusters=holdout_clusters(config))


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
            model=model, ref_model=frozen, args=_dpo_args(config, run_dir),
            train_dataset=Dataset.from_list(prefs.rows), processing_class=tokenizer,
            peft_config=_peft_config(model, config) if config.model.lora is not None else None,
            callbacks=dpo_callbacks(metrics_path, history, progress=progress,
                                    log_every=config.output.log_every))
        for quiet in quiet_callbacks():  # they print each log dict; ours print as `rlaif train`
            trainer.remove_callback(quiet)
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
                report_extra["reward_judge"] = reward_judge_view(reward_ref, holdout, before, after)
            timings["after"] = time.perf_counter() - t0
        result.holdout = report
        result.paths.update(finish_run(run_dir, report, report_extra, timings, t_start,
                                       lambda: _save_final(policy, tokenizer, run_dir, config)))
        _remove_if_empty(run_dir / "trl")
        return result
    finally:
        if holdout is not None:
            holdout.close()


def _remove_if_empty(folder: Path) -> None:
    """TRL creates its output_dir even when it saves nothing there."""
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _save_final(policy: Any, tokenizer: Any, run_dir: Path, config: DPORunConfig) -> dict[str, Path]:
    """The trained model as a standard Hugging Face folder in <run>/final (LoRA merged), with the
    run's sampling settings and its model card."""
    from rlaif.export import CARD_FILE, FINAL_DIR, generation_settings, write_final
    from rlaif.models.load import unwrap_lm

    gen = generation_settings(unwrap_lm(policy), tokenizer, config.generation.generate_kwargs())
    final = write_final(policy, tokenizer, run_dir / FINAL_DIR, merge_lora=config.model.lora is not None,
                        generation_config=gen, card=_card(run_dir))
    return {"final": final, "card": final / CARD_FILE}


def _card(run_dir: Path) -> str | None:
    """The model card built from the run folder (report.json, config.yaml, metrics.jsonl)."""
    from rlaif.model_card import build_card, card_record_from_run

    return build_card(card_record_from_run(run_dir))
