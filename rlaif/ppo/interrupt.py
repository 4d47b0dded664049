"""Keeping a run's progress when it stops early: a step snapshot, graceful signals, the stop error.

    - An exception before a step starts changing weights (generation, the judge, a budget stop,
      the rollout passes) rolls the trainer back to the end of the last finished step
      (`StepSnapshot`: data position, RNG, reward statistics) and saves that step as a
      checkpoint, so `--resume` continues exactly as an uninterrupted run would have.
    - An exception while the weights are being updated saves nothing new: half an update is not
      a state any run passes through. The last checkpoint stays.
    - SIGINT / SIGTERM / SIGHUP (`rlaif.runs.signals.GracefulStop`) let the current step finish,
      then the trainer saves and raises `TrainingStopped`; a second Ctrl-C stops at once.

With several processes a save needs every process (its barriers), so the processes first
agree: `any_process` after each step (a signal may reach one process a moment before the
others), and the judge phase's gather carries each process's error (`StepFailed` on all of
them, marked `agreed`). An error no other process hears of (a crash in generation on one
process) cannot be saved after: the others would wait at the barrier.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any


logger = logging.getLogger(__name__)


def any_process(accelerator: Any, flag: bool) -> bool:
    """True on every process if `flag` is true on any (one tiny all-reduce)."""
    if accelerator.num_processes == 1:
        return flag
    import torch

    value = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(value, reduction="sum").item() > 0)


@dataclass
class StepSnapshot:
    """What a step changes before its update: restored to undo an aborted step."""

    data_position: int
    rng: dict[str, Any]
    reward_stats: dict[str, float]

    @classmethod
    def take(cls, trainer: Any) -> StepSnapshot:
        """The trainer's state at the start of a step."""
        from rlaif.ppo.checkpoint import rng_state

        return cls(trainer.data_position, rng_state(), dict(trainer.reward_stats.state_dict()))

    def restore(self, trainer: Any) -> None:
        """Put the trainer back to the start of the aborted step (= the end of the last one)."""
        from rlaif.ppo.checkpoint import set_rng_state

        trainer.data_position = self.data_position
        set_rng_state(self.rng)
        trainer.reward_stats.load_state_dict(self.reward_stats)


def save_after_abort(trainer: Any, snapshot: StepSnapshot, exc: BaseException) -> None:
    """After a failed step: save the last finished one if the step touched no weight yet."""
    step = trainer.step_count
    alone = trainer.accelerator.num_processes > 1 and not getattr(exc, "agreed", False)
    if not step or alone:
        # (alone: the other processes never heard of this error and would not reach the barriers)
        logger.error("step %d failed; nothing new saved (%s)", step + 1,
                     "no step had finished" if not step else
                     "the other processes did not see this error, so they cannot join a save")
        return
    if trainer.updating:
        logger.error("step %d failed while updating the weights; nothing new saved (the last "
                     "checkpoint, if any, stays): %s", step + 1, exc)
        return
    snapshot.restore(trainer)
    checkpoint = trainer.save_checkpoint()
    message = (f"step {step + 1} failed; saved the last finished step to {checkpoint}: "
               "continue with --resume")
    logger.error(message)
    exc.add_note(message)
