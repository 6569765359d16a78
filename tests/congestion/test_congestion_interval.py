"""The per-ack interface and the one per-interval adapter (`oxidize_ml.congestion.interval`)."""

from __future__ import annotations

import numpy as np
import pytest

from oxidize_ml.congestion.actions import CwndLimits, apply_action
from oxidize_ml.congestion.controller import CongestionController, overridden_events
from oxidize_ml.congestion.interval import ExternalCwndController, PolicyController
from oxidize_ml.congestion.reward import congestion_reward
from oxidize_ml.congestion.state import CongestionStateEncoder, StateConfig
from oxidize_ml.features import NetworkFeatures
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


def test_state_and_reward_are_the_encoders_once_per_interval() -> None:
    """The adapter's state and reward are `CongestionStateEncoder`'s on the same intervals."""
    cfg = StateConfig(history=2, window_s=2.0, bucket_s=0.5)
    x = ExternalCwndController(state_config=cfg)
    pol = RecordingPolicy(DrlAction.Maintain)
    pc = PolicyController(pol, state_config=cfg)
    enc = CongestionStateEncoder(cfg)
    assert x.last_state is None and x.last_features is None and x.last_throughput_bps == 0.0
    rng = np.random.default_rng(0)
    for k in range(400):  # 4 s: the 2-s filters forget the early maxima
        now = 0.01 * (k + 1)
        f = feats(rtt_us=float(rng.uniform(30e3, 90e3)), loss_rate=float(rng.uniform(0, 0.05)))
        thr = float(rng.uniform(1e6, 12e6)) if k < 100 else 1e6
        x.on_interval(now=now, features=f, throughput_bps=thr)
        pc.on_interval(now=now, features=f, throughput_bps=thr)
        state, reward = enc.update(f, thr, now=now)
        np.testing.assert_array_equal(x.last_state, state)
        assert x.last_reward == reward == pc.last_reward == pol.calls[-2][2]
        assert x.last_observation is not None and x.last_observation.features is f
    assert x.last_state is not None and x.last_state.shape == (cfg.size,)
    assert x.encoder.max_throughput_bps == 1e6  # the early maxima are forgotten


def test_the_window_of_a_policy_goes_through_the_envelope() -> None:
    # Nothing delivered yet: the envelope refuses growth, as behind the engine.
    pc = PolicyController(RecordingPolicy(DrlAction.Increase10))
    pc.on_interval(now=0.01, features=feats(), throughput_bps=0.0)
    assert pc.cwnd == 15_000 and pc.last_action is DrlAction.Increase10
    assert pc.set_cwnd(10**12) == CwndLimits().max_cwnd_bytes


def test_base_controller_events_are_noops() -> None:
    c = CongestionController()
    assert overridden_events(c) == frozenset()
    c.on_packets_acked(now=0.0, acked_bytes=MSS, sent_time=0.0)
    assert c.cwnd == 15_000


class StatePolicy(RecordingPolicy):
    """A policy reading the encoded state (as the DQN does)."""

    def __init__(self, state_config: StateConfig) -> None:
        super().__init__(DrlAction.Maintain)
        self.state_config = state_config

    def learn_state(self, state: np.ndarray, reward: float, *, now: float) -> None:
        self.calls.append(("learn_state", state, reward))


def test_a_policy_with_learn_state_gets_the_one_encoding() -> None:
    cfg = StateConfig(history=3)
    pol = StatePolicy(cfg)
    pc = PolicyController(pol, state_config=cfg)
    pc.on_interval(now=0.01, features=feats(), throughput_bps=6e6)
    (kind, state, reward), (kind2, _, _) = pol.calls
    assert (kind, kind2) == ("learn_state", "predict")
    assert state is pc.last_state and reward == pc.last_reward
    # another layout than the controller's: the policy encodes for itself (learn_one)
    other = StatePolicy(StateConfig(history=2))
    PolicyController(other, state_config=cfg).on_interval(
        now=0.01, features=feats(), throughput_bps=6e6
    )
    assert other.calls[0][0] == "learn"


def test_the_dqn_decides_the_same_with_the_adapters_encoding() -> None:
    """learn_state (one encoding) and learn_one (the DQN's own encoder) give the same run."""
    from oxidize_ml.congestion.dqn import DqnCwndPolicy
    from oxidize_ml.runtime import DqnMlpConfig, MlpModel

    rng = np.random.default_rng(1)
    widths = [24, 128, 128, 6]  # DqnMlpConfig's default layout
    tensors = {}
    for k in range(3):
        w = rng.standard_normal((widths[k + 1], widths[k])) / np.sqrt(widths[k])
        tensors[f"layers.{k}.weight"] = w.astype(np.float32)
        tensors[f"layers.{k}.bias"] = np.zeros(widths[k + 1], np.float32)
    model = MlpModel.from_tensors(tensors, DqnMlpConfig(n_inputs=24))
    one = PolicyController(DqnCwndPolicy(model.fork()))
    own = PolicyController(DqnCwndPolicy(model.fork()))
    own._learn_state = None  # force the DQN's own encoder
    assert one._learn_state is not None
    windows = []
    for k in range(300):
        f = feats(rtt_us=float(rng.uniform(30e3, 90e3)), cwnd=float(one.cwnd))
        thr = float(rng.uniform(1e6, 12e6))
        one.on_interval(now=0.01 * (k + 1), features=f, throughput_bps=thr)
        own.on_interval(now=0.01 * (k + 1), features=f, throughput_bps=thr)
        assert one.cwnd == own.cwnd and one.last_action == own.last_action
        windows.append(one.cwnd)
    assert len(set(windows)) > 1  # the network did act
