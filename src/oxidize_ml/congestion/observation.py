"""What a congestion controller sees once per decision interval.

`CongestionObservation` bundles the spec's `NetworkFeatures` with the two
numbers a window controller needs that the feature vector does not carry
exactly: the delivery rate measured over the interval that just ended and the
window the transport applies right now.

The class adds no checks of its own: it is built once per decision on the hot
path and `NetworkFeatures` has already validated its fields. Controllers that
read ``throughput_bps`` / ``cwnd_bytes`` range-check them themselves (one
comparison each; `oxidize_ml.congestion.bbr.BbrFallback` raises a
``ValueError`` naming the field).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from oxidize_ml._frozen import three_field_maker
from oxidize_ml.features import NetworkFeatures


@dataclass(frozen=True, slots=True)
class CongestionObservation:
    """One decision interval of a connection, as seen by the sender.

    Examples
    --------
    >>> from oxidize_ml.features import NetworkFeatures
    >>> f = NetworkFeatures(rtt_us=40_000, rtt_var_us=1_000, bandwidth_bps=12e6,
    ...     loss_rate=0.0, loss_trend=0.0, inflight=40, cwnd=60_000)
    >>> obs = CongestionObservation(features=f, throughput_bps=12e6, cwnd_bytes=60_000)
    >>> obs.cwnd_bytes
    60000
    """

    features: NetworkFeatures
    """the spec's raw measurements for the interval (RTT in microseconds, loss
    ratio, packets in flight, ...); ``features.rtt_us`` is the smoothed RTT
    sample and ``features.inflight`` the packets in flight at the decision"""
    throughput_bps: float
    """delivery rate measured over the last decision interval, bits per second:
    bytes newly acknowledged (delivered) during the interval x 8 / interval
    length. Finite and >= 0."""
    cwnd_bytes: int
    """congestion window currently applied by the transport, bytes (the value
    the next action is applied to with `oxidize_ml.congestion.apply_action`)"""


make_observation: Callable[[NetworkFeatures, float, int], CongestionObservation] = (
    three_field_maker(CongestionObservation)
)
"""``CongestionObservation(features, throughput_bps, cwnd_bytes)`` at about half the
cost: the engine builds one per interval on its hot path. Equal to the constructor's
result in every respect (same class, fields, equality and hash)."""
