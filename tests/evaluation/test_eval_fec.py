"""Tests of the loss/FEC evaluation (oxidize_ml.evaluation.fec), quick and small."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from oxidize_ml.evaluation import fec
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.loss import EwmaLossPredictor, residual_loss


@pytest.fixture(scope="module")
def small_result():
    # one random-loss run with CUBIC, 6 simulated seconds: ~600 labelled intervals
    return fec.run(
        seed=0, quick=True, scenarios=["random-loss"], controllers=["cubic"], duration_s=6.0
    )


def test_expected_residual_matches_residual_loss_and_time_shares():
    k = 10
    p = np.array([0.0, 0.001, 0.01, 0.05, 0.2, 0.6, 1.0])
    for r in (0, 1, 3, 7):
        got = fec.expected_residual(p, np.full(p.size, float(r)), k)
        want = [residual_loss(float(x), r, k) for x in p]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    # r = 2.25: a quarter of the blocks get 3 repair packets
    mix = fec.expected_residual(np.array([0.05]), np.array([2.25]), k)[0]
    assert mix == pytest.approx(0.75 * residual_loss(0.05, 2, k) + 0.25 * residual_loss(0.05, 3, k))


def test_fec_point_overhead_is_repair_share():
    labels = np.array([0.0, 0.1, 0.0, 0.0])
    ov, res = fec.fec_point(labels, np.array([0.0, 2.0, 0.0, 2.0]), 10)
    assert ov == pytest.approx(4.0 / 44.0)
    assert res == pytest.approx(residual_loss(0.1, 2, 10) / 4.0)
    assert float(fec.ratio_to_repair(0.1, 9)) == pytest.approx(1.0)


def test_horizon_labels_window():
    t = np.round(np.arange(1, 21) * 0.01, 10)  # 0.01 .. 0.20
    x = np.zeros(20)
    x[6] = 0.5  # t = 0.07
    x[10] = 0.25  # t = 0.11
    lab = fec.horizon_labels(t, x)
    # t = 0.01: window (0.06, 0.11] = ticks 0.07 .. 0.11 -> (0.5 + 0.25) / 5
    assert lab[0] == pytest.approx(0.15)
    # t = 0.02: window (0.07, 0.12]: 0.07 is excluded
    assert lab[1] == pytest.approx(0.05)
    # t = 0.10: window (0.15, 0.20] has no loss
    assert lab[9] == 0.0
    # incomplete windows have no label
    assert np.isnan(lab[10:]).all()
    assert not np.isnan(lab[:10]).any()


def test_webrtc_table_monotone_and_bounded():
    losses = np.linspace(0.0, 1.0, 201)
    for rate in (100e3, 300e3, 1e6, 5e6, 50e6):
        for rtt in (5.0, 19.9, 20.0, 60.0, 250.0):
            vals = [fec.webrtc_fec_rate(float(x), rate, rtt) for x in losses]
            assert all(0.0 <= v <= fec.WEBRTC_MAX_RATE for v in vals)
            assert all(b >= a for a, b in itertools.pairwise(vals))
    # NACK only at low RTT
    assert fec.webrtc_fec_rate(0.3, 5e6, 10.0) == 0.0
    # lower bitrate (above the cutoff) protects at least as much
    assert fec.webrtc_fec_rate(0.12, 300e3, 80.0) > fec.webrtc_fec_rate(0.12, 5e6, 80.0)
    # too few bytes per frame: off unless the RTT is high
    assert fec.webrtc_fec_rate(0.1, 50e3, 80.0) == 0.0
    assert fec.webrtc_fec_rate(0.1, 50e3, 300.0) > 0.0
    with pytest.raises(ValueError, match="loss_fraction"):
        fec.webrtc_fec_rate(1.5, 1e6, 50.0)


def test_no_fec_residual_is_raw_loss_and_fixed_helps(small_result):
    r = small_result
    none = r.method("none")
    assert none.overhead == 0.0
    assert none.residual == pytest.approx(r.raw_loss)
    assert r.raw_loss > 0.0
    fixed = r.method("fixed")
    assert fixed.overhead == pytest.approx(fec.FIXED_RATIO)
    assert fixed.residual < 0.8 * none.residual
    # the hindsight bound beats the heuristic at (about) its overhead
    assert r.equal_overhead[fec.HINDSIGHT] <= r.equal_overhead[fec.HEURISTIC]
    # the heuristic's own point is on its curve
    assert r.equal_overhead[fec.HEURISTIC] == pytest.approx(r.method(fec.HEURISTIC).residual)
    assert r.ratio_vs_heuristic(fec.HEURISTIC) == pytest.approx(1.0)


def test_curves_are_monotone(small_result):
    for c in small_result.curves:
        ov = np.asarray(c.overhead)
        res = np.asarray(c.residual)
        assert np.all(np.diff(ov) >= -1e-12), c.name
        assert np.all(np.diff(res) <= 1e-12), c.name


def test_scores_are_sane(small_result):
    s = small_result.scores(fec.HEURISTIC)
    assert 0.0 < s.base_rate < 1.0
    assert s.base_rate <= s.pr_auc <= 1.0  # the EWMA ranks better than chance
    assert 0.0 <= s.brier < 0.05
    assert s.n == sum(run.n for run in small_result.runs)
    # random-loss is a re-seeded training scenario: nothing is held out here
    assert s.held_out["n"] == 0 and math.isnan(s.held_out["pr_auc"])


def test_result_serialises_and_renders(small_result, tmp_path):
    d = small_result.to_dict()
    json.dumps(d, allow_nan=False)
    md = small_result.markdown()
    for needle in ("PR-AUC", "| fixed |", "At equal overhead", "random-loss"):
        assert needle in md
    assert small_result.headline()
    pytest.importorskip("matplotlib")
    paths = fec.plot(small_result, tmp_path)
    assert paths and all(p.is_file() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


class _Recorder:
    """Records the order of calls; predicts the last feedback it learned."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.last = 0.0

    def learn_one(self, obs, feedback, *, now):
        self.calls.append(("learn", now))
        self.last = feedback

    def predict_one(self, obs, *, now):
        self.calls.append(("predict", now))
        return self.last


def _features(loss: float) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=40_000,
        rtt_var_us=2_000,
        bandwidth_bps=12e6,
        loss_rate=loss,
        loss_trend=0.0,
        inflight=10,
        cwnd=15_000,
    )


def test_predict_run_learns_then_predicts():
    t = np.array([0.01, 0.02, 0.03])
    feats = tuple(_features(x) for x in (0.0, 0.2, 0.0))
    run = fec.LossRun("x", "cubic", 0, True, t, feats, fec.horizon_labels(t, np.zeros(3)))
    rec = _Recorder()
    out = fec.predict_run(lambda: rec, run)
    np.testing.assert_allclose(out, [0.0, 0.2, 0.0])
    assert [c[0] for c in rec.calls] == ["learn", "predict"] * 3


def test_passed_in_predictors_are_evaluated_and_checked():
    res = fec.run(
        seed=0,
        quick=True,
        scenarios=["burst-loss"],
        controllers=["bbr"],
        duration_s=3.0,
        predictors={"copy": _Recorder},
    )
    names = [p.name for p in res.predictors]
    assert names == [fec.HEURISTIC, "copy"]
    assert "copy" in res.equal_overhead
    assert res.method("copy").kind == "predictor"

    class Bad(_Recorder):
        def predict_one(self, obs, *, now):
            return 1.5

    with pytest.raises(ValueError, match="'bad'.*not a probability"):
        fec.run(
            seed=0,
            quick=True,
            scenarios=["burst-loss"],
            controllers=["bbr"],
            duration_s=1.0,
            predictors={"bad": Bad},
        )
    with pytest.raises(ValueError, match="reserved"):
        fec.run(seed=0, quick=True, predictors={"ewma": EwmaLossPredictor})
    with pytest.raises(ValueError, match="unknown scenarios"):
        fec.run(seed=0, quick=True, scenarios=["nope"])


def test_same_seed_same_result():
    a = fec.run(seed=1, quick=True, scenarios=["random-loss"], controllers=["bbr"], duration_s=2.0)
    b = fec.run(seed=1, quick=True, scenarios=["random-loss"], controllers=["bbr"], duration_s=2.0)
    da, db = a.to_dict(), b.to_dict()
    da.pop("wall_s")
    db.pop("wall_s")
    assert da == db
    assert not math.isnan(a.raw_loss)
