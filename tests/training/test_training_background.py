"""BackgroundTrainer: swaps a better candidate in, keeps a better current, stays bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.loss.lstm import LstmLossPredictor
from oxidize_ml.training.background import (
    BackgroundTrainer,
    BackgroundTrainerConfig,
    bootstrap_gain_bound,
    features_from_vector,
    is_better,
    split_sequences,
)

T0 = 1_700_000_000.0
DT = 0.01


def sawtooth(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Buffer fill ramping 0 -> 1 over 60-100 intervals; loss in the last tenth of each ramp.

    Loss is foreseeable from the buffer 50-100 ms ahead; an EWMA of past
    loss only learns of it once it has started.
    """
    rng = np.random.default_rng(seed)
    buf, loss = np.empty(n), np.empty(n)
    i = 0
    while i < n:
        period = int(rng.integers(60, 101))
        ramp = np.arange(period) / period
        k = min(period, n - i)
        buf[i : i + k] = ramp[:k]
        loss[i : i + k] = np.where(ramp[:k] > 0.9, 0.2, 0.0)
        i += k
    return buf, loss


def features(buffer: float, loss: float) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=30_000 + 40_000 * buffer,
        rtt_var_us=2_000,
        bandwidth_bps=20e6,
        loss_rate=loss,
        loss_trend=0.0,
        inflight=50,
        cwnd=60_000,
        buffer_occupancy=buffer,
    )


def feed(engine: MlEngine, n: int, seed: int, t0: float = T0) -> dict[int, float]:
    """Observe ``n`` sawtooth intervals; return the true future-loss label per time key."""
    buf, loss = sawtooth(n, seed)
    for i in range(n):
        engine.observe(features(float(buf[i]), float(loss[i])), now=t0 + DT * i)
    labels = {}
    for i in range(n):
        window = loss[i + 6 : i + 11]  # (t + 50 ms, t + 100 ms]
        if window.size:
            labels[round((t0 + DT * i) * 100)] = float(window.mean())
    return labels


class FutureOracle:
    """A 'current' policy that cannot be beaten: it reads the true label by time."""

    name = "oracle"
    is_learned = True

    def __init__(self, labels: dict[int, float]) -> None:
        self.labels = labels
        self._p = 0.0

    def learn_one(self, features: NetworkFeatures, feedback: float, *, now: float) -> None:
        self._p = self.labels.get(round(now * 100), 0.0)

    def predict_one(self, features: NetworkFeatures, *, now: float) -> float:
        return self._p


CFG = BackgroundTrainerConfig(
    isolation="thread",
    min_new_samples=1,
    hidden=16,
    max_epochs=4,
    patience=2,
    segment_steps=100,
    batch_size=8,
    min_heldout_positives=5,
    warmup_rows=50,
    seed=1,
)


def _engine() -> MlEngine:
    return MlEngine(EngineConfig(load_default_models=False, collect_training=True))


def test_candidate_swapped_in_when_better() -> None:
    engine = _engine()
    feed(engine, 5_000, seed=3)
    trainer = BackgroundTrainer(engine, CFG)
    assert engine.policy("loss_predictor").name == "burst"  # the default
    report = trainer.run_once()
    assert report is not None and report.reason.startswith("candidate"), report
    assert report.heldout_positives >= CFG.min_heldout_positives
    # The LSTM sees the buffer filling; the EWMA only sees loss once it has begun.
    assert report.candidate["pr_auc"] > report.current["pr_auc"] + CFG.min_pr_auc_gain, report
    assert report.candidate["pr_auc_gain_lower_bound"] > CFG.min_pr_auc_gain
    assert report.swapped
    policy = engine.policy("loss_predictor")
    assert isinstance(policy, LstmLossPredictor)
    # Decisions go on through the new model.
    engine.observe(features(0.85, 0.0), now=T0 + 100.0)
    p = engine.fec_decision(now=T0 + 100.0).loss_probability
    assert 0.0 <= p <= 1.0
    s = engine.stats().loss_predictor
    assert s.model_loaded and s.policy == "lstm" and s.model_decisions == 1
    assert trainer.stats()["swaps"] == 1


def test_candidate_not_swapped_when_current_is_better() -> None:
    engine = _engine()
    labels = feed(engine, 5_000, seed=4)
    oracle = FutureOracle(labels)
    engine.replace_policy("loss_predictor", oracle, version="oracle")
    trainer = BackgroundTrainer(engine, CFG)
    report = trainer.run_once()
    assert report is not None and report.candidate is not None, report
    assert report.current["pr_auc"] == pytest.approx(1.0)
    assert not report.swapped and "kept" in report.reason
    assert engine.policy("loss_predictor") is oracle


def test_waits_for_enough_new_rows_and_stays_bounded() -> None:
    engine = _engine()
    cfg = BackgroundTrainerConfig(isolation="thread", min_new_samples=10_000, max_rows=1_000)
    trainer = BackgroundTrainer(engine, cfg)
    feed(engine, 1_500, seed=5)
    assert trainer.run_once() is None  # 1,500 new rows < 10,000: no round
    st = trainer.stats()
    assert st["buffered_rows"] == 1_000 and st["new_rows"] > 1_000 and st["rounds"] == 0
    # Too little held-out loss: a forced round declines to decide.
    quiet = _engine()
    for i in range(300):
        quiet.observe(features(0.1, 0.0), now=T0 + DT * i)
    report = BackgroundTrainer(quiet, CFG).run_once(force=True)
    assert report is not None and not report.swapped and report.candidate is None


def test_thread_lifecycle(tmp_path: Path) -> None:
    engine = MlEngine(EngineConfig(load_default_models=False))
    cfg = BackgroundTrainerConfig(
        isolation="thread",
        poll_interval_s=0.02,
        min_new_samples=10**9,
        export_dir=tmp_path / "spool",
        keep_exports=2,
    )
    with BackgroundTrainer(engine, cfg) as trainer:
        assert trainer.running
        assert engine.stats().training_collection  # start() enabled collection
        feed(engine, 300, seed=6)
        import time

        deadline = time.monotonic() + 10
        while trainer.stats()["buffered_rows"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert not trainer.running
    assert trainer.stats()["buffered_rows"] > 0
    assert len([p for p in (tmp_path / "spool").iterdir() if not p.name.startswith(".")]) <= 2


def test_sequences_split_at_gaps_and_features_round_trip() -> None:
    t = np.array([0.0, 0.01, 0.02, 5.0, 5.01, 9.0])
    src = np.array(["a"] * 6, dtype=object)
    x = np.zeros((6, 8), np.float32)
    seqs = split_sequences(t, src, x, np.zeros(6), np.zeros(6))
    assert [s.t.size for s in seqs] == [3, 2]  # the lone last row is dropped
    f = features(0.42, 0.1)
    g = features_from_vector(f.to_vector(), f.loss_rate)
    assert np.allclose(g.to_vector(), f.to_vector(), atol=1e-6)


@pytest.mark.slow
def test_process_isolation_fits_in_a_worker() -> None:
    engine = _engine()
    feed(engine, 4_000, seed=7)
    cfg = BackgroundTrainerConfig(
        isolation="process",
        min_new_samples=1,
        hidden=16,
        max_epochs=2,
        segment_steps=100,
        batch_size=8,
        min_heldout_positives=5,
        seed=2,
    )
    report = BackgroundTrainer(engine, cfg).run_once()
    assert report is not None and report.candidate is not None, report
    assert report.fit_info["epochs"] >= 1
    assert report.swapped == (
        report.candidate["pr_auc"] > report.current["pr_auc"] + cfg.min_pr_auc_gain
        and report.candidate["brier"] <= report.current["brier"] * cfg.max_brier_ratio
    )


def test_bootstrap_bound_separates_noise_from_a_real_gain() -> None:
    rng = np.random.default_rng(0)
    n = 3_000
    t = T0 + DT * np.arange(n)
    y = np.where(rng.random(n) < 0.05, 0.2, 0.0)
    noise_a, noise_b = rng.random(n), rng.random(n)  # two useless predictors
    bound = bootstrap_gain_bound(
        y, noise_a, noise_b, t, block_s=1.0, rounds=200, quantile=0.05, seed=1
    )
    assert bound < 0.0  # an apparent gain between them would be noise
    informed = np.clip(y * 3 + 0.3 * rng.random(n), 0, 1)  # ranks the losses first
    bound = bootstrap_gain_bound(
        y, informed, noise_a, t, block_s=1.0, rounds=200, quantile=0.05, seed=1
    )
    assert bound > 0.5
    good = {"pr_auc": 0.9, "brier": 0.01}
    base = {"pr_auc": 0.5, "brier": 0.01}
    assert is_better(good, base, CFG, bound)
    assert not is_better(good, base, CFG, 0.001)  # the bound, not the point estimate, decides
    assert not is_better(good, {"pr_auc": 0.5, "brier": 0.005}, CFG, bound)  # Brier much worse


def test_worker_entry_rejects_a_malformed_command_line() -> None:
    from oxidize_ml.training.background_worker import worker_main

    with pytest.raises(ValueError, match="argv"):
        worker_main(["data.npz", "out"])
