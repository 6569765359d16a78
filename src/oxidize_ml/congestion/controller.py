"""The transport-facing congestion-control interface (per-ack events, a ``cwnd``).

Modelled on aioquic's ``QuicCongestionControl`` (REFERENCES section 6): a
small set of events, time passed in as keyword-only ``now`` (seconds of the
transport's clock, simulated time in `oxidize_ml.sim`), and a ``cwnd``
attribute in bytes that the sender reads before every send. A controller
never reads a clock and never sees a transport's internals, so the same class
runs in the simulator and could sit behind aioquic. Reno
(`oxidize_ml.congestion.reno`) and CUBIC (`oxidize_ml.congestion.cubic`)
react per ack; per-interval policies (the BBR-style fallback, the DQN) reach
this interface through the one adapter, `oxidize_ml.congestion.interval`.

Events (all no-ops here; override what you need):

- ``on_packet_sent(now, sent_bytes)``: a packet left the sender.
- ``on_packets_acked(now, acked_bytes, sent_time)``: one ack arrived; it
  newly acknowledged ``acked_bytes`` bytes, the latest of them sent at
  ``sent_time`` (the simulator's receiver acks every packet, so an ack
  carries one packet; the signature is batched so a transport that acks
  ranges can call it once per ack).
- ``on_packets_lost(now, lost_bytes, lost_packets, largest_sent_time)``:
  RFC 9002 loss detection declared packets lost.
- ``on_persistent_congestion(now)``: RFC 9002 section 7.6 persistent
  congestion (every packet over 3 PTO durations was lost).
- ``on_rtt_measurement(now, latest_rtt, smoothed_rtt, min_rtt)``: a new RTT
  sample (seconds) after the estimator update.
- ``on_interval(now, features, throughput_bps)``: once per decision interval
  (10 ms by default, the same for every controller) with the interval's
  aggregated `NetworkFeatures` and throughput (see `oxidize_ml.interval_stats`).

A transport may skip calling an event a subclass does not override
(`overridden_events`; the simulator checks once per flow), so a per-ack
controller pays nothing for ``on_interval`` and an interval controller
pays nothing per ack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oxidize_ml.congestion.actions import CwndLimits

if TYPE_CHECKING:
    from oxidize_ml.features import NetworkFeatures

EVENT_NAMES = (
    "on_packet_sent",
    "on_packets_acked",
    "on_packets_lost",
    "on_persistent_congestion",
    "on_rtt_measurement",
    "on_interval",
)


class CongestionController:
    """Base class: ``cwnd`` (bytes) plus no-op event handlers.

    Parameters
    ----------
    limits
        Window bounds (MSS, initial and minimum window); ``cwnd`` starts at
        ``limits.initial_cwnd``.
    """

    name: str = "base"
    """short identifier used in results ("reno", "cubic", "bbr", ...)"""
    pacing: bool = False
    """pace sends at cwnd / srtt as aioquic does (the simulator reads it once per flow)"""

    def __init__(self, *, limits: CwndLimits | None = None) -> None:
        self.limits = limits if limits is not None else CwndLimits()
        self.cwnd: int = self.limits.initial_cwnd

    def on_packet_sent(self, *, now: float, sent_bytes: int) -> None:
        """A packet of ``sent_bytes`` bytes was sent at ``now``."""

    def on_packets_acked(self, *, now: float, acked_bytes: int, sent_time: float) -> None:
        """An ack newly acknowledged ``acked_bytes`` bytes; the latest was sent at ``sent_time``."""

    def on_packets_lost(
        self, *, now: float, lost_bytes: int, lost_packets: int, largest_sent_time: float
    ) -> None:
        """``lost_packets`` packets were declared lost, the latest sent at ``largest_sent_time``."""

    def on_persistent_congestion(self, *, now: float) -> None:
        """RFC 9002 persistent congestion was established."""

    def on_rtt_measurement(
        self, *, now: float, latest_rtt: float, smoothed_rtt: float, min_rtt: float
    ) -> None:
        """A new RTT sample, seconds, after the RFC 9002 estimator update."""

    def on_interval(self, *, now: float, features: NetworkFeatures, throughput_bps: float) -> None:
        """One decision interval ended; ``features`` aggregate it."""


def overridden_events(controller: object) -> frozenset[str]:
    """Names of the events ``controller`` implements itself (not the base no-ops).

    A duck-typed controller that does not subclass `CongestionController`
    counts every event it defines as overridden.
    """
    out = set()
    for name in EVENT_NAMES:
        fn = getattr(type(controller), name, None)
        if fn is None:
            continue
        if fn is not getattr(CongestionController, name):
            out.add(name)
    return frozenset(out)
