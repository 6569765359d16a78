"""Paired bootstrap intervals of ratios of means."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oxidize_ml.evaluation.bootstrap import bootstrap_indices, paired_ratio_ci, ratio_of_means


def test_ratio_of_means_skips_non_finite_units() -> None:
    assert ratio_of_means(np.array([1.0, 2.0, np.nan]), np.array([2.0, 2.0, 5.0])) == 0.75
    assert math.isnan(ratio_of_means(np.array([1.0]), np.array([0.0])))
    with pytest.raises(ValueError, match="equal length"):
        ratio_of_means(np.array([1.0]), np.array([1.0, 2.0]))


def test_pairing_cancels_what_units_share() -> None:
    rng = np.random.default_rng(0)
    hard = rng.uniform(0.5, 20.0, size=40)  # window difficulty shared by both controllers
    x = hard * 0.9 * rng.uniform(0.98, 1.02, size=40)
    idx = bootstrap_indices(40, 2000, np.random.default_rng(1))
    lo, hi = paired_ratio_ci(x, hard, idx)
    assert lo < ratio_of_means(x, hard) < hi
    assert 0.88 < lo and hi < 0.92  # tight: the shared difficulty cancels
    # unpaired (independent resamples) the same data gives a much wider interval
    idx2 = bootstrap_indices(40, 2000, np.random.default_rng(2))
    unpaired = x[idx].sum(1) / hard[idx2].sum(1)
    assert np.percentile(unpaired, 97.5) - np.percentile(unpaired, 2.5) > 3 * (hi - lo)


def test_same_seed_same_interval_and_bad_shapes() -> None:
    x, y = np.arange(1.0, 11.0), np.arange(2.0, 12.0)
    a = paired_ratio_ci(x, y, bootstrap_indices(10, 500, np.random.default_rng(7)))
    b = paired_ratio_ci(x, y, bootstrap_indices(10, 500, np.random.default_rng(7)))
    assert a == b
    with pytest.raises(ValueError, match="indices"):
        paired_ratio_ci(x, y, np.zeros((5, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="level"):
        paired_ratio_ci(x, y, np.zeros((5, 10), dtype=np.int64), level=1.0)
    with pytest.raises(ValueError, match="n_units"):
        bootstrap_indices(0, 10, np.random.default_rng(0))
    # a reference that is zero everywhere has no defined ratio
    assert all(
        math.isnan(v)
        for v in paired_ratio_ci(
            x, np.zeros(10), bootstrap_indices(10, 100, np.random.default_rng(0))
        )
    )
