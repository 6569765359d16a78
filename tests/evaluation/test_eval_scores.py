"""Tests of the evaluation scores against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oxidize_ml.evaluation.scores import (
    brier,
    cumulative_regret,
    interpolate_at,
    mean_curve,
    pr_auc,
    precision_recall_curve,
    roc_auc,
)


def test_pr_auc_hand_computed():
    # ranks: P N P N -> precision 1 at recall 0.5, 2/3 at recall 1
    assert pr_auc([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # perfect ranking
    assert pr_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    # worst ranking of 1 positive among 4: precision 1/4 at recall 1
    assert pr_auc([1, 0, 0, 0], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.25)


def test_pr_auc_ties_are_one_threshold():
    # all scores tied: one point, precision = base rate
    assert pr_auc([1, 0, 0, 1, 0], [0.3] * 5) == pytest.approx(0.4)
    # tie between a positive and a negative at the top: P = 1/2 at R = 1/2, then 2/3 at R = 1
    assert pr_auc([1, 0, 1], [0.9, 0.9, 0.5]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    # order inside a tie must not matter
    assert pr_auc([0, 1, 1], [0.9, 0.9, 0.5]) == pr_auc([1, 0, 1], [0.9, 0.9, 0.5])


def test_pr_auc_no_positive_is_nan():
    assert math.isnan(pr_auc([0, 0, 0], [0.1, 0.5, 0.9]))
    assert math.isnan(pr_auc([], []))


def test_pr_auc_matches_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        y = rng.random(n) < 0.3
        if not y.any():
            y[0] = True
        s = np.round(rng.random(n), 1)  # many ties
        # brute force: sum over distinct thresholds of delta-recall x precision
        ap = 0.0
        prev_r = 0.0
        for t in sorted(set(s.tolist()), reverse=True):
            pred = s >= t
            tp = float((pred & y).sum())
            p = tp / pred.sum()
            r = tp / y.sum()
            ap += (r - prev_r) * p
            prev_r = r
        assert pr_auc(y, s) == pytest.approx(ap)


def test_precision_recall_curve_points():
    p, r, t = precision_recall_curve([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    np.testing.assert_allclose(p, [1.0, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(r, [0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(t, [0.9, 0.8, 0.7, 0.1])


def test_roc_auc_hand_computed_and_ties():
    assert roc_auc([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.75)
    assert roc_auc([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([1, 0, 0], [0.2, 0.2, 0.1]) == pytest.approx(0.75)
    assert math.isnan(roc_auc([1, 1], [0.1, 0.2]))


def test_brier_hand_computed():
    assert brier([0.1, 0.9], [0, 1]) == pytest.approx(0.01)
    assert brier([0.0, 0.5], [0.02, 0.5]) == pytest.approx(0.0002)  # real-valued labels
    assert math.isnan(brier([], []))
    with pytest.raises(ValueError, match="probabilities"):
        brier([1.2], [1.0])


def test_input_checks():
    with pytest.raises(ValueError, match="differ in length"):
        pr_auc([1, 0], [0.1])
    with pytest.raises(ValueError, match="boolean or 0/1"):
        pr_auc([0.5, 1.0], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        roc_auc([1, 0], [math.nan, 0.2])


def test_cumulative_regret_and_mean_curve():
    np.testing.assert_allclose(cumulative_regret([0.5, 1.0, 0.2], [1.0, 1.0, 0.7]), [0.5, 0.5, 1.0])
    np.testing.assert_allclose(cumulative_regret([1.0, 1.0], [1.0, 1.0]), [0.0, 0.0])
    mean, sd = mean_curve([[0, 2], [2, 4]])
    np.testing.assert_allclose(mean, [1, 3])
    np.testing.assert_allclose(sd, [1, 1])


def test_interpolate_at():
    # duplicate x keeps the smaller y; points need not be sorted
    x = [0.3, 0.1, 0.2, 0.2]
    y = [0.001, 0.02, 0.01, 0.015]
    assert interpolate_at(x, y, 0.15) == pytest.approx(0.015)
    assert interpolate_at(x, y, 0.25) == pytest.approx(0.0055)
    assert math.isnan(interpolate_at(x, y, 0.05))
    assert math.isnan(interpolate_at(x, y, 0.35))
