"""What a PPO run is made of, built from its config before the trainer exists.

    policy       the policy with its value head (its reference: adapters off, or a frozen copy)
    tokenizer    prepared for the policy (padding side, pad token)
    judge        the reward
    accelerator  device, processes, mixed precision
    optimizer    AdamW over the trainable parameters (prepared by accelerate)
    scheduler    the LR schedule over every optimizer step of the run
    kl_ctl       the KL controller
    folder       the run folder (`rlaif.runs.folder`)
    tracker      output.report_to's trackers
    rollouts     generation.backend vllm: the vLLM server rollouts come from (started on first use)

`build_parts` makes whatever the caller did not hand in; the trainer closes only the parts it
was not given (`owned`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from rlaif.config import RunConfig
from rlaif.judges.base import Judge
from rlaif.models.generate import eos_token_ids
from rlaif.models.load import load_tokenizer, prepare_tokenizer
from rlaif.ppo.kl import make_kl_controller
from rlaif.ppo.policy import PolicyWithValueHead
from rlaif.ppo.vllm_rollout import VLLMRollouts
from rlaif.runs.folder import RunFolder
from rlaif.tracking import make_tracker

DTYPES: dict[str, Any] = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                          "float16": torch.float16, "auto": "auto"}
SCHEDULERS = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


@dataclass
class PPOParts:
    """Everything the trainer works with; see the module docstring."""

    policy: PolicyWithValueHead
    wrapped_policy: Any  # the policy as DDP / DeepSpeed wrap it: the update goes through it
    tokenizer: Any
    judge: Judge
    accelerator: Any
    optimizer: Any
    scheduler: Any
    kl_ctl: Any
    folder: RunFolder
    tracker: Any
    local_batch_size: int
    total_optimizer_steps: int
    owned: frozenset[str] = field(default_factory=frozenset)  # parts the trainer closes
    rollouts: VLLMRollouts | None = None  # None: the hf backend, the policy's own generate


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


def local_batch_size(config: RunConfig, n_proc: int) -> int:
    """Each process's share of `ppo.batch_size`; refuses a batch that does not split evenly into
    processes and minibatches, naming the fix."""
    ppo = config.ppo
    if ppo.batch_size % n_proc:
        raise ValueError(
            f"ppo.batch_size={ppo.batch_size} does not split evenly over {n_proc} processes; "
            f"use a multiple of {n_proc}")
    local = ppo.batch_size // n_proc
    backward_batch = ppo.mini_batch_size * ppo.gradient_accumulation_steps
    if local % backward_batch:
        raise ValueError(
            f"each of {n_proc} processes gets ppo.batch_size / {n_proc} = {local} prompts, not a "
            f"multiple of mini_batch_size * gradient_accumulation_steps = {backward_batch}; "
            f"set ppo.batch_size to a multiple of {backward_batch * n_proc}")
    return local


def build_parts(config: RunConfig, *, policy: PolicyWithValueHead | None = None, judge: Judge | None = None,
                tokenizer: Any = None, accelerator: Any = None, tracker: Any = None,
                folder: RunFolder | None = None) -> PPOParts:
    """The parts of a PPO run: the given ones, the rest built from `config`. A given policy is
    moved to the accelerator's device and trained in place."""
    from accelerate.utils import set_seed
    from transformers import get_scheduler

    from rlaif.judges.registry import build_judge

    ppo = config.ppo
    acc = accelerator or make_accelerator(config)
    local = local_batch_size(config, acc.num_processes)
    set_seed(ppo.seed)  # the same on every process: identical value-head init
    if policy is None:
        policy = PolicyWithValueHead.from_pretrained(
            config.model.name_or_path, lora=config.model.lora, dtype=DTYPES.get(config.model.dtype or ""),
            gradient_checkpointing=config.model.gradient_checkpointing)
    policy = policy.to(acc.device)
    policy.share_prefix = ppo.share_prefix
    tokenizer = prepare_tokenizer(tokenizer or load_tokenizer(config.model.name_or_path), policy.is_seq2seq)
    owned = {name for name, given in (("judge", judge), ("tracker", tracker)) if given is None}
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=ppo.learning_rate,
                                  weight_decay=ppo.weight_decay)
    backward_batch = ppo.mini_batch_size * ppo.gradient_accumulation_steps
    total = ppo.steps * ppo.ppo_epochs * (local // backward_batch)
    # Not passed to accelerate.prepare: its scheduler wrapper steps once per process.
    scheduler = get_scheduler(SCHEDULERS[ppo.lr_scheduler], optimizer, num_warmup_steps=ppo.warmup_steps,
                              num_training_steps=total)
    wrapped, optimizer = acc.prepare(policy, optimizer)
    rollouts = vllm_rollouts(config, policy, tokenizer, acc.num_processes) \
        if config.generation.backend == "vllm" else None
    return PPOParts(
        policy=policy, wrapped_policy=wrapped, tokenizer=tokenizer,
        judge=judge if judge is not None else build_judge(config.judge.ref), accelerator=acc,
        optimizer=optimizer, scheduler=scheduler,
        kl_ctl=make_kl_controller(ppo.kl.kind, ppo.kl.kl_coef, ppo.kl.target, ppo.kl.horizon),
        folder=folder or RunFolder(config.output.dir),
        tracker=tracker or make_tracker(config, enabled=acc.is_main_process),
        local_batch_size=local, total_optimizer_steps=total, owned=frozenset(owned),
        rollouts=rollouts)


def vllm_rollouts(config: RunConfig, policy: PolicyWithValueHead, tokenizer: Any,
                  num_processes: int) -> VLLMRollouts:
    """The vLLM side of the run (its server starts at the first step): the policy's EOS ids, and
    a context no longer than a prompt plus a reply (or the model's own, if shorter)."""
    positions = getattr(policy.config, "max_position_embeddings", None)
    longest = config.data.max_prompt_tokens + config.generation.max_new_tokens
    return VLLMRollouts(config, eos_ids=eos_token_ids(policy.base_model(), tokenizer),
                        pad_token_id=tokenizer.pad_token_id,
                        max_model_len=min(positions, longest) if positions else longest,
                        num_processes=num_processes, is_seq2seq=policy.is_seq2seq)
