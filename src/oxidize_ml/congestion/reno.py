"""NewReno as in RFC 9002 section 7 (and aioquic's ``reno.py``), in bytes.

- initial window 10 packets, minimum 2 (`CwndLimits`);
- slow start: cwnd += bytes acked while cwnd < ssthresh;
- congestion avoidance: cwnd += MSS once a whole cwnd of bytes was acked;
- on loss: cwnd = max(cwnd / 2, min), ssthresh = cwnd, at most once per
  recovery period; the period starts when the loss is detected and ends when
  a packet sent after that is acked (acks of packets sent earlier neither
  grow the window nor start a new reduction);
- persistent congestion: cwnd = minimum window.
"""

# ruff: noqa: FURB136
# (per-packet code: `x if x > y else y` avoids a min()/max() builtin call, ~3x a comparison)

from __future__ import annotations

import math

from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.controller import CongestionController

K_LOSS_REDUCTION_FACTOR = 0.5
"""RFC 9002 kLossReductionFactor"""


class RenoController(CongestionController):
    """RFC 9002 NewReno reacting per ack."""

    name = "reno"

    def __init__(self, *, limits: CwndLimits | None = None) -> None:
        super().__init__(limits=limits)
        self.ssthresh: float = math.inf
        self._recovery_start = -math.inf
        self._stash = 0
        self._mss = self.limits.mss
        self._min = self.limits.min_cwnd
        self._max = self.limits.max_cwnd_bytes

    @property
    def in_slow_start(self) -> bool:
        return self.cwnd < self.ssthresh

    def on_packets_acked(self, *, now: float, acked_bytes: int, sent_time: float) -> None:
        if sent_time <= self._recovery_start:
            return  # still in the recovery period
        cwnd = self.cwnd
        if cwnd < self.ssthresh:
            cwnd += acked_bytes
        else:
            stash = self._stash + acked_bytes
            if stash >= cwnd:
                count = stash // cwnd
                stash -= count * cwnd
                cwnd += count * self._mss
            self._stash = stash
        self.cwnd = cwnd if cwnd <= self._max else self._max

    def on_packets_lost(
        self, *, now: float, lost_bytes: int, lost_packets: int, largest_sent_time: float
    ) -> None:
        if largest_sent_time <= self._recovery_start:
            return  # one reduction per recovery period
        self._recovery_start = now
        cwnd = int(self.cwnd * K_LOSS_REDUCTION_FACTOR)
        self.cwnd = cwnd if cwnd >= self._min else self._min
        self.ssthresh = self.cwnd
        self._stash = 0

    def on_persistent_congestion(self, *, now: float) -> None:
        self.cwnd = self._min
        self._stash = 0
