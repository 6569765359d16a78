"""Hyperparameters of the loss predictors that the optional compiled build compiles.

`BurstLossConfig` and the feature layout its weights are checked against are
read by `burst`, which ``OXIDIZE_ML_COMPILE=1`` compiles with mypyc (see
``docs/decisions.md``, "Compiled build"). They stay plain Python here, as
`oxidize_ml.congestion.configs` explains; every name is still importable from
`oxidize_ml.loss.burst`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from oxidize_ml._validate import check_number

__all__ = [
    "FEATURE_VERSION",
    "N_WEIGHTS",
    "BurstLossConfig",
    "feature_names",
]

FEATURE_VERSION = 3
"""version of the `BurstFeatures` layout; weights of another version are refused (3: the
queue signals and min RTT come from ``buffer_occupancy``, 2 kept a running min of srtt)"""


TSL_EDGES_S: tuple[float, ...] = (0.005, 0.015, 0.035, 0.075, 0.15, 0.3, 0.6, 1.2, 2.5, 5.0)
"""time-since-loss bucket edges, seconds (log-spaced: the hazard changes fastest early)"""
PHASE_EDGES: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9, 1.1, 1.5, 2.0, 3.0)
"""episode-phase bucket edges (time since loss / typical gap between episodes)"""

N_TSL = len(TSL_EDGES_S) + 1
N_PHASE = len(PHASE_EDGES) + 2
DENSE_NAMES: tuple[str, ...] = (
    "sqrt_fast_loss",
    "sqrt_slow_loss",
    "log_episodes",
    "burst_severity",
    "queue_vs_loss_queue",
    "no_loss_yet",
    "rtt_gradient",
    "delivery_rate_trend",
    "jitter_ratio",
    "queue_share",
    "queue_vs_max",
    "sqrt_loss_last_rtt",
    "sqrt_loss_prev_rtt",
    "inflight_vs_loss",
    "cwnd_vs_loss",
    "log_bdp_ratio",
    "cwnd_growth",
)
N_DENSE = len(DENSE_NAMES)
LONG_DENSE: tuple[int, ...] = (0, 4, 13)
"""dense features that also get a long-RTT copy: fast loss, queue vs loss queue, inflight
vs loss inflight (copying all of them fitted the training traces better and the
validation traces no better)"""
LONG_NAMES: tuple[str, ...] = ("long_rtt", *(f"long_rtt_x_{DENSE_NAMES[i]}" for i in LONG_DENSE))

OFF_TSL = 1
OFF_PHASE = OFF_TSL + N_TSL
OFF_DENSE = OFF_PHASE + N_PHASE
OFF_TSL_LONG = OFF_DENSE + N_DENSE
OFF_LONG = OFF_TSL_LONG + N_TSL
N_WEIGHTS = OFF_LONG + len(LONG_NAMES)
"""length of the weight vector: bias, one-hots, dense features, long-RTT group"""


def feature_names() -> tuple[str, ...]:
    """Names of the `BurstFeatures.vector` entries, in order (for reports and fits)."""
    tsl = [f"tsl<{e:g}s" for e in TSL_EDGES_S] + [f"tsl>={TSL_EDGES_S[-1]:g}s"]
    ph = [f"phase<{e:g}" for e in PHASE_EDGES] + [f"phase>={PHASE_EDGES[-1]:g}", "phase_none"]
    return ("bias", *tsl, *ph, *DENSE_NAMES, *(f"long_rtt_x_{n}" for n in tsl), *LONG_NAMES)


@dataclass(frozen=True, slots=True)
class BurstLossConfig:
    """Fitted parameters of `BurstLossPredictor` (see `oxidize_ml.training.loss_burst`)."""

    weights: tuple[float, ...]
    """logistic-regression weights, `N_WEIGHTS` long, `feature_names` order"""
    severity: tuple[float, ...]
    """quantiles of the per-packet loss rate of a window given it has loss, ascending,
    each in (0, 1]: the burst-severity distribution FEC is sized against"""
    feature_version: int = FEATURE_VERSION
    """`FEATURE_VERSION` the weights were fitted for"""

    def __post_init__(self) -> None:
        if self.feature_version != FEATURE_VERSION:
            raise ValueError(
                f"feature_version must be {FEATURE_VERSION} (this package's "
                f"burst features), got {self.feature_version!r}"
            )
        w = tuple(self.weights)
        if len(w) != N_WEIGHTS:
            raise ValueError(f"weights must have {N_WEIGHTS} entries, got {len(w)}")
        for i, x in enumerate(w):
            check_number(f"weights[{i}]", x, lo=None)
        s = tuple(self.severity)
        if not 1 <= len(s) <= 256:
            raise ValueError(f"severity must have 1-256 quantiles, got {len(s)}")
        for i, x in enumerate(s):
            if check_number(f"severity[{i}]", x, hi=1.0) <= 0.0:
                raise ValueError(f"severity[{i}] must be in (0, 1], got {x!r}")
        if any(b < a for a, b in itertools.pairwise(s)):
            raise ValueError("severity quantiles must be ascending")
        object.__setattr__(self, "weights", tuple(float(x) for x in w))
        object.__setattr__(self, "severity", tuple(float(x) for x in s))

    @property
    def mean_severity(self) -> float:
        """mean per-packet loss rate of a lossy window"""
        return math.fsum(self.severity) / len(self.severity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": list(self.weights),
            "severity": list(self.severity),
            "feature_version": self.feature_version,
        }

    @classmethod
    def default(cls) -> BurstLossConfig:
        """The shipped fit (`oxidize_ml.loss.burst_weights`)."""
        from oxidize_ml.loss import burst_weights

        return cls(burst_weights.WEIGHTS, burst_weights.SEVERITY, burst_weights.FEATURE_VERSION)
