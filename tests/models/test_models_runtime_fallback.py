"""A learned policy whose model computes NaN/inf answers with its heuristic and counts it
(issue 8, item 4); forks share weights and copy only per-connection state."""

from __future__ import annotations

import numpy as np

from oxidize_ml.bench_models import random_tensors
from oxidize_ml.congestion.bbr import BbrFallback
from oxidize_ml.congestion.dqn import DqnCwndPolicy
from oxidize_ml.congestion.observation import CongestionObservation
from oxidize_ml.congestion.state import StateConfig
from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.loss.ewma import EwmaLossPredictor
from oxidize_ml.loss.lstm import LstmLossPredictor
from oxidize_ml.runtime import DqnMlpConfig, LossLstmConfig, LstmLossModel, MlpModel
from oxidize_ml.types import DrlAction

STATE = StateConfig()


def _features(i: int) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=40_000 + 700 * (i % 5),
        rtt_var_us=4_000,
        bandwidth_bps=50e6,
        loss_rate=0.02 * (i % 4),
        loss_trend=0.0,
        inflight=80,
        cwnd=120_000,
        time_since_loss_ms=500,
        buffer_occupancy=0.2,
        recent_retx=i % 2,
    )


def _overflowing(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.full_like(v, 3e38) for k, v in tensors.items()}


def bad_lstm() -> LstmLossModel:
    cfg = LossLstmConfig()
    return LstmLossModel.from_tensors(_overflowing(random_tensors(cfg)), cfg)


def bad_dqn() -> MlpModel:
    cfg = DqnMlpConfig(n_inputs=STATE.size)
    return MlpModel.from_tensors(_overflowing(random_tensors(cfg)), cfg)


def test_lstm_nonfinite_output_falls_back_to_ewma_and_counts() -> None:
    pred = LstmLossPredictor(bad_lstm())
    ewma = EwmaLossPredictor()
    for i in range(40):
        f, t = _features(i), 1.0 + 0.01 * i
        pred.learn_one(f, f.loss_rate, now=t)  # must not raise
        ewma.learn_one(f, f.loss_rate, now=t)
        assert pred.predict_one(f, now=t) == ewma.predict_one(f, now=t)
    assert pred.nonfinite_fallbacks == 40
    assert pred.state()["nonfinite_fallbacks"] == 40
    pred.reset()
    assert pred.nonfinite_fallbacks == 0


def test_healthy_lstm_never_uses_the_fallback() -> None:
    cfg = LossLstmConfig()
    pred = LstmLossPredictor(LstmLossModel.from_tensors(random_tensors(cfg), cfg))
    for i in range(40):
        f = _features(i)
        pred.learn_one(f, f.loss_rate, now=0.01 * i)
    assert pred.nonfinite_fallbacks == 0
    assert pred.fallback.n_updates == 40  # kept warm all along


def test_dqn_nonfinite_q_values_fall_back_and_count() -> None:
    policy = DqnCwndPolicy(bad_dqn(), state_config=STATE)
    bbr = BbrFallback()
    for i in range(30):
        obs = CongestionObservation(features=_features(i), throughput_bps=45e6, cwnd_bytes=120_000)
        t = 1.0 + 0.01 * i
        policy.learn_one(obs, 0.0, now=t)
        bbr.learn_one(obs, 0.0, now=t)
        if i == 15:
            policy.fallback = bbr  # the owner (the engine) attaches its warm heuristic
        action = policy.predict_one(obs, now=t)
        if i < 15:
            assert action is DrlAction.Maintain
        else:
            assert action == bbr.predict_one(obs, now=t)
    assert policy.nonfinite_fallbacks == 30
    fork = policy.fork()
    assert fork.nonfinite_fallbacks == 0 and fork.fallback is None


def test_engine_decisions_never_raise_with_a_misbehaving_model() -> None:
    engine = MlEngine(EngineConfig(load_default_models=False))
    engine.replace_policy("loss_predictor", LstmLossPredictor(bad_lstm()))
    engine.replace_policy("congestion_controller", DqnCwndPolicy(bad_dqn(), state_config=STATE))
    for i in range(60):
        t = 5.0 + 0.01 * i
        engine.observe(_features(i), now=t)
        assert 0.0 <= engine.fec_decision(now=t).loss_probability <= 1.0
        engine.fec_decision(_features(i + 1), now=t)  # unobserved features: an observation too
        engine.congestion_action(now=t)
    assert engine.policy("loss_predictor").nonfinite_fallbacks > 0
    assert engine.policy("congestion_controller").nonfinite_fallbacks > 0


def test_forks_share_read_only_weights_and_own_their_state() -> None:
    cfg = LossLstmConfig()
    pred = LstmLossPredictor(LstmLossModel.from_tensors(random_tensors(cfg), cfg))
    for i in range(10):
        pred.learn_one(_features(i), 0.0, now=0.01 * i)
    fork = pred.fork()
    assert fork.model.weights is pred.model.weights
    assert not fork.model.weights.w.flags.writeable
    assert fork.n_updates == 0 and fork.fallback is not pred.fallback
    h, _ = fork.model.clone_state()
    assert not h.any()  # fresh (h, c)
    dcfg = DqnMlpConfig(n_inputs=STATE.size)
    policy = DqnCwndPolicy(MlpModel.from_tensors(random_tensors(dcfg), dcfg), state_config=STATE)
    dfork = policy.fork()
    assert dfork.model.weights is policy.model.weights
    assert all(not w.flags.writeable for w in dfork.model.weights.layers)


def test_fallback_holds_when_numpy_raises_on_overflow() -> None:
    import warnings

    pred = LstmLossPredictor(bad_lstm())
    policy = DqnCwndPolicy(bad_dqn(), state_config=STATE)
    obs = CongestionObservation(features=_features(1), throughput_bps=45e6, cwnd_bytes=120_000)
    with np.errstate(all="raise"):
        pred.learn_one(_features(1), 0.0, now=1.0)
        policy.learn_one(obs, 0.0, now=1.0)
        assert policy.predict_one(obs, now=1.0) is DrlAction.Maintain
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pred.learn_one(_features(2), 0.0, now=2.0)
        assert policy.predict_one(obs, now=2.0) is DrlAction.Maintain
    assert pred.nonfinite_fallbacks == 2 and policy.nonfinite_fallbacks == 2
    h, c = pred.model.clone_state()
    assert np.isfinite(h).all() and np.isfinite(c).all()


def test_engine_attaches_its_fallback_and_reports_nonfinite_decisions() -> None:
    engine = MlEngine(EngineConfig(load_default_models=False))
    engine.replace_policy("congestion_controller", DqnCwndPolicy(bad_dqn(), state_config=STATE))
    engine.replace_policy("loss_predictor", LstmLossPredictor(bad_lstm()))
    policy = engine.policy("congestion_controller")
    assert policy.fallback is engine._cc_fallback  # the engine's warm BBR-style controller
    fork = engine.fork()
    assert fork.policy("congestion_controller").fallback is fork._cc_fallback
    for i in range(30):
        t = 5.0 + 0.01 * i
        engine.observe(_features(i), now=t)
        engine.fec_decision(now=t)
        engine.congestion_action(now=t)
    stats = engine.stats()
    cc = stats.congestion_controller
    assert cc.nonfinite_fallbacks == policy.nonfinite_fallbacks > 0
    assert cc.model_decisions + cc.fallback_decisions == cc.decisions
    assert cc.fallback_decisions >= cc.nonfinite_fallbacks
    assert stats.loss_predictor.nonfinite_fallbacks > 0
