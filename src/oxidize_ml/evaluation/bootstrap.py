"""Paired bootstrap confidence intervals for ratios of means over evaluation units.

Evaluations compare a candidate with a reference on the same units (trace
windows, scenarios): unit ``i`` gives ``x[i]`` for the candidate and ``y[i]``
for the reference. The aggregate is the ratio of means ``sum x / sum y``;
its confidence interval comes from resampling *units* with replacement and
recomputing the ratio with the same resampled units on both sides (paired),
so what the two have in common (a hard window is hard for both) cancels.
Percentile intervals (Efron and Tibshirani 1993, ch. 13): with the few
units an evaluation has, they are honest about the spread without assuming
normality.

Every function takes its index matrix (or a seeded generator) from the
caller: the same seed gives the same interval, and one index matrix can be
shared by every candidate and metric of a run, so their intervals resample
the same units.
"""

from __future__ import annotations

import math

import numpy as np

from oxidize_ml._validate import check_int, check_number

DEFAULT_ROUNDS = 2000
"""bootstrap replicates: the 2.5 % and 97.5 % percentiles then rest on 50 replicates each"""


def bootstrap_indices(n_units: int, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """``[rounds, n_units]`` int64 unit indices drawn with replacement.

    Raises ``ValueError`` when ``n_units < 1`` or ``rounds < 1``; the matrix
    has at most ``rounds * n_units`` entries, both bounded by the caller's
    validated configuration.
    """
    check_int("n_units", n_units, lo=1)
    check_int("rounds", rounds, lo=1)
    return rng.integers(0, n_units, size=(rounds, n_units), dtype=np.int64)


def ratio_of_means(x: np.ndarray, y: np.ndarray) -> float:
    """``sum(x) / sum(y)`` over the units where both are finite (nan if none or the
    denominator is not positive)."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {xa.shape} and {ya.shape}")
    ok = np.isfinite(xa) & np.isfinite(ya)
    den = float(ya[ok].sum())
    if not ok.any() or not den > 0.0:
        return math.nan
    return float(xa[ok].sum()) / den


def paired_ratio_ci(
    x: np.ndarray, y: np.ndarray, indices: np.ndarray, *, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of `ratio_of_means` over paired resamples of the units.

    Parameters
    ----------
    x, y
        ``[n]`` candidate and reference values per unit; units where either is
        not finite are left out of each replicate (they carry no comparison).
    indices
        ``[rounds, n]`` from `bootstrap_indices` with the same ``n``.
    level
        Coverage of the interval, in (0, 1).

    Returns
    -------
    (lo, hi)
        nan when fewer than half of the replicates give a defined ratio.
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {xa.shape} and {ya.shape}")
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.shape[1] != xa.size:
        raise ValueError(f"indices must be [rounds, {xa.size}], got shape {idx.shape}")
    lvl = check_number("level", level)
    if not 0.0 < lvl < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    ok = np.isfinite(xa) & np.isfinite(ya)
    xs = np.where(ok, xa, 0.0)[idx]  # [rounds, n]
    ys = np.where(ok, ya, 0.0)[idx]
    num = xs.sum(axis=1)
    den = ys.sum(axis=1)
    valid = den > 0.0
    if valid.sum() * 2 < idx.shape[0]:
        return math.nan, math.nan
    ratios = num[valid] / den[valid]
    tail = (1.0 - lvl) / 2.0 * 100.0
    lo, hi = np.percentile(ratios, [tail, 100.0 - tail])
    return float(lo), float(hi)
