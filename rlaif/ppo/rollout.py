"""Rollout plumbing for the PPO trainer: prompts, the prompt stream, tokenisation, reward stats.

Nothing here touches the optimiser; `trainer.py` strings these together step by step.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rlaif.config import DataConfig, JudgeConfig
from rlaif.judges.base import Judge, JudgeError, Sample, Score, run_sync
from rlaif.ppo.metrics import mean_std, member_values


@dataclass
class PromptSplit:
    """Training prompts and the held-out prompts (for evaluation), both after the length filter."""

    train: list[str]
    test: list[str]


def load_prompts(data: DataConfig, tokenizer: Any) -> PromptSplit:
    """HH rows -> prompts for `data.task` -> token-length filter -> seeded train/test split."""
    from rlaif.data.hh import filter_by_length, load_hh, make_prompts, train_test_split

    dataset = load_hh(data.source, data_dir=data.data_dir, split=data.split,
                      on_bad_row=data.on_bad_row, limit=data.limit)
    prompts = make_prompts(dataset.examples, task=data.task)
    keep = filter_by_length(prompts, tokenizer, data.max_prompt_tokens, data.min_prompt_tokens)
    prompts = [prompts[i] for i in keep]
    if not prompts:
        raise ValueError(
            f"data: no prompt of {data.source!r} (split {data.split!r}, task {data.task!r}) has "
            f"between data.min_prompt_tokens={data.min_prompt_tokens} and "
            f"data.max_prompt_tokens={data.max_prompt_tokens} tokens; widen that range"
        )
    if not data.test_size:
        return PromptSplit(train=prompts, test=[])
    train, test = train_test_split(prompts, data.test_size, data.seed)
    if not train:
        raise ValueError(
            f"data.test_size={data.test_size} leaves no training prompt out of {len(prompts)}; "
            "lower it"
        )
    return PromptSplit(train=train, test=test)


class PromptStream:
    """An endless, seeded stream of prompt indices: epoch e is a fixed shuffle of all prompts.

    The stream is a pure function of (seed, position), so a checkpoint only stores the
    position, and every process computes the same global batch.
    """

    def __init__(self, n_prompts: int, seed: int) -> None:
        if n_prompts <= 0:
            raise ValueError("the prompt stream needs at least one prompt")
        self.n_prompts = n_prompts
        self.seed = seed
        self._orders: dict[int, list[int]] = {}

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(self.n_prompts))
            # Own Random instance: independent of the global RNG that sampling uses.
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
            self._orders = {epoch: order}  # keep only the current epoch
        return self._orders[epoch]

    def indices(self, position: int, count: int) -> list[int]:
        """The `count` prompt indices starting at stream `position`."""
        out = []
        for pos in range(position, position + count):
            epoch, offset = divmod(pos, self.n_prompts)
            out.append(self._order(epoch)[offset])
        return out


def score_rollout(policy: Any, query_ids: torch.Tensor, query_mask: torch.Tensor,
                  response_ids: torch.Tensor, response_mask: torch.Tensor, *,
                  states: torch.Tensor | None, temperature: float, chunk: int | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Policy logprobs, values, entropy and reference logprobs (B, R) of a batch of responses.

    The policy side comes from the generation `states` when given (`PolicyWithValueHead.
    score_states`), else from a forward pass. Passes take `chunk` samples at a time (None: the
    whole batch) in order of length, so each is padded only to its own longest sample
    (`forward_response` drops the shared padding); results come back in batch order, float32.
    """
    batch = query_ids.size(0)
    chunk = chunk or batch
    order = torch.arange(batch, device=query_ids.device)
    if chunk < batch:
        lengths = query_mask.sum(1) + response_mask.sum(1)  # (B,)
        order = torch.sort(lengths, stable=True).indices
    parts: list[tuple[torch.Tensor, ...]] = []
    # inference_mode: no autograd bookkeeping at all; the copies below (outside it) turn the
    # results into ordinary tensors that the update's losses may use.
    with torch.inference_mode():
        for s in range(0, batch, chunk):
            rows = order[s:s + chunk]
            args = (query_ids[rows], query_mask[rows], response_ids[rows], response_mask[rows])
            if states is not None:
                out = policy.score_states(states[rows], response_ids[rows], temperature=temperature)
            else:
                out = policy.forward_response(*args, temperature=temperature)
            ref = policy.forward_response(*args, reference=True, with_entropy=False,
                                          temperature=temperature)
            parts.append((out.logprobs.float(), out.values.float(), out.entropy.float(),
                          ref.logprobs.float()))
    inverse = torch.argsort(order)  # sorted position of each sample
    logprobs, values, entropy, ref_logprobs = (torch.cat(p)[inverse] for p in zip(*parts))
    return logprobs, values, entropy, ref_logprobs


def tokenize_queries(tokenizer: Any, prompts: Sequence[str], max_tokens: int,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch of prompts on the tokenizer's side (left for causal LMs) -> (ids, mask) (B, Q)."""
    enc = tokenizer(list(prompts), padding=True, truncation=True, max_length=max_tokens,
                    return_tensors="pt")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def prepare_tokenizer(tokenizer: Any, is_seq2seq: bool) -> Any:
    """Left padding for causal LMs (generation continues the prompt), a pad token if missing."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise ValueError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has neither a pad nor an "
                "eos token; add a pad token to it before training"
            )
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right" if is_seq2seq else "left"
    return tokenizer


class RunningMoments:
    """Running mean and variance of every reward seen (Chan et al. parallel merge)."""

    def __init__(self) -> None:
        self.mean = 0.0
        self.var = 0.0  # population variance
        self.count = 0

    def update(self, values: Sequence[float]) -> None:
        """Merge a batch of values into the running statistics."""
        n = len(values)
        if n == 0:
            return
        batch_mean = sum(values) / n
        batch_var = sum((v - batch_mean) ** 2 for v in values) / n
        total = self.count + n
        delta = batch_mean - self.mean
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.mean += delta * n / total
        self.count = total

    @property
    def std(self) -> float:
        """Population standard deviation of everything seen."""
        return math.sqrt(self.var)

    def normalize(self, value: float, eps: float = 1e-8) -> float:
        """(value - mean) / std; a single value seen so far (std 0) only gets centred."""
        return (value - self.mean) / (self.std if self.std > eps else 1.0)

    def state_dict(self) -> dict[str, float]:
        """For checkpoints."""
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, d: dict[str, float]) -> None:
        """Restore `state_dict` output."""
        self.mean, self.var, self.count = float(d["mean"]), float(d["var"]), int(d["count"])


def score_samples(judge: Judge, prompts: Sequence[str], responses: Sequence[str],
                  on_unscored: str) -> list[Score]:
    """Judge the (prompt, response) pairs (async judges awaited); apply the `fail` policy."""
    samples = [Sample(p, r) for p, r in zip(prompts, responses)]
    scores = run_sync(judge.ascore(samples))
    if len(scores) != len(samples):
        raise JudgeError(f"judge {judge.name!r} returned {len(scores)} scores for "
                         f"{len(samples)} samples; a judge must return one score per sample")
    if on_unscored == "fail":
        for i, (sample, score) in enumerate(zip(samples, scores)):
            if not score.ok:
                raise JudgeError(unscored_error(i, sample.prompt, sample.response, score, judge.name))
    return scores


def score_rows(scores: Sequence[Score]) -> list[dict[str, Any]]:
    """What other processes need of each score (picklable): its value and member values."""
    return [{"value": s.value, "members": member_values([s.details]) if s.ok else {}}
            for s in scores]


def process_rewards(scores: Sequence[Score], everyone: Sequence[dict[str, Any]], judge: JudgeConfig,
                    stats: RunningMoments) -> tuple[list[float], dict[str, Any]]:
    """This process's rewards after optional running normalisation and clipping (0 where
    unscored: those samples are masked out), and reward metrics over `everyone`'s rows."""
    scored = [row["value"] for row in everyone if row["value"] is not None]
    if judge.normalize == "running":
        stats.update(scored)

    def process(value: float) -> float:
        if judge.normalize == "running":
            value = stats.normalize(value)
        if judge.clip is not None:
            value = max(-judge.clip, min(judge.clip, value))
        return value

    processed = [process(s.value) if s.value is not None else 0.0 for s in scores]
    mean, std = mean_std(scored)
    metrics: dict[str, Any] = {
        "reward/mean": mean, "reward/std": std,
        "reward/unscored": len(everyone) - len(scored), "reward/scored": len(scored),
        "reward/processed_mean": mean_std([process(v) for v in scored])[0],
    }
    members: dict[str, list[float]] = {}
    for row in everyone:
        for name, vals in row["members"].items():
            members.setdefault(name, []).extend(vals)
    for name, vals in members.items():
        metrics[f"reward/{name}/mean"] = mean_std(vals)[0]
    return processed, metrics


def unscored_error(index: int, sample_prompt: str, response: str, score: Score,
                   judge_name: str) -> str:
    """The message for `judge.on_unscored: fail`: which sample, and the judge's reason."""
    def preview(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= 80 else text[:77] + "..."

    return (
        f"judge {judge_name!r} could not score sample {index} of the batch "
        f"(prompt {preview(sample_prompt)!r}, response {preview(response)!r}): {score.error}. "
        "judge.on_unscored is 'fail'; set judge.on_unscored=skip to train on the scored samples "
        "and count the others in reward/unscored"
    )
