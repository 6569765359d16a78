"""Aggregate per-ack transport events into one observation per decision interval.

A transport (the simulator, the aioquic plug-in) reports what happens packet
by packet; a controller decides once per interval (10 ms by default). This
class sits between the two: the transport calls ``on_sent`` / ``on_acked`` /
``on_lost`` / ``on_rtt`` as events happen, and once per interval
``snapshot`` returns the spec's `NetworkFeatures` plus the interval's
throughput, then starts a new interval.

Feature definitions (spec field: what it holds here)
---------------------------------------------------
- ``rtt_us``: smoothed RTT (RFC 9002 ``smoothed_rtt``) from the last
  ``on_rtt``; 0 before the first RTT sample.
- ``rtt_var_us``: RFC 9002 ``rttvar``; 0 before the first sample.
- ``bandwidth_bps``: delivery-rate estimate, the maximum of the last
  ``window_intervals`` (10) interval rates. An interval's rate is the largest
  BBR-style delivery-rate sample reported with ``on_delivery_rate`` during
  the interval when the transport provides them (the simulator does), else
  bytes acked x 8 / interval length. A max filter, as in BBR, because
  delivery rate is only ever under-measured (idle gaps, ack clumping,
  loss); 10 intervals (100 ms at 10 ms) span a few RTTs on typical paths,
  long enough to bridge an empty interval and short enough to follow a
  capacity drop within a tenth of a second. Plain 10-ms throughput is also
  quantised (12 packets per interval at 12 Mbit/s), the delivery-rate
  samples, measured over about one RTT, are not.
- ``loss_rate``: lost / (acked + lost) packets in the interval (0 when the
  interval had neither).
- ``loss_trend``: loss_rate minus the previous interval's, clipped to [-1, 1].
- ``inflight``, ``cwnd``: as passed to ``snapshot`` (packets, bytes).
- ``time_since_loss_ms``: since the last ``on_lost`` (since construction when
  nothing was lost yet).
- ``buffer_occupancy``: the sender-side estimate `estimate_buffer_occupancy`
  ``(srtt - min_rtt) / srtt`` (the share of the RTT spent queueing) from the
  RTT state this object was given, unless the caller passes a value. A real
  sender cannot see the bottleneck queue, so the simulator and the aioquic
  plug-in both leave it to this one function: for the same packet events they
  produce the same features (``tests/test_interval_stats.py``). The
  simulator's true queue fill is reported separately, for evaluation only
  (the run's ``queue_bytes`` series).
- ``recent_retx``: packets declared lost in the interval (each is data a real
  transport retransmits).

Cost: ``snapshot`` is a few microseconds (most of it validating the
`NetworkFeatures`); the ``on_*`` methods are a few attribute updates.
"""

from __future__ import annotations

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.features import NetworkFeatures

DEFAULT_WINDOW_INTERVALS = 10
"""intervals in the bandwidth max filter (100 ms at the default 10 ms interval)"""


def estimate_buffer_occupancy(smoothed_rtt_s: float, min_rtt_s: float) -> float:
    """Queue fill estimate for transports that cannot see the queue: (srtt - min_rtt) / srtt.

    In [0, 1]; 0 when there is no RTT sample yet.
    """
    if smoothed_rtt_s <= 0.0 or min_rtt_s <= 0.0 or min_rtt_s >= smoothed_rtt_s:
        return 0.0
    return (smoothed_rtt_s - min_rtt_s) / smoothed_rtt_s


class IntervalStats:
    """Per-interval aggregation of one connection's transport events.

    Parameters
    ----------
    now
        Time the first interval starts, seconds (same clock as later calls).
    window_intervals
        Length of the bandwidth max filter, in intervals.

    Examples
    --------
    >>> s = IntervalStats(now=0.0)
    >>> s.on_sent(15_000, packets=10)
    >>> s.on_rtt(0.041, 0.040, 0.002, 0.040)
    >>> s.on_acked(13_500, now=0.009, packets=9)
    >>> s.on_lost(1, 1500, now=0.009)
    >>> f, thr = s.snapshot(now=0.010, cwnd_bytes=15_000, inflight_packets=10)
    >>> round(thr), f.loss_rate, f.rtt_us, f.recent_retx
    (10800000, 0.1, 40000.0, 1.0)
    """

    __slots__ = (
        "_acked_bytes",
        "_acked_packets",
        "_last_loss",
        "_latest_rtt",
        "_lost_bytes",
        "_lost_packets",
        "_min_rtt",
        "_prev_loss_rate",
        "_rate_max",
        "_rates",
        "_rates_pos",
        "_rttvar",
        "_sent_bytes",
        "_sent_packets",
        "_srtt",
        "_start",
    )

    def __init__(self, *, now: float = 0.0, window_intervals: int = DEFAULT_WINDOW_INTERVALS):
        check_number("now", now, lo=None)
        check_int("window_intervals", window_intervals, lo=1)
        self._start = float(now)
        self._last_loss = float(now)
        self._rates = [0.0] * window_intervals
        self._rates_pos = 0
        self._srtt = 0.0
        self._rttvar = 0.0
        self._min_rtt = 0.0
        self._latest_rtt = 0.0
        self._prev_loss_rate = 0.0
        self._reset_interval()

    def _reset_interval(self) -> None:
        self._sent_bytes = 0
        self._sent_packets = 0
        self._acked_bytes = 0
        self._acked_packets = 0
        self._lost_bytes = 0
        self._lost_packets = 0
        self._rate_max = 0.0

    # ---- events ------------------------------------------------------------------------
    def on_sent(self, nbytes: int, *, packets: int = 1) -> None:
        """``packets`` packets totalling ``nbytes`` bytes were sent."""
        self._sent_bytes += nbytes
        self._sent_packets += packets

    def on_acked(self, nbytes: int, *, now: float, packets: int = 1) -> None:
        """``packets`` packets totalling ``nbytes`` bytes were newly acknowledged at ``now``."""
        self._acked_bytes += nbytes
        self._acked_packets += packets

    def on_lost(self, packets: int, nbytes: int, *, now: float) -> None:
        """``packets`` packets (``nbytes`` bytes) were declared lost at ``now``."""
        if packets > 0:
            self._lost_packets += packets
            self._lost_bytes += nbytes
            self._last_loss = now

    def on_rtt(
        self, latest_rtt_s: float, smoothed_rtt_s: float, rttvar_s: float, min_rtt_s: float
    ) -> None:
        """The transport's RTT estimator state after its latest sample (seconds)."""
        self._latest_rtt = latest_rtt_s
        self._srtt = smoothed_rtt_s
        self._rttvar = rttvar_s
        self._min_rtt = min_rtt_s

    def on_delivery_rate(self, rate_bps: float) -> None:
        """A delivery-rate sample (bits/s), e.g. BBR-style; optional, see module docs."""
        self._rate_max = max(self._rate_max, rate_bps)

    # ---- read-only state ---------------------------------------------------------------
    @property
    def smoothed_rtt_s(self) -> float:
        return self._srtt

    @property
    def min_rtt_s(self) -> float:
        return self._min_rtt

    @property
    def latest_rtt_s(self) -> float:
        return self._latest_rtt

    @property
    def bandwidth_bps(self) -> float:
        """The current max-filtered delivery-rate estimate (bits/s)."""
        return max(self._rates)

    # ---- once per interval -------------------------------------------------------------
    def snapshot_values(
        self,
        *,
        now: float,
        cwnd_bytes: float,
        inflight_packets: float,
        buffer_occupancy: float | None = None,
    ) -> tuple[float, float, float, float, float, float, float, float, float, float, float]:
        """Like `snapshot` but returns plain floats and skips building `NetworkFeatures`.

        Returns the ten `NetworkFeatures` fields in declaration order followed
        by the interval's throughput (bits/s). Also starts a new interval.
        """
        return self.snapshot_totals(
            now,
            cwnd_bytes,
            inflight_packets,
            buffer_occupancy,
            0,
            0,
            0,
            now,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        )

    def snapshot_totals(
        self,
        now: float,
        cwnd_bytes: float,
        inflight_packets: float,
        buffer_occupancy: float | None,
        acked_bytes: int,
        acked_packets: int,
        lost_packets: int,
        last_loss_s: float,
        rate_max_bps: float,
        latest_rtt_s: float,
        smoothed_rtt_s: float,
        rttvar_s: float,
        min_rtt_s: float,
    ) -> tuple[float, float, float, float, float, float, float, float, float, float, float]:
        """`snapshot_values` for a caller that counted the interval's events itself.

        Equivalent to reporting ``acked_packets`` packets (``acked_bytes``) with
        ``on_acked``, ``lost_packets`` with ``on_lost`` (the last at
        ``last_loss_s``), a largest delivery-rate sample ``rate_max_bps`` (0:
        none) and the RTT estimator state (``smoothed_rtt_s <= 0``: no sample
        yet, keep the previous one), then calling `snapshot_values`, in one
        positional call: the simulator does this every 10 ms per flow.
        """
        if smoothed_rtt_s > 0.0:
            self._latest_rtt = latest_rtt_s
            self._srtt = smoothed_rtt_s
            self._rttvar = rttvar_s
            self._min_rtt = min_rtt_s
        if lost_packets > 0:
            self._last_loss = last_loss_s
        dt = now - self._start
        acked_bytes += self._acked_bytes
        throughput = acked_bytes * 8.0 / dt if dt > 0.0 else 0.0
        rate_max = self._rate_max
        rate_max = max(rate_max, rate_max_bps)
        rate = rate_max if rate_max > 0.0 else throughput
        rates = self._rates
        pos = self._rates_pos
        rates[pos] = rate
        pos += 1
        self._rates_pos = 0 if pos == len(rates) else pos
        lost = lost_packets + self._lost_packets
        total = acked_packets + self._acked_packets + lost
        loss_rate = lost / total if total > 0 else 0.0
        trend = loss_rate - self._prev_loss_rate
        self._prev_loss_rate = loss_rate
        since_loss_ms = (now - self._last_loss) * 1000.0
        since_loss_ms = max(since_loss_ms, 0.0)
        if buffer_occupancy is None:  # the sender's view: one function for every caller
            buffer_occupancy = estimate_buffer_occupancy(self._srtt, self._min_rtt)
        elif buffer_occupancy < 0.0:
            buffer_occupancy = 0.0
        elif buffer_occupancy > 1.0:
            buffer_occupancy = 1.0
        self._start = now
        if self._acked_packets or self._lost_packets or self._sent_packets:
            self._reset_interval()
        else:
            self._rate_max = 0.0
        return (
            self._srtt * 1e6,
            self._rttvar * 1e6,
            max(rates),
            loss_rate,
            trend,  # both rates are in [0, 1], so the difference is already in [-1, 1]
            float(inflight_packets),
            float(cwnd_bytes),
            since_loss_ms,
            buffer_occupancy,
            float(lost),
            throughput,
        )

    def snapshot(
        self,
        *,
        now: float,
        cwnd_bytes: float,
        inflight_packets: float,
        buffer_occupancy: float | None = None,
    ) -> tuple[NetworkFeatures, float]:
        """Close the interval ending at ``now``: its features and throughput (bits/s).

        Parameters
        ----------
        now
            End of the interval, seconds.
        cwnd_bytes
            Current congestion window, bytes.
        inflight_packets
            Packets currently in flight.
        buffer_occupancy
            None (default): the sender-side estimate from the RTT state; a value
            in [0, 1] (clipped) overrides it. See the module docs.
        """
        v = self.snapshot_values(
            now=now,
            cwnd_bytes=cwnd_bytes,
            inflight_packets=inflight_packets,
            buffer_occupancy=buffer_occupancy,
        )
        return NetworkFeatures(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]), v[10]
