"""RFC 9002 NewReno (`oxidize_ml.congestion.reno`)."""

from __future__ import annotations

import math

from oxidize_ml.congestion.reno import RenoController

MSS = 1500


# ---- Reno ---------------------------------------------------------------------------------
def test_reno_slow_start_and_congestion_avoidance() -> None:
    r = RenoController()
    assert r.cwnd == 10 * MSS and r.in_slow_start
    r.on_packets_acked(now=0.1, acked_bytes=MSS, sent_time=0.0)
    assert r.cwnd == 11 * MSS
    r.on_packets_lost(now=0.2, lost_bytes=MSS, lost_packets=1, largest_sent_time=0.15)
    assert r.cwnd == int(11 * MSS * 0.5) and r.ssthresh == r.cwnd and not r.in_slow_start
    w = r.cwnd
    # acks of packets sent before the recovery started do not grow the window
    r.on_packets_acked(now=0.21, acked_bytes=MSS, sent_time=0.19)
    assert r.cwnd == w
    # a second loss from the same flight is ignored (one reduction per recovery period)
    r.on_packets_lost(now=0.22, lost_bytes=MSS, lost_packets=1, largest_sent_time=0.2)
    assert r.cwnd == w
    # congestion avoidance: + 1 MSS once a whole window was acked
    acked = 0
    while r.cwnd == w:
        r.on_packets_acked(now=0.3, acked_bytes=MSS, sent_time=0.25)
        acked += MSS
    assert r.cwnd == w + MSS
    assert acked == math.ceil(w / MSS) * MSS
    # a loss after recovery: halved again
    r.on_packets_lost(now=0.5, lost_bytes=MSS, lost_packets=1, largest_sent_time=0.4)
    assert r.cwnd == int((w + MSS) * 0.5)


def test_reno_minimum_and_persistent_congestion() -> None:
    r = RenoController()
    for k in range(10):
        r.on_packets_lost(
            now=float(k + 1), lost_bytes=MSS, lost_packets=1, largest_sent_time=float(k) + 0.5
        )
    assert r.cwnd == 2 * MSS
    r.cwnd = 50 * MSS
    r.on_persistent_congestion(now=20.0)
    assert r.cwnd == 2 * MSS
