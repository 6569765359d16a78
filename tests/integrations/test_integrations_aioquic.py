"""The aioquic plug-in: registration, event accounting, decisions that follow the engine."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from oxidize_ml.features import NetworkFeatures

pytest.importorskip("aioquic")

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.congestion.base import create_congestion_control
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicPacketType
from aioquic.quic.packet_builder import QuicSentPacket
from aioquic.tls import Epoch

from oxidize_ml.congestion.actions import CwndLimits, apply_action
from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.integrations.aioquic import (
    OxidizeCongestionControl,
    controller_of,
    register_oxidize,
)
from oxidize_ml.types import DrlAction

MSS = 1200


def _engine(**kw: Any) -> MlEngine:
    kw.setdefault("limits", CwndLimits(mss=MSS))
    return MlEngine(EngineConfig(load_default_models=False, collect_training=False, **kw))


def _packet(pn: int, t: float, size: int = MSS, epoch: Epoch = Epoch.ONE_RTT) -> QuicSentPacket:
    return QuicSentPacket(
        epoch=epoch,
        in_flight=True,
        is_ack_eliciting=True,
        is_crypto_packet=False,
        packet_number=pn,
        packet_type=QuicPacketType.ONE_RTT,
        sent_time=t,
        sent_bytes=size,
    )


class SpyEngine:
    """Delegates to a real MlEngine and records what the controller asked and got."""

    def __init__(self, engine: MlEngine) -> None:
        self._e = engine
        self.config = engine.config
        self.observed: list[Any] = []
        self.decisions: list[tuple[float, int, DrlAction, int]] = []

    @property
    def cwnd(self) -> int:
        return self._e.cwnd

    def observe(self, features: Any, *, throughput_bps: float, now: float) -> None:
        self.observed.append((now, features, throughput_bps))
        self._e.observe(features, throughput_bps=throughput_bps, now=now)

    def congestion_action(self, *, now: float) -> tuple[DrlAction, int]:
        before = self._e.cwnd
        action, new = self._e.congestion_action(now=now)
        self.decisions.append((now, before, action, new))
        return action, new


class ScriptedEngine:
    """Returns a fixed sequence of windows (to check clamping and application)."""

    def __init__(self, windows: list[int], limits: CwndLimits) -> None:
        self.config = EngineConfig(limits=limits, load_default_models=False, collect_training=False)
        self.cwnd = limits.initial_cwnd
        self._windows = deque(windows)
        self.observed: list[Any] = []

    def observe(self, features: Any, *, throughput_bps: float, now: float) -> None:
        self.observed.append((now, features, throughput_bps))

    def congestion_action(self, *, now: float) -> tuple[DrlAction, int]:
        return DrlAction.Maintain, self._windows.popleft()


def test_register_and_aioquic_creates_one_engine_per_connection() -> None:
    made: list[MlEngine] = []

    def factory() -> MlEngine:
        made.append(_engine())
        return made[-1]

    register_oxidize(factory, name="oxidize-test-reg")
    cc1 = create_congestion_control("oxidize-test-reg", max_datagram_size=MSS)
    conn = QuicConnection(
        configuration=QuicConfiguration(
            is_client=True, congestion_control_algorithm="oxidize-test-reg"
        )
    )
    cc2 = controller_of(conn)
    assert isinstance(cc1, OxidizeCongestionControl)
    assert isinstance(cc2, OxidizeCongestionControl)
    assert cc1.engine is made[0] and cc2.engine is made[1] and len(made) == 2
    assert cc2.congestion_window == made[1].cwnd == 10 * MSS
    # Another controller is not ours.
    other = QuicConnection(configuration=QuicConfiguration(is_client=True))
    assert controller_of(other) is None


def test_default_factory_uses_the_datagram_size_as_mss() -> None:
    register_oxidize(name="oxidize-test-default")
    cc = create_congestion_control("oxidize-test-default", max_datagram_size=1350)
    assert isinstance(cc, OxidizeCongestionControl)
    assert cc.limits.mss == 1350
    assert cc.congestion_window == 10 * 1350


def test_default_factory_forks_one_engine_per_connection() -> None:
    # Models are loaded once per process; each connection has its own state.
    register_oxidize(name="oxidize-test-forks")
    a = create_congestion_control("oxidize-test-forks", max_datagram_size=1200)
    b = create_congestion_control("oxidize-test-forks", max_datagram_size=1200)
    assert isinstance(a, OxidizeCongestionControl) and isinstance(b, OxidizeCongestionControl)
    assert a.engine is not b.engine
    assert (
        a.engine.stats().compression_oracle.model_loaded
        == b.engine.stats().compression_oracle.model_loaded
    )
    a.engine.observe(
        NetworkFeatures(
            rtt_us=40_000,
            rtt_var_us=1_000,
            bandwidth_bps=2e6,
            loss_rate=0.0,
            loss_trend=0.0,
            inflight=10,
            cwnd=12_000,
            buffer_occupancy=0.0,
        ),
        throughput_bps=2e6,
        now=1.0,
    )
    a.engine.congestion_action(now=1.0)
    assert a.engine.stats().congestion_controller.decisions == 1
    assert b.engine.stats().congestion_controller.decisions == 0
    assert b.engine.cwnd == 10 * 1200  # the other connection is untouched


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"name": ""}, ValueError),
        ({"decision_interval_s": 0.0}, ValueError),
        ({"decision_interval_s": float("nan")}, ValueError),
        ({"engine_factory": 3}, TypeError),
    ],
)
def test_register_rejects_bad_arguments(kwargs: dict[str, Any], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        register_oxidize(**kwargs)


def test_constructor_rejects_non_engine() -> None:
    with pytest.raises(TypeError, match="observe"):
        OxidizeCongestionControl(max_datagram_size=MSS, engine=object())  # type: ignore[arg-type]


def test_bytes_in_flight_accounting_over_every_event() -> None:
    cc = OxidizeCongestionControl(max_datagram_size=MSS, engine=_engine(), time_offset_s=0.0)
    pkts = [_packet(i, 0.0001 * i) for i in range(8)]
    for p in pkts:
        cc.on_packet_sent(packet=p)
    assert cc.bytes_in_flight == 8 * MSS and cc.packets_in_flight == 8
    cc.on_packet_acked(now=0.05, packet=pkts[0])
    cc.on_rtt_measurement(now=0.05, rtt=0.05)
    cc.on_packets_lost(now=0.06, packets=pkts[1:3])
    cc.on_packets_expired(packets=pkts[3:4])
    assert cc.bytes_in_flight == 4 * MSS and cc.packets_in_flight == 4
    for p in pkts[4:]:
        cc.on_packet_acked(now=0.07, packet=p)
    assert cc.bytes_in_flight == 0 and cc.packets_in_flight == 0
    assert cc.packets_lost == 2 and cc.packets_acked == 5
    assert cc.stats()["tracked_packets"] == 0
    # Same packet numbers in another epoch are different packets (aioquic keeps each
    # in-flight packet alive until it reports it, as these references do).
    again = [_packet(1, 0.08, epoch=Epoch.HANDSHAKE), _packet(1, 0.08, epoch=Epoch.ONE_RTT)]
    for p in again:
        cc.on_packet_sent(packet=p)
    assert cc.stats()["tracked_packets"] == 2
    cc.on_packets_lost(now=0.09, packets=again)
    assert cc.stats()["tracked_packets"] == 0 and cc.bytes_in_flight == 0


def test_rtt_estimator_is_rfc9002() -> None:
    cc = OxidizeCongestionControl(max_datagram_size=MSS, engine=_engine(), time_offset_s=0.0)
    cc.on_rtt_measurement(now=0.1, rtt=0.100)
    assert cc.smoothed_rtt_s == pytest.approx(0.100) and cc.min_rtt_s == pytest.approx(0.100)
    cc.on_rtt_measurement(now=0.2, rtt=0.060)
    assert cc.smoothed_rtt_s == pytest.approx(0.875 * 0.100 + 0.125 * 0.060)
    assert cc._rttvar == pytest.approx(0.75 * 0.050 + 0.25 * 0.040)
    assert cc.min_rtt_s == pytest.approx(0.060)


def test_window_is_the_engines_clamped_and_only_moves_at_decisions() -> None:
    limits = CwndLimits(mss=MSS)
    script = [5 * MSS, 1, 10**12, 30 * MSS]
    eng = ScriptedEngine(script, limits)
    cc = OxidizeCongestionControl(
        max_datagram_size=MSS,
        engine=eng,  # type: ignore[arg-type]
        decision_interval_s=0.01,
        time_offset_s=100.0,
    )
    windows = []
    for step in range(45):  # 1 ms apart: 45 ms -> decisions at 10, 20, 30, 40 ms
        t = step * 0.001
        before = cc.congestion_window
        cc.on_packet_sent(packet=_packet(step, t))
        if cc.congestion_window != before:
            windows.append((round(t, 3), cc.congestion_window))
    assert windows == [
        (0.01, 5 * MSS),
        (0.02, limits.min_cwnd),
        (0.03, limits.max_cwnd_bytes),
        (0.04, 30 * MSS),
    ]
    # The engine saw Unix-offset times and the window in force.
    assert [round(o[0], 3) for o in eng.observed] == [100.01, 100.02, 100.03, 100.04]
    assert [o[1].cwnd for o in eng.observed] == [
        10 * MSS,
        5 * MSS,
        limits.min_cwnd,
        limits.max_cwnd_bytes,
    ]
    # Ten packets sent per interval, none acked: inflight grows by ten each time.
    assert [o[1].inflight for o in eng.observed] == [10, 20, 30, 40]


def test_features_follow_the_events_of_the_interval() -> None:
    eng = ScriptedEngine([12_000] * 10, CwndLimits(mss=MSS))
    cc = OxidizeCongestionControl(
        max_datagram_size=MSS,
        engine=eng,  # type: ignore[arg-type]
        decision_interval_s=0.05,
        time_offset_s=0.0,
    )
    pkts = [_packet(i, 0.0) for i in range(10)]
    for p in pkts:
        cc.on_packet_sent(packet=p)
    for p in pkts[:6]:
        cc.on_packet_acked(now=0.040, packet=p)
    cc.on_rtt_measurement(now=0.040, rtt=0.040)
    cc.on_packets_lost(now=0.041, packets=pkts[6:8])
    # The next event past the decision time closes the interval [0, 0.05).
    cc.on_packet_sent(packet=_packet(10, 0.050))
    ((now, f, thr),) = eng.observed
    assert now == pytest.approx(0.050)
    assert f.loss_rate == pytest.approx(2 / 8)
    assert f.recent_retx == 2
    assert f.rtt_us == pytest.approx(40_000)
    assert f.inflight == 2  # 10 sent - 6 acked - 2 lost; the packet at 0.05 comes after
    assert thr == pytest.approx(6 * MSS * 8 / 0.050)
    assert f.time_since_loss_ms == pytest.approx(9.0)
    assert f.buffer_occupancy == 0.0


def _fluid_run(
    cc: OxidizeCongestionControl,
    *,
    rate_bps: float,
    rtt_s: float,
    duration_s: float,
    loss_every: int = 0,
) -> dict[str, float]:
    """A bottleneck of ``rate_bps`` with base RTT ``rtt_s`` and a deep buffer, 1 ms steps."""
    tx = MSS * 8 / rate_bps
    inflight: deque[tuple[float, QuicSentPacket]] = deque()  # (ack time, packet)
    last_dep = 0.0
    pn = 0
    acked = 0
    steps = int(duration_s / 0.001)
    for step in range(steps):
        now = step * 0.001
        n_acked = 0
        lost: list[QuicSentPacket] = []
        while inflight and inflight[0][0] <= now:
            _, p = inflight.popleft()
            if loss_every and p.packet_number % loss_every == 0:
                lost.append(p)
                continue
            cc.on_packet_acked(now=now, packet=p)
            n_acked += 1
            acked += p.sent_bytes
            last_sent = p.sent_time
        if n_acked:
            cc.on_rtt_measurement(now=now, rtt=now - last_sent)
        if lost:
            cc.on_packets_lost(now=now, packets=lost)
        while cc.bytes_in_flight + MSS <= cc.congestion_window:
            p = _packet(pn, now)
            pn += 1
            cc.on_packet_sent(packet=p)
            last_dep = max(last_dep, now + rtt_s / 2) + tx
            inflight.append((last_dep + rtt_s / 2, p))
    return {"goodput_bps": acked * 8 / duration_s}


def test_closed_loop_windows_follow_engine_actions_within_limits() -> None:
    limits = CwndLimits(mss=MSS)
    spy = SpyEngine(_engine(limits=limits))
    cc = OxidizeCongestionControl(
        max_datagram_size=MSS,
        engine=spy,  # type: ignore[arg-type]
        time_offset_s=0.0,
    )
    out = _fluid_run(cc, rate_bps=12e6, rtt_s=0.040, duration_s=3.0)
    assert len(spy.decisions) >= 250  # ~ one per 10 ms over 3 s
    for _, before, action, new in spy.decisions:
        proposed = apply_action(action, before, limits)
        # the engine's delivery envelope may hold growth back, never a decrease
        assert new == proposed if proposed <= before else before <= new <= proposed
        assert limits.min_cwnd <= new <= limits.max_cwnd_bytes
    # The controller applied each decision: its window is the engine's.
    assert cc.congestion_window == spy.cwnd
    assert cc.decision_errors == 0
    # It is a working controller, not just a bounded one: most of the link is used and
    # the window ends within a small multiple of the BDP (60 KB).
    assert out["goodput_bps"] > 0.6 * 12e6
    assert 0.5 * 60_000 < cc.congestion_window < 4 * 60_000
    actions = {a for _, _, a, _ in spy.decisions}
    assert len(actions) >= 3  # it both grows and shrinks the window


def test_losses_reach_the_engine_and_telemetry_exports(tmp_path: Any) -> None:
    engine = _engine()
    engine.enable_training_collection()
    spy = SpyEngine(engine)
    cc = OxidizeCongestionControl(
        max_datagram_size=MSS,
        engine=spy,  # type: ignore[arg-type]
        time_offset_s=0.0,
    )
    _fluid_run(cc, rate_bps=8e6, rtt_s=0.030, duration_s=1.0, loss_every=20)
    losses = [f.loss_rate for _, f, _ in spy.observed]
    assert max(losses) > 0.0
    assert cc.packets_lost > 0 and cc.decision_errors == 0
    manifest = engine.export_training_data(tmp_path)
    assert manifest.tables["congestion"].rows > 50


def test_get_log_data_names_the_action() -> None:
    cc = OxidizeCongestionControl(max_datagram_size=MSS, engine=_engine(), time_offset_s=0.0)
    for i in range(3):
        cc.on_packet_sent(packet=_packet(i, 0.011 * i))
    data = cc.get_log_data()
    assert data["cwnd"] == cc.congestion_window and "oxidize_action" in data
