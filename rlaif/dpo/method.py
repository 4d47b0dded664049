"""DPO as a training method of the run lifecycle (`rlaif.runs.lifecycle`): TRL's `DPOTrainer` on
the labelled pairs, in the same run folder layout as PPO.

    checkpoints   TRL writes `checkpoint-N` every output.save_every steps and at the last step;
                  each is sealed (files.json) and renamed to `checkpoints/step-N`, and `latest`
                  names it (`RunFolder.publish_checkpoint`), as PPO's are
    resume        `--resume` verifies the checkpoint's files, then TRL restores the adapter (or
                  model), optimizer, scheduler, RNG and data position from it
    stop          SIGINT / SIGTERM / SIGHUP let the current step finish, save a checkpoint and stop
                  (`TrainingStopped`: continue with --resume)
    reference     LoRA: the model with its adapters off; full fine-tune: a frozen copy

Causal LMs only: TRL's DPOTrainer trains decoder-only models.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlaif.dpo.callbacks import dpo_callbacks, quiet_callbacks, run_folder_callbacks
from rlaif.dpo.config import DPORunConfig
from rlaif.dpo.data import PreferenceSet, load_preferences
from rlaif.data.label_meta import read_label_meta
from rlaif.dpo.setup import check_causal, dpo_args, peft_config
from rlaif.runs.changes import fingerprint_path, start_or_check_config
from rlaif.runs.folder import RunFolder, checkpoint_step, verify_checkpoint
from rlaif.runs.method import FinalModel, MethodOutcome
from rlaif.runs.metrics_log import MetricsLog
from rlaif.tracking import Tracker


class DPOMethod:
    """`rlaif dpo` (see `rlaif.runs.method.TrainingMethod`)."""

    name = "dpo"

    def __init__(self, config: DPORunConfig, *, model: Any, tokenizer: Any, prefs: PreferenceSet,
                 labels: dict[str, Any] | None, folder: RunFolder, tracker: Tracker,
                 test_prompts: list[str], checkpoint: Path | None, progress: bool) -> None:
        self.config, self.prefs, self.labels, self.folder = config, prefs, labels, folder
        self.tracker, self.test_prompts, self.checkpoint, self.progress = tracker, test_prompts, checkpoint, progress
        self._model, self._tokenizer = model, tokenizer
        self.frozen = None if config.model.lora is not None else copy.deepcopy(model).eval().requires_grad_(False)
        self.reward_judge = config.preferences.reward_judge or (labels or {}).get("judge_ref")
        self.holdout_batch_size = config.dpo.per_device_train_batch_size
        self.generator = None  # the hold-out on the policy's own generate

    @classmethod
    def build(cls, config: DPORunConfig, *, progress: bool = True) -> DPOMethod:
        """Check the model and pairs, claim the run folder, load the model (resume: verify the
        checkpoint and check the settings against the run's config.yaml first)."""
        import torch

        from rlaif.data.prompts import load_prompt_split
        from rlaif.models.load import load_base_model, load_tokenizer
        from rlaif.tracking import make_tracker

        name = config.model.name_or_path
        check_causal(name)
        prefs = load_preferences(config.preferences, chat=config.data.task == "chat",
                                 system_prompt=config.data.system_prompt)
        labels = read_label_meta(config.preferences.path)
        if config.eval.enabled and config.eval.reward_judge_view and \
                not (config.preferences.reward_judge or (labels or {}).get("judge_ref")):
            raise ValueError("eval.reward_judge_view is true but the labelling judge is unknown: set "
                             "preferences.reward_judge to the judge that labelled the pairs")
        print(prefs.summary(), flush=True)
        folder = RunFolder(config.output.dir)
        folder = folder.claim(resume=config.resume, overwrite=config.overwrite, command="rlaif dpo")
        checkpoint = folder.resume_checkpoint(config.resume) if config.resume else None
        if checkpoint is not None:
            verify_checkpoint(checkpoint)
        step = checkpoint_step(checkpoint, "global_step")
        start_or_check_config(folder, config, step, {"preferences": fingerprint_path(config.preferences.path)})
        MetricsLog(folder.path).reset(keep_through_step=step)
        tokenizer = load_tokenizer(name)
        if tokenizer.pad_token_id is None:
            tokenizer = copy.deepcopy(tokenizer)
            tokenizer.pad_token = tokenizer.eos_token  # GPT-2 style tokenizers ship without one
        dtype = getattr(torch, config.model.dtype) if config.model.dtype not in (None, "auto") else None
        model = load_base_model(name, dtype=dtype)
        test = [] if config.eval.split is not None else load_prompt_split(config.data, tokenizer).test
        return cls(config, model=model, tokenizer=tokenizer, prefs=prefs, labels=labels, folder=folder,
                   tracker=make_tracker(config), test_prompts=test, checkpoint=checkpoint, progress=progress)

    @property
    def model(self) -> Any:
        return self._model

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def is_main(self) -> bool:
        return True

    @contextlib.contextmanager
    def reference(self) -> Iterator[Any]:
        """The start model: the frozen copy, or the trained model with its adapters off."""
        if self.frozen is not None:
            yield self.frozen
            return
        with self._model.disable_adapter():
            yield self._model

    def wait(self) -> None:
        """One process: nothing to wait for."""

    def train(self) -> MethodOutcome:
        """TRL's DPOTrainer from the start (or the checkpoint); the model is trained in place."""
        from datasets import Dataset
        from trl import DPOTrainer

        from rlaif.runs.signals import GracefulStop, TrainingStopped

        config, history = self.config, []
        lora = config.model.lora is not None
        trainer = DPOTrainer(
            model=self._model, ref_model=self.frozen, args=dpo_args(config, self.folder),
            train_dataset=Dataset.from_list(self.prefs.rows), processing_class=self._tokenizer,
            peft_config=peft_config(self._model, config) if lora else None,
            callbacks=dpo_callbacks(self.folder.metrics, history, progress=self.progress,
                                    log_every=config.output.log_every, tracker=self.tracker))
        for quiet in quiet_callbacks():  # they print each log dict; ours print as `rlaif train`
            trainer.remove_callback(quiet)
        with GracefulStop("DPO stopping after this step") as stop:
            for callback in run_folder_callbacks(self.folder, stop):
                trainer.add_callback(callback)
            out = trainer.train(resume_from_checkpoint=str(self.checkpoint) if self.checkpoint else None)
        self._model = trainer.model  # with LoRA: the peft model around the (same) base
        step, latest = trainer.state.global_step, self.folder.latest_checkpoint()
        if stop.requested is not None:
            raise TrainingStopped(f"{stop.requested} after step {step}: saved {latest}; "
                                  "continue with --resume")
        extra = {"method": "dpo", "dpo": {
            "steps": step, "train_loss": out.training_loss, "pairs": len(self.prefs.rows),
            "left_out": self.prefs.left_out, "source": self.prefs.source, "beta": config.dpo.beta,
            "loss_type": config.dpo.loss_type}}
        if self.labels is not None:
            extra["labels"] = self.labels
        return MethodOutcome(step=step, history=history, checkpoint=latest, extra=extra)

    def final_model(self) -> FinalModel:
        return FinalModel(self._model, self._tokenizer, self.config.model.lora is not None,
                          self.config.generation.generate_kwargs())

    def close(self) -> None:
        self.tracker.finish()
