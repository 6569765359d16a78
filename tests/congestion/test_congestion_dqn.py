"""DqnCwndPolicy: greedy decisions on the shared state, epsilon schedule, replay, online learning."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import numpy as np
import pytest

from oxidize_ml.congestion.dqn import (
    EPSILON_DECAY,
    EPSILON_END,
    EPSILON_START,
    DqnCwndPolicy,
    EpsilonSchedule,
    OnlineConfig,
    ReplayBuffer,
    state_config_from_metadata,
)
from oxidize_ml.congestion.observation import CongestionObservation
from oxidize_ml.congestion.state import CongestionStateEncoder, StateConfig
from oxidize_ml.policy import Policy
from oxidize_ml.runtime import DqnMlpConfig, MlpModel
from oxidize_ml.sim import simulate
from oxidize_ml.types import DrlAction


def random_model(n_inputs: int = 24, seed: int = 0) -> MlpModel:
    """A DQN with random (He-scaled) weights: enough to exercise every code path."""
    rng = np.random.default_rng(seed)
    cfg = DqnMlpConfig(n_inputs=n_inputs)
    widths = [n_inputs, 128, 128, 6]
    tensors = {}
    for k in range(3):
        fan_in = widths[k]
        tensors[f"layers.{k}.weight"] = (
            rng.standard_normal((widths[k + 1], fan_in)) * np.sqrt(2.0 / fan_in)
        ).astype(np.float32)
        tensors[f"layers.{k}.bias"] = (0.1 * rng.standard_normal(widths[k + 1])).astype(np.float32)
    return MlpModel.from_tensors(tensors, cfg)


@pytest.fixture(scope="module")
def observations() -> list[tuple[float, CongestionObservation]]:
    """(time, observation) per interval of a real simulated CUBIC flow (1 s, 100 intervals)."""
    out = []

    def hook(now, i, features, thr, cwnd):
        out.append(
            (now, CongestionObservation(features=features, throughput_bps=thr, cwnd_bytes=cwnd))
        )

    simulate("wired-clean", "cubic", seed=0, duration_s=1.0, on_interval=hook, record_series=False)
    return out


# ---- epsilon schedule ---------------------------------------------------------------------
def test_epsilon_schedule_is_exactly_the_spec() -> None:
    sched = EpsilonSchedule()
    assert (sched.start, sched.decay, sched.end) == (1.0, 0.995, 0.01)
    assert (EPSILON_START, EPSILON_DECAY, EPSILON_END) == (1.0, 0.995, 0.01)
    for n in range(3000):
        assert sched(n) == max(0.01, 1.0 * 0.995**n)
    assert sched(0) == 1.0
    floor_at = next(n for n in range(3000) if 0.995**n < 0.01)
    assert sched(floor_at - 1) > 0.01 and sched(floor_at) == 0.01 == sched(10**6)


def test_epsilon_schedule_validates() -> None:
    with pytest.raises(ValueError, match="decay"):
        EpsilonSchedule(decay=0.0)
    with pytest.raises(ValueError, match="end"):
        EpsilonSchedule(start=0.1, end=0.5)


# ---- replay buffer --------------------------------------------------------------------------
def _filled(capacity: int, n: int, seed: int = 0) -> ReplayBuffer:
    buf = ReplayBuffer(capacity, 2, seed=seed)
    for i in range(n):
        buf.add(np.array([i, 0.0]), i % 6, float(i), np.array([i + 1, 0.0]))
    return buf


def test_replay_is_bounded_and_overwrites_the_oldest() -> None:
    buf = _filled(100, 250)
    assert len(buf) == 100 and buf.added == 250
    ids = buf.sample(5000).states[:, 0]
    assert ids.min() >= 150 and ids.max() == 249


def test_replay_samples_uniformly_at_random_not_the_newest_batch() -> None:
    buf = _filled(1000, 1000)
    b1 = buf.sample(64).states[:, 0]
    b2 = buf.sample(64).states[:, 0]
    newest = np.arange(936, 1000)
    assert not np.array_equal(np.sort(b1), newest)
    assert not np.array_equal(b1, b2)
    # Uniform: 64 000 draws over 10 equal bins (deterministic seed; expected 6 400 +- 76)
    ids = np.concatenate([buf.sample(64).states[:, 0] for _ in range(1000)])
    counts = np.bincount((ids // 100).astype(int), minlength=10)
    chi2 = float(((counts - 6400.0) ** 2 / 6400.0).sum())
    assert chi2 < 27.9  # 99.9th percentile of chi-square with 9 degrees of freedom
    # transitions stay intact: next_state belongs to the same row as state
    b = buf.sample(256)
    np.testing.assert_array_equal(b.next_states[:, 0], b.states[:, 0] + 1)
    np.testing.assert_array_equal(b.rewards, b.states[:, 0])
    np.testing.assert_array_equal(b.actions, b.states[:, 0].astype(int) % 6)


def test_replay_sampling_is_seeded() -> None:
    a = _filled(500, 500, seed=1).sample(32).states
    b = _filled(500, 500, seed=1).sample(32).states
    c = _filled(500, 500, seed=2).sample(32).states
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_replay_add_batch_and_errors() -> None:
    buf = ReplayBuffer(10, 3)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(1)
    s = np.arange(45, dtype=np.float32).reshape(15, 3)
    buf.add_batch(s, np.zeros(15, dtype=int), np.ones(15), s + 1)
    assert len(buf) == 10 and buf.sample(100).states[:, 0].min() >= 15  # the newest 10 rows
    with pytest.raises(ValueError, match="actions"):
        buf.add_batch(s, np.full(15, 6), np.ones(15), s)
    with pytest.raises(ValueError, match="shape"):
        buf.add_batch(s[:, :2], np.zeros(15, dtype=int), np.ones(15), s[:, :2])


# ---- the policy -----------------------------------------------------------------------------
def test_policy_protocol_and_greedy_by_default(observations) -> None:
    model = random_model()
    policy = DqnCwndPolicy(model.fork())
    assert isinstance(policy, Policy)
    assert policy.name == "dqn" and policy.is_learned and policy.epsilon == 0.0
    t0, o0 = observations[0]
    assert policy.predict_one(o0, now=t0) is DrlAction.Maintain  # no state yet
    enc = CongestionStateEncoder()
    chosen = set()
    for t, obs in observations:
        policy.learn_one(obs, 0.0, now=t)
        state, reward = enc.update(obs.features, obs.throughput_bps, now=t)
        np.testing.assert_array_equal(policy.last_state, state)
        assert policy.last_reward == reward
        a = policy.predict_one(obs, now=t)
        assert a is DrlAction(int(np.argmax(model.forward(state))))
        assert policy.predict_one(obs, now=t) is a  # reads state only
        chosen.add(a)
    assert policy.epsilon == 0.0
    assert policy.stats() == {"epsilon": 0.0, "exploring": False}
    assert len(chosen) >= 1


def test_policy_checks_its_model_and_state_config() -> None:
    with pytest.raises(ValueError, match="StateConfig"):
        DqnCwndPolicy(random_model(24), state_config=StateConfig(history=2))
    DqnCwndPolicy(random_model(16), state_config=StateConfig(history=2))
    with pytest.raises(TypeError, match="dqn"):
        DqnCwndPolicy(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epsilon"):
        DqnCwndPolicy(random_model(), epsilon=1.5)


def test_constant_epsilon_explores_reproducibly(observations) -> None:
    def actions(seed: int) -> list[DrlAction]:
        p = DqnCwndPolicy(random_model(), epsilon=1.0, seed=seed)
        out = []
        for t, obs in observations:
            p.learn_one(obs, 0.0, now=t)
            out.append(p.predict_one(obs, now=t))
        assert p.epsilon == 1.0  # constant: no decay without online exploration
        return out

    a = actions(3)
    assert a == actions(3) and a != actions(4)
    assert len(set(a)) == 6


def test_fork_has_its_own_connection_state(observations) -> None:
    policy = DqnCwndPolicy(random_model())
    for t, obs in observations[:20]:
        policy.learn_one(obs, 0.0, now=t)
    child = policy.fork()
    t, obs = observations[20]
    assert child.predict_one(obs, now=t) is DrlAction.Maintain  # fresh encoder
    child.learn_one(obs, 0.0, now=t)
    fresh = DqnCwndPolicy(random_model())
    fresh.learn_one(obs, 0.0, now=t)
    assert child.predict_one(obs, now=t) is fresh.predict_one(obs, now=t)  # same weights
    assert policy.last_state is not child.last_state


def test_numpy_and_onnxruntime_policies_agree(tmp_path, observations, monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from oxidize_ml.training.export import export_onnx, export_safetensors
    from oxidize_ml.training.torch_models import DqnMlp

    real_export = torch.onnx.export

    def torchscript_export(*args, **kwargs):
        # The exporter's TorchScript path: the same MLP graph in seconds rather than the
        # dynamo exporter's 15-50 s here (the export module's tests cover dynamo).
        if kwargs.get("dynamo", True):
            raise RuntimeError("dynamo skipped in this test")
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", torchscript_export)
    torch.manual_seed(0)
    net = DqnMlp(n_inputs=24).eval()
    cfg = StateConfig(window_s=5.0)
    meta = {"state_config": json.dumps(dataclasses.asdict(cfg))}
    export_safetensors(net, tmp_path / "congestion_controller.safetensors", extra_metadata=meta)
    export_onnx(net, tmp_path / "congestion_controller.onnx")
    p_np = DqnCwndPolicy.load(tmp_path)
    p_ort = DqnCwndPolicy.load(tmp_path, backend="onnxruntime")
    assert p_np.state_config == p_ort.state_config == cfg  # read from the weight file
    for t, obs in observations:
        p_np.learn_one(obs, 0.0, now=t)
        p_ort.learn_one(obs, 0.0, now=t)
        q_np = p_np.q_values(p_np.last_state)
        q_ort = p_ort.q_values(p_ort.last_state)
        np.testing.assert_allclose(q_np, q_ort, atol=1e-5)
        with torch.no_grad():
            q_torch = net(torch.from_numpy(p_np.last_state)[None])[0].numpy()
        np.testing.assert_allclose(q_np, q_torch, atol=1e-5)
        if np.sort(q_np)[-1] - np.sort(q_np)[-2] > 1e-4:  # no near-tie
            assert p_np.predict_one(obs, now=t) is p_ort.predict_one(obs, now=t)


def test_state_config_metadata_is_validated() -> None:
    assert state_config_from_metadata({}) == StateConfig()
    assert state_config_from_metadata({"state_config": '{"history": 2}'}) == StateConfig(history=2)
    with pytest.raises(ValueError, match="state_config"):
        state_config_from_metadata({"state_config": '{"history": 0}'})
    with pytest.raises(ValueError, match="state_config"):
        state_config_from_metadata({"state_config": "not json"})


def test_online_learning_needs_the_numpy_model() -> None:
    class FakeOrt:
        config = DqnMlpConfig(n_inputs=24)

        def forward(self, x):
            return np.zeros(6, np.float32)

    with pytest.raises(TypeError, match="numpy MlpModel"):
        DqnCwndPolicy(FakeOrt(), online=OnlineConfig())  # type: ignore[arg-type]


# ---- online learning ------------------------------------------------------------------------
def _drive(policy: DqnCwndPolicy, observations, rounds: int) -> list[DrlAction]:
    out = []
    span = observations[-1][0] + 0.01
    for k in range(rounds):
        for t, obs in observations:
            now = k * span + t
            policy.learn_one(obs, 0.0, now=now)
            out.append(policy.predict_one(obs, now=now))
    return out


def test_online_exploration_follows_the_schedule_per_decision(observations) -> None:
    pytest.importorskip("torch")
    cfg = OnlineConfig(explore=True, min_replay=10**6)  # the trainer never updates here
    with DqnCwndPolicy(random_model(), online=cfg, trainer=_trainer(), seed=1) as policy:
        assert policy.epsilon == 1.0
        for n, (t, obs) in enumerate(observations):
            policy.learn_one(obs, 0.0, now=t)
            policy.predict_one(obs, now=t)
            assert policy.epsilon == max(0.01, 0.995**n)
        # transitions (state, action, reward, next state) were recorded, one per decision
        assert policy.replay is not None and len(policy.replay) == len(observations) - 1
    assert not policy.stats()["online"]["running"]


def test_online_trainer_publishes_weights_and_stops(observations) -> None:
    pytest.importorskip("torch")
    cfg = OnlineConfig(
        min_replay=50,
        batch_size=16,
        train_interval_s=0.001,
        updates_per_wake=2,
        publish_every_updates=3,
        target_sync_updates=5,
        learning_rate=1e-3,
    )
    model = random_model()
    policy = DqnCwndPolicy(model, online=cfg, trainer=_trainer())
    first_weights = model.weights
    try:
        deadline = time.monotonic() + 60.0
        while policy.stats()["online"]["publications"] < 2 and time.monotonic() < deadline:
            _drive(policy, observations, 1)
        st = policy.stats()["online"]
        assert st["running"] and st["error"] is None
        assert st["updates"] >= 6 and st["publications"] >= 2
        _drive(policy, observations, 1)  # picks the published weights up
        assert policy._weights is not first_weights
        assert policy.epsilon == 0.0  # learning online does not imply exploring
        child = policy.fork()
        assert child.replay is policy.replay
    finally:
        policy.close()
    assert not policy.stats()["online"]["running"]
    policy.close()  # idempotent


def test_decisions_never_wait_for_the_trainer(observations, monkeypatch) -> None:
    """Hold the trainer inside an update; decisions and learning must still complete."""
    pytest.importorskip("torch")
    import oxidize_ml.training.dqn as train_dqn

    inside = threading.Event()
    release = threading.Event()
    real_update = train_dqn.dqn_update

    def slow_update(*args, **kwargs):
        inside.set()
        release.wait(60.0)
        return real_update(*args, **kwargs)

    monkeypatch.setattr(train_dqn, "dqn_update", slow_update)
    cfg = OnlineConfig(min_replay=20, batch_size=8, train_interval_s=0.001)
    policy = DqnCwndPolicy(random_model(), online=cfg, trainer=_trainer())
    try:
        while not inside.is_set():
            _drive(policy, observations, 1)
            inside.wait(0.01)
        # the trainer is blocked mid-update: 300 decisions still go through
        before = len(policy.replay)
        acts = _drive(policy, observations, 3)
        assert len(acts) == 3 * len(observations)
        assert len(policy.replay) > before and not release.is_set()
    finally:
        release.set()
        policy.close()


def _trainer():  # the torch loop lives in training code and is injected
    from oxidize_ml.training.dqn_online import torch_online_trainer

    return torch_online_trainer


def test_online_learning_without_a_trainer_is_refused() -> None:
    with pytest.raises(TypeError, match="trainer"):
        DqnCwndPolicy(random_model(), online=OnlineConfig(min_replay=10**6))
