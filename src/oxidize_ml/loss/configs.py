"""Hyperparameters of the loss predictors that the optional compiled build compiles.

`EwmaLossConfig`, `BurstLossConfig` (with the feature layout the burst weights
are checked against), `FecConfig` and `BurstFecConfig` are read by `ewma`,
`burst` and `fec`, which ``OXIDIZE_ML_COMPILE=1`` compiles with mypyc (see
``docs/decisions.md``, "Compiled build"). They stay plain Python here, as
`oxidize_ml.congestion.configs` explains; every name is still importable from
the module that reads it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from oxidize_ml._validate import check_int, check_number

__all__ = [
    "FEATURE_VERSION",
    "MAX_BLOCK_PACKETS",
    "N_WEIGHTS",
    "BurstFecConfig",
    "BurstLossConfig",
    "EwmaLossConfig",
    "FecConfig",
    "feature_names",
    "max_repair_packets",
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


def _checked_severity(values: Any) -> tuple[float, ...]:
    """A lossy window's per-packet loss quantiles: 1-256 numbers in (0, 1], as floats."""
    s = tuple(values)
    if not 1 <= len(s) <= 256:
        raise ValueError(f"severity must have 1-256 quantiles, got {len(s)}")
    for i, x in enumerate(s):
        if check_number(f"severity[{i}]", x, hi=1.0) <= 0.0:
            raise ValueError(f"severity[{i}] must be in (0, 1], got {x!r}")
    return tuple(float(x) for x in s)


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
        s = _checked_severity(self.severity)
        if any(b < a for a, b in itertools.pairwise(s)):
            raise ValueError("severity quantiles must be ascending")
        object.__setattr__(self, "weights", tuple(float(x) for x in w))
        object.__setattr__(self, "severity", s)

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


@dataclass(frozen=True, slots=True)
class EwmaLossConfig:
    """Hyperparameters of `EwmaLossPredictor` (all unitless unless named)."""

    alpha: float = 0.3
    """weight of the newest loss sample in the level EWMA, in (0, 1]; 0.3 gives
    an effective memory of about 1 / alpha = 3 intervals (30 ms at the spec's
    10 ms windows): long enough to smooth single-packet noise, short enough to
    follow a burst"""
    trend_alpha: float = 0.2
    """weight of the newest level slope in the trend EWMA, in (0, 1]"""
    trend_weight: float = 0.5
    """multiplier on the projected trend, >= 0 (0 disables the trend term).
    Measured on synthetic 10 ms windows (Gilbert-Elliott bursts of ~200 ms and
    linear loss ramps): 0.5 raised PR-AUC over the level alone by 0.02 to 0.08
    and cost 15 to 30 % in Brier score; 1.0 overshoots more at every burst end
    for little further PR-AUC"""
    horizon_s: float = 0.075
    """how far ahead the trend is projected, seconds: the middle of the
    50-100 ms prediction window"""
    min_interval_s: float = 0.001
    """floor on the time between two updates, seconds, so that two updates at
    (nearly) the same ``now`` cannot produce a huge slope"""
    jitter_weight: float = 0.02
    """probability added per unit of rtt_var / rtt above the floor, >= 0"""
    jitter_ratio_floor: float = 0.25
    """rtt_var / rtt at or below which jitter is considered normal, >= 0"""
    jitter_ratio_span: float = 2.0
    """the jitter term saturates at ``jitter_ratio_floor + jitter_ratio_span``
    (so it adds at most ``jitter_weight * jitter_ratio_span``), > 0"""

    def __post_init__(self) -> None:
        _check_open_unit("alpha", self.alpha)
        _check_open_unit("trend_alpha", self.trend_alpha)
        check_number("trend_weight", self.trend_weight)
        check_number("horizon_s", self.horizon_s)
        _check_positive("min_interval_s", self.min_interval_s)
        check_number("jitter_weight", self.jitter_weight)
        check_number("jitter_ratio_floor", self.jitter_ratio_floor)
        _check_positive("jitter_ratio_span", self.jitter_ratio_span)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EwmaLossConfig:
        """Rebuild from `to_dict` output; unknown keys raise ``ValueError``."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown EwmaLossConfig fields {unknown}; allowed: {sorted(names)}")
        return cls(**d)


def _check_open_unit(name: str, value: object) -> None:
    v = check_number(name, value, hi=1.0)
    if v <= 0.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")


def _check_positive(name: str, value: object) -> None:
    if check_number(name, value) <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


MAX_BLOCK_PACKETS = 1000
"""largest k + r accepted (Reed-Solomon over GF(2^8) allows 255; the bound
also keeps the binomial coefficients finite in float64)"""


@dataclass(frozen=True, slots=True)
class FecConfig:
    """Hyperparameters of `FecPolicy`."""

    k_data_packets: int = 10
    """data packets per FEC block, >= 1; 10 keeps the added delay of waiting
    for a block short (10 packets) while making r = 1 already worth 9 %"""
    target_residual: float = 1e-3
    """largest acceptable block failure probability F, in (0, 1); it also
    bounds the residual data loss (R <= F)"""
    max_redundancy_ratio: float = 0.5
    """cap on r / (k + r), in (0, 1): beyond half the packets being repair,
    the bandwidth lost to FEC costs more than the loss it repairs"""
    min_loss_to_protect: float = 0.005
    """below this predicted loss no FEC is sent, in [0, 1): retransmission
    handles 0.5 % loss at a smaller cost than a repair packet per block"""

    def __post_init__(self) -> None:
        k = check_int("k_data_packets", self.k_data_packets, lo=1)
        if k >= MAX_BLOCK_PACKETS:
            raise ValueError(f"k_data_packets must be < {MAX_BLOCK_PACKETS}, got {k}")
        t = check_number("target_residual", self.target_residual, hi=1.0)
        if not 0.0 < t < 1.0:
            raise ValueError(f"target_residual must be in (0, 1), got {self.target_residual!r}")
        m = check_number("max_redundancy_ratio", self.max_redundancy_ratio, hi=1.0)
        if not 0.0 < m < 1.0:
            raise ValueError(
                f"max_redundancy_ratio must be in (0, 1), got {self.max_redundancy_ratio!r}"
            )
        if max_repair_packets(k, m) < 1:
            raise ValueError(
                f"max_redundancy_ratio={m!r} allows no repair packet for "
                f"k_data_packets={k}; it must be >= 1 / (k + 1) = {1.0 / (k + 1):.4g}"
            )
        lo = check_number("min_loss_to_protect", self.min_loss_to_protect, hi=1.0)
        if lo >= 1.0:
            raise ValueError(f"min_loss_to_protect must be < 1, got {self.min_loss_to_protect!r}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def max_repair_packets(k: int, max_ratio: float) -> int:
    """Largest r with r / (k + r) <= max_ratio, within the block size bound."""
    r = math.floor(max_ratio * k / (1.0 - max_ratio) + 1e-9)
    while r > 0 and r / (k + r) > max_ratio + 1e-12:
        r -= 1
    return min(r, MAX_BLOCK_PACKETS - k)


@dataclass(frozen=True, slots=True)
class BurstFecConfig:
    """Hyperparameters of `BurstFecPolicy`."""

    severity: tuple[float, ...]
    """per-packet loss rates of a lossy window (quantiles, ascending, in (0, 1]):
    `oxidize_ml.loss.burst.BurstLossConfig.severity`"""
    repair_price: float
    """residual loss one repair packet per block must save, in expectation, to be
    sent, > 0: the knob that sets the overhead (fitted so the default spends what
    the EWMA with `FecPolicy` spends on the training split)"""
    k_data_packets: int = 10
    """data packets per block, >= 1 (as `FecConfig`)"""
    max_redundancy_ratio: float = 0.5
    """cap on r / (k + r), in (0, 1) (as `FecConfig`)"""

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", _checked_severity(self.severity))
        if check_number("repair_price", self.repair_price) <= 0.0:
            raise ValueError(f"repair_price must be > 0, got {self.repair_price!r}")
        k = check_int("k_data_packets", self.k_data_packets, lo=1)
        if k >= MAX_BLOCK_PACKETS:
            raise ValueError(f"k_data_packets must be < {MAX_BLOCK_PACKETS}, got {k}")
        m = check_number("max_redundancy_ratio", self.max_redundancy_ratio, hi=1.0)
        if not 0.0 < m < 1.0 or max_repair_packets(k, m) < 1:
            raise ValueError(
                f"max_redundancy_ratio must be in (0, 1) and allow one repair "
                f"packet for k_data_packets={k}, got {self.max_redundancy_ratio!r}"
            )

    @property
    def mean_severity(self) -> float:
        return math.fsum(self.severity) / len(self.severity)
