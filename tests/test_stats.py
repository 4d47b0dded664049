"""Running statistics (`rlaif.stats`): what PPO's running reward normalisation relies on."""

from __future__ import annotations

import pytest

from rlaif.stats import RunningMoments


def test_running_moments_merge_batches_exactly():
    stats = RunningMoments()
    stats.update([1.0, 2.0, 3.0])
    stats.update([4.0, 5.0])
    assert (stats.mean, stats.var, stats.count) == (pytest.approx(3.0), pytest.approx(2.0), 5)
    assert stats.normalize(5.0) == pytest.approx(2.0 / 2.0**0.5)
    restored = RunningMoments()
    restored.load_state_dict(stats.state_dict())
    assert restored.state_dict() == stats.state_dict()
