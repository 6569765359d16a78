"""Loss arithmetic of a (k + r, k) MDS block code (Reed-Solomon) under independent loss.

The block is recovered when at most ``r`` of its ``n = k + r`` packets are lost;
with per-packet loss probability ``p`` the number lost is Binomial(n, p), so

    block failure   F(p; k, r) = P(Binomial(k + r, p) > r)
    residual loss   R(p; k, r) = sum_{L = r+1}^{n} P(L lost) * L / n

(see `oxidize_ml.loss.fec`, whose policies are built on these). Kept apart
from the policies because these are checked functions users call with their
own numbers, and the optional compiled build compiles the policies only.
"""

from __future__ import annotations

import math

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.loss.configs import MAX_BLOCK_PACKETS

__all__ = ["block_failure_probability", "failure_probability", "residual_loss"]


def _pmf(n: int, p: float) -> list[float]:
    """P(Binomial(n, p) = L) for L = 0..n."""
    q = 1.0 - p
    return [math.comb(n, i) * p**i * q ** (n - i) for i in range(n + 1)]


def _check_block(p: object, r: object, k: object) -> tuple[float, int, int]:
    pv = check_number("p", p, hi=1.0)
    rv = check_int("r", r, lo=0)
    kv = check_int("k", k, lo=1)
    if kv + rv > MAX_BLOCK_PACKETS:
        raise ValueError(f"k + r must be <= {MAX_BLOCK_PACKETS}, got {kv + rv}")
    return pv, rv, kv


def block_failure_probability(p: float, r: int, k: int) -> float:
    """P(Binomial(k + r, p) > r): the chance an MDS block is not recoverable.

    Summed over the tail directly (not ``1 - head``) so tiny probabilities keep
    their precision.
    """
    pv, rv, kv = _check_block(p, r, k)
    return failure_probability(pv, rv, kv)


def failure_probability(p: float, r: int, k: int) -> float:
    """`block_failure_probability` without the argument checks (for callers that
    made ``p``, ``r`` and ``k`` themselves)."""
    n = k + r
    return math.fsum(_pmf(n, p)[r + 1 :])


def residual_loss(p_true_per_packet_loss: float, r: int, k: int) -> float:
    """Expected share of data packets not recovered by a (k + r, k) MDS block code.

    Exact under independent per-packet loss ``p_true_per_packet_loss``: when
    more than ``r`` of the ``k + r`` packets are lost, nothing can be repaired
    and on average ``L k / (k + r)`` of the ``L`` lost packets are data.
    With ``r = 0`` this is ``p`` itself.

    Examples
    --------
    >>> round(residual_loss(0.05, 0, 10), 12)
    0.05
    >>> residual_loss(0.05, 3, 10) < 0.001
    True
    """
    p, r, k = _check_block(p_true_per_packet_loss, r, k)
    n = k + r
    pmf = _pmf(n, p)
    return math.fsum(pmf[i] * i for i in range(r + 1, n + 1)) / n
