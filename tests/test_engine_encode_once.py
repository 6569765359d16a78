"""The engine encodes the congestion state once per observation and every consumer reads it.

Issue 9: the engine's `CongestionStateEncoder` runs once per observation
while something reads it (the DQN, telemetry); the DQN takes that state
through ``learn_state`` instead of encoding again in ``learn_one``, and the
LSTM takes the first `N_FEATURES` entries instead of normalising the
features again. These tests hold the engine to the previous path: a DQN
and an LSTM fed the same observations through their own ``learn_one`` (own
encoder, own ``to_vector``) must decide the same, bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oxidize_ml.config import EnvSettings
from oxidize_ml.congestion.observation import CongestionObservation
from oxidize_ml.congestion.state import CongestionStateEncoder
from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.models import PLAIN_DQN, candidate_dir, default_model_dir

T0 = 1_700_000_000.0


def _engine(*, collect: bool = False, models: bool = True) -> MlEngine:
    engine = MlEngine(
        EngineConfig(load_default_models=False, collect_training=collect),
        settings=EnvSettings.from_env({}),
    )
    if models:
        directory = default_model_dir()
        assert directory is not None, "the package ships its default models"
        status = engine.load_models(directory)
        assert status["loss_predictor"] == "loaded"
        # The default congestion controller is the residual DQN, which encodes its own
        # state; the spec's DQN (the engine's encoder's reader) ships as a candidate.
        status = engine.load_models(_plain_dqn_dir())
        assert status["congestion_controller"] == "loaded"
        assert engine.policy("congestion_controller").name == "dqn"
    return engine


def _plain_dqn_dir() -> Path:
    directory = candidate_dir(PLAIN_DQN)
    assert directory is not None, "the package ships the spec's DQN as a candidate"
    return directory


def _stream(seed: int, n: int) -> list[tuple[float, NetworkFeatures, float]]:
    """Seeded intervals of a connection whose link, queue and loss wander."""
    rng = np.random.default_rng(seed)
    out = []
    t = T0
    bw = 20e6
    rtt = 40_000.0
    for _ in range(n):
        t += 0.01 if rng.random() > 0.02 else float(rng.uniform(0.5, 12.0))
        bw = float(np.clip(bw * np.exp(rng.normal(0, 0.05)), 1e5, 2e8))
        rtt = float(np.clip(rtt * np.exp(rng.normal(0, 0.05)), 5_000, 400_000))
        loss = float(rng.choice([0.0, 0.0, 0.0, rng.uniform(0, 0.15)]))
        f = NetworkFeatures(
            rtt_us=0.0 if rng.random() < 0.01 else rtt,
            rtt_var_us=float(rng.uniform(0, rtt / 4)),
            bandwidth_bps=bw,
            loss_rate=loss,
            loss_trend=float(rng.uniform(-0.05, 0.05)),
            inflight=float(rng.integers(1, 300)),
            cwnd=float(rng.integers(3_000, 600_000)),
            time_since_loss_ms=float(rng.uniform(0, 2_000)),
            buffer_occupancy=float(rng.random()),
            recent_retx=float(rng.integers(0, 4)),
        )
        out.append((t, f, bw * float(rng.uniform(0.3, 1.0))))
    return out


def _encodings(engine: MlEngine) -> int:
    """States encoded so far by the engine's encoder and by the controller's own."""
    encoders = [engine._state, getattr(engine.policy("congestion_controller"), "_encoder", None)]
    return sum(e.n_updates for e in encoders if isinstance(e, CongestionStateEncoder))


@pytest.mark.parametrize("collect", [False, True])
def test_dqn_and_lstm_decide_as_through_their_own_encoding(collect: bool) -> None:
    engine = _engine(collect=collect)
    dqn = engine.policy("congestion_controller")
    lstm = engine.policy("loss_predictor")
    # The previous path: each model fed through its own learn_one, which encodes
    # the state (DQN) and normalises the features (LSTM) itself.
    ref_dqn, ref_lstm = dqn.fork(), lstm.fork()
    actions = set()
    for k, (t, f, thr) in enumerate(_stream(seed=11, n=1_500)):
        engine.observe(f, throughput_bps=thr, now=t)
        action, _ = engine.congestion_action(now=t)
        obs = CongestionObservation(f, thr, int(f.cwnd))
        ref_dqn.learn_one(obs, 0.0, now=t)
        ref_lstm.learn_one(f, f.loss_rate, now=t)
        assert dqn.last_state.tobytes() == ref_dqn.last_state.tobytes(), k
        assert dqn.last_reward == ref_dqn.last_reward, k
        assert action is ref_dqn.predict_one(obs, now=t), k
        assert engine.fec_decision(now=t).loss_probability == ref_lstm.predict_one(f, now=t), k
        actions.add(action)
    assert len(actions) >= 3  # the stream makes the DQN do more than one thing
    if collect:
        assert engine.stats().telemetry is not None


def test_fec_decision_with_new_features_matches_the_previous_path() -> None:
    """The spec's usage: features passed to fec_decision count as a full observation."""
    engine = _engine()
    ref_dqn = engine.policy("congestion_controller").fork()
    ref_lstm = engine.policy("loss_predictor").fork()
    for k, (t, f, _) in enumerate(_stream(seed=5, n=600)):
        p = engine.fec_decision(f, now=t).loss_probability
        action, _ = engine.congestion_action(now=t)
        obs = CongestionObservation(f, float(f.bandwidth_bps), int(f.cwnd))
        ref_lstm.learn_one(f, f.loss_rate, now=t)
        ref_dqn.learn_one(obs, 0.0, now=t)
        assert p == ref_lstm.predict_one(f, now=t), k
        assert action is ref_dqn.predict_one(obs, now=t), k


@pytest.mark.parametrize(
    ("collect", "models", "expected"),
    [(False, True, 1), (True, True, 1), (True, False, 1), (False, False, 0)],
)
def test_the_state_is_encoded_once_per_observation_and_only_when_read(
    collect: bool, models: bool, expected: int
) -> None:
    engine = _engine(collect=collect, models=models)
    before = _encodings(engine)
    stream = _stream(seed=3, n=50)
    for t, f, thr in stream:
        engine.observe(f, throughput_bps=thr, now=t)
        engine.congestion_action(now=t)
    assert _encodings(engine) - before == expected * len(stream)


def test_telemetry_transitions_carry_the_states_the_dqn_decided_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = _engine(collect=True)
    dqn = engine.policy("congestion_controller")
    tel = engine._telemetry
    assert tel is not None
    recorded: list[tuple[np.ndarray, float, np.ndarray]] = []
    record = type(tel).record_transition

    def spy(self, state, action, reward, next_state, **kw):  # type: ignore[no-untyped-def]
        recorded.append((state, reward, next_state))
        return record(self, state, action, reward, next_state, **kw)

    monkeypatch.setattr(type(tel), "record_transition", spy)
    states, rewards = [], []
    for t, f, thr in _stream(seed=8, n=40):
        engine.observe(f, throughput_bps=thr, now=t)
        states.append(dqn.last_state)
        rewards.append(dqn.last_reward)
        engine.congestion_action(now=t)
    assert len(recorded) == len(states) - 1
    for k, (state, reward, next_state) in enumerate(recorded):
        assert state is states[k] and next_state is states[k + 1]  # the very same arrays
        assert reward == rewards[k + 1]


def test_a_dqn_installed_on_an_idle_encoder_starts_from_a_fresh_one() -> None:
    """Without a reader the encoder idles, so its history goes stale; a DQN swapped in
    later starts as the DQN's own fresh encoder would (the previous path)."""
    engine = _engine()
    stream = _stream(seed=21, n=400)
    for t, f, thr in stream[:100]:  # the DQN reads the encoder
        engine.observe(f, throughput_bps=thr, now=t)
        engine.congestion_action(now=t)
    engine.unload_models()
    for t, f, thr in stream[100:200]:  # BBR only, no telemetry: nothing encodes
        engine.observe(f, throughput_bps=thr, now=t)
        engine.congestion_action(now=t)
    engine.load_models(_plain_dqn_dir())
    dqn = engine.policy("congestion_controller")
    assert dqn.name == "dqn"
    ref = dqn.fork()
    for k, (t, f, thr) in enumerate(stream[200:]):
        engine.observe(f, throughput_bps=thr, now=t)
        ref.learn_one(CongestionObservation(f, thr, int(f.cwnd)), 0.0, now=t)
        assert dqn.last_state.tobytes() == ref.last_state.tobytes(), k


def test_residual_dqn_corrects_the_engines_own_fallback_with_the_same_decisions() -> None:
    # The default residual DQN takes over the engine's per-connection fallback as
    # the base it corrects (one BBR update per interval instead of two); its
    # decisions must equal those of a residual DQN with its own base while the
    # engine feeds a separate fallback, as before.
    import dataclasses

    from oxidize_ml.congestion.bbr import BbrFallback

    shared = MlEngine(EngineConfig(collect_training=False), settings=EnvSettings.from_env({}))
    own = MlEngine(EngineConfig(collect_training=False), settings=EnvSettings.from_env({}))
    a = shared.policy("congestion_controller")
    b = own.policy("congestion_controller")
    assert a.name == b.name == "residual-dqn"
    assert a.base is shared._cc_fallback and shared._cc_feeds_fallback
    b.base = BbrFallback(limits=b.limits)  # the previous layout: an own, fresh base
    own._cc_feeds_fallback = False
    assert b.base is not own._cc_fallback
    agent_decisions = 0
    for t, f, thr in _stream(11, 3_000):
        shared.observe(f, throughput_bps=thr, now=t)
        own.observe(f, throughput_bps=thr, now=t)
        assert shared.congestion_action(now=t) == own.congestion_action(now=t)
        agent_decisions += int(a.decided)
    assert agent_decisions > 100  # the agent, not only the fallback, was deciding
    sa, sb = shared.stats().congestion_controller, own.stats().congestion_controller
    assert dataclasses.replace(sa, latency=sb.latency) == sb  # all but the timings
