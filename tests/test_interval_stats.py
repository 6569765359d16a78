"""IntervalStats: per-ack events -> one NetworkFeatures per decision interval."""

from __future__ import annotations

import pytest

from oxidize_ml.features import NetworkFeatures
from oxidize_ml.interval_stats import IntervalStats, estimate_buffer_occupancy


def test_snapshot_features_and_reset() -> None:
    s = IntervalStats(now=1.0)
    for _ in range(8):
        s.on_sent(1500)
        s.on_acked(1500, now=1.005)
    s.on_lost(2, 3000, now=1.006)
    s.on_rtt(0.045, 0.042, 0.003, 0.040)
    f, thr = s.snapshot(now=1.010, cwnd_bytes=30_000, inflight_packets=20, buffer_occupancy=0.25)
    assert isinstance(f, NetworkFeatures)
    assert thr == pytest.approx(8 * 1500 * 8 / 0.010)
    assert f.rtt_us == pytest.approx(42_000)
    assert f.rtt_var_us == pytest.approx(3_000)
    assert f.loss_rate == pytest.approx(2 / 10)
    assert f.loss_trend == pytest.approx(0.2)
    assert f.recent_retx == 2
    assert f.inflight == 20 and f.cwnd == 30_000
    assert f.buffer_occupancy == 0.25
    assert f.time_since_loss_ms == pytest.approx(4.0)
    assert f.bandwidth_bps == pytest.approx(thr)  # no delivery-rate samples: interval rate
    # next interval: nothing happened
    f2, thr2 = s.snapshot(now=1.020, cwnd_bytes=30_000, inflight_packets=20)
    assert thr2 == 0.0
    assert f2.loss_rate == 0.0 and f2.loss_trend == pytest.approx(-0.2)
    assert f2.recent_retx == 0
    assert f2.bandwidth_bps == pytest.approx(thr)  # windowed max remembers
    assert f2.time_since_loss_ms == pytest.approx(14.0)


def test_bandwidth_is_windowed_max_and_prefers_rate_samples() -> None:
    s = IntervalStats(now=0.0, window_intervals=3)
    s.on_acked(1500, now=0.005)
    s.on_delivery_rate(5e6)
    s.on_delivery_rate(7e6)
    f, thr = s.snapshot(now=0.01, cwnd_bytes=1, inflight_packets=0)
    assert f.bandwidth_bps == 7e6 and thr == pytest.approx(1.2e6)
    for k in range(2, 4):
        f, _ = s.snapshot(now=0.01 * k, cwnd_bytes=1, inflight_packets=0)
        assert f.bandwidth_bps == 7e6
    f, _ = s.snapshot(now=0.04, cwnd_bytes=1, inflight_packets=0)
    assert f.bandwidth_bps == 0.0  # the 7 Mbit/s interval left the 3-interval window


def test_snapshot_totals_equals_per_event_calls() -> None:
    a = IntervalStats(now=0.0)
    b = IntervalStats(now=0.0)
    for i in range(5):
        a.on_sent(1500)
        a.on_acked(1500, now=0.001 * i)
        a.on_delivery_rate(1e6 * i)
    a.on_lost(1, 1500, now=0.004)
    a.on_rtt(0.01, 0.01, 0.001, 0.009)
    fa = a.snapshot_values(now=0.01, cwnd_bytes=1, inflight_packets=1)
    # the simulator's call (None: the sender-side estimate) equals the aioquic plug-in's
    # per-event calls: the same features for the same events
    fb = b.snapshot_totals(0.01, 1, 1, None, 7500, 5, 1, 0.004, 4e6, 0.01, 0.01, 0.001, 0.009)
    assert fa == fb
    assert fa[8] == pytest.approx((0.01 - 0.009) / 0.01)  # buffer_occupancy, sender view
    # second interval: no RTT passed (0) keeps the previous estimate
    fa = a.snapshot_values(now=0.02, cwnd_bytes=1, inflight_packets=1)
    fb = b.snapshot_totals(0.02, 1, 1, None, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert fa == fb and fb[0] == pytest.approx(10_000.0)


def test_before_any_sample_and_clipping() -> None:
    s = IntervalStats(now=0.0)
    f, thr = s.snapshot(now=0.01, cwnd_bytes=15000, inflight_packets=0, buffer_occupancy=3.0)
    assert f.rtt_us == 0.0 and f.loss_rate == 0.0 and thr == 0.0
    assert f.buffer_occupancy == 1.0
    assert f.time_since_loss_ms == pytest.approx(10.0)
    # a zero-length interval does not divide by zero
    _, thr = s.snapshot(now=0.01, cwnd_bytes=1, inflight_packets=0)
    assert thr == 0.0


def test_estimate_buffer_occupancy() -> None:
    assert estimate_buffer_occupancy(0.05, 0.04) == pytest.approx(0.2)
    assert estimate_buffer_occupancy(0.0, 0.0) == 0.0
    assert estimate_buffer_occupancy(0.04, 0.05) == 0.0


def test_validates_constructor() -> None:
    with pytest.raises(ValueError, match="window_intervals"):
        IntervalStats(window_intervals=0)


def test_simulator_features_carry_the_senders_estimate_not_the_true_queue() -> None:
    """One observation: the simulator's features are what a real sender computes
    ((srtt - min_rtt) / srtt from its RTT estimator); the true queue fill is only
    in the run's queue series (evaluation)."""
    from oxidize_ml.interval_stats import estimate_buffer_occupancy
    from oxidize_ml.sim.runner import simulate
    from oxidize_ml.sim.scenarios import get_scenario

    seen: list[tuple[float, float]] = []

    def hook(now, flow, features, thr, cwnd):
        seen.append((features.rtt_us, features.buffer_occupancy))

    res = simulate(get_scenario("wired-clean"), "cubic", seed=0, duration_s=5.0, on_interval=hook)
    assert seen
    series = res.flows[0].series
    assert series is not None and max(series.queue_bytes) > 0  # a queue did build
    min_srtt = min(r for r, _ in seen if r > 0)
    for rtt_us, occ in seen:
        assert 0.0 <= occ <= 1.0
        if rtt_us <= 0:
            assert occ == 0.0  # no RTT sample yet
    # The estimate tracks srtt against the path minimum (the transport's min_rtt is at
    # most the smallest smoothed RTT), so it grows with the standing queue.
    late = [(r, o) for r, o in seen[len(seen) // 2 :] if r > 0]
    assert any(o > 0.1 for _, o in late)
    for r, o in late:
        assert o >= estimate_buffer_occupancy(r * 1e-6, min_srtt * 1e-6) - 1e-9
