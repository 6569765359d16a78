"""The sender-side observation a loss predictor is trained on and served with.

A real sender cannot see the bottleneck queue: the only queue signal it has
is the share of its smoothed RTT spent above the path's minimum,
``(srtt - min_rtt) / srtt`` (`oxidize_ml.interval_stats.estimate_buffer_occupancy`).
The simulator fills ``NetworkFeatures.buffer_occupancy`` with the true queue
fill instead. `SenderView` rebuilds the sender's estimate from the sequence
of observations alone (``min_rtt`` = running minimum of the smoothed RTT the
observations carry), so the training recorders, the evaluations and a
deployed engine compute the same number from the same inputs: one function,
identical by construction (GitHub issue 9).
"""

from __future__ import annotations

import math

from oxidize_ml.features import NetworkFeatures
from oxidize_ml.interval_stats import estimate_buffer_occupancy


class SenderView:
    """Per-connection state of the sender-side buffer estimate.

    Examples
    --------
    >>> v = SenderView()
    >>> f = NetworkFeatures(rtt_us=40_000, rtt_var_us=0, bandwidth_bps=1e7,
    ...     loss_rate=0.0, loss_trend=0.0, inflight=10, cwnd=15_000, buffer_occupancy=0.9)
    >>> v.view(f).buffer_occupancy
    0.0
    >>> g = NetworkFeatures(rtt_us=50_000, rtt_var_us=0, bandwidth_bps=1e7,
    ...     loss_rate=0.0, loss_trend=0.0, inflight=10, cwnd=15_000, buffer_occupancy=0.9)
    >>> round(v.view(g).buffer_occupancy, 3)
    0.2
    """

    __slots__ = ("_min_rtt_us",)

    def __init__(self) -> None:
        self._min_rtt_us = math.inf

    def reset(self) -> None:
        """Forget the minimum (a new connection)."""
        self._min_rtt_us = math.inf

    @property
    def min_rtt_us(self) -> float:
        """running minimum of the positive smoothed RTTs seen, microseconds (inf before one)"""
        return self._min_rtt_us

    def occupancy(self, features: NetworkFeatures) -> float:
        """Update the running minimum with ``features.rtt_us``; return the estimate in [0, 1]."""
        srtt = features.rtt_us
        if srtt > 0.0 and srtt < self._min_rtt_us:
            self._min_rtt_us = srtt
        if self._min_rtt_us == math.inf:
            return 0.0
        return estimate_buffer_occupancy(srtt, self._min_rtt_us)

    def view(self, features: NetworkFeatures) -> NetworkFeatures:
        """``features`` with ``buffer_occupancy`` replaced by the sender's estimate."""
        return features.with_buffer_occupancy(self.occupancy(features))


__all__ = ["SenderView"]
