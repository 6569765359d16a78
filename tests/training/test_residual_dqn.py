"""Smoke, reproducibility and file round trip of the residual-DQN trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from oxidize_ml.congestion.residual import N_INPUTS, ResidualDqnPolicy
from oxidize_ml.runtime.numpy_models import MlpModel
from oxidize_ml.training.dqn import weights_from_torch
from oxidize_ml.training.residual_dqn import (
    ResidualTrainConfig,
    fit,
    load,
    sample_episode,
    save,
)

TINY = ResidualTrainConfig(
    budget_s=600.0,
    max_decisions=300,
    learn_start=50,
    batch=16,
    episode_s=2.0,
    hidden=16,
    updates_per_decision=0.5,
)


def test_fit_is_reproducible_and_round_trips(tmp_path: Path) -> None:
    net_a, log_a = fit(TINY)
    net_b, _ = fit(TINY)
    assert log_a["decisions"] >= 300 and log_a["updates"] > 0
    x = np.random.default_rng(0).random((8, N_INPUTS)).astype(np.float32)
    qa = [MlpModel(weights_from_torch(net_a)).forward(r).copy() for r in x]
    qb = [MlpModel(weights_from_torch(net_b)).forward(r).copy() for r in x]
    np.testing.assert_array_equal(np.array(qa), np.array(qb))
    path = save(net_a, log_a, tmp_path)
    pol = load(path)
    assert isinstance(pol, ResidualDqnPolicy) and pol.is_learned
    qc = [pol.q_model.forward(r).copy() for r in x]
    np.testing.assert_allclose(np.array(qc), np.array(qa), rtol=1e-5, atol=1e-6)


def test_episodes_come_from_the_training_split() -> None:
    from oxidize_ml.evaluation.splits import HELDOUT_SCENARIOS, HELDOUT_TRACES

    rng = np.random.default_rng(0)
    for _ in range(40):
        sc = sample_episode(rng, 5.0, 0.6)
        assert sc.name not in HELDOUT_SCENARIOS
        assert not any(t in sc.name for t in HELDOUT_TRACES)


def test_config_checks_name_the_field() -> None:
    with pytest.raises(ValueError, match="gamma"):
        ResidualTrainConfig(gamma=1.5)
    with pytest.raises(ValueError, match="eps_fraction"):
        ResidualTrainConfig(eps_fraction=0.0)


def test_power_reward_is_bounded_and_prefers_full_link_and_empty_queue() -> None:
    from oxidize_ml.training.residual_dqn import power_reward

    assert power_reward(1.0, 0.0, 0.0) == 0.0
    assert power_reward(0.0, 0.99, 1.0) == -1.0
    assert power_reward(0.9, 0.1, 0.0) > power_reward(0.9, 0.5, 0.0)
    assert power_reward(0.9, 0.1, 0.0) > power_reward(0.5, 0.1, 0.0)
    assert power_reward(0.9, 0.1, 0.0) > power_reward(0.9, 0.1, 0.05)


def test_load_refuses_a_plain_dqn_file(tmp_path: Path) -> None:
    from oxidize_ml.training.export import export_safetensors
    from oxidize_ml.training.torch_models import DqnMlp

    path = export_safetensors(DqnMlp(n_inputs=24), tmp_path / "dqn.safetensors")
    with pytest.raises(ValueError, match="n_inputs"):
        ResidualDqnPolicy.load(path)


def test_train_exports_both_files_and_judges_the_default_rule(tmp_path: Path) -> None:
    from oxidize_ml.congestion.residual import INPUT_NAMES
    from oxidize_ml.training.residual_dqn import train

    res = train(ResidualTrainConfig.quick(), seed=1, out_dir=tmp_path, progress=False)
    assert res.name == "residual_dqn" and res.kind == "dqn"
    assert (tmp_path / res.files["safetensors"]).is_file()
    assert (tmp_path / res.files["onnx"]).is_file()
    assert res.inputs == list(INPUT_NAMES)
    assert res.training["policy"] == "residual-dqn" and res.training["seed"] == 1
    rule = res.metrics["default_rule"]
    assert res.beats_heuristic is rule["passed"]
    fams = res.metrics["heldout"]["families_power_vs_default"]
    assert {"scenario:step-change", "scenario:satellite"} <= set(fams)
    assert all(np.isfinite(v) and v > 0 for v in fams.values())
    if rule["power_ratio_ci"] is None:  # no held-out traces here: no interval, no default
        assert rule["passed"] is False and "no held-out traces" in rule["reason"]
    else:
        lo, hi = rule["power_ratio_ci"]
        assert lo <= rule["power_ratio_vs_default"] <= hi


def test_quick_config_and_eval_fields_are_checked() -> None:
    q = ResidualTrainConfig.quick()
    assert q.max_decisions < ResidualTrainConfig().max_decisions
    with pytest.raises(ValueError, match="eval_rtts_ms"):
        ResidualTrainConfig(eval_rtts_ms=())
    with pytest.raises(ValueError, match="eval_windows"):
        ResidualTrainConfig(eval_windows=0)
