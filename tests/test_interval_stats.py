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


# ---- one observation: the simulator path and the aioquic path ------------------------------
# A replay: a simulator run records every packet event its sender sees (sends, acks with
# their RTT samples, declared losses) and every decision instant, with the features it
# computed there; the same events then drive the aioquic plug-in's controller
# (`oxidize_ml.integrations.aioquic.OxidizeCongestionControl`, with aioquic's own
# `QuicSentPacket` objects), whose engine records what it is given. Both must produce
# identical feature vectors and throughputs, float for float.

_REPLAY_INTERVAL_S = 1.0 / 64.0
"""decision interval of the replay: a power of two, so the simulator's grid (k x interval)
and the plug-in's (interval added k times) are the same floats; at 10 ms they differ in
the last bit after a few steps, which only moves a decision by 1e-18 s"""
_WINDOWS = (18_000, 30_000, 45_000, 60_000, 90_000, 36_000, 24_000)
"""the window schedule both sides follow, one entry per decision (bytes): enough to fill
the buffers below, so there are queueing losses and a queue to estimate"""


class _RecordingController:
    """Simulator controller (duck-typed) following `_WINDOWS`; logs the sender's events."""

    name = "replay"
    pacing = False

    def __init__(self) -> None:
        self.cwnd = _WINDOWS[0]
        self.decisions = 0
        self.log: list[tuple] = []
        self.features: list[tuple[NetworkFeatures, float]] = []

    def on_packet_sent(self, *, now: float, sent_bytes: int) -> None:
        self.log.append(("sent", now, sent_bytes))

    def on_packets_acked(self, *, now: float, acked_bytes: int, sent_time: float) -> None:
        self.log.append(("acked", now, acked_bytes, sent_time))

    def on_packets_lost(
        self, *, now: float, lost_bytes: int, lost_packets: int, largest_sent_time: float
    ) -> None:
        self.log.append(("lost", now, lost_bytes, lost_packets))

    def on_rtt_measurement(
        self, *, now: float, latest_rtt: float, smoothed_rtt: float, min_rtt: float
    ) -> None:
        self.log.append(("rtt", now, latest_rtt))

    def on_interval(self, *, now: float, features: NetworkFeatures, throughput_bps: float) -> None:
        self.log.append(("decide", now))
        self.features.append((features, throughput_bps))
        self.decisions += 1
        self.cwnd = _WINDOWS[self.decisions % len(_WINDOWS)]


class _RecordingEngine:
    """The plug-in's engine: records the features, answers with the same `_WINDOWS`."""

    def __init__(self, limits: object) -> None:
        from types import SimpleNamespace

        self.config = SimpleNamespace(limits=limits)
        self.cwnd = _WINDOWS[0]
        self.decisions = 0
        self.features: list[tuple[NetworkFeatures, float]] = []

    def observe(self, features: NetworkFeatures, *, throughput_bps: float, now: float) -> None:
        self.features.append((features, throughput_bps))

    def congestion_action(self, *, now: float) -> tuple[object, int]:
        from oxidize_ml.types import DrlAction

        self.decisions += 1
        self.cwnd = _WINDOWS[self.decisions % len(_WINDOWS)]
        return DrlAction.Maintain, self.cwnd


def _replay_through_aioquic(log: list[tuple], flow_start: float) -> _RecordingEngine:
    """Feed a recorded event log to `OxidizeCongestionControl` the way aioquic calls it."""
    from collections import deque

    from aioquic.quic.packet import QuicPacketType
    from aioquic.quic.packet_builder import QuicSentPacket
    from aioquic.tls import Epoch

    from oxidize_ml.congestion.actions import CwndLimits
    from oxidize_ml.integrations.aioquic import OxidizeCongestionControl

    limits = CwndLimits(mss=1500)  # every window of _WINDOWS is inside its bounds
    engine = _RecordingEngine(limits)
    cc = OxidizeCongestionControl(
        max_datagram_size=1500,
        engine=engine,  # type: ignore[arg-type]
        decision_interval_s=_REPLAY_INTERVAL_S,
        time_offset_s=0.0,
    )
    # The plug-in starts its first interval at the connection's first event; the
    # simulator at the flow's start. The flow sends at its start, so they agree.
    assert log[0][0] == "sent" and log[0][1] == flow_start
    # Packets not yet acked or declared lost, oldest first. The path never reorders, so
    # an ack is for the oldest outstanding packet sent at its send time once the older
    # lost ones are skipped, and losses are declared oldest first.
    outstanding: deque[QuicSentPacket] = deque()
    pn = 0
    for ev in log:
        kind, now = ev[0], ev[1]
        if kind == "sent":
            p = QuicSentPacket(
                epoch=Epoch.ONE_RTT,
                in_flight=True,
                is_ack_eliciting=True,
                is_crypto_packet=False,
                packet_number=pn,
                packet_type=QuicPacketType.ONE_RTT,
                sent_time=now,
                sent_bytes=ev[2],
            )
            pn += 1
            outstanding.append(p)
            cc.on_packet_sent(packet=p)
        elif kind == "rtt":
            # The simulator takes an RTT sample per acked packet, before the ack's
            # delivery-rate sample (whose min-RTT test then sees it): same order here.
            # aioquic itself reports an ACK frame's acked packets first and one sample
            # (the largest acked) after them: another event stream, not another
            # computation of the features.
            cc.on_rtt_measurement(now=now, rtt=ev[2])
        elif kind == "acked":
            acked = next(p for p in outstanding if p.sent_time == ev[3])
            outstanding.remove(acked)
            assert acked.sent_bytes == ev[2]
            cc.on_packet_acked(now=now, packet=acked)
        elif kind == "lost":
            lost = [outstanding.popleft() for _ in range(ev[3])]
            assert sum(p.sent_bytes for p in lost) == ev[2]
            cc.on_packets_lost(now=now, packets=lost)
        else:  # "decide"
            # The plug-in has no timer: it decides at its first event at or past the
            # grid time. The simulator decides at the grid time itself; an event-free
            # call at that instant puts the plug-in's decision there too.
            assert now >= cc._next_decision  # the grids agree (see _REPLAY_INTERVAL_S)
            cc.on_packets_lost(now=now, packets=[])
    assert cc.decision_errors == 0
    return engine


def _replay_scenarios() -> list[object]:
    from oxidize_ml.sim import (
        BufferSpec,
        CellularConfig,
        CellularLink,
        FlowSpec,
        GilbertElliottLoss,
        Scenario,
        StepLink,
    )

    return [
        # one flow (the simulator's single-flow fast path): capacity steps, drop-tail
        # overflow and Gilbert-Elliott bursts
        Scenario(
            "replay-steps",
            StepLink(((0.0, 12e6), (1.3, 4e6), (2.6, 20e6))),
            (FlowSpec(delay_s=0.0173),),
            BufferSpec(packets=25),
            loss=GilbertElliottLoss(p=0.004, r=0.3, k=1.0, h=0.5),
            duration_s=4.0,
            interval_s=_REPLAY_INTERVAL_S,
        ),
        # two flows sharing a cellular bottleneck (the general event loop); flow 0 replayed
        Scenario(
            "replay-cellular",
            CellularLink(CellularConfig()),
            (FlowSpec(delay_s=0.0291), FlowSpec(delay_s=0.0113, start_s=0.7)),
            BufferSpec(packets=40),
            loss=None,
            duration_s=4.0,
            interval_s=_REPLAY_INTERVAL_S,
        ),
    ]


@pytest.mark.parametrize("index", [0, 1])
def test_simulator_and_aioquic_paths_give_identical_features(index: int) -> None:
    """Issue 9: for the same packet events the simulator's interval path and the aioquic
    plug-in's give identical `NetworkFeatures` (buffer occupancy included) and throughput."""
    pytest.importorskip("aioquic")
    from oxidize_ml.sim import simulate

    scenario = _replay_scenarios()[index]
    ctrls = [_RecordingController() for _ in scenario.flows]  # type: ignore[attr-defined]
    simulate(scenario, ctrls if len(ctrls) > 1 else ctrls[0], seed=3, record_series=False)
    rec = ctrls[0]
    kinds = {ev[0] for ev in rec.log}
    assert kinds == {"sent", "rtt", "acked", "lost", "decide"}  # every event kind occurs
    assert len(rec.features) > 200
    sim_feats = rec.features
    assert max(f.buffer_occupancy for f, _ in sim_feats) > 0.2  # a queue to estimate
    assert sum(f.recent_retx for f, _ in sim_feats) > 5  # losses reach the features
    engine = _replay_through_aioquic(rec.log, scenario.flows[0].start_s)  # type: ignore[attr-defined]
    assert len(engine.features) == len(sim_feats)
    for k, ((fs, ts), (fa, ta)) in enumerate(zip(sim_feats, engine.features, strict=True)):
        assert fs == fa and ts == ta, f"decision {k}: simulator {fs}, {ts} vs aioquic {fa}, {ta}"
