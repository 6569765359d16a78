"""Trainer of the learned path selector (quick config: checks the plumbing, not the model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from oxidize_ml.paths import calculate_path_reward
from oxidize_ml.paths.learned import INPUT_NAMES, LearnedPathSelector, probe_inputs
from oxidize_ml.sim.gym.path_env import PathSelectionEnv
from oxidize_ml.training import paths as T
from oxidize_ml.types import TrafficContext


def test_vectorised_rewards_match_the_reward_function() -> None:
    rng = np.random.default_rng(0)
    rtt, loss, thr = rng.uniform(0, 0.5, 20), rng.uniform(0, 0.2, 20), rng.uniform(0, 2e8, 20)
    got = T.rewards_all_contexts(rtt, loss, thr)
    for k in range(20):
        for c in TrafficContext:
            want = calculate_path_reward(c, rtt[k] * 1e6, loss[k], thr[k] / 1e6)
            assert got[k, int(c)] == pytest.approx(want, abs=1e-12)


def test_episode_rows_label_the_next_step_and_are_reproducible() -> None:
    env = PathSelectionEnv("primary-fails", episode_steps=20)
    x1, y1 = T.episode_rows(env, 5)
    x2, y2 = T.episode_rows(PathSelectionEnv("primary-fails", episode_steps=20), 5)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert x1.shape == (20 * 3 * 5, len(INPUT_NAMES)) and y1.shape == (20 * 3 * 5,)
    arr = env.episode_arrays()
    # row (step 0, path 1, Bulk): target = Bulk's reward on path 1 in step 1
    r = 1 * 5 + int(TrafficContext.Bulk)
    want = calculate_path_reward(
        TrafficContext.Bulk,
        arr["rtt_s"][1, 1] * 1e6,
        arr["loss"][1, 1],
        arr["throughput_bps"][1, 1] / 1e6,
    )
    assert y1[r] == pytest.approx(want, abs=1e-6)


def test_random_scenarios_are_seeded() -> None:
    a = T.random_scenario(np.random.default_rng(1), 50)
    b = T.random_scenario(np.random.default_rng(1), 50)
    assert a.to_dict() == b.to_dict()
    assert 2 <= a.n_paths <= 4


def test_quick_train_writes_a_loadable_verified_model(tmp_path: Path) -> None:
    res = T.train(T.PathTrainConfig.quick(), seed=0, out_dir=tmp_path, progress=False)
    assert res.name == "path_selector" and res.kind == "path_mlp"
    assert (tmp_path / res.files["safetensors"]).is_file()
    assert (tmp_path / res.files["onnx"]).is_file()
    assert res.inputs == list(INPUT_NAMES)
    m = res.metrics
    assert len(m["probe_outputs"]) == probe_inputs().shape[0]
    assert m["probe_numpy_vs_torch"] < 1e-5
    assert m["fit"]["train_episodes"] > 0 and m["fit"]["val_episodes"] > 0
    assert m["default_rule_met"] == res.beats_heuristic
    sel = LearnedPathSelector.from_weights(
        tmp_path / res.files["safetensors"], probe_outputs=m["probe_outputs"]
    )
    assert sel.is_learned
    entry = res.manifest_entry()
    assert entry["metrics"]["default_enabled"] == res.beats_heuristic


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="val_share"):
        T.PathTrainConfig(val_share=0.0)
    with pytest.raises(ValueError, match="prior_strengths"):
        T.PathTrainConfig(prior_strengths=(0.0,))
