"""The PPO trainer: plumbing around `core.py`, fed by any judge, on the prompts it is given.

One step, as in CleanRL's LM PPO (and Ziegler et al. 2019); `PPOTrainer.step` reads in this order:

    1. generate   one batched `generate` call (left-padded prompts for causal LMs), EOS truncation;
                  or (generation.backend vllm) the policy's adapter loaded on a vLLM server, which
                  samples the batch
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

from rlaif.config import RunConfig
from rlaif.data.prompts import PromptStream
from rlaif.judges.base import JudgeError, Score
from rlaif.models.generate import eos_token_ids
from rlaif.models.logprobs import kl_penalty
from rlaif.ppo.capture import use_generation_states
from rlaif.ppo.checkpoint import save_checkpoint
from rlaif.ppo.core import explained_variance, gae, masked_whiten, per_token_rewards, truncated_is_weights
from rlaif.ppo.finite import check_finite
from rlaif.ppo.interrupt import StepSnapshot, any_process, save_after_abort
from rlaif.ppo.metrics import reduce_metrics, timed, training_summary, usage_metrics
from rlaif.ppo.parts import PPOParts, build_parts
from rlaif.ppo.resume import start_or_resume
from rlaif.ppo.rewards import (JudgeUsageMeter, check_scored_steps, gather_score_rows, process_rewards,
                               score_samples)
from rlaif.ppo.rollout import Rollout, policy_pass, reference_pass, sample_responses
from rlaif.ppo.sampling import sampling_kwargs
from rlaif.ppo.update import UPDATE_METRICS, ppo_update
from rlaif.runs.metrics_log import MetricsLog
from rlaif.runs.signals import GracefulStop, TrainingStopped
from rlaif.stats import RunningMoments

logger = logging.getLogger(__name__)

@dataclass
class TrainResult:
    """What `train()` did: the run folder, the last step, this session's metrics, the checkpoint."""

    run_dir: Path
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None


class PPOTrainer:
    """PPO on a causal or seq2seq policy with rewards from any judge. `train()` or `step()`.

    The trainer is handed its parts (`rlaif.ppo.parts`); `PPOTrainer.build(config, prompts)`
    makes the ones not given, claims the run folder and starts or resumes the run. `prompts`
    are the training prompts (see `rlaif.data.prompts.load_prompt_split`). The trainer works
    on its own prepared copy of the tokenizer (`self.tokenizer`).
    """

    def __init__(self, config: RunConfig, prompts: Sequence[str], parts: PPOParts) -> None:
        self.config, self.parts = config, parts
        self.policy, self.wrapped_policy = parts.policy, parts.wrapped_policy
        self.tokenizer, self.judge, self.accelerator = parts.tokenizer, parts.judge, parts.accelerator
        self.optimizer, self.scheduler, self.kl_ctl = parts.optimizer, parts.scheduler, parts.kl_ctl
        self.folder, self.tracker = parts.folder, parts.tracker
        self.run_dir = parts.folder.path
        self.local_batch_size = parts.local_batch_size
        self.total_optimizer_steps = parts.total_optimizer_steps
        self.judge_usage = JudgeUsageMeter(self.judge)  # judge/requests, judge/cost_usd per step
        self.rollouts = parts.rollouts  # generation.backend vllm; None: the policy's own generate
        self.prompts = list(prompts)
        self.stream = PromptStream(len(self.prompts), config.data.seed)
        self.reward_stats = RunningMoments()
        # use_cache: generation runs in eval mode, where gradient checkpointing is off anyway.
        self.gen_kwargs = {**config.generation.generate_kwargs(), "use_cache": True,
                           "eos_token_id": sorted(eos_token_ids(self.policy.base_model(), self.tokenizer)),
                           "pad_token_id": self.tokenizer.pad_token_id}
        if config.generation.sampler == "inverse_cdf":
            self.gen_kwargs = sampling_kwargs(self.gen_kwargs)
        self.capture_states = use_generation_states(config.ppo.rollout_logprobs, self.policy.config,
                                                     self.policy.is_seq2seq)
        self.step_count = 0
        self.updating = False
        self.data_position = 0
        self.history: list[dict[str, Any]] = []
        self.metrics_log = MetricsLog(self.run_dir, enabled=self.accelerator.is_main_process)

    @classmethod
    def build(cls, config: RunConfig, prompts: Sequence[str], **given: Any) -> PPOTrainer:
        """A trainer on `config`'s run folder, started or resumed (`config.resume`); `given` are
        parts made by the caller (policy, judge, tokenizer, accelerator, tracker, folder)."""
        from accelerate.utils import set_seed

        parts = build_parts(config, **given)
        if parts.accelerator.is_main_process:
            parts.folder = parts.folder.claim(resume=config.resume, overwrite=config.overwrite,
                                              command="rlaif train")
        trainer = cls(config, prompts, parts)
        set_seed(config.ppo.seed, device_specific=True)  # each process samples its own responses
        trainer.begin()
        return trainer

    def begin(self) -> None:
        """Start the run in its folder or, with `config.resume`, continue it (`ppo/resume.py`)."""
        start_or_resume(self)

    def save_checkpoint(self) -> Path:
        """Write `<run>/checkpoints/step-<step>` (atomic) and point `latest` at it."""
        state = {"data_position": self.data_position, "kl_controller": self.kl_ctl.state_dict(),
                 "reward_stats": self.reward_stats.state_dict()}
        return save_checkpoint(self.folder, self.step_count, policy=self.policy,
                               optimizer=self.optimizer, scheduler=self.scheduler, state=state,
                               accelerator=self.accelerator)

    def next_prompts(self, advance: bool = True) -> list[str]:
        """This process's share of the next global batch from the seeded prompt stream
        (`advance=False`: the same batch, and the stream stays where it is)."""
        global_batch = self.config.ppo.batch_size
        indices = self.stream.indices(self.data_position, global_batch)
        if advance:
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
        # 1. generate: one batched call; everything after the first EOS becomes padding. vllm: the
        #    engine first gets the weights as they are now (after the last step's update); with
        #    ppo.async_rollout the batch was sampled during the last step, and the next one starts
        chat, system_prompt = cfg.data.task == "chat", cfg.data.system_prompt
        if self.rollouts is not None:
            batch, stale = self.rollouts.rollout(
                self.policy, self.tokenizer, prompts, next_prompts=self._prefetch_prompts(),
                times=times, device=device, chat=chat, max_prompt_tokens=cfg.data.max_prompt_tokens,
                system_prompt=system_prompt)
            times["rollout/stale"] = float(stale)
        else:
            with timed(times, "time/generate"):
                batch = sample_responses(self.policy, self.tokenizer, prompts, gen_kwargs=self.gen_kwargs,
                                         max_prompt_tokens=cfg.data.max_prompt_tokens,
                                         capture=self.capture_states, accelerator=self.accelerator,
                                         chat=chat, system_prompt=system_prompt)
        # 2. reward: the judge scores the decoded (prompt, response) pairs
        with timed(times, "time/reward"):
            responses = self.tokenizer.batch_decode(batch.response_ids, skip_special_tokens=True)
            try:
                scores = score_samples(self.judge, prompts, responses, cfg.judge.on_unscored)
            except Exception as exc:  # raised at the gather in step 3, on every process
                scores = exc
            processed, reward_metrics = self._process_scores(scores)
        scored = torch.tensor([s.ok for s in scores], device=device)  # (B,)
        loss_mask = batch.response_mask * scored[:, None].to(batch.response_mask.dtype)  # (B, R)
        # 3. the policy's ("old") and the reference's logprobs of the responses, the values
        chunk = ppo.forward_batch_size or ppo.mini_batch_size
        ids = (batch.query_ids, batch.query_mask, batch.response_ids, batch.response_mask)
        with timed(times, "time/old_logprobs"), self.accelerator.autocast():
            logprobs, values, entropy = policy_pass(self.policy, *ids, states=batch.states,
                                                    temperature=cfg.generation.temperature, chunk=chunk)
        with timed(times, "time/ref"), self.accelerator.autocast():
            ref_logprobs = reference_pass(self.policy, *ids, temperature=cfg.generation.temperature,
                                          chunk=chunk)
        with timed(times, "time/advantages"):
            # rewards: the processed score on the last token, -kl_coef * KL on every token
            kl = kl_penalty(logprobs, ref_logprobs, ppo.kl.estimator)  # (B, R)
            sampler_kl = is_weights = None
            if batch.sampler_logprobs is not None:  # another engine sampled: its mismatch
                sampler_kl = kl_penalty(batch.sampler_logprobs, logprobs, "k3") * batch.response_mask
                if ppo.tis_cap is not None:
                    is_weights = truncated_is_weights(logprobs, batch.sampler_logprobs, ppo.tis_cap)
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
            check_finite(self.step_count + 1, loss_mask, **{
                "the policy's logprobs": logprobs, "the reference logprobs": ref_logprobs,
                "the values": values, "the KL": kl, "the advantages": advantages, "the returns": returns})
            rollout = Rollout(
                query_ids=batch.query_ids, query_mask=batch.query_mask, response_ids=batch.response_ids,
                response_mask=batch.response_mask, scored=scored, loss_mask=loss_mask,
                logprobs=logprobs, values=values, entropy=entropy, kl=kl,
                non_score_rewards=non_score_rewards, advantages=advantages, returns=returns,
                sampler_kl=sampler_kl, is_weights=is_weights)
        # 6. update: PPO epochs over shuffled minibatches (none when nothing was scored)
        with timed(times, "time/update"):
            self.updating = True
            update_metrics = self._update(rollout) if reward_metrics["reward/scored"] else \
                dict.fromkeys(UPDATE_METRICS, math.nan)
        # 7. log: metrics over all processes; the KL controller moves toward its target
        metrics = self._log_step(rollout, kl_coef, reward_metrics, {**times, **update_metrics}, start)
        self.updating = False
        return metrics

    def _prefetch_prompts(self) -> list[str] | None:
        """ppo.async_rollout: the next step's prompts, for the engine to sample while this step
        updates (None: synchronous rollouts, or this is the run's last step)."""
        if not self.config.ppo.async_rollout or self.step_count + 1 >= self.config.ppo.steps:
            return None
        return self.next_prompts(advance=False)

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

    def _update(self, rollout: Rollout) -> dict[str, float]:
        """PPO epochs on `rollout` through the wrapped policy; the policy is left in eval mode."""
        return ppo_update(rollout, self.wrapped_policy, self.policy, self.optimizer, self.scheduler,
                          self.accelerator, ppo=self.config.ppo,
                          temperature=self.config.generation.temperature, step=self.step_count + 1)

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
        if r.sampler_kl is not None:
            sums["sampler_kl"] = float(r.sampler_kl.sum())
        if r.is_weights is not None:
            sums["tis_capped"] = float(((r.is_weights >= self.config.ppo.tis_cap) * r.response_mask).sum())
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
        for key in ("sampler_kl", "tis_capped"):  # per generated token (SAMPLER_METRIC_KEYS)
            if key in totals:
                metrics[f"rollout/{key}"] = totals[key] / n_generated if n_generated else math.nan
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
        checkpoint = self.folder.latest_checkpoint() if self.step_count else None
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
            self.close_rollouts()
            if "judge" in self.parts.owned:
                self.judge.close()
            if "tracker" in self.parts.owned:
                self.tracker.finish()
        if main:
            print(training_summary(self.history, self.run_dir, checkpoint))
        return TrainResult(run_dir=self.run_dir, step=self.step_count, history=list(self.history),
                           checkpoint=checkpoint)

    def close_rollouts(self) -> None:
        """Stop the vLLM server rollouts came from, if any (`train` does it at its end; a caller
        driving `step` itself calls it)."""
        if self.rollouts is not None:
            self.rollouts.close()

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

