"""Reno, CUBIC, the interval-driven controllers and the registry."""

from __future__ import annotations

import math

import pytest

from oxidize_ml.congestion.actions import CwndLimits, apply_action
from oxidize_ml.congestion.reward import congestion_reward
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.sim.controllers import (
    CongestionController,
    ControllerRegistry,
    CubicController,
    EngineController,
    ExternalCwndController,
    PolicyController,
    RenoController,
    default_registry,
    overridden_events,
)
from oxidize_ml.sim.controllers.cubic import K_CUBIC_ALPHA, K_CUBIC_BETA, K_CUBIC_C
from oxidize_ml.types import DrlAction

MSS = 1500


def feats(**kw: float) -> NetworkFeatures:
    base = {
        "rtt_us": 40_000.0,
        "rtt_var_us": 1_000.0,
        "bandwidth_bps": 12e6,
        "loss_rate": 0.0,
        "loss_trend": 0.0,
        "inflight": 10.0,
        "cwnd": 15_000.0,
    }
    base.update(kw)
    return NetworkFeatures(**base)  # type: ignore[arg-type]


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


# ---- interval-driven controllers ----------------------------------------------------------
class RecordingPolicy:
    name = "recording"
    is_learned = False

    def __init__(self, action: DrlAction) -> None:
        self.action = action
        self.calls: list[tuple[str, object, float]] = []

    def learn_one(self, obs: object, feedback: float, *, now: float) -> None:
        self.calls.append(("learn", obs, feedback))

    def predict_one(self, obs: object, *, now: float) -> DrlAction:
        self.calls.append(("predict", obs, now))
        return self.action


def test_policy_controller_learns_then_predicts_then_applies() -> None:
    pol = RecordingPolicy(DrlAction.Increase10)
    pc = PolicyController(pol)
    assert pc.name == "recording"
    assert "on_interval" in overridden_events(pc)
    assert "on_packets_acked" not in overridden_events(pc)
    f = feats(rtt_us=50_000.0, loss_rate=0.1)
    pc.on_interval(now=0.01, features=f, throughput_bps=6e6)
    (kind1, obs1, reward), (kind2, obs2, _now) = pol.calls
    assert (kind1, kind2) == ("learn", "predict") and obs1 is obs2
    assert obs1.features is f and obs1.throughput_bps == 6e6 and obs1.cwnd_bytes == 15_000
    assert reward == pytest.approx(
        congestion_reward(
            throughput_bps=6e6,
            max_throughput_bps=6e6,
            rtt_us=50_000.0,
            min_rtt_us=50_000.0,
            loss_rate=0.1,
        )
    )
    assert pc.cwnd == apply_action(DrlAction.Increase10, 15_000, CwndLimits())
    # windowed max / min: a later, worse interval is judged against the earlier best
    pc.on_interval(now=0.02, features=feats(rtt_us=100_000.0), throughput_bps=3e6)
    assert pol.calls[2][2] == pytest.approx(
        congestion_reward(
            throughput_bps=3e6,
            max_throughput_bps=6e6,
            rtt_us=100_000.0,
            min_rtt_us=50_000.0,
            loss_rate=0.0,
        )
    )


def test_policy_controller_rejects_non_policies() -> None:
    with pytest.raises(TypeError, match="learn_one"):
        PolicyController(object())


class FakeEngine:
    def __init__(self) -> None:
        self.seen: list[tuple[NetworkFeatures, float, float]] = []

    def observe(self, features: NetworkFeatures, *, throughput_bps: float, now: float) -> None:
        self.seen.append((features, throughput_bps, now))

    def congestion_action(self, *, now: float) -> tuple[DrlAction, int]:
        return DrlAction.Decrease10, 10**12  # absurd window: must be clamped


def test_engine_controller_observes_then_sets_window() -> None:
    eng = FakeEngine()
    ec = EngineController(eng)
    f = feats()
    ec.on_interval(now=1.0, features=f, throughput_bps=5e6)
    assert eng.seen == [(f, 5e6, 1.0)]
    assert ec.last_action is DrlAction.Decrease10
    assert ec.cwnd == CwndLimits().max_cwnd_bytes
    with pytest.raises(TypeError, match="observe"):
        EngineController(object())


def test_external_controller() -> None:
    x = ExternalCwndController()
    # nothing delivered yet: the envelope (as in the engine) refuses growth
    assert x.apply(DrlAction.Increase5) == 15_000
    assert x.apply(DrlAction.Decrease5) == apply_action(DrlAction.Decrease5, 15_000, CwndLimits())
    x.set_cwnd(15_000)
    x.on_interval(now=0.01, features=feats(), throughput_bps=12e6)  # 15 kB delivered
    assert x.apply(DrlAction.Increase5) == apply_action(DrlAction.Increase5, 15_000, CwndLimits())
    assert x.set_cwnd(1) == 2 * MSS
    x.on_interval(now=0.5, features=feats(), throughput_bps=1e6)
    assert x.last_throughput_bps == 1e6 and x.last_time == 0.5
    assert x.last_reward == pytest.approx(1e6 / 12e6)  # against the windowed max throughput


def test_base_controller_events_are_noops() -> None:
    c = CongestionController()
    assert overridden_events(c) == frozenset()
    c.on_packets_acked(now=0.0, acked_bytes=MSS, sent_time=0.0)
    assert c.cwnd == 15_000


# ---- registry -----------------------------------------------------------------------------
def test_registry() -> None:
    reg = default_registry()
    assert reg.names() == ["bbr", "cubic", "reno"]
    a = reg.create("reno")
    b = reg.create("reno")
    assert isinstance(a, RenoController) and a is not b
    with pytest.raises(ValueError, match=r"unknown controller 'vegas'; choose from \['bbr'"):
        reg.create("vegas")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("reno", lambda *, flow_index, seed: RenoController())
    reg.register("reno", lambda *, flow_index, seed: CubicController(), replace=True)
    assert isinstance(reg.create("reno"), CubicController)
    # registries are independent objects (no global state)
    assert isinstance(default_registry().create("reno"), RenoController)
    assert len(ControllerRegistry()) == 0


def test_bbr_factory_wraps_the_fallback() -> None:
    pytest.importorskip("oxidize_ml.congestion.bbr")
    c = default_registry().create("bbr")
    assert isinstance(c, PolicyController)
    c.on_interval(now=0.01, features=feats(), throughput_bps=12e6)
    assert c.cwnd >= 2 * MSS


def test_engine_controller_drives_the_real_engine() -> None:
    engine_mod = pytest.importorskip("oxidize_ml.engine")
    from oxidize_ml.sim import simulate
    from oxidize_ml.sim.controllers import engine_factory

    def make(flow_index: int, seed: int) -> object:
        return engine_mod.MlEngine(engine_mod.EngineConfig(load_default_models=False))

    r = simulate("wired-clean", engine_factory(make), seed=0, duration_s=5.0)
    assert r.flows[0].controller == "engine"
    assert r.utilisation > 0.5
