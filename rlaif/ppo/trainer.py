"""The PPO trainer: plumbing around `core.py`, fed by any judge.

One step, as in CleanRL's LM PPO (and Ziegler et al. 2019):

    1. generate   one batched `generate` call (left-padded prompts for causal LMs), EOS truncation
    2. judge      decode, score (prompt, response) with the judge; unscored samples follow
                  `judge.on_unscored`; optional running normalisation and clipping
    3. rewards    policy logprobs + values and reference logprobs (no grad); per-token
                  -kl_coef * KL, the judge's score on the last response token
    4. whiten     optionally whiten the rewards
    5. GAE        advantages and returns; advantages whitened
    6. update     PPO epochs over shuffled minibatches, gradient accumulation, clipped losses,
                  gradient clipping, AdamW + LR schedule; then the KL controller update

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
from rlaif.judges.base import Judge, Score
from rlaif.ppo import core
from rlaif.ppo.capture import use_generation_states
from rlaif.ppo.checkpoint import latest_checkpoint, load_checkpoint, resolve_checkpoint, save_checkpoint
from rlaif.ppo.kl import make_kl_controller
from rlaif.ppo.metrics import MetricsLog, summary
from rlaif.ppo.policy import PolicyWithValueHead, truncate_response
from rlaif.ppo.rollout import (
    PromptSplit,
    PromptStream,
    RunningMoments,
    load_prompts,
    prepare_tokenizer,
    process_rewards,
    score_rollout,
    score_rows,
    score_samples,
    tokenize_queries,
)
from rlaif.sampling import sampling_kwargs

logger = logging.getLogger(__name__)

DTYPES: dict[str, Any] = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                          "float16": torch.float16, "auto": "auto"}
SCHEDULERS = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


@dataclass
class Rollout:
    """One step's experience on this process; tensors are (B, R) unless noted."""

    query_ids: torch.Tensor  # (B, Q)
    query_mask: torch.Tensor  # (B, Q)
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    loss_mask: torch.Tensor  # response_mask with unscored samples' rows zeroed
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


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
    """PPO on a causal or seq2seq policy with rewards from any judge. `train()` or `step()`."""

    def __init__(self, config: RunConfig, policy: PolicyWithValueHead | None = None,
                 judge: Judge | None = None, tokenizer: Any = None, accelerator: Any = None,
                 prompts: Sequence[str] | None = None) -> None:
        from accelerate.utils import set_seed
        from transformers import AutoTokenizer, get_scheduler

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
        self.tokenizer = prepare_tokenizer(
            tokenizer or AutoTokenizer.from_pretrained(config.model.name_or_path), policy.is_seq2seq)
        self._owns_judge = judge is None
        self.judge = judge if judge is not None else _build_judge(config.judge.ref)
        split = load_prompts(config.data, self.tokenizer) if prompts is None \
            else PromptSplit(train=list(prompts), test=[])
        self.prompts, self.eval_prompts = split.train, split.test
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
        self.model, self.optimizer = acc.prepare(policy, optimizer)
        # use_cache: generation runs in eval mode, where gradient checkpointing is off anyway.
        self.gen_kwargs = {**config.generation.generate_kwargs(), "use_cache": True,
                           "eos_token_id": self.tokenizer.eos_token_id,
                           "pad_token_id": self.tokenizer.pad_token_id}
        if config.generation.sampler == "inverse_cdf":
            self.gen_kwargs = sampling_kwargs(self.gen_kwargs)
        self.capture_states = use_generation_states(ppo.rollout_logprobs, policy.config,
                                                     policy.is_seq2seq)
        self.step_count = 0
        self.data_position = 0
        self.history: list[dict[str, Any]] = []
        self.metrics_log = MetricsLog(self.run_dir, enabled=acc.is_main_process)
        set_seed(ppo.seed, device_specific=True)  # each process samples its own responses
        if config.resume:
            self._resume(resolve_checkpoint(config.resume, self.run_dir))
        else:
            if latest_checkpoint(self.run_dir) is not None:
                raise ValueError(
                    f"run folder {self.run_dir} already holds a run (checkpoints/latest); pass "
                    "--resume (resume=true) to continue it, or choose another output.dir / --out"
                )
            self.metrics_log.reset(0)
        if acc.is_main_process:
            save_config(config, self.run_dir)

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
        cfg, acc = self.config, self.accelerator
        ppo = cfg.ppo
        t_step = time.perf_counter()
        prompts = self.next_prompts() if prompts is None else list(prompts)
        backward_batch = ppo.mini_batch_size * ppo.gradient_accumulation_steps
        if not prompts or len(prompts) % backward_batch:
            raise ValueError(f"step() got {len(prompts)} prompts; pass a multiple of {backward_batch} "
                             "(mini_batch_size * gradient_accumulation_steps)")

        # 1. generate: one batched call, then everything after the first EOS becomes padding
        t0 = time.perf_counter()
        self.policy.eval()
        query_ids, query_mask = tokenize_queries(self.tokenizer, prompts, cfg.data.max_prompt_tokens,
                                                 acc.device)
        with torch.no_grad(), acc.autocast():
            raw_response_ids, states = self.policy.generate_with_states(
                query_ids, query_mask, capture=self.capture_states, **self.gen_kwargs)
        response_ids, response_mask = truncate_response(
            raw_response_ids, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id)
        time_generate = time.perf_counter() - t0

        # 2. judge the decoded (prompt, response) pairs
        t0 = time.perf_counter()
        responses = self.tokenizer.batch_decode(response_ids, skip_special_tokens=True)
        scores = score_samples(self.judge, prompts, responses, self.config.judge.on_unscored)
        time_judge = time.perf_counter() - t0
        valid = torch.tensor([s.ok for s in scores], device=acc.device)  # (B,)
        processed, reward_metrics = self._process_scores(scores)

        # 3. logprobs, values, reference logprobs; per-token KL rewards
        t0 = time.perf_counter()
        with acc.autocast():
            logprobs, values, entropy, ref_logprobs = score_rollout(
                self.policy, query_ids, query_mask, response_ids, response_mask, states=states,
                temperature=cfg.generation.temperature,
                chunk=ppo.forward_batch_size or ppo.mini_batch_size)
        loss_mask = response_mask * valid[:, None].to(response_mask.dtype)  # (B, R)
        kl = core.kl_penalty(logprobs, ref_logprobs, ppo.kl.estimator)  # (B, R)
        kl_coef = self.kl_ctl.value
        rewards, non_score_rewards = core.per_token_rewards(
            torch.tensor(processed, device=acc.device), kl, response_mask, kl_coef)
        rewards, non_score_rewards = rewards * loss_mask, non_score_rewards * loss_mask
        enough = int(loss_mask.sum()) >= 2  # whitening needs two tokens for a variance
        # 4. whiten rewards (optional; keeps their mean)
        if ppo.whiten_rewards and enough:
            rewards = core.masked_whiten(rewards, loss_mask, shift_mean=False)
        # 5. advantages and returns
        advantages, returns = core.gae(rewards, values, loss_mask, ppo.gamma, ppo.lam)
        if enough:
            advantages = core.masked_whiten(advantages, loss_mask)
        rollout = Rollout(query_ids, query_mask, response_ids, response_mask, loss_mask,
                          logprobs, values, advantages, returns)
        var_explained = core.explained_variance(values, returns, loss_mask) if enough else math.nan

        # 6. PPO epochs over shuffled minibatches
        update_stats = self._update(rollout) if reward_metrics["reward/scored"] > 0 else {}
        time_update = time.perf_counter() - t0

        # Everything below is summed or averaged over all processes.
        sums = acc.reduce(torch.tensor([
            float((kl * loss_mask).sum()), float(non_score_rewards.sum()),
            float((entropy * loss_mask).sum()), float(loss_mask.sum()), float(valid.sum()),
            float(response_mask.sum()), float(len(prompts)),
        ], device=acc.device), reduction="sum").tolist()
        kl_sum, non_score_sum, entropy_sum, n_tokens, n_valid, n_generated, n_prompts = sums
        means = self._mean_over_processes({"ppo/val/var_explained": var_explained,
                                           "time/generate": time_generate, "time/judge": time_judge,
                                           "time/update": time_update, **update_stats})
        mean_kl = kl_sum / n_valid if n_valid else math.nan
        if n_valid:
            self.kl_ctl.update(mean_kl, n_steps=ppo.batch_size)
        self.step_count += 1
        time_step = time.perf_counter() - t_step
        metrics: dict[str, Any] = {
            "step": self.step_count,
            "objective/kl": mean_kl,
            "objective/kl_coef": kl_coef,
            "objective/entropy": entropy_sum / n_tokens if n_tokens else math.nan,
            "objective/non_score_reward": non_score_sum / n_valid if n_valid else math.nan,
            **reward_metrics,
            "ppo/lr": self.scheduler.get_last_lr()[0],
            "response/length": n_generated / n_prompts,
            "batch/size": int(n_prompts),
            **means,
            "time/step": time_step,
            "tokens/per_second": n_generated / time_step,
        }
        self.history.append(metrics)
        self.metrics_log.write(metrics)
        return metrics

    def _process_scores(self, scores: Sequence[Score]) -> tuple[list[float], dict[str, Any]]:
        """Rewards PPO sees (0 for unscored samples, which are masked out) and reward metrics."""
        from accelerate.utils import gather_object

        local = score_rows(scores)
        # Every process gets every score, so running statistics stay identical everywhere.
        everyone = gather_object(local) if self.accelerator.num_processes > 1 else local
        return process_rewards(scores, everyone, self.config.judge, self.reward_stats)

    def _update(self, rollout: Rollout) -> dict[str, float]:
        """PPO epochs: shuffled minibatches, clipped losses, accumulation, clipping, AdamW + LR."""
        ppo, acc = self.config.ppo, self.accelerator
        temperature = self.config.generation.temperature
        stats: dict[str, list[float]] = {}
        self.policy.train()
        for _ in range(ppo.ppo_epochs):
            perm = torch.randperm(rollout.query_ids.size(0)).to(acc.device)
            for start in range(0, len(perm), ppo.mini_batch_size):
                mb = perm[start:start + ppo.mini_batch_size]
                mb_mask = rollout.loss_mask[mb]
                with acc.accumulate(self.model):
                    out = self.model(rollout.query_ids[mb], rollout.query_mask[mb],
                                     rollout.response_ids[mb], rollout.response_mask[mb],
                                     temperature=temperature, with_entropy=False)
                    if mb_mask.sum() == 0:
                        # Only unscored samples here: a zero loss that still touches every
                        # parameter, so DDP's gradient all-reduce stays in step.
                        loss = 0.0 * (out.logprobs.sum() + out.values.sum())
                    else:
                        pg_loss, pg_stats = core.policy_loss(
                            out.logprobs, rollout.logprobs[mb], rollout.advantages[mb], mb_mask,
                            ppo.cliprange)
                        vf_loss, vf_stats = core.value_loss(
                            out.values, rollout.values[mb], rollout.returns[mb], mb_mask,
                            ppo.cliprange_value)
                        loss = pg_loss + ppo.vf_coef * vf_loss
                        for key, value in (("ppo/loss/policy", pg_loss), ("ppo/loss/value", vf_loss),
                                           ("ppo/loss/total", loss),
                                           ("ppo/policy/clipfrac", pg_stats["clipfrac"]),
                                           ("ppo/policy/approxkl", pg_stats["approxkl"]),
                                           ("ppo/val/clipfrac", vf_stats["vf_clipfrac"])):
                            stats.setdefault(key, []).append(float(value.detach()))
                    acc.backward(loss)
                    if acc.sync_gradients and ppo.max_grad_norm is not None:
                        acc.clip_grad_norm_(self.model.parameters(), ppo.max_grad_norm)
                    self.optimizer.step()
                    if acc.sync_gradients and not acc.optimizer_step_was_skipped:
                        self.scheduler.step()
                    self.optimizer.zero_grad()
        self.policy.eval()
        return {key: sum(vals) / len(vals) for key, vals in stats.items()}

    def _mean_over_processes(self, values: dict[str, float]) -> dict[str, float]:
        keys = ["ppo/val/var_explained", "time/generate", "time/judge", "time/update",
                "ppo/loss/policy", "ppo/loss/value", "ppo/loss/total", "ppo/policy/clipfrac",
                "ppo/policy/approxkl", "ppo/val/clipfrac"]
        local = torch.tensor([values.get(k, math.nan) for k in keys], dtype=torch.float64,
                             device=self.accelerator.device)
        return dict(zip(keys, self.accelerator.reduce(local, reduction="mean").tolist()))

    # ------------------------------------------------------------------ the loop

    def train(self) -> TrainResult:
        """Run until `ppo.steps`, checkpointing every `output.save_every` steps and at the end."""
        from tqdm.auto import tqdm

        cfg, main = self.config, self.accelerator.is_main_process
        steps, save_every = cfg.ppo.steps, cfg.output.save_every
        checkpoint = latest_checkpoint(self.run_dir) if self.step_count else None
        bar = tqdm(total=steps, initial=self.step_count, desc="PPO", unit="step", disable=not main)
        try:
            while self.step_count < steps:
                m = self.step()
                bar.update(1)
                bar.set_postfix(reward=f"{m['reward/mean']:.3g}", kl=f"{m['objective/kl']:.3g}")
                if main and self.step_count % cfg.output.log_every == 0:
                    bar.write(f"step {m['step']}: reward {m['reward/mean']:.4g} kl "
                              f"{m['objective/kl']:.4g} unscored {m['reward/unscored']} "
                              f"({m['time/step']:.2f}s)")
                if save_every and self.step_count % save_every == 0:
                    checkpoint = self.save_checkpoint()
            if self.history and (checkpoint is None or checkpoint.name != f"step-{self.step_count}"):
                checkpoint = self.save_checkpoint()
        finally:
            bar.close()
            if self._owns_judge:
                self.judge.close()
        if main:
            print(summary(self.history, self.run_dir, checkpoint))
        return TrainResult(run_dir=self.run_dir, step=self.step_count, history=list(self.history),
                           checkpoint=checkpoint)


def _build_judge(ref: str | dict[str, Any]) -> Judge:
    from rlaif.judges.spec import build_judge

    return build_judge(ref)
