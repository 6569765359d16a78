"""A delivery-based envelope on the congestion window: ack clocking for every controller.

Every controller that speaks the six actions (the BBR-style fallback, the DQN,
any future policy) has its window passed through one `DeliveryEnvelope` after
`oxidize_ml.congestion.apply_action`. The envelope only ever *refuses growth*;
decreases always pass. Two rules (issue 10, item 1):

1. **Ack clocking** (RFC 7661's validated window; BBR's STARTUP grows the
   window by what is delivered, not by the clock). The window may grow only
   while the flow is window-limited (bytes in flight >= ``validated_fraction``
   x cwnd) and data is being delivered, by at most the larger of the bytes
   delivered in the interval and the interval's share of the bytes delivered
   over the last min-RTT span (that span's delivery rate x the interval).
   With nothing acknowledged for a min-RTT (a silent start, an outage) the
   window cannot grow at all, whatever the controller says; growth per round
   trip is at most about the bytes delivered in the one before, i.e. slow
   start's doubling. The spread matters when acks come in bursts: a 10-ms
   interval that acknowledges a whole flight allows one decision, which grows
   the window by at most 10 %, and the intervals without acks allowed none,
   so slow start on the 600-ms satellite path grew ~1.2x per round instead of
   doubling (0.90x -> 0.97x CUBIC's goodput there).
2. **Envelope**: the window never grows past

       cap = max(initial window, gain x bdp_estimate)

   where ``bdp_estimate = max_rate x min_rtt``: ``max_rate`` is the largest
   delivery rate measured over one min-RTT span (delivered bytes summed over
   a sliding span, divided by it) in the last ``window_s`` seconds, and
   ``min_rtt`` the connection's minimum RTT (BBR's max_bw x min_rtt). That is the BDP when
   the path is full (rate x min_rtt), and an ack burst on a cellular link
   raises it, which is the ack-aggregation allowance BBR adds too. ``gain``
   (2.5) is BBR's cwnd_gain 2 plus a quarter of slack for the 5 %-step
   actions and a delivery rate that grew during the last RTT. So no action
   sequence can take the window past 2.5x what the path has shown it can
   deliver per round trip (and a window already above the cap, e.g. set by
   the transport, cannot grow further).

3. **Restore after a reset**: a cut to half the window or less (the fallback's
   PROBE_RTT and persistent-congestion ``SlowStart``) remembers the window it
   left; for two min-RTTs plus 200 ms the window may come back to that window
   or the BDP estimate, whichever is smaller, without waiting for acks (BBR
   restores its prior cwnd after PROBE_RTT). Without it a 600-ms path spent
   seconds regrowing after every PROBE_RTT (satellite: 0.69x -> 0.74x CUBIC's
   goodput; the held-out trace windows unchanged).

The caller feeds one observation per decision interval (`update`) and passes
each proposed window through `bound`. Growth consumed by `bound` is taken from
the interval's budget, so several decisions per observation cannot add up.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.configs import EnvelopeConfig
from oxidize_ml.congestion.observation import CongestionObservation
from oxidize_ml.congestion.state import WindowedExtreme

__all__ = ["DeliveryEnvelope", "EnvelopeConfig"]

_INF = float("inf")
_SPAN_ENTRIES = 4096
"""intervals kept for the min-RTT span sum (10 ms intervals: 41 s, far above any span)"""


_DEFAULT_CONFIG = EnvelopeConfig()


class DeliveryEnvelope:
    """Ack-clocked growth and a delivery-based cap on a congestion window (module docs).

    Examples
    --------
    >>> from oxidize_ml.features import NetworkFeatures
    >>> from oxidize_ml.congestion import CongestionObservation
    >>> env = DeliveryEnvelope()
    >>> f = NetworkFeatures(rtt_us=0, rtt_var_us=0, bandwidth_bps=0, loss_rate=0.0,
    ...     loss_trend=0.0, inflight=10, cwnd=15_000)
    >>> env.update(CongestionObservation(features=f, throughput_bps=0.0, cwnd_bytes=15_000),
    ...            now=0.01)
    >>> env.bound(15_000, 16_500)   # nothing delivered yet: no growth
    15000
    >>> env.bound(15_000, 13_500)   # decreases always pass
    13500
    """

    __slots__ = (
        "_bdp",
        "_bdp_max",
        "_budget",
        "_cap",
        "_gain",
        "_last_now",
        "_max_dt",
        "_min_rtt_us",
        "_n_clamped",
        "_restore_to",
        "_restore_until",
        "_span",
        "_span_bytes",
        "_span_s",
        "_vf",
        "config",
        "limits",
    )

    def __init__(
        self, config: EnvelopeConfig | None = None, limits: CwndLimits | None = None
    ) -> None:
        if config is None:
            config = _DEFAULT_CONFIG  # frozen: one validated instance for every connection
        if limits is None:
            limits = CwndLimits()
        if not isinstance(config, EnvelopeConfig):
            raise TypeError(f"config must be an EnvelopeConfig, got {type(config).__name__}")
        if not isinstance(limits, CwndLimits):
            raise TypeError(f"limits must be a CwndLimits, got {type(limits).__name__}")
        self.config = config
        self.limits = limits
        self._gain = config.gain
        self._vf = config.validated_fraction
        self._max_dt = config.max_interval_s
        self.reset()

    def reset(self) -> None:
        """Forget the path (a new connection): the cap returns to the initial window."""
        self._bdp_max = WindowedExtreme(self.config.window_s, self.config.bucket_s, is_max=True)
        self._span: deque[tuple[float, float]] = deque(maxlen=_SPAN_ENTRIES)  # (dt, bytes)
        self._span_s = 0.0
        self._span_bytes = 0.0
        self._min_rtt_us = _INF
        self._last_now: float | None = None
        self._budget = 0.0
        self._bdp = 0.0
        self._cap = float(self.limits.initial_cwnd)
        self._n_clamped = 0
        self._restore_to = 0.0
        self._restore_until = -_INF

    def clone(self) -> DeliveryEnvelope:
        """A fresh envelope with the same config and limits."""
        return DeliveryEnvelope(self.config, self.limits)

    # -- read-only views ----------------------------------------------------------

    @property
    def cap_bytes(self) -> float:
        """the largest window growth may reach now, bytes"""
        return self._cap

    @property
    def growth_budget_bytes(self) -> float:
        """bytes the window may still grow by before the next observation"""
        return self._budget

    @property
    def bdp_estimate_bytes(self) -> float:
        """windowed max of bytes delivered within one min-RTT span (0 before any delivery)"""
        return self._bdp

    def stats(self) -> dict[str, Any]:
        """JSON-serialisable snapshot."""
        return {
            "cap_bytes": self._cap,
            "bdp_estimate_bytes": self._bdp,
            "growth_budget_bytes": self._budget,
            "min_rtt_us": self._min_rtt_us if self._min_rtt_us < _INF else None,
            "clamped_decisions": self._n_clamped,
        }

    # -- feed -----------------------------------------------------------------------

    def update(self, obs: CongestionObservation, *, now: float) -> None:
        """Account one decision interval (what was delivered, whether the window limited it).

        ``now`` is the caller's time at the end of the interval, seconds; a
        time earlier than the previous one counts as a zero-length interval.
        """
        tput = obs.throughput_bps
        if not 0.0 <= tput < _INF:
            raise ValueError(f"throughput_bps must be finite and >= 0, got {tput!r}")
        prev = self._last_now
        dt = self.config.default_interval_s if prev is None else now - prev
        if not dt > 0.0:
            dt = 0.0
        elif dt > self._max_dt:
            dt = self._max_dt
        if prev is None or now > prev:
            self._last_now = now
        delivered = tput * dt * 0.125
        f = obs.features
        rtt = f.rtt_us
        if 0.0 < rtt < self._min_rtt_us:
            # The connection's minimum (RFC 9002 min_rtt), never expired: a windowed
            # minimum would, under a standing queue, expire into the queue's RTT and
            # let the cap grow with the queue it should bound. A path whose base RTT
            # rose is still allowed gain x rate x the old minimum.
            self._min_rtt_us = rtt
        # Delivery rate over the shortest run of recent intervals covering one min-RTT
        # span (not one 10-ms interval: ack bursts), max-filtered, times the current
        # min RTT: BBR's max_bw x min_rtt. Keeping the rate rather than the bytes lets
        # a first RTT sample inflated by a silent start (packets queued for 800 ms)
        # shrink the BDP as soon as lower samples arrive.
        q = self._span
        if len(q) == q.maxlen:
            old_dt, old_b = q[0]
            self._span_s -= old_dt
            self._span_bytes -= old_b
        q.append((dt, delivered))
        self._span_s += dt
        self._span_bytes += delivered
        span = self._min_rtt_us * 1e-6 if self._min_rtt_us < _INF else 0.0
        while len(q) > 1 and self._span_s - q[0][0] >= span - 1e-9:
            old_dt, old_b = q.popleft()
            self._span_s -= old_dt
            self._span_bytes -= old_b
        covered = self._span_s
        sample = self._span_bytes / covered if covered > 0.0 and self._span_bytes > 0.0 else 0.0
        rate = self._bdp_max.update(sample, now)
        bdp = rate * self._min_rtt_us * 1e-6 if self._min_rtt_us < _INF else 0.0
        self._bdp = bdp
        cap = self._gain * bdp
        init = self.limits.initial_cwnd
        self._cap = cap if cap > init else float(init)
        cwnd = obs.cwnd_bytes
        inflight = f.inflight * self.limits.mss
        # RFC 7661: growth only while the window is used (validated) and acks arrive,
        # by this interval's deliveries or its share of the last span's (module docs).
        if inflight >= self._vf * cwnd and self._span_bytes > 0.0:
            spread = self._span_bytes * dt / covered if covered > 0.0 else 0.0
            self._budget = delivered if delivered > spread else spread  # noqa: FURB136 (hot path)
        else:
            self._budget = 0.0

    # -- bound ----------------------------------------------------------------------

    def bound(self, cwnd: int, proposed: int) -> int:
        """The window to apply when a controller proposes ``proposed`` from ``cwnd`` (bytes).

        Decreases pass unchanged. Growth is limited to the interval's
        remaining budget and to the cap, and never below ``cwnd`` (a window
        above the cap is held, not cut: cutting is the controller's job).
        """
        if proposed <= cwnd:
            if proposed * 2 <= cwnd and self._last_now is not None:
                # A reset (PROBE_RTT's SlowStart): the window held a moment ago was
                # validated by deliveries, so it may come back within one round trip
                # plus PROBE_RTT's 200 ms, up to the BDP the path has shown, without
                # waiting for acks of the few packets the reset left in flight.
                rtt = self._min_rtt_us * 1e-6 if self._min_rtt_us < _INF else 0.0
                self._restore_to = min(float(cwnd), self._bdp)
                self._restore_until = self._last_now + 2.0 * rtt + 0.2
            return proposed
        allowed = cwnd + self._budget
        if (
            self._restore_to > allowed
            and self._last_now is not None
            and self._last_now <= self._restore_until
        ):
            allowed = self._restore_to
        if allowed > self._cap:  # noqa: PLR1730 (hot path: no call)
            allowed = self._cap
        if proposed <= allowed:
            self._budget = max(0.0, self._budget - (proposed - cwnd))
            return proposed
        self._n_clamped += 1
        if allowed <= cwnd:
            return cwnd
        new = int(allowed)
        self._budget = max(0.0, self._budget - (new - cwnd))
        return new
