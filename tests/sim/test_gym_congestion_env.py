"""CongestionEnv: Gymnasium contract, determinism, the shared encoder, domain randomisation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env

from oxidize_ml.congestion.bbr import BbrFallback
from oxidize_ml.congestion.interval import ExternalCwndController, PolicyController
from oxidize_ml.congestion.state import CongestionStateEncoder, StateConfig
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.interval_stats import estimate_buffer_occupancy
from oxidize_ml.sim import get_scenario, simulate
from oxidize_ml.sim.core import Simulation
from oxidize_ml.sim.gym.congestion_env import CongestionEnv, observation_bounds
from oxidize_ml.sim.random_links import RandomLinkConfig, random_link_scenario
from oxidize_ml.types import DrlAction

TRACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "traces" / "mahimahi"


def _rollout(env: CongestionEnv, seed: int, actions: list[int]) -> tuple[np.ndarray, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    states, rewards = [obs], []
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        states.append(obs)
        rewards.append(r)
        assert not term
        if trunc:
            break
    return np.array(states), np.array(rewards)


def test_check_env_passes() -> None:
    check_env(CongestionEnv("wired-clean", episode_s=1.0), skip_render_check=True)
    check_env(CongestionEnv(episode_s=1.0), skip_render_check=True)  # random links


def test_registered_id_makes_the_env() -> None:
    import oxidize_ml.sim.gym  # noqa: F401  (registers the ids)

    env = gym.make("oxidize_ml/CongestionControl-v0", scenario="wired-clean", episode_s=0.5)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (24,) and obs.dtype == np.float32
    env.close()


def test_spaces_match_the_spec() -> None:
    env = CongestionEnv("wired-clean")
    assert env.action_space == gym.spaces.Discrete(6)
    assert env.observation_space.shape == (24,)
    assert env.observation_space.dtype == np.float32
    lo, hi = observation_bounds(StateConfig(history=2))
    assert lo.shape == hi.shape == (16,)
    assert hi[0] == 10.0 and lo[4] == -1.0 and hi[7] == 1.0 and hi[8:].max() == 1.0


def test_same_seed_same_episode_and_different_seeds_differ() -> None:
    env = CongestionEnv(episode_s=1.0)  # random links: everything hangs on the seed
    actions = [int(a) for a in np.random.default_rng(0).integers(0, 6, 100)]
    s1, r1 = _rollout(env, 7, actions)
    s2, r2 = _rollout(env, 7, actions)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(r1, r2)
    name7 = env.scenario.name
    _rollout(env, 8, actions)
    assert env.scenario.name != name7


def test_episode_is_truncated_at_episode_s_and_rewards_are_bounded() -> None:
    env = CongestionEnv("wired-clean", episode_s=0.5)
    env.reset(seed=0)
    n, rewards = 0, []
    while True:
        obs, r, term, trunc, info = env.step(DrlAction.Increase10)
        n += 1
        rewards.append(r)
        assert env.observation_space.contains(obs)
        assert not term
        if trunc:
            break
    assert n == 49  # 50 ticks of 10 ms; the first one is the reset observation
    assert info["time_s"] == pytest.approx(0.5)
    assert all(math.isfinite(r) and -1.0 <= r <= 1.0 for r in rewards)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_step_before_reset_and_bad_action_raise() -> None:
    env = CongestionEnv("wired-clean")
    with pytest.raises(RuntimeError, match="Call reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(6)


def test_observation_and_reward_are_the_encoders() -> None:
    """The env's state is CongestionStateEncoder's on the interval's (sender-view) features."""
    env = CongestionEnv("wired-clean", episode_s=0.3)
    obs, _ = env.reset(seed=3)
    enc = CongestionStateEncoder()
    first = env.last_observation
    s, _ = enc.update(first.features, first.throughput_bps, now=env.now)
    np.testing.assert_array_equal(obs, s)
    for a in [1, 1, 0, 2, 3]:
        obs, r, _, _, _ = env.step(a)
        o = env.last_observation
        s, rr = enc.update(o.features, o.throughput_bps, now=env.now)
        np.testing.assert_array_equal(obs, s)
        assert r == rr


class _MinRttProbe(ExternalCwndController):
    """The env's agent, also recording the transport's min RTT and each interval's features."""

    def __init__(self) -> None:
        super().__init__()
        self.min_rtt_s = 0.0
        self.seen: list[tuple[NetworkFeatures, float]] = []

    def on_rtt_measurement(
        self, *, now: float, latest_rtt: float, smoothed_rtt: float, min_rtt: float
    ) -> None:
        self.min_rtt_s = min_rtt

    def on_interval(self, *, now: float, features: NetworkFeatures, throughput_bps: float) -> None:
        self.seen.append((features, self.min_rtt_s))
        super().on_interval(now=now, features=features, throughput_bps=throughput_bps)


def test_the_agent_sees_the_senders_queue_estimate() -> None:
    """Index 7 is (srtt - min_rtt) / srtt with the transport's min RTT, not the true queue
    fill: the simulator's features need no sender-view wrapper."""
    agent = _MinRttProbe()
    sim = Simulation(get_scenario("cellular-synthetic"), [agent], seed=1, duration_s=3.0)
    while not sim.done:
        sim.run_interval()
        agent.apply(DrlAction.Increase10)  # a growing window builds a queue
    assert max(f.buffer_occupancy for f, _ in agent.seen) > 0.2
    for f, min_rtt in agent.seen:
        est = estimate_buffer_occupancy(f.rtt_us * 1e-6, min_rtt)
        assert f.buffer_occupancy == pytest.approx(est, abs=1e-12)


def test_bbr_in_the_env_matches_bbr_in_the_simulator() -> None:
    """Step-wise control through the env equals the simulator's PolicyController run."""
    sc = get_scenario("wired-clean").with_duration(2.0)
    env = CongestionEnv(sc)
    env.reset(seed=5)
    sim_seed = env.simulation.seed
    bbr = BbrFallback()
    trunc = False
    while not trunc:
        o = env.last_observation
        bbr.learn_one(o, 0.0, now=env.now)
        _, _, _, trunc, _ = env.step(int(bbr.predict_one(o, now=env.now)))
    got = env.simulation.result()

    def factory(*, flow_index: int, seed: int) -> PolicyController:
        return PolicyController(BbrFallback())

    ref = simulate(sc, factory, seed=sim_seed, record_series=False)
    assert got.flows[0].bytes_acked == ref.flows[0].bytes_acked
    assert got.flows[0].packets_lost == ref.flows[0].packets_lost


def test_reset_options_pick_the_episode_source() -> None:
    env = CongestionEnv(episode_s=0.2)
    env.reset(seed=0, options={"scenario": "satellite"})
    assert env.scenario.name == "satellite" and env.scenario.duration_s == 0.2
    env.reset(seed=0, options={"random": True})
    assert env.scenario.name.startswith("random-")
    with pytest.raises(ValueError, match="options"):
        env.reset(seed=0, options={"bogus": 1})


def test_multi_flow_scenarios_run_competitors() -> None:
    env = CongestionEnv("competing-flows", episode_s=6.0, competitors=("reno",))
    env.reset(seed=0)
    trunc = False
    while not trunc:
        _, _, _, trunc, _ = env.step(DrlAction.Maintain)
    res = env.simulation.result()
    assert res.controllers == ("external", "reno", "reno")
    assert res.flows[1].bytes_acked > 0


@pytest.mark.skipif(not TRACES.is_dir(), reason="shared Mahimahi traces not present")
def test_trace_episodes_randomise_the_path_around_the_trace() -> None:
    env = CongestionEnv(trace=TRACES / "TMobile-LTE-short.up", episode_s=0.5)
    env.reset(seed=0)
    a = env.scenario
    env.reset(seed=1)
    b = env.scenario
    assert a.link is b.link  # the trace is read once
    assert a.flows[0].delay_s != b.flows[0].delay_s
    lo, hi = RandomLinkConfig().base_rtt_s
    assert lo <= 2 * a.flows[0].delay_s <= hi


def test_random_episodes_come_from_the_one_generator() -> None:
    """A random episode is `random_link_scenario` on the env's generator and config."""
    cfg = RandomLinkConfig(base_rtt_s=(0.02, 0.04))
    env = CongestionEnv(random_link=cfg, episode_s=0.3)
    for seed in range(5):
        env.reset(seed=seed)
        sc = env.scenario
        rng = np.random.default_rng(seed)
        ref = random_link_scenario(rng, name=sc.name, duration_s=0.3, config=cfg)
        assert repr(sc) == repr(ref)
        assert cfg.base_rtt_s[0] <= sc.flows[0].base_rtt_s <= cfg.base_rtt_s[1]


def test_env_arguments_validate() -> None:
    with pytest.raises(ValueError, match="scenario, a trace"):
        CongestionEnv(random_links=False)
    with pytest.raises(TypeError, match="random_link"):
        CongestionEnv(random_link={})  # type: ignore[arg-type]


def _random_dqn(seed: int = 0):
    from oxidize_ml.runtime import DqnMlpConfig, MlpModel

    rng = np.random.default_rng(seed)
    widths = [24, 128, 128, 6]
    tensors = {}
    for k in range(3):
        tensors[f"layers.{k}.weight"] = (
            rng.standard_normal((widths[k + 1], widths[k])) / np.sqrt(widths[k])
        ).astype(np.float32)
        tensors[f"layers.{k}.bias"] = np.zeros(widths[k + 1], np.float32)
    return MlpModel.from_tensors(tensors, DqnMlpConfig(n_inputs=24))


def test_dqn_factory_runs_beside_the_baselines() -> None:
    """A DQN registered as "dqn" runs in the simulator and acts as its greedy policy says."""
    from oxidize_ml.sim import default_registry
    from oxidize_ml.sim.controllers.dqn_factory import dqn_factory, make_dqn_controller

    model = _random_dqn()
    registry = default_registry()
    registry.register("dqn", dqn_factory(model))
    res = simulate(
        "competing-flows", "dqn", seed=0, duration_s=1.0, registry=registry, record_series=False
    )
    assert res.controllers == ("dqn", "dqn", "dqn")
    ctrl = make_dqn_controller(model)
    assert isinstance(ctrl, PolicyController) and ctrl.policy.name == "dqn"
    # Same decisions as the same network acting through the env (greedy).
    env = CongestionEnv("wired-clean", episode_s=1.0)
    obs, _ = env.reset(seed=2)
    trunc = False
    while not trunc:
        obs, _, _, trunc, _ = env.step(model.argmax(obs))
    ref = simulate(
        get_scenario("wired-clean").with_duration(1.0),
        ctrl,
        seed=env.simulation.seed,
        record_series=False,
    )
    assert ref.flows[0].bytes_acked == env.simulation.result().flows[0].bytes_acked
