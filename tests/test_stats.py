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


# ------------------------------------------------------------------ cluster bootstrap


def test_cluster_bootstrap_resamples_whole_clusters():
    """Two clusters of ten items: cluster A mean 0.3, cluster B mean 0.9. Every draw of two
    clusters is AA (mean 0.3, p = 1/4), AB (0.6, p = 1/2) or BB (0.9, p = 1/4), so the 95%
    percentile interval is exactly [0.3, 0.9]; resampling the 20 items as if independent gives
    a far narrower one."""
    from rlaif.stats import bootstrap_mean_ci, cluster_bootstrap_mean_ci

    values = [0.2, 0.4] * 5 + [0.8, 1.0] * 5
    clusters = ["A"] * 10 + ["B"] * 10
    ci = cluster_bootstrap_mean_ci(values, clusters, n_boot=4000, seed=0)
    assert ci["estimate"] == pytest.approx(0.6)
    assert (ci["ci_low"], ci["ci_high"]) == (pytest.approx(0.3), pytest.approx(0.9))
    assert ci["n"] == 20 and ci["n_clusters"] == 2
    plain = bootstrap_mean_ci(values, n_boot=4000, seed=0)
    assert 0.4 < plain["ci_low"] < plain["ci_high"] < 0.8  # items as if independent: too narrow


def test_cluster_bootstrap_weighs_clusters_by_size():
    # A = [1, 1, 1] (3 items), B = [0] (1 item): draws AA -> 1, AB -> 3/4, BB -> 0
    from rlaif.stats import cluster_bootstrap_mean_ci

    ci = cluster_bootstrap_mean_ci([1.0, 1.0, 0.0, 1.0], ["A", "A", "B", "A"], n_boot=4000, seed=1)
    assert ci["estimate"] == pytest.approx(0.75)
    assert (ci["ci_low"], ci["ci_high"]) == (pytest.approx(0.0), pytest.approx(1.0))


def test_singleton_clusters_give_the_plain_bootstrap_for_the_same_seed():
    from rlaif.stats import bootstrap_mean_ci, cluster_bootstrap_mean_ci

    values = [0.31, -0.2, 0.05, 0.4, 0.12, -0.07, 0.22, 0.5, 0.0, 0.18]
    plain = bootstrap_mean_ci(values, n_boot=500, seed=3)
    single = cluster_bootstrap_mean_ci(values, [f"c{i}" for i in range(10)], n_boot=500, seed=3)
    for key in ("estimate", "ci_low", "ci_high"):
        assert single[key] == pytest.approx(plain[key], rel=1e-12, abs=1e-15), key
    assert single["n_clusters"] == 10
    with pytest.raises(ValueError, match="one label per value"):
        cluster_bootstrap_mean_ci(values, ["a"], n_boot=10)


def test_paired_difference_says_what_it_resampled():
    from rlaif.evaluation.comparison import paired_difference

    # k = 2 samples per prompt; per-prompt (after - before): p0 0.1, p1 0.3, p2 -0.1
    before, after = [0.5, 0.5, 0.2, 0.2, 0.6, 0.6], [0.6, 0.6, 0.5, 0.5, 0.5, 0.5]
    plain = paired_difference(after, before, k=2, n_boot=300, what="after - before")
    assert plain["estimate"] == pytest.approx(0.1) and plain["resampled"] == "prompts"
    clustered = paired_difference(after, before, k=2, clusters=["t1", "t1", "t2"], n_boot=300,
                                  what="after - before")
    assert clustered["resampled"] == "clusters" and clustered["n_clusters"] == 2
    assert "resampling 2 clusters" in clustered["method"] and "mean(after - before)" in clustered["method"]
    # t1 = {0.1, 0.3} (mean 0.2), t2 = {-0.1}: the draws are 0.2, (0.4 - 0.1) / 3 = 0.1 or -0.1
    assert (clustered["ci_low"], clustered["ci_high"]) == (pytest.approx(-0.1), pytest.approx(0.2))
