"""PPO math for language models: pure tensor functions, no I/O, no devices, no accelerate.

Shapes: B = batch, T = response length (tokens). Every `mask` is a (B, T)
tensor of 0/1 (or bool) marking valid response tokens; padding sits after the last valid
token (right padding), as `rlaif.models.generate.truncate_response` produces it.
Per-token logprobs, entropy and the KL estimators (`kl_penalty`) live with the forward pass
that produces them, in `rlaif.models.logprobs`.

Names follow the papers and their reference code (Ziegler et al. 2019 / OpenAI
lm-human-preferences, CleanRL's PPO): `kl_coef`, `gamma`, `lam`, `cliprange`,
`cliprange_value`, `pg_loss1`, `pg_loss2`, `v_loss_clipped`, `approxkl`, `clipfrac`.
"""

from __future__ import annotations

import torch


# --------------------------------------------------------------------------- masked statistics


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `x` over positions where `mask` is 1 (all of them, or along `dim`)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum()
    return (x * mask).sum(dim=dim) / mask.sum(dim=dim)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of `x` over masked positions; `unbiased` applies Bessel's n / (n - 1)."""
    mean = masked_mean(x, mask)
    variance = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        if n < 2:
            raise ValueError(
                f"unbiased masked_var needs at least 2 valid positions, the mask has {int(n)}; "
                "pass unbiased=False or a larger batch"
            )
        variance = variance * n / (n - 1)
    return variance


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True,
                  eps: float = 1e-8) -> torch.Tensor:
    """Normalise `x` to unit variance (and zero mean if `shift_mean`) over the mask; 0 outside."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        # Rewards keep their mean (only the scale changes), as lm-human-preferences does.
        whitened = whitened + mean
    return whitened * mask.to(x.dtype)


def first_true_indices(bools: torch.Tensor, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """Index of the first True in each row: (B, T) -> (B,); T where a row has none."""
    row_len = bools.size(-1)
    # Positions that are False get index + T, so the min is the first True or >= T.
    zero_or_index = row_len * (~bools).to(dtype) + torch.arange(row_len, dtype=dtype,
                                                                device=bools.device)
    return torch.min(zero_or_index, dim=-1).values.clamp(max=row_len)


def last_valid_indices(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last valid position in each row: (B, T) -> (B,); raises if a row is empty."""
    valid = mask.bool()
    empty = ~valid.any(dim=-1)
    if empty.any():
        rows = empty.nonzero().flatten().tolist()
        raise ValueError(
            f"response rows {rows} have no valid token in the mask; every response needs at "
            "least one token (truncate_response keeps the EOS inside the mask)"
        )
    return valid.size(-1) - 1 - first_true_indices(valid.flip(-1))


# --------------------------------------------------------------------------- rewards


def per_token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor,
                      kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards per token: -kl_coef * kl on valid tokens, plus the judge score on the last one.

    scores (B,), kl (B, T), mask (B, T) -> (rewards (B, T), non_score_rewards (B, T)).
    """
    if scores.dim() != 1 or scores.size(0) != kl.size(0):
        raise ValueError(f"scores must be (B,) = ({kl.size(0)},), got {tuple(scores.shape)}")
    mask = mask.to(kl.dtype)
    non_score_rewards = -kl_coef * kl * mask  # (B, T)
    rewards = non_score_rewards.clone()
    last = last_valid_indices(mask)  # (B,)
    rows = torch.arange(rewards.size(0), device=rewards.device)
    rewards[rows, last] += scores.to(rewards.dtype)
    return rewards, non_score_rewards


# --------------------------------------------------------------------------- advantages


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016): -> (advantages, returns), (B, T).

    delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lam * A_{t+1}.
    Values and rewards after the last valid token count as 0 (the episode has ended);
    returns = advantages + values, and both are 0 outside the mask.
    """
    mask = mask.to(values.dtype)
    values = values * mask  # (B, T)
    rewards = rewards * mask  # (B, T)
    steps = rewards.size(-1)
    lastgaelam = torch.zeros_like(rewards[:, 0])  # (B,)
    advantages_reversed = []
    for t in reversed(range(steps)):
        nextvalues = values[:, t + 1] if t < steps - 1 else torch.zeros_like(lastgaelam)
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], dim=1) * mask  # (B, T)
    returns = advantages + values
    return advantages, returns


# --------------------------------------------------------------------------- losses


def truncated_is_weights(logprobs: torch.Tensor, sampler_logprobs: torch.Tensor,
                         cap: float) -> torch.Tensor:
    """Truncated importance-sampling weights min(pi_trainer / pi_sampler, cap) per token (B, T).

    When another engine (vLLM) sampled the tokens, its distribution differs from the trainer's
    by numerics (kernels, dtype); weighting each token's policy loss by this ratio corrects the
    expectation, and the cap bounds the variance (Yao et al. 2025, "Your efficient RL framework
    secretly brings you off-policy RL training"; TRL's vllm_importance_sampling_cap, veRL's TIS).
    No gradient flows through the weights.
    """
    return torch.exp(logprobs - sampler_logprobs).clamp(max=cap).detach()


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, cliprange: float, weights: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped PPO surrogate (Schulman et al. 2017), masked mean over tokens -> (loss, stats).

    `weights` (B, T), optional: each token's loss is multiplied by it (the truncated importance
    weights of `truncated_is_weights`). stats (detached scalars): `clipfrac` share of tokens
    where the clipped term is taken, `approxkl` = 0.5 * mean((logp - old)^2) as in
    lm-human-preferences, `approxkl_k3` the k3 estimator of KL(old || new), `ratio_mean`.
    """
    log_ratio = logprobs - old_logprobs  # (B, T)
    ratio = torch.exp(log_ratio)
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_losses = torch.max(pg_loss1, pg_loss2)  # (B, T)
    if weights is not None:
        pg_losses = pg_losses * weights
    loss = masked_mean(pg_losses, mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((pg_loss2 > pg_loss1).to(logprobs.dtype), mask),
            "approxkl": 0.5 * masked_mean(log_ratio.square(), mask),
            "approxkl_k3": masked_mean((ratio - 1) - log_ratio, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return loss, {k: v.detach() for k, v in stats.items()}


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, cliprange_value: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss: 0.5 * masked mean of max(unclipped, clipped) squared error -> (loss, stats)."""
    vpredclipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    v_loss_unclipped = (values - returns).square()  # (B, T)
    v_loss_clipped = (vpredclipped - returns).square()  # (B, T)
    loss = 0.5 * masked_mean(torch.max(v_loss_unclipped, v_loss_clipped), mask)
    with torch.no_grad():
        stats = {
            "vf_clipfrac": masked_mean((v_loss_clipped > v_loss_unclipped).to(values.dtype), mask),
            "vpred_mean": masked_mean(values, mask),
            "error_mean": masked_mean(v_loss_unclipped, mask),
        }
    return loss, {k: v.detach() for k, v in stats.items()}


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var[returns - values] / Var[returns] over the mask; NaN when the returns are constant."""
    var_returns = masked_var(returns, mask, unbiased=False)
    if var_returns == 0:
        # Undefined, as in CleanRL: NaN tells the reader rather than a made-up 0 or 1.
        return float("nan")
    return float(1.0 - masked_var(returns - values, mask, unbiased=False) / var_returns)
