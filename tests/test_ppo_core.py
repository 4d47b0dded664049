"""PPO core math against hand-computed tensors and plain torch loops."""

from __future__ import annotations

import math

import pytest
import torch

from rlaif.ppo.core import (
    explained_variance,
    first_true_indices,
    gae,
    last_valid_indices,
    masked_mean,
    masked_var,
    masked_whiten,
    per_token_rewards,
    policy_loss,
    value_loss,
)

T = torch.tensor


def test_gae_three_step_example_by_hand():
    # gamma 0.9, lam 0.8, so gamma * lam = 0.72.
    # Row 0: rewards [0, 0, 1], values [0.5, 0.4, 0.3], all valid.
    #   t=2: delta = 1 + 0.9*0 - 0.3 = 0.7                 A2 = 0.7
    #   t=1: delta = 0 + 0.9*0.3 - 0.4 = -0.13             A1 = -0.13 + 0.72*0.7 = 0.374
    #   t=0: delta = 0 + 0.9*0.4 - 0.5 = -0.14             A0 = -0.14 + 0.72*0.374 = 0.12928
    #   returns = A + V = [0.62928, 0.774, 1.0]
    # Row 1: rewards [0, 2, 99], values [1, 1, 7], mask [1, 1, 0]: the padded 99 and 7 count as 0.
    #   t=2: A2 = 0;  t=1: delta = 2 + 0 - 1 = 1, A1 = 1;  t=0: delta = 0.9 - 1 = -0.1, A0 = 0.62
    rewards = T([[0.0, 0.0, 1.0], [0.0, 2.0, 99.0]])
    values = T([[0.5, 0.4, 0.3], [1.0, 1.0, 7.0]])
    mask = T([[1, 1, 1], [1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    torch.testing.assert_close(advantages, T([[0.12928, 0.374, 0.7], [0.62, 1.0, 0.0]]))
    torch.testing.assert_close(returns, T([[0.62928, 0.774, 1.0], [1.62, 2.0, 0.0]]))


def test_gae_gamma_lam_one_is_reward_to_go_minus_value():
    rewards, values = T([[1.0, 2.0, 3.0]]), T([[0.5, 0.5, 0.5]])
    advantages, returns = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    torch.testing.assert_close(returns, T([[6.0, 5.0, 3.0]]))
    torch.testing.assert_close(advantages, T([[5.5, 4.5, 2.5]]))


def test_policy_loss_clipping_by_hand():
    # cliprange 0.2. Per token (ratio, adv) -> pg_loss1 = -adv*ratio, pg_loss2 = -adv*clip(ratio):
    #   (1.5,  1): -1.5 vs -1.2 -> max -1.2, clipped
    #   (0.5,  1): -0.5 vs -0.8 -> max -0.5, not clipped
    #   (0.5, -2):  1.0 vs  1.6 -> max  1.6, clipped
    #   (1.5, -10) padded: ignored
    # loss = (-1.2 - 0.5 + 1.6) / 3 = -0.1 / 3, clipfrac = 2/3
    ratio = T([[1.5, 0.5, 0.5, 1.5]])
    old_logprobs = T([[-1.0, -2.0, -0.5, -3.0]])
    logprobs = (old_logprobs + ratio.log()).requires_grad_()
    advantages = T([[1.0, 1.0, -2.0, -10.0]])
    mask = T([[1, 1, 1, 0]])
    loss, stats = policy_loss(logprobs, old_logprobs, advantages, mask, cliprange=0.2)
    assert loss.item() == pytest.approx(-0.1 / 3, abs=1e-6)
    assert stats["clipfrac"].item() == pytest.approx(2 / 3)
    expected_kl = 0.5 * (math.log(1.5) ** 2 + 2 * math.log(0.5) ** 2) / 3
    assert stats["approxkl"].item() == pytest.approx(expected_kl, rel=1e-5)
    # k3 of KL(old || new): (r - 1) - log r per token.
    expected_k3 = ((0.5 - math.log(1.5)) + 2 * (-0.5 - math.log(0.5))) / 3
    assert stats["approxkl_k3"].item() == pytest.approx(expected_k3, rel=1e-5)
    assert stats["ratio_mean"].item() == pytest.approx(2.5 / 3, rel=1e-6)
    loss.backward()
    # Clipped tokens and the padded one get no gradient; token 1: d(-adv*ratio)/dlogp / 3 = -0.5/3.
    torch.testing.assert_close(logprobs.grad, T([[0.0, -0.5 / 3, 0.0, 0.0]]))


def test_value_loss_clipping_by_hand():
    # cliprange_value 0.2. Per token (old, new, return):
    #   (1.0, 1.5, 2.0): clipped pred 1.2 -> unclipped 0.25, clipped 0.64 -> 0.64, clipped
    #   (1.0, 0.9, 0.0): within the range -> both 0.81, not clipped
    #   (0.0, 1.0, 0.5): clipped pred 0.2 -> unclipped 0.25, clipped 0.09 -> 0.25
    #   padded token ignored. loss = 0.5 * (0.64 + 0.81 + 0.25) / 3
    old_values = T([[1.0, 1.0, 0.0, 5.0]])
    values = T([[1.5, 0.9, 1.0, -5.0]])
    returns = T([[2.0, 0.0, 0.5, 100.0]])
    mask = T([[1, 1, 1, 0]])
    loss, stats = value_loss(values, old_values, returns, mask, cliprange_value=0.2)
    assert loss.item() == pytest.approx(0.5 * 1.7 / 3, rel=1e-6)
    assert stats["vf_clipfrac"].item() == pytest.approx(1 / 3)
    assert stats["vpred_mean"].item() == pytest.approx(3.4 / 3, rel=1e-6)


@pytest.mark.parametrize(
    "shift_mean, expected",
    [
        (True, [-1.0, 0.0, 1.0, 0.0]),  # mean 4, unbiased var (4 + 0 + 4) / 2 = 4, std 2
        (False, [3.0, 4.0, 5.0, 0.0]),  # same scale, mean kept
    ],
)
def test_masked_whiten(shift_mean, expected):
    x, mask = T([[2.0, 4.0, 6.0, 1000.0]]), T([[1, 1, 1, 0]])
    torch.testing.assert_close(masked_whiten(x, mask, shift_mean=shift_mean), T([expected]))


def test_masked_mean_and_var():
    x, mask = T([[1.0, 2.0], [3.0, 50.0]]), T([[1, 1], [1, 0]])
    assert masked_mean(x, mask).item() == pytest.approx(2.0)
    torch.testing.assert_close(masked_mean(x, mask, dim=1), T([1.5, 3.0]))
    assert masked_var(x, mask, unbiased=False).item() == pytest.approx(2 / 3)
    assert masked_var(x, mask).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2 valid positions"):
        masked_var(x, T([[1, 0], [0, 0]]))


def test_per_token_rewards_places_score_on_last_valid_token():
    scores = T([1.0, 2.0, -1.0])
    kl = T([[0.1, 0.2, 0.3], [0.5, 0.6, 9.0], [0.4, 8.0, 9.0]])
    mask = T([[1, 1, 1], [1, 1, 0], [1, 0, 0]])
    rewards, non_score = per_token_rewards(scores, kl, mask, kl_coef=0.1)
    torch.testing.assert_close(non_score, T([[-0.01, -0.02, -0.03], [-0.05, -0.06, 0.0], [-0.04, 0.0, 0.0]]))
    torch.testing.assert_close(rewards, T([[-0.01, -0.02, 0.97], [-0.05, 1.94, 0.0], [-1.04, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"rows \[1\] have no valid token"):
        per_token_rewards(scores, kl, T([[1, 1, 1], [0, 0, 0], [1, 0, 0]]), kl_coef=0.1)


@pytest.mark.parametrize(
    "row, expected",
    [
        ([False, True, False, True], 1),
        ([True, True, True, True], 0),
        ([False, False, False, False], 4),  # none -> T
        ([False, False, False, True], 3),
    ],
)
def test_first_true_indices(row, expected):
    assert first_true_indices(torch.tensor([row])).tolist() == [expected]


def test_last_valid_indices():
    assert last_valid_indices(T([[1, 1, 0], [1, 1, 1], [1, 0, 0]])).tolist() == [1, 2, 0]


def test_explained_variance_by_hand():
    # returns [1, 2, 4] (var 14/9), residual [0, 0, 1] (var 2/9): 1 - 1/7 = 6/7; padding ignored.
    values, returns, mask = T([[1.0, 2.0, 3.0, 9.0]]), T([[1.0, 2.0, 4.0, -9.0]]), T([[1, 1, 1, 0]])
    assert explained_variance(values, returns, mask) == pytest.approx(6 / 7, rel=1e-6)
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)
    assert math.isnan(explained_variance(values, T([[2.0, 2.0, 2.0, 0.0]]), mask))
