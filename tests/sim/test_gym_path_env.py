"""PathSelectionEnv: Gymnasium contract, determinism, the path-quality model, registration."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env

import oxidize_ml.sim.gym as sim_gym
from oxidize_ml.paths import calculate_path_reward
from oxidize_ml.sim.gym.path_env import (
    FAILED_RTT_S,
    N_CONTEXTS,
    Degradation,
    PathScenario,
    PathSelectionEnv,
    PathSpec,
    get_path_scenario,
    list_path_scenarios,
)
from oxidize_ml.sim.links import ConstantLink, StepLink
from oxidize_ml.types import PathId, TrafficContext

TRACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "traces" / "mahimahi"
STEPS = 40  # short episodes keep the file fast


def _run(env: PathSelectionEnv, seed: int, actions: list[int]) -> list[tuple]:
    obs, _ = env.reset(seed=seed)
    out = [(obs.copy(),)]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs.copy(), r, term, trunc, info["oracle_reward"], info["context"]))
    return out


@pytest.mark.parametrize("name", ["stable", "primary-fails", "degrading"])
def test_check_env_passes(name: str) -> None:
    check_env(PathSelectionEnv(name, episode_steps=STEPS), skip_render_check=True)


def test_spaces_match_the_documented_layout() -> None:
    env = PathSelectionEnv("stable", episode_steps=STEPS)
    assert env.action_space.n == 3
    assert env.observation_space.shape == (N_CONTEXTS + 4 * 3,)
    assert env.observation_space.dtype == np.float32
    obs, info = env.reset(seed=0)
    assert obs[:N_CONTEXTS].sum() == 1.0
    assert TrafficContext(int(np.argmax(obs[:N_CONTEXTS]))).name == info["context"]
    avail = obs[N_CONTEXTS + 3 :: 4]
    assert np.all(avail == 1.0)  # nothing fails at the start of "stable"


def test_same_seed_same_episode_other_seed_differs() -> None:
    actions = [i % 3 for i in range(STEPS)]
    a = _run(PathSelectionEnv("primary-fails", episode_steps=STEPS), 7, actions)
    b = _run(PathSelectionEnv("primary-fails", episode_steps=STEPS), 7, actions)
    c = _run(PathSelectionEnv("primary-fails", episode_steps=STEPS), 8, actions)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x[0], y[0])
        assert x[1:] == y[1:]
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c, strict=True))


def test_reward_is_the_selector_reward_of_the_chosen_path_and_oracle_is_the_max() -> None:
    env = PathSelectionEnv("stable", episode_steps=STEPS)
    env.reset(seed=3)
    truth = env.episode_arrays()
    for k in range(STEPS):
        ctx = TrafficContext[env.current_context.name]
        action = k % env.n_paths
        _, reward, terminated, truncated, info = env.step(action)
        row = k + 1
        expected = [
            calculate_path_reward(
                ctx,
                truth["rtt_s"][row, i] * 1e6,
                truth["loss"][row, i],
                truth["throughput_bps"][row, i] / 1e6,
            )
            for i in range(env.n_paths)
        ]
        assert reward == pytest.approx(expected[action])
        assert info["oracle_reward"] == pytest.approx(max(expected))
        assert info["regret"] == pytest.approx(max(expected) - expected[action])
        assert info["best_path"] == int(np.argmax(expected))
        assert not terminated
        assert truncated == (k == STEPS - 1)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_observation_shows_previous_step_metrics() -> None:
    env = PathSelectionEnv("stable", episode_steps=STEPS)
    obs, _ = env.reset(seed=1)
    truth = env.episode_arrays()
    for k in range(5):
        assert obs[N_CONTEXTS] == pytest.approx(min(truth["rtt_s"][k, 0], 1.0), rel=1e-6)
        assert obs[N_CONTEXTS + 1] == pytest.approx(truth["loss"][k, 0], abs=1e-7)
        m = env.path_metrics()
        assert m[0].path_id is PathId.Primary
        assert m[0].rtt_us == pytest.approx(truth["rtt_s"][k, 0] * 1e6)
        assert m[2].cost_factor == 2.0
        obs, *_ = env.step(0)


def test_outage_makes_a_path_unavailable_and_worthless() -> None:
    env = PathSelectionEnv("primary-fails", episode_steps=130)
    env.reset(seed=0)
    t = env.episode_arrays()
    # step row k covers ((k - 1) s, k s]: rows 62..120 lie inside the 60-120 s outage
    assert np.all(t["availability"][62:120, 0] == 0.0)
    assert np.all(t["rtt_s"][62:120, 0] == FAILED_RTT_S)
    assert np.all(t["throughput_bps"][62:120, 0] == 0.0)
    assert np.all(t["availability"][1:60, 0] == 1.0)
    for _ in range(70):
        _, reward, _, _, info = env.step(0)
    assert reward < 0.01  # fibre is down at 70 s
    assert info["best_path"] != 0


def test_degradation_ramps_rtt_loss_and_capacity() -> None:
    deg = Degradation(
        start_s=10.0, ramp_s=10.0, extra_rtt_s=0.1, extra_loss=0.2, capacity_factor=0.5
    )
    spec = PathSpec(
        "p",
        ConstantLink(20e6),
        base_rtt_s=0.02,
        cross_load=0.0,
        cross_sigma=0.0,
        jitter_s=0.0,
        degradations=(deg,),
    )
    other = PathSpec("q", StepLink(((0.0, 10e6), (15.0, 5e6))), base_rtt_s=0.03)
    env = PathSelectionEnv(PathScenario("t", (spec, other), episode_steps=30))
    env.reset(seed=0)
    t = env.episode_arrays()
    assert t["rtt_s"][5, 0] == pytest.approx(0.02 + 12000 / 20e6 * 0.0, abs=1e-9)
    assert t["rtt_s"][25, 0] == pytest.approx(0.12)
    assert t["throughput_bps"][5, 0] == pytest.approx(20e6, rel=1e-3)
    assert t["throughput_bps"][25, 0] == pytest.approx(10e6 * 0.8, rel=1e-3)
    assert t["loss"][25, 0] > 0.1
    assert t["rtt_s"][12, 0] < t["rtt_s"][18, 0] < t["rtt_s"][25, 0]


def test_bad_arguments_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown path scenario"):
        PathSelectionEnv("nope")
    env = PathSelectionEnv("stable", episode_steps=5)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="path index"):
        env.step(3)
    with pytest.raises(ValueError, match="2 to 4 paths"):
        PathScenario("x", (PathSpec("a", ConstantLink(1e6), base_rtt_s=0.01),))
    with pytest.raises(ValueError, match="context_mix"):
        PathScenario("x", get_path_scenario("stable").paths, context_mix=(1.0,))


def test_registration_is_idempotent_and_make_works() -> None:
    assert sim_gym.PATH_ENV_ID in gymnasium.envs.registry
    assert sim_gym.CONGESTION_ENV_ID in gymnasium.envs.registry
    assert (
        gymnasium.envs.registry[sim_gym.PATH_ENV_ID].entry_point
        == "oxidize_ml.sim.gym.path_env:PathSelectionEnv"
    )
    for spec_id in (sim_gym.PATH_ENV_ID, sim_gym.CONGESTION_ENV_ID):  # entry points resolve
        entry = gymnasium.envs.registry[spec_id].entry_point
        assert isinstance(gymnasium.envs.registration.load_env_creator(entry), type)
    importlib.reload(sim_gym)  # a second registration must not warn or raise
    assert sim_gym.register_envs() == []
    env = gymnasium.make(sim_gym.PATH_ENV_ID, scenario="degrading", episode_steps=3)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()


@pytest.mark.skipif(not TRACES.is_dir(), reason="shared Mahimahi traces are not present")
def test_trace_scenarios_use_the_split_traces() -> None:
    assert "cellular-traces" in list_path_scenarios()
    env = PathSelectionEnv("cellular-traces-heldout", episode_steps=STEPS)
    check_env(env, skip_render_check=True)
    names = [p.name for p in env.scenario.paths]
    assert any("verizon-lte-short" in n for n in names)


def _write_trace(path: Path, gap_ms: int, length_ms: int = 1000) -> Path:
    path.write_text(
        "\n".join(str(t) for t in range(gap_ms, length_ms + 1, gap_ms)) + "\n", encoding="ascii"
    )
    return path


def test_trace_path_families(tmp_path: Path) -> None:
    from oxidize_ml.sim.gym.path_env import (
        TRACE_FAMILIES,
        TRACE_RTT_LADDER_S,
        trace_path_families,
    )

    tps = [_write_trace(tmp_path / f"t{i}.trace", g) for i, g in enumerate((1, 3, 9))]
    fams = trace_path_families(tps, steps=50)
    assert tuple(fams) == TRACE_FAMILIES
    base = fams["traces"]
    assert [p.base_rtt_s for p in base.paths] == list(TRACE_RTT_LADDER_S[:3])
    assert [p.base_rtt_s for p in fams["traces-rtt-reversed"].paths] == list(
        TRACE_RTT_LADDER_S[:3][::-1]
    )
    assert fams["traces-outage"].paths[0].outages == ((15.0, 25.0),)
    assert fams["traces-degrading"].paths[0].degradations[0].start_s == 15.0
    assert all(sc.episode_steps == 50 for sc in fams.values())
    # the outage shows up in the env: path 0 unavailable inside the window, available outside
    env = PathSelectionEnv(fams["traces-outage"])
    env.reset(seed=0)
    avail = env.episode_arrays()["availability"][:, 0]
    assert avail[18] == 0.0 and avail[5] == 1.0 and avail[40] == 1.0
    # a faster trace gives more throughput to the same flow, on average
    thr = env.episode_arrays()["throughput_bps"]
    assert thr[30:, 1].mean() > thr[30:, 2].mean()


def test_trace_path_families_refuses_bad_input(tmp_path: Path) -> None:
    from oxidize_ml.sim.gym.path_env import trace_path_families

    good = _write_trace(tmp_path / "good.trace", 2)
    with pytest.raises(ValueError, match="2 to 4 traces"):
        trace_path_families([good])
    with pytest.raises(ValueError, match="nope.trace"):
        trace_path_families([good, tmp_path / "nope.trace"])
    empty = tmp_path / "empty.trace"
    empty.write_text("", encoding="ascii")
    with pytest.raises(ValueError, match="empty.trace"):
        trace_path_families([good, empty])
    with pytest.raises(TypeError, match="list"):
        trace_path_families(good)  # type: ignore[arg-type]
