"""Unit tests of `DeliveryEnvelope`: ack-clocked growth and the delivery-based cap."""

from __future__ import annotations

import pytest

from oxidize_ml.congestion import CongestionObservation, CwndLimits, apply_action
from oxidize_ml.congestion.envelope import DeliveryEnvelope, EnvelopeConfig
from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.types import DrlAction

MSS = 1500


def obs(
    *, cwnd: int, tput_bps: float, inflight: float | None = None, rtt_us: float = 40_000.0
) -> CongestionObservation:
    f = NetworkFeatures(
        rtt_us=rtt_us,
        rtt_var_us=0.0,
        bandwidth_bps=tput_bps,
        loss_rate=0.0,
        loss_trend=0.0,
        inflight=cwnd / MSS if inflight is None else inflight,
        cwnd=float(cwnd),
    )
    return CongestionObservation(features=f, throughput_bps=tput_bps, cwnd_bytes=cwnd)


def test_no_delivery_no_growth_but_decreases_pass() -> None:
    env = DeliveryEnvelope()
    for k in range(1, 100):
        env.update(obs(cwnd=15_000, tput_bps=0.0, rtt_us=0.0), now=k * 0.01)
        assert env.bound(15_000, 16_500) == 15_000
    assert env.bound(15_000, 13_500) == 13_500
    assert env.cap_bytes == CwndLimits().initial_cwnd
    assert env.stats()["clamped_decisions"] == 99


def test_growth_is_bounded_by_what_the_interval_delivered() -> None:
    env = DeliveryEnvelope()
    # 2.4 Mbit/s over 10 ms = 3000 bytes delivered per interval, window fully used;
    # four intervals per 40-ms min RTT: 12 kB per span, cap 30 kB
    for k in range(1, 6):
        env.update(obs(cwnd=15_000, tput_bps=2.4e6), now=k * 0.01)
    assert env.growth_budget_bytes == pytest.approx(3000.0)
    assert env.cap_bytes == pytest.approx(2.5 * 12_000.0)
    assert env.bound(15_000, 16_500) == 16_500  # +1500 within budget and cap
    # the budget is shared by the decisions until the next observation
    assert env.bound(16_500, 20_000) == 18_000
    assert env.bound(18_000, 19_000) == 18_000


def test_application_limited_flow_does_not_grow() -> None:
    env = DeliveryEnvelope()
    env.update(obs(cwnd=60_000, tput_bps=12e6, inflight=5), now=0.01)  # 7.5 kB of 60 kB used
    assert env.bound(60_000, 66_000) == 60_000


def test_cap_follows_what_the_path_delivered_per_min_rtt() -> None:
    cfg = EnvelopeConfig()
    env = DeliveryEnvelope(cfg)
    # 12 Mbit/s, 40 ms min RTT: 60 kB per min-RTT span
    for k in range(1, 200):
        env.update(obs(cwnd=60_000, tput_bps=12e6), now=k * 0.01)
    assert env.bdp_estimate_bytes == pytest.approx(60_000.0, rel=0.01)
    assert env.cap_bytes == pytest.approx(cfg.gain * 60_000.0, rel=0.01)
    # an always-Increase10 policy: the window stops at the cap, however long it asks
    cwnd = 60_000
    for k in range(200, 2000):
        env.update(obs(cwnd=cwnd, tput_bps=12e6), now=k * 0.01)
        cwnd = env.bound(cwnd, apply_action(DrlAction.Increase10, cwnd, CwndLimits()))
        assert cwnd <= env.cap_bytes + 1
    assert cwnd == pytest.approx(cfg.gain * 60_000.0, rel=0.02)


def test_window_above_cap_is_held_not_cut() -> None:
    env = DeliveryEnvelope()
    env.update(obs(cwnd=1_000_000, tput_bps=12e6), now=0.01)
    assert env.bound(1_000_000, 1_100_000) == 1_000_000
    assert env.bound(1_000_000, 900_000) == 900_000


def test_config_checks_name_the_field() -> None:
    with pytest.raises(ValueError, match="gain"):
        EnvelopeConfig(gain=1.0)
    with pytest.raises(ValueError, match="validated_fraction"):
        EnvelopeConfig(validated_fraction=0.0)
    with pytest.raises(ValueError, match="bucket_s"):
        EnvelopeConfig(window_s=1.0, bucket_s=2.0)
    with pytest.raises(TypeError, match="config"):
        DeliveryEnvelope(config=object())  # type: ignore[arg-type]
    env = DeliveryEnvelope()
    with pytest.raises(ValueError, match="throughput_bps"):
        env.update(
            obs(cwnd=15_000, tput_bps=0.0).__class__(
                features=obs(cwnd=15_000, tput_bps=0.0).features,
                throughput_bps=-1.0,
                cwnd_bytes=15_000,
            ),
            now=0.01,
        )


def test_stale_clock_cannot_inflate_the_budget() -> None:
    env = DeliveryEnvelope()
    env.update(obs(cwnd=15_000, tput_bps=0.0), now=0.0)
    env.update(obs(cwnd=15_000, tput_bps=12e6), now=1000.0)  # one rate over a 1000-s gap
    assert env.growth_budget_bytes <= 12e6 / 8 * EnvelopeConfig().max_interval_s


class AlwaysIncrease10:
    """The DQN runaway of issue 10, as an adversarial policy."""

    name = "always-increase10"
    is_learned = True

    def learn_one(self, obs: object, feedback: float = 0.0, *, now: float) -> None:
        pass

    def predict_one(self, obs: object, *, now: float) -> DrlAction:
        return DrlAction.Increase10


@pytest.mark.parametrize("policy", ["fallback", "always-increase10"])
def test_engine_holds_the_window_while_nothing_is_acknowledged(policy: str) -> None:
    eng = MlEngine(EngineConfig(load_default_models=False, collect_training=False))
    if policy != "fallback":
        eng.replace_policy("congestion_controller", AlwaysIncrease10())
    init = CwndLimits().initial_cwnd
    for k in range(1, 86):  # 850 ms of a silent link (the issue: 10 -> 33,000 packets)
        f = NetworkFeatures(
            rtt_us=0.0,
            rtt_var_us=0.0,
            bandwidth_bps=0.0,
            loss_rate=0.0,
            loss_trend=0.0,
            inflight=init / MSS,
            cwnd=float(eng.cwnd),
        )
        eng.observe(f, throughput_bps=0.0, now=k * 0.01)
        _, cwnd = eng.congestion_action(now=k * 0.01)
        assert cwnd <= init


def test_a_reset_window_may_return_to_the_validated_bdp_for_one_round_trip() -> None:
    """PROBE_RTT's SlowStart cuts the window to the initial one; the window held just
    before was validated by deliveries, so it may come back (up to the BDP estimate)
    within 2 min-RTTs + 200 ms without waiting for acks, and not later."""
    env = DeliveryEnvelope()
    for k in range(1, 200):  # 12 Mbit/s, 40 ms: BDP 60 kB
        env.update(obs(cwnd=60_000, tput_bps=12e6), now=k * 0.01)
    init = env.limits.initial_cwnd
    assert env.bound(60_000, init) == init  # the reset passes (a decrease)
    env.update(obs(cwnd=init, tput_bps=0.0, inflight=2), now=2.0)  # nothing acked yet
    assert env.growth_budget_bytes == 0.0
    assert env.bound(init, 66_000) == pytest.approx(60_000, rel=0.01)  # back to the BDP
    # ... but only for a moment: a later reset-free climb is ack-clocked again
    env2 = DeliveryEnvelope()
    for k in range(1, 200):
        env2.update(obs(cwnd=60_000, tput_bps=12e6), now=k * 0.01)
    env2.bound(60_000, init)
    env2.update(obs(cwnd=init, tput_bps=0.0, inflight=2), now=2.5)  # 0.5 s > 2 x 40 ms + 0.2
    assert env2.bound(init, 66_000) == init


def test_a_burst_of_acks_is_spread_over_the_span_then_growth_stops() -> None:
    # A 600-ms path whose acks arrive as one burst per round trip (a flight acked
    # in one 10-ms interval): the intervals after the burst may still grow the
    # window by their share of what the last min-RTT delivered; once a min-RTT
    # passes without a delivery (an outage), nothing may grow.
    env = DeliveryEnvelope()
    t = 0.0
    for _ in range(60):  # 600 ms of a 10-packet window delivered in bursts
        t += 0.01
        env.update(obs(cwnd=15_000, tput_bps=0.0, rtt_us=600_000.0), now=t)
    t += 0.01
    env.update(obs(cwnd=15_000, tput_bps=12e6, rtt_us=600_000.0), now=t)  # 15 kB at once
    assert env.growth_budget_bytes == pytest.approx(15_000.0)
    grown = []
    for _ in range(59):  # the rest of the round trip: no acks
        t += 0.01
        env.update(obs(cwnd=15_000, tput_bps=0.0, rtt_us=600_000.0), now=t)
        grown.append(env.growth_budget_bytes)
    assert min(grown) > 0.0
    assert sum(grown) <= 15_000.0 + 1e-6  # at most what the span delivered
    for _ in range(10):  # a min-RTT and more since the burst: an outage
        t += 0.01
        env.update(obs(cwnd=15_000, tput_bps=0.0, rtt_us=600_000.0), now=t)
    assert env.growth_budget_bytes == 0.0
    assert env.bound(15_000, 16_500) == 15_000
