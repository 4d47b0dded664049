"""PPO as a training method of the run lifecycle (`rlaif.runs.lifecycle`): the trainer, built from
the run's config on the TRAIN prompts, with the hold-out's share of the prompts kept aside."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from rlaif.config import RunConfig
from rlaif.ppo.trainer import PPOTrainer
from rlaif.runs.folder import RunFolder
from rlaif.runs.method import FinalModel, MethodOutcome
from rlaif.tracking import Tracker


class PPOMethod:
    """`rlaif train`: PPO on the config's TRAIN prompts (see `rlaif.runs.method.TrainingMethod`)."""

    name = "ppo"

    def __init__(self, config: RunConfig, trainer: PPOTrainer, test_prompts: list[str],
                 tracker: Tracker) -> None:
        self.config, self.trainer, self.test_prompts, self.tracker = config, trainer, test_prompts, tracker
        self.folder: RunFolder = trainer.folder
        self.reward_judge = config.judge.ref
        self.holdout_batch_size = config.ppo.batch_size
        self.generator = None  # the hold-out on the policy's own generate, unless:
        if trainer.rollouts is not None:  # generation.backend vllm: on the rollouts' engine
            from rlaif.ppo.vllm_generate import VLLMGenerator

            self.generator = VLLMGenerator(trainer.rollouts, trainer.policy)

    @classmethod
    def build(cls, config: RunConfig, folder: RunFolder | None = None) -> PPOMethod:
        """Claim the run folder (`folder`, e.g. one the demo claimed, else output.dir), split the
        prompts, build (or resume) the trainer."""
        from rlaif.data.prompts import load_prompt_split
        from rlaif.models.load import load_tokenizer
        from rlaif.ppo.parts import make_accelerator
        from rlaif.tracking import make_tracker

        accelerator = make_accelerator(config)
        folder = folder or RunFolder(config.output.dir)
        if accelerator.is_main_process:  # before anything is loaded or written
            folder = folder.claim(resume=config.resume, overwrite=config.overwrite, command="rlaif train")
        tokenizer = load_tokenizer(config.model.name_or_path)
        split = load_prompt_split(config.data, tokenizer)
        tracker = make_tracker(config, enabled=accelerator.is_main_process)
        try:
            trainer = PPOTrainer.build(config, split.train, tokenizer=tokenizer, accelerator=accelerator,
                                       tracker=tracker, folder=folder)
        except BaseException:
            tracker.finish()
            raise
        return cls(config, trainer, split.test, tracker)

    @property
    def model(self) -> Any:
        return self.trainer.policy

    @property
    def tokenizer(self) -> Any:
        return self.trainer.tokenizer

    @property
    def is_main(self) -> bool:
        return bool(self.trainer.accelerator.is_main_process)

    def reference(self) -> AbstractContextManager[Any]:
        """The policy's PPO reference: LoRA adapters off, or the frozen copy."""
        return self.trainer.policy.reference()

    def wait(self) -> None:
        self.trainer.accelerator.wait_for_everyone()

    def train(self) -> MethodOutcome:
        result = self.trainer.train()
        return MethodOutcome(step=result.step, history=result.history, checkpoint=result.checkpoint,
                             kl_estimator=self.config.ppo.kl.estimator)

    def final_model(self) -> FinalModel:
        return FinalModel(self.trainer.policy.model, self.tokenizer, self.config.output.merge_lora,
                          self.config.generation.generate_kwargs())

    def close(self) -> None:
        self.trainer.close_rollouts()  # the engine the hold-out's "after" side reopened
        self.tracker.finish()
