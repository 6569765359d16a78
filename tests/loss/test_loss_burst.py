"""Tests of the burst-aware loss predictor (oxidize_ml.loss.burst)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from oxidize_ml.features import NetworkFeatures
from oxidize_ml.loss import burst
from oxidize_ml.loss import configs as burst_configs
from oxidize_ml.loss.burst import (
    N_WEIGHTS,
    BurstFeatures,
    BurstLossConfig,
    BurstLossPredictor,
    feature_names,
    logistic,
)


def feats(
    *,
    rtt_us: float = 40_000.0,
    loss: float = 0.0,
    inflight: float = 30.0,
    cwnd: float = 45_000.0,
    bw: float = 1e7,
    var: float = 2_000.0,
    occ: float = 0.0,
) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=rtt_us,
        rtt_var_us=var,
        bandwidth_bps=bw,
        loss_rate=loss,
        loss_trend=0.0,
        inflight=inflight,
        cwnd=cwnd,
        buffer_occupancy=occ,
    )


def random_sequence(seed: int, n: int = 600, rtt_us: float = 40_000.0) -> list[NetworkFeatures]:
    """A sawtooth-like connection: RTT grows, then a loss episode resets it."""
    rng = np.random.default_rng(seed)
    out = []
    q = 0.0
    for _ in range(n):
        q += float(rng.uniform(0.0, 2_000.0))
        lossy = q > 40_000.0 and rng.uniform() < 0.5
        loss = float(rng.uniform(0.05, 0.3)) if lossy else 0.0
        if lossy:
            q = 0.0
        out.append(
            feats(
                rtt_us=rtt_us + q,
                loss=loss,
                inflight=float(rng.uniform(5, 80)),
                cwnd=float(rng.uniform(1e4, 1e5)),
                bw=float(rng.uniform(1e6, 5e7)),
                var=float(rng.uniform(0, 1e4)),
            )
        )
    return out


def test_shipped_config_loads_and_names_match():
    cfg = BurstLossConfig.default()
    assert len(cfg.weights) == N_WEIGHTS == len(feature_names())
    assert list(cfg.severity) == sorted(cfg.severity)
    assert 0.0 < cfg.mean_severity <= 1.0


def test_fast_path_equals_dense_dot_product():
    # The predictor's hot path indexes the one-hot weights; the trainer uses
    # `vector()`: both must give the same logit on every step (train = serve).
    pred = BurstLossPredictor()
    w = np.asarray(pred.config.weights)
    for rtt in (40_000.0, 120_000.0):  # short and long RTT (the interaction group)
        pred.reset()
        for i, f in enumerate(random_sequence(3, rtt_us=rtt)):
            pred.learn_one(f, f.loss_rate, now=0.01 * (i + 1))
            z = float(np.dot(w, pred.features.vector()))
            assert pred.block_loss_probability == pytest.approx(logistic(z), rel=1e-9, abs=1e-15)
            p = pred.predict_one(f, now=0.01 * (i + 1))
            sev = pred.features.severity(pred.config.mean_severity)
            assert pred.severity_scale == pytest.approx(sev / pred.config.mean_severity)
            assert p == pytest.approx(min(1.0, logistic(z) * sev))
            assert 0.0 <= p <= 1.0


def test_time_since_loss_and_phase_buckets():
    ft = BurstFeatures()
    ft.update(feats(), 0.01)
    assert ft.tsl_bucket == burst_configs.N_TSL - 1  # never lost: the last bucket
    assert ft.phase_bucket == burst_configs.N_PHASE - 1  # no gap yet
    assert ft.dense[5] == 1.0  # no loss yet
    ft.update(feats(loss=0.2), 0.02)
    assert ft.tsl_bucket == 0 and ft.dense[5] == 0.0
    ft.update(feats(), 0.10)  # 80 ms later: bucket [0.075, 0.15)
    assert ft.tsl_bucket == burst_configs.TSL_EDGES_S.index(0.075) + 1
    ft.update(feats(loss=0.1), 0.52)  # second episode, gap 0.5 s
    ft.update(feats(), 0.77)  # half a gap later: phase bucket [0.5, 0.75)
    assert ft.phase_bucket == burst_configs.PHASE_EDGES.index(0.5) + 1


def test_queue_signals_come_from_the_observations_buffer_occupancy():
    # One observation (issue 9): queue delay = buffer_occupancy x srtt and min RTT =
    # srtt - queue delay, the transport's own (srtt - min_rtt) / srtt; no second
    # estimate from a running minimum of srtt.
    ft = BurstFeatures()
    ft.update(feats(rtt_us=50_000.0, occ=0.2), 0.01)  # min RTT 40 ms, queue 10 ms
    i = burst_configs.DENSE_NAMES.index
    assert ft.dense[i("queue_share")] == pytest.approx(0.2)
    assert ft.dense[i("queue_vs_max")] == pytest.approx(1.0)
    assert ft.long_rtt == 0.0
    ft.update(feats(rtt_us=50_000.0, occ=0.0), 0.02)  # the same srtt, no queue
    assert ft.dense[i("queue_share")] == 0.0 and ft.dense[i("queue_vs_max")] == 0.0
    # min RTT 80 ms (> LONG_RTT_US) although srtt never went below 100 ms
    ft.update(feats(rtt_us=100_000.0, occ=0.2), 0.03)
    assert ft.long_rtt == 1.0
    # the BDP ratio uses that min RTT: 1e7 bit/s x 80 ms = 66.7 packets of 1500 B
    bdp = 1e7 * 0.080 / (8 * burst.MSS_BYTES)
    assert ft.dense[i("log_bdp_ratio")] == pytest.approx(math.log(30.0 / bdp))
    # a different occupancy for the same RTTs gives different features
    a, b = BurstLossPredictor(), BurstLossPredictor()
    for k, f in enumerate(random_sequence(5)):
        g = dataclasses.replace(f, buffer_occupancy=0.9)
        a.learn_one(f, f.loss_rate, now=0.01 * k)
        b.learn_one(g, g.loss_rate, now=0.01 * k)
    assert a.predict_one(f, now=0.04) != b.predict_one(g, now=0.04)


def test_hazard_weights_drive_the_prediction():
    # A config whose only signal is "lost in the last 5 ms" predicts high right
    # after a loss and low later.
    w = [0.0] * N_WEIGHTS
    w[0] = -4.0
    w[burst_configs.OFF_TSL] = 6.0
    pred = BurstLossPredictor(BurstLossConfig(tuple(w), (0.1, 0.2)))
    pred.learn_one(feats(loss=0.2), 0.2, now=0.01)
    high = pred.block_loss_probability
    pred.learn_one(feats(), 0.0, now=0.5)
    low = pred.block_loss_probability
    assert high == pytest.approx(logistic(2.0))
    assert low == pytest.approx(logistic(-4.0))
    assert pred.predict_one(feats(), now=0.5) == pytest.approx(low * 0.15)


def test_connection_severity_follows_its_own_lossy_windows():
    ft = BurstFeatures()
    assert ft.severity(0.1) == 0.1  # no lossy window yet: the prior
    # 50-ms windows each losing 40 % in one interval: window mean 0.08
    t = 0.0
    for _ in range(200):
        for j in range(burst.SEVERITY_WINDOW):
            t += 0.01
            ft.update(feats(loss=0.4 if j == 0 else 0.0), t)
    assert ft.window_severity == pytest.approx(0.08)
    n = 200.0
    want = (n * 0.08 + burst.SEVERITY_PRIOR_WINDOWS * 0.5) / (n + burst.SEVERITY_PRIOR_WINDOWS)
    assert ft.severity(0.5) == pytest.approx(want)
    # clean windows leave it alone
    for _ in range(50):
        t += 0.01
        ft.update(feats(), t)
    assert ft.window_severity == pytest.approx(0.08)


def test_predict_before_learn_and_reset_and_clone():
    pred = BurstLossPredictor()
    f = feats()
    assert pred.predict_one(f, now=0.0) == 0.0
    for i, g in enumerate(random_sequence(1, n=50)):
        pred.learn_one(g, g.loss_rate, now=0.01 * i)
    twin = pred.clone()
    assert twin.n_updates == 0 and twin.predict_one(f, now=1.0) == 0.0
    pred.reset()
    assert pred.n_updates == 0 and pred.predict_one(f, now=0.0) == 0.0


def test_deterministic_over_a_sequence():
    seq = random_sequence(9)
    outs = []
    for _ in range(2):
        pred = BurstLossPredictor()
        outs.append(
            [
                (pred.learn_one(f, f.loss_rate, now=0.01 * i), pred.predict_one(f, now=0.01 * i))[1]
                for i, f in enumerate(seq)
            ]
        )
    assert outs[0] == outs[1]


def test_invalid_inputs_raise_naming_the_field():
    pred = BurstLossPredictor()
    f = feats()
    with pytest.raises(ValueError, match="feedback"):
        pred.learn_one(f, 1.5, now=0.0)
    with pytest.raises(ValueError, match="now"):
        pred.learn_one(f, 0.0, now=math.nan)
    with pytest.raises(TypeError, match="features"):
        pred.learn_one([0.0] * 8, 0.0, now=0.0)  # type: ignore[arg-type]
    pred.learn_one(f, 0.0, now=1.0)
    with pytest.raises(ValueError, match="backwards"):
        pred.learn_one(f, 0.0, now=0.5)
    assert pred.n_updates == 1


def test_config_validation():
    good = BurstLossConfig.default()
    with pytest.raises(ValueError, match="weights"):
        BurstLossConfig(good.weights[:-1], good.severity)
    with pytest.raises(ValueError, match=r"weights\[3\]"):
        BurstLossConfig((*good.weights[:3], math.inf, *good.weights[4:]), good.severity)
    with pytest.raises(ValueError, match="ascending"):
        BurstLossConfig(good.weights, (0.3, 0.1))
    with pytest.raises(ValueError, match=r"severity\[0\]"):
        BurstLossConfig(good.weights, (0.0, 0.1))
    with pytest.raises(ValueError, match="severity"):
        BurstLossConfig(good.weights, ())
    with pytest.raises(ValueError, match="feature_version"):
        BurstLossConfig(
            good.weights, good.severity, feature_version=burst_configs.FEATURE_VERSION + 1
        )
    with pytest.raises(TypeError, match="config"):
        BurstLossPredictor(config={"weights": []})  # type: ignore[arg-type]


def test_histories_are_bounded():
    ft = BurstFeatures()
    # a loss every other interval for 100 s: the episode window drops old ones
    for i in range(10_000):
        ft.update(feats(loss=0.1 if i % 2 else 0.0), 0.01 * (i + 1))
    assert len(ft._episodes) <= 1024
    assert len(ft._loss_cum) == burst.LOSS_HISTORY + 1


def test_doctests(run_doctests):
    assert run_doctests(burst).failed == 0
