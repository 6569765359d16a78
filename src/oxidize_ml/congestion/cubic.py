"""CUBIC as in RFC 9438, in bytes, reacting per ack.

Windows are handled in segments (MSS units) inside the formulas, as the RFC
writes them:

- W_cubic(t) = C (t - K)^3 + W_max, C = 0.4 (section 4.2, eq. 1);
- K = cbrt((W_max - cwnd_epoch) / C) (eq. 2), cwnd_epoch the window when the
  congestion-avoidance stage (epoch) began;
- per ack in congestion avoidance the window moves towards
  target = W_cubic(t + RTT) clipped to [cwnd, 1.5 cwnd] (section 4.2), by
  (target - cwnd) / cwnd segments per segment acked;
- Reno-friendly region (section 4.3): W_est += alpha_cubic x acked / cwnd
  with alpha_cubic = 3 (1 - beta) / (1 + beta), and 1 once W_est has reached
  the window before the last reduction; when W_cubic(t) < W_est, cwnd = W_est;
- on congestion (once per recovery period, as NewReno): beta_cubic = 0.7,
  ssthresh = cwnd x beta; fast convergence (section 4.7): when the window is
  below the previous W_max, W_max = cwnd (1 + beta) / 2, else W_max = cwnd;
- slow start as NewReno below ssthresh (no HyStart);
- persistent congestion: minimum window, new epoch.
"""

# ruff: noqa: FURB136
# (per-packet code: `x if x > y else y` avoids a min()/max() builtin call, ~3x a comparison)

from __future__ import annotations

import math

from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.controller import CongestionController

K_CUBIC_C = 0.4
"""RFC 9438 C, segments / s^3"""
K_CUBIC_BETA = 0.7
"""RFC 9438 beta_cubic"""
K_CUBIC_ALPHA = 3.0 * (1.0 - K_CUBIC_BETA) / (1.0 + K_CUBIC_BETA)
"""RFC 9438 alpha_cubic for the Reno-friendly estimate"""
K_MAX_GROWTH = 1.5
"""RFC 9438 section 4.2: target is at most 1.5 cwnd"""


class CubicController(CongestionController):
    """RFC 9438 CUBIC with fast convergence and the Reno-friendly region."""

    name = "cubic"

    def __init__(self, *, limits: CwndLimits | None = None, fast_convergence: bool = True) -> None:
        super().__init__(limits=limits)
        self.fast_convergence = fast_convergence
        self.ssthresh: float = math.inf
        self.w_max = 0.0
        """segments; window before the last reduction (after fast convergence)"""
        self.k = 0.0
        """seconds from the epoch start until W_cubic reaches W_max"""
        self._cwnd_prior = 0.0
        self._w_est = 0.0
        self._epoch: float | None = None
        self._recovery_start = -math.inf
        self._srtt = 0.0
        self._cwnd_f = self.cwnd / self.limits.mss
        self._mss = self.limits.mss
        self._min = self.limits.min_cwnd
        self._max = self.limits.max_cwnd_bytes

    @property
    def in_slow_start(self) -> bool:
        return self.cwnd < self.ssthresh

    def on_rtt_measurement(
        self, *, now: float, latest_rtt: float, smoothed_rtt: float, min_rtt: float
    ) -> None:
        self._srtt = smoothed_rtt

    def w_cubic(self, t: float) -> float:
        """W_cubic(t) in segments, t seconds after the epoch start (eq. 1)."""
        d = t - self.k
        return K_CUBIC_C * d * d * d + self.w_max

    def on_packets_acked(self, *, now: float, acked_bytes: int, sent_time: float) -> None:
        if sent_time <= self._recovery_start:
            return
        mss = self._mss
        cwnd = self.cwnd
        if cwnd < self.ssthresh:
            cwnd += acked_bytes
            self.cwnd = cwnd if cwnd <= self._max else self._max
            return
        # Keep the fractional window: per-ack increments in the concave region are a few
        # bytes, and truncating to whole bytes every ack would stall growth near W_max.
        cw = self._cwnd_f if int(self._cwnd_f * mss) == cwnd else cwnd / mss
        if self._epoch is None:
            self._epoch = now
            self._w_est = cw
            if self.w_max <= cw:
                # Left slow start without a loss (or grew past W_max): the plateau is here.
                self.w_max = cw
                self.k = 0.0
            else:
                self.k = math.cbrt((self.w_max - cw) / K_CUBIC_C)
        t = now - self._epoch
        acked_seg = acked_bytes / mss
        alpha = 1.0 if self._w_est >= self._cwnd_prior else K_CUBIC_ALPHA
        self._w_est += alpha * acked_seg / cw
        if self.w_cubic(t) < self._w_est:
            new = self._w_est
        else:
            target = self.w_cubic(t + self._srtt)
            if target < cw:
                target = cw
            elif target > K_MAX_GROWTH * cw:
                target = K_MAX_GROWTH * cw
            new = cw + (target - cw) / cw * acked_seg
        cwnd_b = int(new * mss)
        if cwnd_b < self._min:
            cwnd_b = self._min
            new = cwnd_b / mss
        elif cwnd_b > self._max:
            cwnd_b = self._max
            new = cwnd_b / mss
        self._cwnd_f = new
        self.cwnd = cwnd_b

    def on_packets_lost(
        self, *, now: float, lost_bytes: int, lost_packets: int, largest_sent_time: float
    ) -> None:
        if largest_sent_time <= self._recovery_start:
            return
        self._recovery_start = now
        cw = self.cwnd / self._mss
        self._cwnd_prior = cw
        if self.fast_convergence and cw < self.w_max:
            self.w_max = cw * (1.0 + K_CUBIC_BETA) / 2.0
        else:
            self.w_max = cw
        new = int(self.cwnd * K_CUBIC_BETA)
        self.cwnd = new if new >= self._min else self._min
        self.ssthresh = self.cwnd
        self._epoch = None

    def on_persistent_congestion(self, *, now: float) -> None:
        self.cwnd = self._min
        self._epoch = None
