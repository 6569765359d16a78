"""Smoke test of the Transformer probe (oxidize_ml.training.loss_transformer)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")

from oxidize_ml.training import loss_transformer as lt
from oxidize_ml.training.loss_config import LossTrainConfig


def test_probe_runs_and_is_reproducible(tmp_path):
    rng = np.random.default_rng(3)
    stamps = np.sort(rng.integers(1, 3000, size=4000))
    trace = tmp_path / "t.down"
    trace.write_text("\n".join(str(int(s)) for s in stamps) + "\n3000\n", encoding="ascii")
    data = LossTrainConfig.quick()
    cfg = lt.TransformerConfig(
        window=8, d_model=8, heads=2, ff=16, epochs=1, stride=8, random_links=0
    )
    a = lt.run_probe([trace], config=cfg, seed=0, train_config=data)
    b = lt.run_probe([trace], config=cfg, seed=0, train_config=data)
    for key in ("40", "100", "pooled"):
        assert set(a[key]) == {"pr_auc", "pr_auc_ewma", "brier", "residual_ratio_vs_ewma"}
        assert 0.0 <= a[key]["brier"] <= 1.0 and math.isfinite(a[key]["brier"])
    assert a["pooled"] == b["pooled"]


def test_config_validation():
    with pytest.raises(ValueError, match="d_model"):
        lt.TransformerConfig(d_model=10, heads=3)
    with pytest.raises(ValueError, match="window"):
        lt.TransformerConfig(window=1)
    with pytest.raises(ValueError, match="learning_rate"):
        lt.TransformerConfig(learning_rate=0.0)
