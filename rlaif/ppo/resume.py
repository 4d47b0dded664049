"""Starting a PPO run in its folder, or continuing one: the settings checked against what the
previous segment used (`rlaif.runs.changes`; a refused resume changes nothing on disk), the
checkpoint restored, and the changes that were allowed applied over the restored state.
`trainer` is a `rlaif.ppo.trainer.PPOTrainer` (not imported: it imports this module)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rlaif.ppo.checkpoint import load_checkpoint
from rlaif.ppo.kl import make_kl_controller
from rlaif.runs.changes import fingerprint_path, start_or_check_config
from rlaif.runs.folder import checkpoint_step, verify_checkpoint

logger = logging.getLogger(__name__)


def start_or_resume(trainer: Any) -> None:
    """A fresh run: config.yaml and inputs.json written, metrics.jsonl emptied. With
    `config.resume`: settings checked first, then the checkpoint restored and the allowed changes
    applied (a resume before the first checkpoint starts from step 0, keeping eval_before.json)."""
    config, folder = trainer.config, trainer.folder
    checkpoint = folder.resume_checkpoint(config.resume) if config.resume else None
    if checkpoint is not None:
        verify_checkpoint(checkpoint)  # once, before anything reads it
    changes = start_or_check_config(folder, config, checkpoint_step(checkpoint), run_inputs(trainer)) \
        if trainer.accelerator.is_main_process else None
    if checkpoint is None:
        trainer.metrics_log.reset(0)
        return
    restore(trainer, checkpoint)
    apply_changes(trainer, agreed(trainer, changes))


def run_inputs(trainer: Any) -> dict[str, str | None]:
    """Fingerprints of what the run reads beside its config: the judge's spec (its template and
    ensemble members' specs included) and a local data file or folder."""
    spec = trainer.judge.spec
    return {"judge_spec": spec.fingerprint() if spec is not None else None,
            "data": fingerprint_path(trainer.config.data.source)}


def restore(trainer: Any, path: Path) -> None:
    """Weights, optimizer, schedule, RNG, data position, KL controller and reward statistics
    from the checkpoint `path`; metrics.jsonl cut back to its step."""
    state = load_checkpoint(path, policy=trainer.policy, optimizer=trainer.optimizer,
                            scheduler=trainer.scheduler, accelerator=trainer.accelerator)
    trainer.step_count = int(state["step"])
    trainer.data_position = int(state["data_position"])
    trainer.kl_ctl.load_state_dict(state["kl_controller"])
    trainer.reward_stats.load_state_dict(state["reward_stats"])
    trainer.metrics_log.reset(keep_through_step=trainer.step_count)
    logger.info("resumed from %s at step %d", path, trainer.step_count)


def agreed(trainer: Any, changes: dict[str, Any] | None) -> set[str]:
    """The changed setting names, from the main process (which read the run's config) to all."""
    if trainer.accelerator.num_processes == 1:
        return set(changes or {})
    from accelerate.utils import broadcast_object_list

    box = [sorted(changes or {})]
    broadcast_object_list(box, from_process=0)
    return set(box[0])


def apply_changes(trainer: Any, changed: set[str]) -> None:
    """Make the settings a resume changed take effect over the checkpoint's restored state: the
    learning rate and weight decay (optimizer and LR schedule), and the KL control."""
    ppo = trainer.config.ppo
    if {"ppo.learning_rate", "ppo.weight_decay"} & changed:
        sched = trainer.scheduler
        sched.base_lrs = [ppo.learning_rate] * len(sched.base_lrs)
        for group, factor in zip(trainer.optimizer.param_groups, sched.lr_lambdas):
            group["initial_lr"] = ppo.learning_rate
            group["lr"] = ppo.learning_rate * factor(sched.last_epoch)
            group["weight_decay"] = ppo.weight_decay
        sched._last_lr = [group["lr"] for group in trainer.optimizer.param_groups]
    if any(key.startswith("ppo.kl.") and key != "ppo.kl.estimator" for key in changed):
        kl = ppo.kl
        start = kl.kl_coef if {"ppo.kl.kl_coef", "ppo.kl.kind"} & changed else trainer.kl_ctl.value
        trainer.kl_ctl = trainer.parts.kl_ctl = make_kl_controller(kl.kind, start, kl.target, kl.horizon)
    if changed:
        logger.info("resume applies the changed settings: %s", ", ".join(sorted(changed)))
