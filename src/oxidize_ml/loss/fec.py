"""FEC policy: from a predicted loss probability to a block-code redundancy.

Code model (REFERENCES section 3): block FEC with ``k`` data packets plus
``r`` repair packets from an MDS code (Reed-Solomon): the block is recovered
when at most ``r`` of its ``n = k + r`` packets are lost. Losses are taken as
independent with probability ``p`` per packet, so the number lost is
Binomial(n, p) and

    block failure   F(p; k, r) = P(Binomial(k + r, p) > r)
    residual loss   R(p; k, r) = sum_{L = r+1}^{n} P(L lost) * L / n

R is the expected share of *data* packets left unrecovered: when the block
fails, the L lost packets are a uniform draw of the n positions, so L k / n of
them are data on average; R <= F always. ``redundancy_ratio`` is r / (k + r),
the share of sent packets that are repair packets (the `FecDecision`
convention), not r / k.

`FecPolicy.decide` picks the smallest ``r`` with F <= ``target_residual``,
capped so the ratio never exceeds ``max_redundancy_ratio``. Because F grows
with p for a fixed r, "smallest r" is a step function of p whose steps are
computed once at construction: threshold t_r = the largest p for which r
repair packets still meet the target (found by bisection to 1e-15). That table
is exact where a grid over p would be off by up to one cell, and `decide` is a
`bisect` over at most ``r_max + 1`` floats. Independent losses are the
optimistic case: bursty (Gilbert-Elliott) loss within a block needs more
repair than this table gives, which evaluations should measure with
`residual_loss` on the realised per-block losses.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from typing import NamedTuple

from oxidize_ml.loss.block_code import (
    block_failure_probability,
    failure_probability,
    residual_loss,
)
from oxidize_ml.loss.configs import (
    BurstFecConfig,
    FecConfig,
    max_repair_packets,
)
from oxidize_ml.types import FecDecision, make_fec_decision

__all__ = [
    "SEVERITY_SCALE_GRID",
    "BurstFecConfig",
    "BurstFecPolicy",
    "FecConfig",
    "FecPolicy",
    "FecTableRow",
    "block_failure_probability",
    "residual_loss",
]
"""the policies, with the configs and block-code functions they are built from
(importable from here as before the configs and the arithmetic moved out)"""

_DEFAULT_FEC_CONFIG = FecConfig()

_BISECT_STEPS = 60
"""halvings of [0, 1]: 2^-60 is below float64 resolution near the thresholds"""


class FecTableRow(NamedTuple):
    """One step of the FEC table: from ``p_threshold`` upwards use ``r`` repair packets."""

    p_threshold: float
    """smallest predicted loss the row applies to (the next row's threshold ends it)"""
    r: int
    """repair packets per block of ``k_data_packets``"""
    ratio: float
    """r / (k + r)"""


class FecPolicy:
    """Predicted loss probability -> `FecDecision`, by an exact lookup table.

    Parameters
    ----------
    config
        Block size, residual target, cap and protection floor.

    Examples
    --------
    >>> fec = FecPolicy()
    >>> fec.decide(0.0).inject_fec
    False
    >>> d = fec.decide(0.05)
    >>> d.inject_fec, fec.repair_packets(0.05), round(d.redundancy_ratio, 4)
    (True, 4, 0.2857)
    """

    __slots__ = (
        "_k",
        "_memo",
        "_min_p",
        "_r_max",
        "_ratios",
        "_rows",
        "_thresholds",
        "config",
    )

    def __init__(self, config: FecConfig = _DEFAULT_FEC_CONFIG) -> None:
        if not isinstance(config, FecConfig):
            raise TypeError(f"config must be a FecConfig, got {type(config).__name__}")
        self.config = config
        k = config.k_data_packets
        self._k = k
        self._r_max = max_repair_packets(k, config.max_redundancy_ratio)
        self._min_p = config.min_loss_to_protect
        target = config.target_residual
        # t_r = sup{p : F(p; k, r) <= target}; F(0) = 0 <= target < 1 = F(1).
        thresholds: list[float] = []
        for r in range(self._r_max + 1):
            lo, hi = 0.0, 1.0
            for _ in range(_BISECT_STEPS):
                mid = 0.5 * (lo + hi)
                if failure_probability(mid, r, k) <= target:
                    lo = mid
                else:
                    hi = mid
            thresholds.append(lo)
        self._thresholds = thresholds
        self._ratios = [r / (k + r) for r in range(self._r_max + 1)]
        self._rows = self._build_rows()
        # (p, decision) in ONE attribute: engines forked for many connections share
        # this policy from several threads, and a pair of attributes could be read
        # half-updated (p of one call, decision of another).
        self._memo = (0.0, FecDecision(0.0, 0.0, False))

    def _build_rows(self) -> tuple[FecTableRow, ...]:
        rows = [FecTableRow(0.0, 0, 0.0)]
        r_cur = 0
        if self._min_p > 0.0:
            r0 = self._r_for(self._min_p)
            if r0 > 0:
                rows.append(FecTableRow(self._min_p, r0, self._ratios[r0]))
            r_cur = r0
        for r in range(r_cur + 1, self._r_max + 1):
            rows.append(FecTableRow(self._thresholds[r - 1], r, self._ratios[r]))
        return tuple(rows)

    def _r_for(self, p: float) -> int:
        r = bisect_left(self._thresholds, p)
        return min(r, self._r_max)

    @property
    def r_max(self) -> int:
        """most repair packets per block allowed by ``max_redundancy_ratio``"""
        return self._r_max

    @property
    def max_protected_loss(self) -> float:
        """largest p for which the capped code still meets ``target_residual``"""
        return self._thresholds[self._r_max]

    def repair_packets(self, p: float) -> int:
        """Repair packets per block of ``k_data_packets`` for predicted loss ``p``."""
        if not 0.0 <= p <= 1.0:  # also rejects NaN
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        if p < self._min_p:
            return 0
        return self._r_for(p)

    def decide(self, p: float) -> FecDecision:
        """The FEC decision for predicted per-packet loss probability ``p`` in [0, 1].

        ``inject_fec`` is False (ratio 0) below ``min_loss_to_protect``.
        Above `max_protected_loss` the cap holds and the target is not met.
        """
        # Building a FecDecision is most of the cost (about 0.25 us with
        # `make_fec_decision`), and callers often ask again with the same p (one
        # prediction per window, one decision per block): keep the last answer.
        # Decisions are immutable.
        memo = self._memo
        if p == memo[0]:
            return memo[1]
        if not 0.0 <= p <= 1.0:  # also rejects NaN
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        if p < self._min_p:
            d = make_fec_decision(float(p), 0.0, False)
        else:
            r = bisect_left(self._thresholds, p)
            r = min(r, self._r_max)
            d = make_fec_decision(float(p), self._ratios[r], r > 0)
        self._memo = (p, d)
        return d

    def table(self) -> tuple[FecTableRow, ...]:
        """The steps of the decision: each row applies from its ``p_threshold`` up
        to the next row's (exclusive of the boundary to within 1e-15)."""
        return self._rows

    def format_table(self) -> str:
        """`table` as a Markdown table (for the README)."""
        c = self.config
        lines = [
            (
                f"k = {c.k_data_packets}, block failure target {c.target_residual:g}, "
                f"ratio cap {c.max_redundancy_ratio:g}, no FEC below p = {c.min_loss_to_protect:g}"
            ),
            "",
            "| predicted loss p from | repair r | ratio r/(k+r) |",
            "|---|---|---|",
        ]
        lines += [f"| {row.p_threshold:.4%} | {row.r} | {row.ratio:.3f} |" for row in self._rows]
        lines.append(
            f"\nAbove p = {self.max_protected_loss:.4%} the cap r = {self._r_max} no longer "
            "meets the target."
        )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"FecPolicy({self.config})"


# ---------------------------------------------------------------- burst-aware policy


SEVERITY_SCALE_GRID: tuple[float, ...] = tuple(2.0 ** (e / 4.0) for e in range(-12, 13))
"""severity scales `BurstFecPolicy` keeps a table for: 1/8 to 8 in quarter-octave steps"""
_LOG2_STEP = 0.25


def _scale_index(scale: float) -> int:
    """Index of the `SEVERITY_SCALE_GRID` entry nearest ``scale`` in log scale."""
    i = round(math.log2(scale) / _LOG2_STEP) + 12
    return min(max(i, 0), len(SEVERITY_SCALE_GRID) - 1)


def _hull_table(
    gains: list[float], r_max: int, price: float
) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """(q thresholds, r steps) maximising q G(r) - price r (see `BurstFecPolicy`)."""
    # Upper concave hull of (r, G(r)) from r = 0 (G is nondecreasing in r).
    hull = [0]
    for r in range(1, r_max + 1):
        if gains[r] <= gains[hull[-1]]:
            continue
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b is under the chord a -> r: drop it
            if (gains[b] - gains[a]) * (r - a) <= (gains[r] - gains[a]) * (b - a):
                hull.pop()
            else:
                break
        hull.append(r)
    thresholds: list[float] = []
    steps = [0]
    for a, b in itertools.pairwise(hull):
        thresholds.append(price * (b - a) / (gains[b] - gains[a]))
        steps.append(b)
    return tuple(thresholds), tuple(steps)


class BurstFecPolicy:
    """Redundancy from P(the block loses) and the burst-severity distribution.

    The binomial table (`FecPolicy`) spreads a predicted per-packet rate ``p``
    evenly over every block. Cellular loss does not look like that: a block
    is either clean or inside an episode that loses 10-25 % of its packets,
    and one or two repair packets do nothing against a burst longer than
    them. With q = P(the block is in an episode) and S the severity
    distribution, r repair packets save, in expectation,

        q G(r),   G(r) = E_S[R(S; k, 0) - R(S; k, r)]      (`residual_loss`)

    and the policy sends the r maximising ``q G(r) - repair_price r``. The
    maximiser is a step function of q whose steps are the vertices of the
    upper concave hull of (r, G(r)): from q_j = price (r_j - r_i) / (G(r_j) -
    G(r_i)) upward the next vertex r_j wins, so small r that do not pay
    (inside the hull) are skipped: the policy jumps straight to a block
    that survives a typical burst. Computed once; `decide` is a bisect.

    `decide_block` takes q and the connection's severity scale (the severity
    quantiles are multiplied by it: one table per scale of
    `SEVERITY_SCALE_GRID`, built on first use). ``decide(p)`` is the single-
    number interface of `FecPolicy`: it reads q = min(1, p / mean severity)
    at scale 1, exact only for a predictor whose p is q x the fitted mean.
    """

    __slots__ = (
        "_gains",
        "_k",
        "_mean_sev",
        "_memo",
        "_q_thresholds",
        "_r_max",
        "_r_steps",
        "_scaled",
        "config",
    )

    def __init__(self, config: BurstFecConfig) -> None:
        if not isinstance(config, BurstFecConfig):
            raise TypeError(f"config must be a BurstFecConfig, got {type(config).__name__}")
        self.config = config
        k = config.k_data_packets
        self._k = k
        self._r_max = max_repair_packets(k, config.max_redundancy_ratio)
        sev = config.severity
        base = [residual_loss(s, 0, k) for s in sev]
        gains = []
        for r in range(self._r_max + 1):
            gains.append(
                math.fsum(b - residual_loss(s, r, k) for s, b in zip(sev, base, strict=True))
                / len(sev)
            )
        self._gains = tuple(gains)
        self._mean_sev = config.mean_severity
        self._q_thresholds, self._r_steps = _hull_table(gains, self._r_max, config.repair_price)
        # One table per severity scale on a log grid (the scale is the connection's own
        # severity over the fitted one, `BurstLossPredictor.severity_scale`), built on
        # first use: most connections visit a few scales.
        self._scaled: list[tuple[tuple[float, ...], tuple[int, ...]] | None] = [None] * len(
            SEVERITY_SCALE_GRID
        )
        self._memo = (-1.0, FecDecision(0.0, 0.0, False))  # one attribute: see FecPolicy

    @property
    def r_max(self) -> int:
        return self._r_max

    @property
    def gains(self) -> tuple[float, ...]:
        """G(r) for r = 0..r_max: expected residual saved per lossy block"""
        return self._gains

    def table(self) -> tuple[tuple[float, int], ...]:
        """(q threshold, r) steps: r applies from its threshold up to the next one."""
        return ((0.0, 0), *zip(self._q_thresholds, self._r_steps[1:], strict=True))

    def repair_for_block_probability(self, q: float, severity_scale: float = 1.0) -> int:
        """r for block-loss probability ``q`` in [0, 1] and a severity scale > 0 (the
        nearest of `SEVERITY_SCALE_GRID` in log scale; 1.0: the fitted severity)."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be a probability in [0, 1], got {q!r}")
        if severity_scale == 1.0:
            thresholds, steps = self._q_thresholds, self._r_steps
        else:
            if not 0.0 < severity_scale < math.inf:  # also rejects NaN
                raise ValueError(f"severity_scale must be > 0 and finite, got {severity_scale!r}")
            i_s = _scale_index(severity_scale)
            table = self._scaled[i_s]
            if table is None:
                table = self._scaled[i_s] = self._table_for(SEVERITY_SCALE_GRID[i_s])
            thresholds, steps = table
        # At exactly a threshold the two choices tie; take the larger r.
        i = bisect_left(thresholds, q)
        if i < len(thresholds) and thresholds[i] == q:
            i += 1
        return steps[i]

    def _table_for(self, scale: float) -> tuple[tuple[float, ...], tuple[int, ...]]:
        k = self._k
        sev = [min(1.0, x * scale) for x in self.config.severity]
        base = [residual_loss(x, 0, k) for x in sev]
        gains = [
            math.fsum(b - residual_loss(x, r, k) for x, b in zip(sev, base, strict=True)) / len(sev)
            for r in range(self._r_max + 1)
        ]
        return _hull_table(gains, self._r_max, self.config.repair_price)

    def decide_block(self, q: float, severity_scale: float = 1.0) -> FecDecision:
        """The FEC decision from P(the block loses) and the connection's severity scale
        (`oxidize_ml.loss.burst.BurstLossPredictor.block_loss_probability` and
        ``severity_scale``); ``loss_probability`` of the decision is the expected
        per-packet loss q x mean severity x scale."""
        r = self.repair_for_block_probability(q, severity_scale)
        p = min(1.0, q * self._mean_sev * severity_scale)
        return make_fec_decision(p, r / (self._k + r), r > 0)

    def repair_packets(self, p: float) -> int:
        """r for per-packet loss ``p`` in [0, 1] (q = min(1, p / mean severity))."""
        if not 0.0 <= p <= 1.0:  # also rejects NaN
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        return self.repair_for_block_probability(min(1.0, p / self._mean_sev))

    def decide(self, p: float) -> FecDecision:
        """The FEC decision for predicted per-packet loss ``p`` in [0, 1]."""
        memo = self._memo
        if p == memo[0]:
            return memo[1]
        r = self.repair_packets(p)
        d = make_fec_decision(float(p), r / (self._k + r), r > 0)
        self._memo = (p, d)
        return d

    def __repr__(self) -> str:
        return f"BurstFecPolicy(steps={self.table()})"
