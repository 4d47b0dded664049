"""The PPO trainer: plumbing around `core.py`, fed by any judge, on the prompts it is given.

One step, as in CleanRL's LM PPO (and Ziegler et al. 2019); `PPOTrainer.step` reads in this order:

    1. generate   one batched `generate` call (left-padded prompts for causal LMs), EOS truncation
    2. judge      decode, score (prompt, response) with the judge; unscored samples follow
                  `judge.on_unscored`
    3. rewards    optional running normalisation and clipping of the scores; policy logprobs +
                  values and reference logprobs (no grad); per-token -kl_coef * KL, the
                  processed score on the last response token
    4. whiten     optionally whiten the rewards
    5. advantages GAE advantages and returns; advantages whitened
    6. update     PPO epochs over shuffled minibatches, gradient accumulation, clipped losses,
                  gradient clipping, AdamW + LR schedule
    7. log        metrics over all processes; the KL controller moves toward its target

accelerate handles the device, mixed precision and DDP: `ppo.batch_size` prompts per step
are split evenly over the processes, and every logged metric is over all of them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlaif.config import RunConfig, save_config
from rlaif.run_changes import check_resume
from rlaif.data.prompts import PromptStream
from rlaif.judges.base import Judge, JudgeError, Score
from rlaif.models.generate import eos_token_ids
from rlaif.models.layout import latest_checkpoint
from rlaif.models.load import load_tokenizer, prepare_tokenizer
from rlaif.models.logprobs import kl_penalty
from rlaif.ppo.capture import use_generation_states
from rlaif.ppo.checkpoint import find_resume_checkpoint, load_checkpoint, save_checkpoint
from rlaif.ppo.core import explained_variance, gae, masked_whiten, per_token_rewards
from rlaif.ppo.interrupt import GracefulStop, StepSnapshot, TrainingStopped, any_process, save_after_abort
from rlaif.ppo.kl import make_kl_controller
from rlaif.ppo.metrics import MetricsLog, reduce_metrics, timed, training_summary, usage_metrics
from rlaif.ppo.policy import PolicyWithValueHead
from rlaif.ppo.rewards import (JudgeUsageMeter, check_scored_steps, gather_score_rows, process_rewards,
                               score_samples)
from rlaif.ppo.rollout import Responses, Rollout, sample_responses, score_rollout
from rlaif.ppo.sampling import sampling_kwargs
from rlaif.ppo.update import UPDATE_METRICS, ppo_update
from rlaif.stats import RunningMoments
from rlaif.tracking import make_tracker

logger = logging.getLogger(__name__)

DTYPES: dict[str, Any] = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                          "float16": torch.float16, "auto": "auto"}
SCHEDULERS = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


@dataclass
class TrainResult:
    """What `train()` did: the run folder, the last step, this session's metrics, the checkpoint."""

    run_dir: Path
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None


def make_accelerator(config: RunConfig) -> Any:
    """An `accelerate.Accelerator` from the config (DeepSpeed config passed through when given)."""
    from accelerate import Accelerator

    acc = config.accelerate
    kwargs: dict[str, Any] = {"cpu": acc.cpu, "mixed_precision": acc.mixed_precision,
                              "gradient_accumulation_steps": config.ppo.gradient_accumulation_steps}
    if acc.deepspeed_config:
        from accelerate import DeepSpeedPlugin

        kwargs["deepspeed_plugin"] = DeepSpeedPlugin(hf_ds_config=acc.deepspeed_config)
    return Accelerator(**kwargs)


class PPOTrainer:
    """PPO on a causal or seq2seq policy with rewards from any judge. `train()` or `step()`.

    `prompts` are the training prompts (see `rlaif.data.prompts.load_prompt_split`); the
    policy, judge, tokenizer and tracker (`rlaif.tracking`) default to those the config names.
    A given policy is moved to the accelerator's device and trained in place; the trainer works
    on its own prepared copy of the tokenizer (`self.tokenizer`).
    """

    def __init__(self, config: RunConfig, prompts: Sequence[str], *,
                 policy: PolicyWithValueHead | None = None, judge: Judge | None = None,
                 tokenizer: Any = None, accelerator: Any = None, tracker: Any = None) -> None:
        from accelerate.utils import set_seed
        from transformers import get_scheduler

        self.config = config
        ppo = config.ppo
        self.accelerator = acc = accelerator or make_accelerator(config)
        self.run_dir = Path(config.output.dir)
        set_seed(ppo.seed)  # the same on every process: identical value-head init
        if policy is None:
            policy = PolicyWithValueHead.from_pretrained(
                config.model.name_or_path, lora=config.model.lora,
                dtype=DTYPES.get(config.model.dtype or ""),
                gradient_checkpointing=config.model.gradient_checkpointing)
        self.policy = policy.to(acc.device)
        policy.share_prefix = ppo.share_prefix
        self.tokenizer = prepare_tokenizer(
            tokenizer or load_tokenizer(config.model.name_or_path), policy.is_seq2seq)
        self._owns_judge = judge is None
        self.judge = judge if judge is not None else _build_judge(config.judge.ref)
        self.judge_usage = JudgeUsageMeter(self.judge)  # judge/requests, judge/cost_usd per step
        self.prompts = list(prompts)
        self.local_batch_size = self._check_batch_layout()
        self.stream = PromptStream(len(self.prompts), config.data.seed)
        self.kl_ctl = make_kl_controller(ppo.kl.kind, ppo.kl.kl_coef, ppo.kl.target, ppo.kl.horizon)
        self.reward_stats = RunningMoments()
        optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=ppo.learning_rate,
                                      weight_decay=ppo.weight_decay)
        backward_batch = ppo.mini_batch_size * ppo.gradient_accumulation_steps
        self.total_optimizer_steps = ppo.steps * ppo.ppo_epochs * (self.local_batch_size // backward_batch)
        # Not passed to accelerate.prepare: its scheduler wrapper steps once per process.
        self.scheduler = get_scheduler(SCHEDULERS[ppo.lr_scheduler], optimizer,
                                       num_warmup_steps=ppo.warmup_steps,
                                       num_training_steps=self.total_optimizer_steps)
        # The policy as DDP / DeepSpeed wrap it: the update's forward and backward go through it.
        self.wrapped_policy, self.optimizer = acc.prepare(policy, optimizer)
        # use_cache: generation runs in eval mode, where gradient checkpointing is off anyway.
        self.gen_kwargs = {**config.generation.generate_kwargs(), "use_cache": True,
                           "eos_token_id": sorted(eos_token_ids(policy.base_model(), self.tokenizer)),
                           "pad_token_id": self.tokenizer.pad_token_id}
        if config.generation.sampler == "inverse_cdf":
            self.gen_kwargs = sampling_kwargs(self.gen_kwargs)
        self.capture_states = use_generation_states(ppo.rollout_logprobs, policy.config,
                                                     policy.is_seq2seq)
        self.step_count = 0
        self.updating = False
        self.data_position = 0
        self.history: list[dict[str, Any]] = []
        self.metrics_log = MetricsLog(self.run_dir, enabled=acc.is_main_process)
        set_seed(ppo.seed, device_specific=True)  # each process samples its own responses
        if config.resume:
            self._resume(find_resume_checkpoint(config.resume, self.run_dir))
        else:
            if latest_checkpoint(self.run_dir) is not None:
                raise ValueError(
                    f"run folder {self.run_dir} already holds a run (checkpoints/latest); pass "
                    "--resume (resume=true) to continue it, or choose another output.dir / --out"
                )
            self.metrics_log.reset(0)
        if acc.is_main_process:
            if config.resume:  # config.yaml stays what the first steps used; changes are recorded
                check_resume(self.run_dir, config, self.step_count)
            else:
                save_config(config, self.run_dir)
        # Trackers (output.report_to): the caller's, or the trainer's own, closed by train().
        self._owns_tracker = tracker is None
        self.tracker = tracker or make_tracker(config, enabled=acc.is_main_process)

    # ------------------------------------------------------------------ set-up helpers

    def _check_batch_layout(self) -> int:
        ppo, n_proc = self.config.ppo, self.accelerator.num_processes
        if ppo.batch_size % n_proc:
            raise ValueError(
                f"ppo.batch_size={ppo.batch_size} does not split evenly over {n_proc} processes; "
                f"use a multiple of {n_proc}"
            )
        local = ppo.batch_size // n_proc
        backward_batch = ppo.mini_batch_size * ppo.gradient_accumulation_steps
        if local % backward_batch:
            raise ValueError(
                f"each of {n_proc} processes gets ppo.batch_size / {n_proc} = {local} prompts, not a "
                f"multiple of mini_batch_size * gradient_accumulation_steps = {backward_batch}; "
                f"set ppo.batch_size to a multiple of {backward_batch * n_proc}"
            )
        return local

    def _resume(self, path: Path) -> None:
        state = load_checkpoint(path, policy=self.policy, optimizer=self.optimizer,
                                scheduler=self.scheduler, accelerator=self.accelerator)
        self.step_count = int(state["step"])
        self.data_position = int(state["data_position"])
        self.kl_ctl.load_state_dict(state["kl_controller"])
        self.reward_stats.load_state_dict(state["reward_stats"])
        self.metrics_log.reset(keep_through_step=self.step_count)
        logger.info("resumed from %s at step %d", path, self.step_count)

    def save_checkpoint(self) -> Path:
        """Write `<run>/checkpoints/step-<step>` (atomic) and point `latest` at it."""
        state = {"data_position": self.data_position, "kl_controller": self.kl_ctl.state_dict(),
                 "reward_stats": self.reward_stats.state_dict()}
        return save_checkpoint(self.run_dir, self.step_count, policy=self.policy,
                               optimizer=self.optimizer, scheduler=self.scheduler, state=state,
                               accelerator=self.accelerator)

    def next_prompts(self) -> list[str]:
        """This process's share of the next global batch from the seeded prompt stream."""
        global_batch = self.config.ppo.batch_size
        indices = self.stream.indices(self.data_position, global_batch)
        self.data_position += global_batch
        rank, local = self.accelerator.process_index, self.local_batch_size
        return [self.prompts[i] for i in indices[rank * local:(rank + 1) * local]]

    # ------------------------------------------------------------------ one PPO step

    def step(self, prompts: Sequence[str] | None = None) -> dict[str, Any]:
        """Run one PPO step on `prompts` (default: the next batch); returns its metrics."""
        cfg, ppo, device = self.config, self.config.ppo, self.accelerator.device
        start, times = time.perf_counter(), {}
        self.updating = False  # True from the first weight change to the end of the step
        prompts = self._step_prompts(prompts)
        # 1. generate: one batched call; everything after the first EOS becomes padding
        with timed(times, "time/generate"):
            batch = sample_responses(self.policy, self.tokenizer, prompts, gen_kwargs=self.gen_kwargs,
                                     max_prompt_tokens=cfg.data.max_prompt_tokens,
                                     capture=self.capture_states, accelerator=self.accelerator,
                                     chat=cfg.data.task == "chat", system_prompt=cfg.data.system_prompt)
        # 2. judge the decoded (prompt, response) pairs
        with timed(times, "time/judge"):
            responses = self.tokenizer.batch_decode(batch.response_ids, skip_special_tokens=True)
            try:
                scores = score_samples(self.judge, prompts, responses, cfg.judge.on_unscored)
            except Exception as exc:  # raised at the gather in step 3, on every process
                scores = exc
        with timed(times, "time/update"):
            # 3. rewards: the processed score on the last token, -kl_coef * KL on every token
            processed, reward_metrics = self._process_scores(scores)
            scored = torch.tensor([s.ok for s in scores], device=device)  # (B,)
            loss_mask = batch.response_mask * scored[:, None].to(batch.response_mask.dtype)  # (B, R)
            logprobs, values, entropy, ref_logprobs = self._score_rollout(batch)
            kl = kl_penalty(logprobs, ref_logprobs, ppo.kl.estimator)  # (B, R)
            kl_coef = self.kl_ctl.value
            rewards, non_score_rewards = per_token_rewards(
                torch.tensor(processed, device=device), kl, batch.response_mask, kl_coef)
            rewards, non_score_rewards = rewards * loss_mask, non_score_rewards * loss_mask
            enough = int(loss_mask.sum()) >= 2  # whitening needs two tokens for a variance
            # 4. whiten rewards (optional; keeps their mean)
            if ppo.whiten_rewards and enough:
                rewards = masked_whiten(rewards, loss_mask, shift_mean=False)
            # 5. advantages and returns; advantages whitened
            advantages, returns = gae(rewards, values, loss_mask, ppo.gamma, ppo.lam)
            if enough:
                advantages = masked_whiten(advantages, loss_mask)
            rollout = Rollout(
                query_ids=batch.query_ids, query_mask=batch.query_mask, response_ids=batch.response_ids,
                response_mask=batch.response_mask, scored=scored, loss_mask=loss_mask,
                logprobs=logprobs, values=values, entropy=entropy, kl=kl,
                non_score_rewards=non_score_rewards, advantages=advantages, returns=returns)
            # 6. update: PPO epochs over shuffled minibatches (none when nothing was scored)
            self.updating = True
            update_metrics = self._update(rollout) if reward_metrics["reward/scored"] else \
                dict.fromkeys(UPDATE_METRICS, math.nan)
        # 7. log: metrics over all processes; the KL controller moves toward its target
        metrics = self._log_step(rollout, kl_coef, reward_metrics, {**times, **update_metrics}, start)
        self.updating = False
        return metrics

    def _step_prompts(self, prompts: Sequence[str] | None) -> list[str]:
        """`prompts`, or the next batch of the stream; refuses a batch minibatches cannot split."""
        prompts = self.next_prompts() if prompts is None else list(prompts)
        backward_batch = self.config.ppo.mini_batch_size * self.config.ppo.gradient_accumulation_steps
        if not prompts or len(prompts) % backward_batch:
            raise ValueError(f"step() got {len(prompts)} prompts; pass a multiple of {backward_batch} "
                             "(mini_batch_size * gradient_accumulation_steps)")
        return prompts

    def _process_scores(self, scores: Sequence[Score] | Exception) -> tuple[list[float], dict[str, Any]]:
        """Rewards PPO sees (0 for unscored samples, which are masked out) and reward metrics.

        Every process gets every score, so the running statistics stay identical everywhere; a
        judge's error instead of scores is raised here on every process (`gather_score_rows`)."""
        everyone = gather_score_rows(scores, self.accelerator)
        return process_rewards(scores, everyone, self.config.judge, self.reward_stats)

    def _score_rollout(self, batch: Responses) -> tuple[torch.Tensor, ...]:
        """Policy logprobs, values, entropy and reference logprobs (B, R) of the sampled responses."""
        ppo = self.config.ppo
        with self.accelerator.autocast():
            return score_rollout(self.policy, batch.query_ids, batch.query_mask, batch.response_ids,
                                 batch.response_mask, states=batch.states,
                                 temperature=self.config.generation.temperature,
                                 chunk=ppo.forward_batch_size or ppo.mini_batch_size)

    def _update(self, rollout: Rollout) -> dict[str, float]:
        """PPO epochs on `rollout` through the wrapped policy; the policy is left in eval mode."""
        return ppo_update(rollout, self.wrapped_policy, self.policy, self.optimizer, self.scheduler,
                          self.accelerator, ppo=self.config.ppo,
                          temperature=self.config.generation.temperature)

    def _log_step(self, rollout: Rollout, kl_coef: float, reward_metrics: dict[str, Any],
                  local_means: dict[str, float], start: float) -> dict[str, Any]:
        """Gather the step's metrics over all processes, update the KL controller, count the step,
        and record and return the metrics."""
        r = rollout
        enough = int(r.loss_mask.sum()) >= 2
        means = {"ppo/val/var_explained": explained_variance(r.values, r.returns, r.loss_mask)
                 if enough else math.nan, **local_means}
        sums = {"kl": float((r.kl * r.loss_mask).sum()), "non_score_reward": float(r.non_score_rewards.sum()),
                "entropy": float((r.entropy * r.loss_mask).sum()), "tokens": float(r.loss_mask.sum()),
                "scored": float(r.scored.sum()), "generated": float(r.response_mask.sum()),
                "prompts": float(r.query_ids.size(0)), **self.judge_usage.take()}
        totals = reduce_metrics(self.accelerator, sums, means)
        n_scored, n_tokens, n_generated = totals["scored"], totals["tokens"], totals["generated"]
        mean_kl = totals["kl"] / n_scored if n_scored else math.nan
        if n_scored:
            self.kl_ctl.update(mean_kl, n_steps=self.config.ppo.batch_size)
        self.step_count += 1
        seconds = time.perf_counter() - start
        metrics: dict[str, Any] = {
            "step": self.step_count,
            "objective/kl": mean_kl,
            "objective/kl_coef": kl_coef,
            "objective/entropy": totals["entropy"] / n_tokens if n_tokens else math.nan,
            "objective/non_score_reward": totals["non_score_reward"] / n_scored if n_scored else math.nan,
            **reward_metrics,
            "ppo/lr": self.scheduler.get_last_lr()[0],
            "response/length": n_generated / totals["prompts"],
            "batch/size": int(totals["prompts"]), **usage_metrics(totals),
            **{key: totals[key] for key in means},
            "time/step": seconds,
            "tokens/per_second": n_generated / seconds,
        }
        self.history.append(metrics)
        self.metrics_log.write(metrics)
        self.tracker.log(metrics, step=self.step_count)
        return metrics

    # ------------------------------------------------------------------ the loop

    def train(self) -> TrainResult:
        """Run until `ppo.steps`, checkpointing every `output.save_every` steps and at the end."""
        from tqdm.auto import tqdm

        cfg, main = self.config, self.accelerator.is_main_process
        steps, save_every = cfg.ppo.steps, cfg.output.save_every
        checkpoint = latest_checkpoint(self.run_dir) if self.step_count else None
        bar = tqdm(total=steps, initial=self.step_count, desc="PPO", unit="step", disable=not main)
        try:
            with GracefulStop() as stop:
                while self.step_count < steps:
                    snapshot = StepSnapshot.take(self)
                    try:
                        m = self.step()
                    except Exception as exc:
                        save_after_abort(self, snapshot, exc)
                        raise
                    self._after_step(m, bar, main)
                    if save_every and self.step_count % save_every == 0:
                        checkpoint = self.save_checkpoint()
                    self._check_scored(final=self.step_count >= steps)
                    if any_process(self.accelerator, stop.requested is not None):
                        checkpoint = self.save_checkpoint()
                        raise TrainingStopped(
                            f"{stop.requested or 'a stop on another process'} after step "
                            f"{self.step_count}: saved {checkpoint}; "
                            "continue with --resume")
            if self.history and (checkpoint is None or checkpoint.name != f"step-{self.step_count}"):
                checkpoint = self.save_checkpoint()
        finally:
            bar.close()
            if self._owns_judge:
                self.judge.close()
            if self._owns_tracker:
                self.tracker.finish()
        if main:
            print(training_summary(self.history, self.run_dir, checkpoint))
        return TrainResult(run_dir=self.run_dir, step=self.step_count, history=list(self.history),
                           checkpoint=checkpoint)

    def _after_step(self, m: dict[str, Any], bar: Any, main: bool) -> None:
        """Progress bar and the periodic log line."""
        bar.update(1)
        bar.set_postfix(reward=f"{m['reward/mean']:.3g}", kl=f"{m['objective/kl']:.3g}")
        if main and self.step_count % self.config.output.log_every == 0:
            bar.write(f"step {m['step']}: reward {m['reward/mean']:.4g} kl "
                      f"{m['objective/kl']:.4g} unscored {m['reward/unscored']} "
                      f"({m['time/step']:.2f}s)")

    def _check_scored(self, final: bool) -> None:
        """Stop, saving the finished steps, when the judge has scored nothing for too long."""
        try:
            check_scored_steps(self.history, self.config.judge.max_unscored_steps, self.judge.name,
                               final=final)
        except JudgeError:
            self.save_checkpoint()
            raise


def _build_judge(ref: str | dict[str, Any]) -> Judge:
    from rlaif.judges.registry import build_judge

    return build_judge(ref)
