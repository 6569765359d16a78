"""Tests for the EWMA loss predictor (oxidize_ml.loss.ewma)."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest

import oxidize_ml.loss.ewma as ewma_module
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.loss import EwmaLossConfig, EwmaLossPredictor
from oxidize_ml.policy import Policy

DT_S = 0.01


def feats(rtt_us: float = 50_000.0, rtt_var_us: float = 5_000.0, loss: float = 0.0):
    return NetworkFeatures(
        rtt_us=rtt_us,
        rtt_var_us=rtt_var_us,
        bandwidth_bps=1e8,
        loss_rate=loss,
        loss_trend=0.0,
        inflight=100,
        cwnd=65535,
    )


def feed(pred: EwmaLossPredictor, losses, *, t0: float = 0.0, f=None) -> float:
    """Learn a sequence of loss rates at DT_S spacing; return the last time."""
    f = f if f is not None else feats()
    t = t0
    for i, x in enumerate(losses):
        t = t0 + i * DT_S
        pred.learn_one(f, float(x), now=t)
    return t


def test_is_a_policy_with_spec_names():
    pred = EwmaLossPredictor()
    assert isinstance(pred, Policy)
    assert pred.name == "ewma"
    assert pred.is_learned is False


def test_no_history_no_loss_predicts_zero():
    pred = EwmaLossPredictor()
    assert pred.predict_one(feats(), now=0.0) == 0.0
    feed(pred, [0.0] * 20)
    assert pred.predict_one(feats(), now=1.0) == 0.0


def test_constant_loss_converges_to_it():
    pred = EwmaLossPredictor()
    t = feed(pred, [0.03] * 100)
    assert pred.predict_one(feats(), now=t) == pytest.approx(0.03, abs=1e-9)


def test_first_sample_initialises_level():
    pred = EwmaLossPredictor()
    pred.learn_one(feats(), 0.2, now=5.0)
    assert pred.predict_one(feats(), now=5.0) == pytest.approx(0.2)


def test_more_observed_loss_gives_higher_prediction():
    preds = []
    for level in (0.0, 0.01, 0.05, 0.1, 0.3):
        pred = EwmaLossPredictor()
        t = feed(pred, [level] * 30)
        preds.append(pred.predict_one(feats(), now=t))
    assert preds == sorted(preds)
    assert len(set(preds)) == len(preds)


def test_rising_loss_is_projected_ahead_by_the_trend():
    ramp = np.linspace(0.0, 0.2, 20)
    with_trend = EwmaLossPredictor()
    level_only = EwmaLossPredictor(EwmaLossConfig(trend_weight=0.0))
    t = feed(with_trend, ramp)
    feed(level_only, ramp)
    p_trend = with_trend.predict_one(feats(), now=t)
    p_level = level_only.predict_one(feats(), now=t)
    # The EWMA alone lags the ramp; the trend term moves it toward (and not
    # wildly past) where the ramp will be 50-100 ms later.
    assert p_level < ramp[-1]
    assert p_trend > p_level
    slope_per_s = (ramp[-1] - ramp[0]) / ((len(ramp) - 1) * DT_S)
    assert p_trend <= ramp[-1] + slope_per_s * 0.100


def test_falling_loss_lowers_prediction_below_level():
    down = np.linspace(0.2, 0.0, 20)
    with_trend = EwmaLossPredictor()
    level_only = EwmaLossPredictor(EwmaLossConfig(trend_weight=0.0))
    t = feed(with_trend, down)
    feed(level_only, down)
    assert with_trend.predict_one(feats(), now=t) < level_only.predict_one(feats(), now=t)


def test_jitter_raises_prediction_and_saturates():
    cfg = EwmaLossConfig()
    pred = EwmaLossPredictor(cfg)
    t = feed(pred, [0.01] * 50)
    calm = pred.predict_one(feats(rtt_var_us=5_000), now=t)  # ratio 0.1 < floor
    shaky = pred.predict_one(feats(rtt_var_us=50_000), now=t)  # ratio 1.0
    wild = pred.predict_one(feats(rtt_var_us=500_000), now=t)  # ratio 10, saturated
    wilder = pred.predict_one(feats(rtt_var_us=5_000_000), now=t)
    assert calm == pytest.approx(0.01)
    assert shaky == pytest.approx(0.01 + cfg.jitter_weight * (1.0 - cfg.jitter_ratio_floor))
    assert wild == pytest.approx(0.01 + cfg.jitter_weight * cfg.jitter_ratio_span)
    assert wilder == wild
    # rtt 0 (no sample yet) must not divide by zero
    assert pred.predict_one(feats(rtt_us=0.0, rtt_var_us=1_000), now=t) == pytest.approx(0.01)


def test_output_always_in_unit_interval_under_random_input():
    rng = np.random.default_rng(7)
    cfg = EwmaLossConfig(trend_weight=5.0, jitter_weight=0.5, min_interval_s=1e-6)
    pred = EwmaLossPredictor(cfg)
    t = 0.0
    for _ in range(2000):
        t += float(rng.choice([0.0, 1e-6, 0.01, 0.5]))
        x = float(rng.choice([0.0, 1.0, rng.random()]))
        f = feats(rtt_us=float(rng.uniform(0, 1e6)), rtt_var_us=float(rng.uniform(0, 1e6)))
        pred.learn_one(f, x, now=t)
        p = pred.predict_one(f, now=t)
        assert 0.0 <= p <= 1.0


def test_predict_only_reads_state():
    pred = EwmaLossPredictor()
    t = feed(pred, [0.0, 0.1, 0.05, 0.2])
    before = pred.state_dict()
    for _ in range(3):
        pred.predict_one(feats(rtt_var_us=80_000), now=t + 1.0)
    assert pred.state_dict() == before


def test_inputs_not_mutated():
    pred = EwmaLossPredictor()
    f = feats(loss=0.05)
    snapshot = f.to_dict()
    feed(pred, [0.05, 0.06], f=f)
    pred.predict_one(f, now=1.0)
    assert f.to_dict() == snapshot
    state = pred.state_dict()
    state_copy = copy.deepcopy(state)
    EwmaLossPredictor().load_state_dict(state)
    assert state == state_copy


def test_deterministic():
    rng = np.random.default_rng(3)
    seq = rng.random(200) * 0.2

    def run():
        pred = EwmaLossPredictor()
        out = []
        for i, x in enumerate(seq):
            pred.learn_one(feats(), float(x), now=i * DT_S)
            out.append(pred.predict_one(feats(rtt_var_us=20_000), now=i * DT_S))
        return out

    assert run() == run()


def test_state_round_trip_through_json():
    cfg = EwmaLossConfig(alpha=0.4, trend_weight=0.7)
    pred = EwmaLossPredictor(cfg)
    t = feed(pred, [0.0, 0.02, 0.08, 0.05, 0.1])
    text = json.dumps(pred.state_dict())
    restored = EwmaLossPredictor.from_state_dict(json.loads(text))
    assert restored.config == cfg
    assert restored.state_dict() == pred.state_dict()
    # Both continue identically.
    for i, x in enumerate([0.2, 0.0, 0.03]):
        now = t + (i + 1) * DT_S
        pred.learn_one(feats(), x, now=now)
        restored.learn_one(feats(), x, now=now)
        assert restored.predict_one(feats(), now=now) == pred.predict_one(feats(), now=now)


def test_load_state_rejects_other_config_and_bad_values():
    state = EwmaLossPredictor(EwmaLossConfig(alpha=0.4)).state_dict()
    with pytest.raises(ValueError, match="config"):
        EwmaLossPredictor().load_state_dict(state)
    good = EwmaLossPredictor()
    feed(good, [0.1, 0.2])
    bad = dict(good.state_dict(), level=float("nan"))
    with pytest.raises(ValueError, match="level"):
        EwmaLossPredictor().load_state_dict(bad)
    with pytest.raises(ValueError, match="version"):
        EwmaLossPredictor().load_state_dict(dict(good.state_dict(), version=99))
    with pytest.raises(ValueError, match="n_updates"):
        EwmaLossPredictor().load_state_dict(dict(good.state_dict(), n_updates=0))
    with pytest.raises(ValueError, match="unknown EwmaLossConfig fields"):
        EwmaLossPredictor.from_state_dict(dict(state, config={"alpah": 0.1}))


def test_reset_and_clone_start_fresh():
    cfg = EwmaLossConfig(alpha=0.5)
    pred = EwmaLossPredictor(cfg)
    feed(pred, [0.3] * 5)
    twin = pred.clone()
    assert twin.config is cfg
    assert twin.n_updates == 0
    assert twin.predict_one(feats(), now=1.0) == 0.0
    pred.reset()
    assert pred.state_dict() == twin.state_dict()


def test_learn_rejects_bad_feedback_and_time():
    pred = EwmaLossPredictor()
    with pytest.raises(ValueError, match="feedback"):
        pred.learn_one(feats(), 1.5, now=0.0)
    with pytest.raises(ValueError, match="feedback"):
        pred.learn_one(feats(), float("nan"), now=0.0)
    with pytest.raises(TypeError, match="feedback"):
        pred.learn_one(feats(), "0.1", now=0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="now"):
        pred.learn_one(feats(), 0.1, now=float("inf"))
    pred.learn_one(feats(), 0.1, now=1.0)
    with pytest.raises(ValueError, match="backwards"):
        pred.learn_one(feats(), 0.1, now=0.5)
    # ints are fine (not the fast path, but valid numbers)
    pred.learn_one(feats(), 0, now=2)
    assert pred.n_updates == 2


def test_same_time_updates_do_not_explode():
    pred = EwmaLossPredictor()
    pred.learn_one(feats(), 0.0, now=1.0)
    pred.learn_one(feats(), 1.0, now=1.0)
    p = pred.predict_one(feats(), now=1.0)
    assert 0.0 <= p <= 1.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alpha", 0.0),
        ("alpha", 1.5),
        ("trend_alpha", -0.1),
        ("trend_alpha", float("nan")),
        ("trend_weight", -1.0),
        ("horizon_s", -0.01),
        ("min_interval_s", 0.0),
        ("jitter_weight", -0.5),
        ("jitter_ratio_floor", float("inf")),
        ("jitter_ratio_span", 0.0),
    ],
)
def test_bad_config_raises_naming_field(field, value):
    with pytest.raises(ValueError, match=field):
        EwmaLossConfig(**{field: value})


def test_config_is_frozen_and_typed():
    cfg = EwmaLossConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.alpha = 0.9  # type: ignore[misc]
    with pytest.raises(TypeError, match="alpha"):
        EwmaLossConfig(alpha="0.3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config"):
        EwmaLossPredictor({"alpha": 0.3})  # type: ignore[arg-type]


def test_docstring_examples(run_doctests):
    result = run_doctests(ewma_module)
    assert result.attempted > 0
    assert result.failed == 0
