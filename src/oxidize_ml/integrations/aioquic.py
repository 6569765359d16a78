"""aioquic congestion control driven by an `oxidize_ml.engine.MlEngine`.

One call registers it::

    from oxidize_ml.integrations.aioquic import register_oxidize
    register_oxidize()                      # a new MlEngine per connection
    config = QuicConfiguration(is_client=False, congestion_control_algorithm="oxidize")

How it plugs in (REFERENCES section 6; aioquic 1.7 ``quic/congestion/base.py``
and ``quic/recovery.py``): `OxidizeCongestionControl` subclasses aioquic's
``QuicCongestionControl``; aioquic's ``QuicPacketRecovery`` creates one per
connection through the factory given to ``register_congestion_control`` and
reads two attributes, ``congestion_window`` (the sender may have that many
bytes in flight; the pacer sends at ``congestion_window / smoothed_rtt``)
and ``bytes_in_flight`` (which the controller must keep itself). ``ssthresh``
stays ``None``: there is no slow start of aioquic's own.

What the controller does
------------------------
- Every transport event goes into an `oxidize_ml.interval_stats.IntervalStats`,
  the same aggregation the simulator uses, so the engine sees the features
  it would see in `oxidize_ml.sim`: packets/bytes sent, acked and declared
  lost; BBR-style delivery-rate samples (each packet remembers, when sent,
  the connection's delivered bytes, the time of the latest ack and the send
  time of the latest acked packet; on its ack the sample is delta delivered
  / max(send elapsed, ack elapsed), kept only when that span is at least
  min_rtt, as the simulator and Linux ``tcp_rate.c`` do); RTT.
- RTT: aioquic calls ``on_rtt_measurement(rtt=latest_rtt)`` with the raw
  sample of each ack that newly acknowledges the largest packet; the
  controller runs the RFC 9002 section 5 estimator on those samples
  (``smoothed = 7/8 smoothed + 1/8 sample``, ``rttvar = 3/4 rttvar + 1/4
  |smoothed - sample|``, ``min_rtt`` over the connection), exactly the
  simulator's arithmetic. It does not read the recovery's private fields:
  the controller holds no reference to the recovery, and aioquic 1.7's
  ``rttvar`` is ``|min_rtt - latest|`` rather than RFC 9002's
  ``|smoothed - latest|``. aioquic's own estimate differs from ours only by
  the ack delay the peer reports (aioquic acks after at most 1 ms).
- ``buffer_occupancy``: a real sender cannot see the bottleneck queue, so it
  is `estimate_buffer_occupancy` ``(srtt - min_rtt) / srtt``.
- Decisions: once per ``decision_interval_s`` (10 ms, the simulator's
  default), on the first event whose time is at or past the next decision
  time (``packet.sent_time`` for sends, ``now`` for acks and losses): no
  timers. The interval then closes with every event reported before it;
  ``engine.observe(features, throughput_bps=..., now=...)`` and
  ``engine.congestion_action(now=...)`` follow, and the returned window,
  clamped to the engine's `CwndLimits`, becomes ``congestion_window``.
  Decision times stay on a 10 ms grid while events keep coming; after an
  idle gap the grid restarts at the next event (the interval that closes is
  then longer; its throughput is still bytes / elapsed time).
- Between decisions the window does not move: not on acks, not on losses.
  Losses reach the engine through the interval's ``loss_rate`` and
  ``recent_retx``; RFC 9002 persistent congestion is counted but left to
  the engine (the BBR-style fallback detects it from the loss rate and
  answers ``SlowStart``), exactly as the simulator's ``EngineController``
  does, so simulated and real runs are comparable.
- Time: aioquic's ``now`` is the event loop's monotonic clock; the engine
  expects Unix seconds (its telemetry rows must merge across servers), so
  the controller adds ``time.time() - time.monotonic()`` measured once when
  it is created (``time_offset_s`` overrides it; tests pass 0).

Engines and models
------------------
``engine_factory()`` is called once per connection: each connection has its
own engine state (window, filters, history). The default forks one
``MlEngine(EngineConfig(limits=CwndLimits(mss=max_datagram_size)))`` per
process and datagram size, which loads the package's shipped default models
if there are any, once (a fork takes microseconds on the event loop). Learned
weights can be shared by letting the factory load the same model directory
into every engine (``engine.load_models(directory)``; the runtime keeps the
weights read-only). Telemetry: an engine that collects (``OXIDIZE_COLLECT_TRAINING=1``
or ``engine.enable_training_collection()``) records every interval of the
real connection; reach it with `controller_of(connection).engine` and call
``export_training_data(directory)``.

Cost (measured, see the final report): a send or an ack costs a few
attribute updates and one dict operation; a decision costs what the engine
costs plus building one `NetworkFeatures`.
"""

from __future__ import annotations

# Per-packet code: an `if` is cheaper than calling min()/max() on two numbers.
# ruff: noqa: PLR1730, FURB136
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

try:
    from aioquic.quic.congestion.base import QuicCongestionControl, register_congestion_control
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "oxidize_ml.integrations.aioquic needs aioquic: install the 'aioquic' extra "
        "(pip install 'oxidize-ml[aioquic]')"
    ) from exc

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.interval_stats import IntervalStats

if TYPE_CHECKING:
    from aioquic.quic.packet_builder import QuicSentPacket

    from oxidize_ml.engine import MlEngine
    from oxidize_ml.features import NetworkFeatures
    from oxidize_ml.types import DrlAction

__all__ = [
    "DEFAULT_DECISION_INTERVAL_S",
    "MAX_TRACKED_PACKETS",
    "OxidizeCongestionControl",
    "controller_of",
    "register_oxidize",
]

log = logging.getLogger("oxidize_ml.integrations.aioquic")

DEFAULT_DECISION_INTERVAL_S = 0.010
"""decision interval, seconds: the simulator's default (`oxidize_ml.sim.scenarios`)"""
MAX_TRACKED_PACKETS = 1 << 17
"""bound on the per-packet delivery-rate records (packets in flight); 131072 x 1200 bytes is
2.4 x the largest window `CwndLimits` allows, so it only binds if aioquic stops reporting"""
K_GRANULARITY_S = 0.001
"""RFC 9002 kGranularity: RTT samples below 1 ms are raised to 1 ms, as aioquic does"""

EngineFactory = Callable[[], "MlEngine"]
"""``engine_factory()``: a new `MlEngine` for one connection"""


class OxidizeCongestionControl(QuicCongestionControl):
    """aioquic congestion controller whose window an `MlEngine` sets every decision interval.

    Parameters
    ----------
    max_datagram_size
        aioquic's maximum datagram size, bytes (passed by aioquic).
    engine
        The connection's engine (``observe`` / ``congestion_action`` /
        ``cwnd`` / ``config.limits``). Not shared with other connections.
    decision_interval_s
        Time between decisions, seconds.
    time_offset_s
        Added to aioquic's clock before it reaches the engine; None: the
        offset of the Unix clock from ``time.monotonic()`` now.

    Examples
    --------
    >>> from oxidize_ml.engine import EngineConfig, MlEngine
    >>> cc = OxidizeCongestionControl(
    ...     max_datagram_size=1200, time_offset_s=0.0,
    ...     engine=MlEngine(EngineConfig(load_default_models=False, collect_training=False)))
    >>> cc.congestion_window, cc.bytes_in_flight, cc.ssthresh
    (12000, 0, None)
    """

    def __init__(
        self,
        *,
        max_datagram_size: int,
        engine: MlEngine,
        decision_interval_s: float = DEFAULT_DECISION_INTERVAL_S,
        time_offset_s: float | None = None,
    ) -> None:
        check_int("max_datagram_size", max_datagram_size, lo=1)
        interval = check_number("decision_interval_s", decision_interval_s)
        if interval <= 0.0:
            raise ValueError(f"decision_interval_s must be > 0, got {decision_interval_s!r}")
        for attr in ("observe", "congestion_action"):
            if not callable(getattr(engine, attr, None)):
                raise TypeError(f"engine must have a callable {attr}(...), got {engine!r}")
        super().__init__(max_datagram_size=max_datagram_size)
        self.engine = engine
        config = getattr(engine, "config", None)
        limits = getattr(config, "limits", None)
        self.limits: CwndLimits = (
            limits if isinstance(limits, CwndLimits) else CwndLimits(mss=max_datagram_size)
        )
        self.max_datagram_size = max_datagram_size
        self.decision_interval_s = interval
        if time_offset_s is None:
            # aioquic's clock is the event loop's, time.monotonic() (asyncio's default).
            time_offset_s = time.time() - time.monotonic()
        self.time_offset_s = check_number("time_offset_s", time_offset_s, lo=None)
        # Start from the engine's window so both agree from the first packet.
        self.congestion_window = self._clamp(int(getattr(engine, "cwnd", self.congestion_window)))
        self.bytes_in_flight = 0
        self.packets_in_flight = 0
        self._stats: IntervalStats | None = None
        # -inf: the first event of the connection starts the first interval.
        self._next_decision = -math.inf
        # RFC 9002 RTT estimator state (seconds).
        self._srtt = 0.0
        self._rttvar = 0.0
        self._min_rtt = 0.0
        self._latest_rtt = 0.0
        self._has_rtt = False
        # Delivery-rate state (BBR style, see module docs).
        self._delivered = 0
        self._delivered_time = 0.0
        self._first_sent_time = 0.0
        # id(packet) -> (delivered, delivered_time, first_sent_time) at send. The id is
        # unique while the packet is tracked: aioquic keeps every in-flight packet in
        # its space's sent_packets until it reports it acked, lost or expired, which
        # is when the entry is removed. (Epoch.value, the alternative key part, is a
        # slow Enum property: 0.2-0.5 us per event.)
        self._sent: dict[int, tuple[int, float, float]] = {}
        # Interval accumulators, handed to IntervalStats at each decision.
        self._i_sent_b = 0
        self._i_sent_p = 0
        self._i_acked_b = 0
        self._i_acked_p = 0
        self._i_lost_b = 0
        self._i_lost_p = 0
        self._i_last_loss = 0.0
        self._i_rate_max = 0.0
        # Counters.
        self.decisions = 0
        self.decision_errors = 0
        self.persistent_congestion_events = 0
        self.packets_sent = 0
        self.packets_acked = 0
        self.packets_lost = 0
        self.bytes_acked = 0
        self.action_counts: Counter[str] = Counter()
        self.last_action: DrlAction | None = None
        self.last_features: NetworkFeatures | None = None
        self.last_throughput_bps = 0.0

    # ---- helpers ------------------------------------------------------------------------
    def _clamp(self, cwnd: int) -> int:
        lo = self.limits.min_cwnd
        hi = self.limits.max_cwnd_bytes
        return lo if cwnd < lo else hi if cwnd > hi else cwnd

    def _boundary(self, now: float) -> None:
        """``now`` reached the next decision time (callers check, to keep events cheap)."""
        if self._stats is None:
            # First event of the connection: the first interval starts here.
            self._stats = IntervalStats(now=now)
            self._next_decision = now + self.decision_interval_s
            self._delivered_time = now
            self._first_sent_time = now
            return
        self._decide(now)
        nxt = self._next_decision + self.decision_interval_s
        self._next_decision = nxt if nxt > now else now + self.decision_interval_s

    def _decide(self, now: float) -> None:
        st = self._stats
        assert st is not None
        if self._i_sent_p:
            st.on_sent(self._i_sent_b, packets=self._i_sent_p)
        if self._i_acked_p:
            st.on_acked(self._i_acked_b, now=now, packets=self._i_acked_p)
        if self._i_lost_p:
            st.on_lost(self._i_lost_p, self._i_lost_b, now=self._i_last_loss)
        if self._i_rate_max > 0.0:
            st.on_delivery_rate(self._i_rate_max)
        if self._has_rtt:
            st.on_rtt(self._latest_rtt, self._srtt, self._rttvar, self._min_rtt)
        self._i_sent_b = self._i_sent_p = self._i_acked_b = self._i_acked_p = 0
        self._i_lost_b = self._i_lost_p = 0
        self._i_rate_max = 0.0
        try:
            features, thr = st.snapshot(
                now=now,
                cwnd_bytes=self.congestion_window,
                inflight_packets=self.packets_in_flight,
                # buffer_occupancy: IntervalStats' sender-side estimate, as in the simulator
            )
            t = now + self.time_offset_s
            engine = self.engine
            engine.observe(features, throughput_bps=thr, now=t)
            action, new_cwnd = engine.congestion_action(now=t)
        except Exception:
            # A controller bug must not tear down the connection: keep the
            # window, count the failure (tests assert there are none).
            self.decision_errors += 1
            if self.decision_errors == 1:
                log.exception(
                    "oxidize congestion decision failed; keeping cwnd=%d", self.congestion_window
                )
            return
        self.decisions += 1
        self.last_action = action
        self.last_features = features
        self.last_throughput_bps = thr
        self.action_counts[action.name] += 1
        self.congestion_window = self._clamp(int(new_cwnd))

    # ---- aioquic events -----------------------------------------------------------------
    def on_packet_sent(self, *, packet: QuicSentPacket) -> None:
        now = packet.sent_time
        if now is not None and now >= self._next_decision:  # aioquic always sets it
            self._boundary(now)
        b = packet.sent_bytes
        self.bytes_in_flight += b
        self.packets_in_flight += 1
        self.packets_sent += 1
        self._i_sent_b += b
        self._i_sent_p += 1
        sent = self._sent
        if len(sent) < MAX_TRACKED_PACKETS:
            sent[id(packet)] = (self._delivered, self._delivered_time, self._first_sent_time)

    def on_packet_acked(self, *, now: float, packet: QuicSentPacket) -> None:
        if now >= self._next_decision:
            self._boundary(now)
        b = packet.sent_bytes
        x = self.bytes_in_flight - b
        self.bytes_in_flight = x if x > 0 else 0
        x = self.packets_in_flight - 1
        self.packets_in_flight = x if x > 0 else 0
        self.packets_acked += 1
        self.bytes_acked += b
        self._i_acked_b += b
        self._i_acked_p += 1
        delivered = self._delivered + b
        self._delivered = delivered
        rec = self._sent.pop(id(packet), None)
        sent_time = packet.sent_time if packet.sent_time is not None else now
        if rec is not None:
            d_send, dt_send, fst_send = rec
            iv = sent_time - fst_send
            ack_elapsed = now - dt_send
            if ack_elapsed > iv:
                iv = ack_elapsed
            if iv > 0.0 and iv >= self._min_rtt:
                rate = (delivered - d_send) * 8.0 / iv
                if rate > self._i_rate_max:
                    self._i_rate_max = rate
        self._delivered_time = now
        self._first_sent_time = sent_time

    def on_packets_expired(self, *, packets: Iterable[QuicSentPacket]) -> None:
        sent = self._sent
        for packet in packets:
            self._forget(packet.sent_bytes)
            sent.pop(id(packet), None)

    def on_packets_lost(self, *, now: float, packets: Iterable[QuicSentPacket]) -> None:
        if now >= self._next_decision:
            self._boundary(now)
        sent = self._sent
        n = 0
        nbytes = 0
        for packet in packets:
            b = packet.sent_bytes
            self._forget(b)
            sent.pop(id(packet), None)
            n += 1
            nbytes += b
        if n:
            self.packets_lost += n
            self._i_lost_p += n
            self._i_lost_b += nbytes
            self._i_last_loss = now

    def on_persistent_congestion(self) -> None:
        # Left to the engine (module docs): it sees the losses in the interval.
        self.persistent_congestion_events += 1

    def on_rtt_measurement(self, *, now: float, rtt: float) -> None:
        if now >= self._next_decision:
            self._boundary(now)
        # RFC 9002 section 5 (REFERENCES section 2), as the simulator computes it.
        latest = rtt if rtt > K_GRANULARITY_S else K_GRANULARITY_S
        self._latest_rtt = latest
        if self._has_rtt:
            if latest < self._min_rtt:
                self._min_rtt = latest
            dev = self._srtt - latest
            self._rttvar = 0.75 * self._rttvar + 0.25 * (dev if dev >= 0.0 else -dev)
            self._srtt = 0.875 * self._srtt + 0.125 * latest
        else:
            self._has_rtt = True
            self._min_rtt = latest
            self._srtt = latest
            self._rttvar = latest * 0.5

    def _forget(self, nbytes: int) -> None:
        b = self.bytes_in_flight - nbytes
        self.bytes_in_flight = b if b > 0 else 0
        p = self.packets_in_flight - 1
        self.packets_in_flight = p if p > 0 else 0

    # ---- introspection ------------------------------------------------------------------
    @property
    def smoothed_rtt_s(self) -> float:
        """RFC 9002 smoothed RTT from this controller's samples (0 before the first)."""
        return self._srtt

    @property
    def min_rtt_s(self) -> float:
        """Minimum RTT sample so far (0 before the first)."""
        return self._min_rtt

    def get_log_data(self) -> dict[str, Any]:
        data = super().get_log_data()
        if self.last_action is not None:
            data["oxidize_action"] = self.last_action.name
        return data

    def stats(self) -> dict[str, Any]:
        """JSON-serialisable counters of this connection's controller."""
        return {
            "cwnd": self.congestion_window,
            "bytes_in_flight": self.bytes_in_flight,
            "packets_in_flight": self.packets_in_flight,
            "decisions": self.decisions,
            "decision_errors": self.decision_errors,
            "action_counts": dict(self.action_counts),
            "last_action": None if self.last_action is None else self.last_action.name,
            "packets_sent": self.packets_sent,
            "packets_acked": self.packets_acked,
            "packets_lost": self.packets_lost,
            "bytes_acked": self.bytes_acked,
            "persistent_congestion_events": self.persistent_congestion_events,
            "smoothed_rtt_s": self._srtt,
            "min_rtt_s": self._min_rtt,
            "tracked_packets": len(self._sent),
        }


_TEMPLATES: dict[int, MlEngine] = {}
_TEMPLATES_LOCK = threading.Lock()


def _default_engine(max_datagram_size: int) -> MlEngine:
    """A fork of this process's engine for ``max_datagram_size``: the default models
    are loaded and verified once, and each connection gets its own state (a
    fork costs tens of microseconds on the event loop, a new engine milliseconds)."""
    from oxidize_ml.engine import EngineConfig, MlEngine

    with _TEMPLATES_LOCK:
        template = _TEMPLATES.get(max_datagram_size)
        if template is None:
            template = MlEngine(EngineConfig(limits=CwndLimits(mss=max_datagram_size)))
            _TEMPLATES[max_datagram_size] = template
    return template.fork()


def register_oxidize(
    engine_factory: EngineFactory | None = None,
    *,
    name: str = "oxidize",
    decision_interval_s: float = DEFAULT_DECISION_INTERVAL_S,
) -> None:
    """Register the engine-driven controller with aioquic under ``name``.

    Afterwards ``QuicConfiguration(congestion_control_algorithm=name)`` picks
    it. Registering a name again replaces the earlier factory (aioquic's
    registry is a plain dict).

    Parameters
    ----------
    engine_factory
        Called with no arguments once per connection; returns that
        connection's `MlEngine`. None: a fork, per connection, of one
        ``MlEngine(EngineConfig(limits=CwndLimits(mss=max_datagram_size)))``
        per process and datagram size (models loaded once). To share learned
        weights, load one model directory into every engine the factory builds.
    name
        aioquic algorithm name.
    decision_interval_s
        Time between decisions, seconds (> 0).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    interval = check_number("decision_interval_s", decision_interval_s)
    if interval <= 0.0:
        raise ValueError(f"decision_interval_s must be > 0, got {decision_interval_s!r}")
    if engine_factory is not None and not callable(engine_factory):
        raise TypeError(f"engine_factory must be callable or None, got {engine_factory!r}")

    def factory(*, max_datagram_size: int) -> OxidizeCongestionControl:
        engine = _default_engine(max_datagram_size) if engine_factory is None else engine_factory()
        return OxidizeCongestionControl(
            max_datagram_size=max_datagram_size, engine=engine, decision_interval_s=interval
        )

    register_congestion_control(name, factory)


def controller_of(connection: Any) -> OxidizeCongestionControl | None:
    """The `OxidizeCongestionControl` of an aioquic connection, or None if it runs another.

    ``connection`` is a ``QuicConnection`` or a ``QuicConnectionProtocol``
    (its ``_quic``). This reads aioquic's private ``_loss._cc`` attributes
    (aioquic 1.7), which is the only way to reach a connection's controller.
    """
    quic = getattr(connection, "_quic", connection)
    cc = getattr(getattr(quic, "_loss", None), "_cc", None)
    return cc if isinstance(cc, OxidizeCongestionControl) else None
