"""Tests of the burst predictor's fit (oxidize_ml.training.loss_burst)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oxidize_ml.loss.burst import N_WEIGHTS, BurstLossConfig, BurstLossPredictor
from oxidize_ml.training import loss_burst as lb


@pytest.fixture(scope="module")
def quick_fit():
    return lb.fit(lb.BurstFitConfig.quick())


def test_quick_fit_shapes_and_determinism(quick_fit):
    assert len(quick_fit["weights"]) == N_WEIGHTS
    assert all(math.isfinite(w) for w in quick_fit["weights"])
    sev = quick_fit["severity"]
    assert sev == sorted(sev) and 0.0 < sev[0] and sev[-1] <= 1.0
    assert quick_fit["repair_price"] > 0.0
    again = lb.fit(lb.BurstFitConfig.quick())
    assert again["weights"] == quick_fit["weights"]
    assert again["repair_price"] == quick_fit["repair_price"]


def test_fit_ranks_better_than_the_ewma_on_its_training_rows(quick_fit):
    prov = quick_fit["provenance"]
    assert prov["train_pr_auc"] > prov["train_pr_auc_ewma"]


def test_rows_are_the_predictors_own_features():
    # run_rows builds the training matrix with the classes the predictor runs: replaying
    # the predictor over the same simulation gives the same logits.
    from oxidize_ml.sim import get_scenario

    sc = get_scenario("burst-loss")
    x, y, e = lb.run_rows(sc, "cubic", 5, 3.0)
    assert x.shape[1] == N_WEIGHTS and x.shape[0] == y.size == e.size
    assert not np.isnan(y).any()


def test_logistic_fit_recovers_a_known_model():
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(20_000), rng.normal(size=(20_000, 2))])
    w_true = np.array([-1.0, 2.0, -0.5])
    y = (rng.uniform(size=20_000) < 1.0 / (1.0 + np.exp(-(x @ w_true)))).astype(float)
    w = lb.fit_logistic(x, y, l2=0.0, steps=50)
    np.testing.assert_allclose(w, w_true, atol=0.1)


def test_weights_module_round_trip(quick_fit, tmp_path):
    path = lb.write_weights(quick_fit, tmp_path / "w.py")
    ns: dict[str, object] = {}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), ns)  # noqa: S102
    cfg = BurstLossConfig(ns["WEIGHTS"], ns["SEVERITY"], ns["FEATURE_VERSION"])  # type: ignore[arg-type]
    assert list(cfg.weights) == quick_fit["weights"]
    assert ns["REPAIR_PRICE"] == quick_fit["repair_price"]
    BurstLossPredictor(cfg)
    assert not list(tmp_path.glob(".tmp-*"))


def test_config_validation():
    with pytest.raises(ValueError, match="scenarios"):
        lb.BurstFitConfig(scenarios=("step-change",))  # held out: never trained on
    with pytest.raises(ValueError, match=r"rtts_s\[0\]"):
        lb.BurstFitConfig(rtts_s=(0.0,))
    with pytest.raises(ValueError, match="duration_s"):
        lb.BurstFitConfig(duration_s=0.5)
    with pytest.raises(TypeError, match="windows"):
        lb.BurstFitConfig(windows=1.5)  # type: ignore[arg-type]
