"""The one feature schema every part of oxidize-ml uses.

`NetworkFeatures` carries the spec's ten raw measurements; `to_vector` turns
them into the 8-float model input with the spec's normalisation table. Models,
telemetry and the simulator all go through this module, so there is exactly
one normalisation (the earlier engine had several that disagreed).

Version history
---------------
1: the spec's 8 features, divisors below, clipping ranges below.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from oxidize_ml._validate import check_number

FEATURE_SCHEMA_VERSION = 1

# (name in the model vector, source field, divisor, clip low, clip high).
# Divisors are the spec's table; clipping keeps one outlier (a 30 s RTT spike)
# from saturating a model trained on sane ranges.
FEATURE_TABLE: tuple[tuple[str, str, float, float, float], ...] = (
    ("rtt", "rtt_us", 1_000_000.0, 0.0, 10.0),
    ("rtt_var", "rtt_var_us", 500_000.0, 0.0, 10.0),
    ("bandwidth", "bandwidth_bps", 10_000_000_000.0, 0.0, 10.0),
    ("loss_rate", "loss_rate", 1.0, 0.0, 1.0),
    ("loss_trend", "loss_trend", 1.0, -1.0, 1.0),
    ("inflight", "inflight", 10_000.0, 0.0, 10.0),
    ("cwnd", "cwnd", 1_000_000.0, 0.0, 10.0),
    ("buffer_occupancy", "buffer_occupancy", 1.0, 0.0, 1.0),
)
FEATURE_NAMES: tuple[str, ...] = tuple(row[0] for row in FEATURE_TABLE)
N_FEATURES = len(FEATURE_TABLE)

_DIVISORS = np.array([row[2] for row in FEATURE_TABLE], dtype=np.float64)
_LO = np.array([row[3] for row in FEATURE_TABLE], dtype=np.float32)
_HI = np.array([row[4] for row in FEATURE_TABLE], dtype=np.float32)


def schema_description() -> dict[str, Any]:
    """The schema as JSON-serialisable data, saved beside models and telemetry."""
    return {
        "version": FEATURE_SCHEMA_VERSION,
        "features": [
            {"name": n, "source": s, "divisor": d, "clip": [lo, hi]}
            for n, s, d, lo, hi in FEATURE_TABLE
        ],
    }


@dataclass(frozen=True, slots=True)
class NetworkFeatures:
    """One observation of a connection, in the spec's raw units.

    Every field is checked on construction: NaN, infinity and negative values
    raise ``ValueError`` naming the field (``loss_trend`` may be negative, it
    is a derivative); non-numbers raise ``TypeError``.

    Examples
    --------
    >>> f = NetworkFeatures(rtt_us=50_000, rtt_var_us=5_000, bandwidth_bps=100_000_000,
    ...     loss_rate=0.01, loss_trend=0.0, inflight=100, cwnd=65535,
    ...     time_since_loss_ms=1000, buffer_occupancy=0.3, recent_retx=0)
    >>> [round(float(x), 5) for x in f.to_vector()]
    [0.05, 0.01, 0.01, 0.01, 0.0, 0.01, 0.06554, 0.3]
    """

    rtt_us: float
    """round-trip time, microseconds"""
    rtt_var_us: float
    """RTT variation (jitter), microseconds"""
    bandwidth_bps: float
    """estimated bandwidth (delivery rate), bits per second"""
    loss_rate: float
    """recent packet loss ratio in [0, 1]"""
    loss_trend: float
    """derivative of the loss rate (per observation); may be negative, in [-1, 1]"""
    inflight: float
    """packets in flight"""
    cwnd: float
    """congestion window, bytes"""
    time_since_loss_ms: float = 0.0
    """milliseconds since the last detected loss"""
    buffer_occupancy: float = 0.0
    """bottleneck / send buffer fill level in [0, 1]"""
    recent_retx: float = 0
    """retransmissions in the recent window"""

    def __post_init__(self) -> None:
        check_number("rtt_us", self.rtt_us)
        check_number("rtt_var_us", self.rtt_var_us)
        check_number("bandwidth_bps", self.bandwidth_bps)
        check_number("loss_rate", self.loss_rate, hi=1.0)
        check_number("loss_trend", self.loss_trend, lo=-1.0, hi=1.0)
        check_number("inflight", self.inflight)
        check_number("cwnd", self.cwnd)
        check_number("time_since_loss_ms", self.time_since_loss_ms)
        check_number("buffer_occupancy", self.buffer_occupancy, hi=1.0)
        check_number("recent_retx", self.recent_retx)

    def with_buffer_occupancy(self, occupancy: float) -> NetworkFeatures:
        """The same observation with ``buffer_occupancy`` replaced (a sender-side view)."""
        return NetworkFeatures(
            self.rtt_us,
            self.rtt_var_us,
            self.bandwidth_bps,
            self.loss_rate,
            self.loss_trend,
            self.inflight,
            self.cwnd,
            self.time_since_loss_ms,
            occupancy,
            self.recent_retx,
        )

    def to_vector(self, out: np.ndarray | None = None) -> np.ndarray:
        """The normalised, clipped model input: float32 ``[8]`` in `FEATURE_NAMES` order."""
        vals = self.to_list()
        if out is None:
            return np.array(vals, dtype=np.float32)
        out[:] = vals
        return out

    def write_vector(self, buffer: np.ndarray) -> None:
        """Write `to_vector` into the first 8 elements of ``buffer``, a writable
        C-contiguous float32 array (a model's input slot).

        One ``struct`` pack into the array's memory: about 0.2 us less than
        ``buffer[:8] = ...`` on the packet path, with the same float32 rounding.
        """
        _pack_vector(buffer, 0, *self.to_list())  # type: ignore[arg-type]  # a writable buffer

    def to_list(self) -> list[float]:
        """`to_vector` as a Python list (cheaper when the caller builds a larger vector)."""
        # Plain-Python clipping: np.clip on 8 values costs several microseconds, and
        # ``x if x < 10.0 else 10.0`` is ``min(10.0, x)`` without a builtin call.
        rtt = self.rtt_us / 1_000_000.0
        var = self.rtt_var_us / 500_000.0
        bw = self.bandwidth_bps / 10_000_000_000.0
        trend = self.loss_trend
        infl = self.inflight / 10_000.0
        cwnd = self.cwnd / 1_000_000.0
        return [
            rtt if rtt < 10.0 else 10.0,  # noqa: FURB136
            var if var < 10.0 else 10.0,  # noqa: FURB136
            bw if bw < 10.0 else 10.0,  # noqa: FURB136
            float(self.loss_rate),
            trend if -1.0 <= trend <= 1.0 else (1.0 if trend > 0 else -1.0),
            infl if infl < 10.0 else 10.0,  # noqa: FURB136
            cwnd if cwnd < 10.0 else 10.0,  # noqa: FURB136
            float(self.buffer_occupancy),
        ]

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


_pack_vector = struct.Struct(f"={N_FEATURES}f").pack_into
"""packs the 8 features as native-order float32, numpy's float32 layout"""


def normalise_matrix(raw: np.ndarray) -> np.ndarray:
    """Vectorised `to_vector` for ``[n, 8]`` raw values in `FEATURE_TABLE` source order."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != N_FEATURES:
        raise ValueError(f"raw must have shape [n, {N_FEATURES}], got {raw.shape}")
    return np.clip(raw / _DIVISORS, _LO, _HI).astype(np.float32)
