"""KL controllers: fixed, adaptive (Ziegler et al. 2019), state round trip."""

from __future__ import annotations

import pytest

from rlaif.ppo.kl import AdaptiveKLController, FixedKLController, make_kl_controller


def test_fixed_controller_never_moves():
    ctl = make_kl_controller("fixed", 0.05)
    assert isinstance(ctl, FixedKLController)
    ctl.update(current_kl=100.0, n_steps=10_000)
    assert ctl.value == 0.05


@pytest.mark.parametrize(
    "current_kl, n_steps, expected",
    [
        # error 6.6/6 - 1 = 0.1 (inside the clip): mult 1 + 0.1 * 5000/10000 = 1.05
        (6.6, 5000, 0.2 * 1.05),
        # error 9/6 - 1 = 0.5 clipped to 0.2: mult 1 + 0.2 * 256/10000 = 1.00512
        (9.0, 256, 0.2 * 1.00512),
        # error 3/6 - 1 = -0.5 clipped to -0.2: mult 1 - 0.2 * 1000/10000 = 0.98
        (3.0, 1000, 0.2 * 0.98),
        # KL on target: no change
        (6.0, 1000, 0.2),
        # KL 0 gives error -1, clipped to -0.2: mult 1 - 0.2 * 10000/10000 = 0.8
        (0.0, 10000, 0.2 * 0.8),
    ],
)
def test_adaptive_update_by_hand(current_kl, n_steps, expected):
    ctl = make_kl_controller("adaptive", 0.2, target=6.0, horizon=10000)
    ctl.update(current_kl, n_steps)
    assert ctl.value == pytest.approx(expected, rel=1e-12)


def test_adaptive_updates_compound():
    ctl = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    ctl.update(9.0, 256)  # x 1.00512
    ctl.update(3.0, 1000)  # x 0.98
    assert ctl.value == pytest.approx(0.2 * 1.00512 * 0.98, rel=1e-12)


def test_state_dict_round_trip():
    ctl = AdaptiveKLController(0.2, target=6.0, horizon=500)
    ctl.update(9.0, 100)
    fresh = AdaptiveKLController(1.0, target=1.0, horizon=1)
    fresh.load_state_dict(ctl.state_dict())
    assert (fresh.value, fresh.target, fresh.horizon) == (ctl.value, 6.0, 500)
    fixed = FixedKLController(0.3)
    with pytest.raises(ValueError, match="cannot load a 'adaptive'"):
        fixed.load_state_dict(ctl.state_dict())
    other = FixedKLController(0.0)
    other.load_state_dict(fixed.state_dict())
    assert other.value == 0.3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "adaptive", "kl_coef": 0.2}, "needs a target KL"),
        ({"kind": "adaptive", "kl_coef": 0.2, "target": 0.0}, "target must be > 0"),
        ({"kind": "adaptive", "kl_coef": 0.2, "target": 6.0, "horizon": 0}, "horizon must be > 0"),
        ({"kind": "linear", "kl_coef": 0.2}, "not one of 'fixed', 'adaptive'"),
    ],
)
def test_make_kl_controller_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_kl_controller(**kwargs)
