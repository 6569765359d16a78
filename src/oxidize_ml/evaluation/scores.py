"""Scores shared by the evaluations: PR-AUC, ROC-AUC, Brier, regret, curve interpolation.

numpy only, exact (no binning), and explicit about degenerate inputs: a score
that is undefined for the data (PR-AUC without a single positive, ROC-AUC
without both classes) is ``nan``, never a silent 0 or 1, so a report shows
"n/a" rather than a misleading number.

Loss prediction is scored as REFERENCES section 3 asks: PR-AUC on
"label > 0" (losses are rare, so ROC-AUC flatters) and the Brier score of the
predicted probability against the label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def _pair(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"y_true and scores must be 1-D, got shapes {y.shape} and {s.shape}")
    if y.shape != s.shape:
        raise ValueError(f"y_true and scores differ in length: {y.shape[0]} != {s.shape[0]}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite (no NaN or infinity)")
    if y.dtype != np.bool_:
        yf = np.asarray(y, dtype=np.float64)
        if not np.all((yf == 0.0) | (yf == 1.0)):
            raise ValueError("y_true must be boolean or 0/1")
        y = yf.astype(np.bool_)
    return y, s


def precision_recall_curve(
    y_true: ArrayLike, scores: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall at every distinct score threshold (predict positive if >= t).

    Parameters
    ----------
    y_true
        ``[n]`` booleans (or 0/1).
    scores
        ``[n]`` finite scores, larger = more likely positive.

    Returns
    -------
    precision, recall, thresholds
        ``[m]`` each, thresholds in decreasing order; tied scores form one
        point (a threshold cannot separate them). With no positives, recall
        is ``nan`` everywhere.
    """
    y, s = _pair(y_true, scores)
    if y.size == 0:
        empty = np.empty(0)
        return empty, empty, empty
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    tp = np.cumsum(y_sorted, dtype=np.float64)
    fp = np.cumsum(~y_sorted, dtype=np.float64)
    # the last index of each run of equal scores: the threshold includes all ties
    last = np.flatnonzero(np.diff(s_sorted) != 0.0)
    last = np.append(last, s_sorted.size - 1)
    tp, fp = tp[last], fp[last]
    precision = tp / (tp + fp)
    n_pos = float(y.sum())
    recall = tp / n_pos if n_pos > 0 else np.full(tp.shape, math.nan)
    return precision, recall, s_sorted[last]


def pr_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Average precision: the area under the precision-recall step curve, exactly.

    ``AP = sum_k (R_k - R_{k-1}) P_k`` over distinct thresholds in decreasing
    order (``R_0 = 0``), the definition of scikit-learn's
    ``average_precision_score``: no interpolation, so it is not optimistic.
    Tied scores are one threshold (their positives and negatives enter
    together). A constant score gives the positive base rate, which is also
    the expected AP of a random ranking.

    Returns
    -------
    float
        In [0, 1]; ``nan`` when ``y_true`` has no positive (recall is
        undefined, so is the curve), including an empty input.

    Examples
    --------
    >>> pr_auc([True, False, True, False], [0.9, 0.8, 0.7, 0.1])
    0.8333333333333333
    >>> pr_auc([True, False], [0.5, 0.5])
    0.5
    >>> import math; math.isnan(pr_auc([False, False], [0.1, 0.2]))
    True
    """
    precision, recall, _ = precision_recall_curve(y_true, scores)
    if recall.size == 0 or math.isnan(float(recall[0])):
        return math.nan
    steps = np.diff(recall, prepend=0.0)
    return float(np.sum(steps * precision))


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties).

    The probability that a random positive scores above a random negative,
    ties counting one half. ``nan`` unless both classes are present.

    Examples
    --------
    >>> roc_auc([True, False, True, False], [0.9, 0.8, 0.7, 0.1])
    0.75
    >>> roc_auc([True, False], [0.3, 0.3])
    0.5
    """
    y, s = _pair(y_true, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    ranks = np.empty(s.size, dtype=np.float64)
    # average rank (1-based) of each run of equal scores
    bounds = np.flatnonzero(np.diff(s_sorted) != 0.0) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [s.size]))
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def brier(p: ArrayLike, y: ArrayLike) -> float:
    """Mean squared error of probabilities ``p`` against outcomes ``y`` (both in [0, 1]).

    ``y`` may be real-valued: the loss label is the mean loss rate of the
    horizon window, not just 0/1 (`oxidize_ml.loss`). ``nan`` for empty input.

    Examples
    --------
    >>> round(brier([0.1, 0.9], [0, 1]), 12)
    0.01
    """
    pa = np.asarray(p, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if pa.shape != ya.shape or pa.ndim != 1:
        raise ValueError(f"p and y must be 1-D of equal length, got {pa.shape} and {ya.shape}")
    if pa.size == 0:
        return math.nan
    for name, a in (("p", pa), ("y", ya)):
        if not np.all((a >= 0.0) & (a <= 1.0)):  # also rejects NaN
            raise ValueError(f"{name} must hold probabilities in [0, 1]")
    return float(np.mean((pa - ya) ** 2))


def cumulative_regret(chosen_reward: ArrayLike, oracle_reward: ArrayLike) -> np.ndarray:
    """``cumsum(oracle - chosen)``: regret accumulated after each step.

    Both ``[T]``; the oracle's reward is the best achievable at each step
    (per-step oracle, so the regret of a policy that always picks the best
    arm is exactly 0).
    """
    c = np.asarray(chosen_reward, dtype=np.float64)
    o = np.asarray(oracle_reward, dtype=np.float64)
    if c.shape != o.shape or c.ndim != 1:
        raise ValueError(f"rewards must be 1-D of equal length, got {c.shape} and {o.shape}")
    return np.cumsum(o - c)


def mean_curve(curves: Sequence[ArrayLike]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over runs of equal-length curves (``[runs, T]``)."""
    a = np.asarray([np.asarray(c, dtype=np.float64) for c in curves])
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(
            f"curves must be a non-empty list of equal-length 1-D arrays, got {a.shape}"
        )
    return a.mean(axis=0), a.std(axis=0)


def interpolate_at(x: ArrayLike, y: ArrayLike, x0: float) -> float:
    """Piecewise-linear ``y`` at ``x0`` on a curve given by points ``(x, y)``.

    Points are sorted by ``x`` (duplicates of x: the smallest y is kept, the
    best a method achieves at that cost); ``nan`` when ``x0`` lies outside
    the curve's range (no extrapolation: a method that never reached that
    overhead has no value there).
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1 or xa.size == 0:
        raise ValueError(
            f"x and y must be non-empty 1-D of equal length, got {xa.shape}, {ya.shape}"
        )
    order = np.lexsort((ya, xa))
    xs, ys = xa[order], ya[order]
    keep = np.concatenate(([True], np.diff(xs) > 0.0))
    xs, ys = xs[keep], ys[keep]
    if not xs[0] <= x0 <= xs[-1]:
        return math.nan
    return float(np.interp(x0, xs, ys))
