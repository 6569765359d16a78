"""RFC 9438 CUBIC (`oxidize_ml.congestion.cubic`)."""

from __future__ import annotations

import math

import pytest

from oxidize_ml.congestion.cubic import K_CUBIC_ALPHA, K_CUBIC_BETA, K_CUBIC_C, CubicController

MSS = 1500


# ---- CUBIC --------------------------------------------------------------------------------
def test_cubic_reduction_k_and_fast_convergence() -> None:
    c = CubicController()
    c.cwnd = 100 * MSS
    c.on_packets_lost(now=1.0, lost_bytes=MSS, lost_packets=1, largest_sent_time=0.9)
    assert c.cwnd == int(100 * MSS * K_CUBIC_BETA)
    assert c.w_max == pytest.approx(100.0)
    # first CA ack opens the epoch: K = cbrt(W_max (1 - beta) / C)
    c.on_rtt_measurement(now=1.1, latest_rtt=0.05, smoothed_rtt=0.05, min_rtt=0.05)
    c.on_packets_acked(now=1.1, acked_bytes=MSS, sent_time=1.05)
    assert c.k == pytest.approx(math.cbrt(100.0 * (1 - K_CUBIC_BETA) / K_CUBIC_C), rel=1e-3)
    # fast convergence: a loss below the previous W_max lowers W_max further
    c.cwnd = 80 * MSS
    c.on_packets_lost(now=2.0, lost_bytes=MSS, lost_packets=1, largest_sent_time=1.9)
    assert c.w_max == pytest.approx(80 * (1 + K_CUBIC_BETA) / 2)


def drive(c: CubicController, t0: float, t1: float, rtt: float) -> list[tuple[float, float]]:
    """Ack one window per RTT (one MSS per ack) from t0 to t1; return (t, cwnd segments)."""
    out = []
    t = t0
    while t < t1:
        n = max(1, c.cwnd // MSS)
        for k in range(n):
            now = t + rtt * k / n
            c.on_rtt_measurement(now=now, latest_rtt=rtt, smoothed_rtt=rtt, min_rtt=rtt)
            c.on_packets_acked(now=now, acked_bytes=MSS, sent_time=now - rtt)
        t += rtt
        out.append((t, c.cwnd / MSS))
    return out


def test_cubic_window_follows_the_cubic_curve() -> None:
    c = CubicController()
    c.cwnd = 200 * MSS
    c.on_packets_lost(now=0.0, lost_bytes=MSS, lost_packets=1, largest_sent_time=-0.1)
    rtt = 0.1
    trace = drive(c, 0.001, 12.0, rtt)
    k = math.cbrt(200 * (1 - K_CUBIC_BETA) / K_CUBIC_C)
    near_k = min(trace, key=lambda p: abs(p[0] - k))
    # at t = K the window is back near W_max (concave approach), then grows past it (convex)
    assert near_k[1] == pytest.approx(200.0, rel=0.05)
    assert trace[-1][1] > 230.0

    # growth slows near W_max: the increase per second around K is small vs. after K + 3 s
    def rate(t: float) -> float:
        a = min(trace, key=lambda p: abs(p[0] - t))
        b = min(trace, key=lambda p: abs(p[0] - (t + 1.0)))
        return b[1] - a[1]

    assert rate(k - 0.5) < rate(k + 3.0)
    assert rate(0.5) > rate(k - 0.5)


def test_cubic_reno_friendly_region_on_short_rtt() -> None:
    # Small window and short RTT: W_cubic grows slower than Reno would, so the Reno-friendly
    # estimate W_est drives the window (RFC 9438 4.3): alpha_cubic segments per RTT until it
    # reaches the window before the reduction (20), then 1 segment per RTT.
    c = CubicController()
    c.cwnd = 20 * MSS
    c.on_packets_lost(now=0.0, lost_bytes=MSS, lost_packets=1, largest_sent_time=-0.001)
    start = c.cwnd / MSS
    assert start == 14.0
    trace = drive(c, 0.0001, 0.2, 0.002)  # 100 RTTs of 2 ms
    assert trace[9][1] - start == pytest.approx(10 * K_CUBIC_ALPHA, rel=0.15)
    rtts_to_prior = (20.0 - start) / K_CUBIC_ALPHA
    expected = (20.0 - start) + (len(trace) - rtts_to_prior)
    assert trace[-1][1] - start == pytest.approx(expected, rel=0.1)
    # and it is the Reno-friendly estimate, not the cubic curve, that is in charge
    assert c.w_cubic(0.2) < trace[-1][1]


def test_cubic_slow_start_then_persistent_congestion() -> None:
    c = CubicController()
    c.on_packets_acked(now=0.1, acked_bytes=MSS, sent_time=0.0)
    assert c.cwnd == 11 * MSS
    c.on_persistent_congestion(now=1.0)
    assert c.cwnd == 2 * MSS
