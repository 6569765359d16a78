"""LstmLossPredictor: the learned loss policy over the numpy and onnxruntime runtimes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.loss import LstmLossPredictor
from oxidize_ml.policy import Policy
from oxidize_ml.runtime import LossLstmConfig, LstmLossModel
from oxidize_ml.runtime.configs import expected_tensors

TOL = 1e-5


def _tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Wide enough weights that the output moves with the input (not a constant).
    return {
        k: rng.normal(0.0, 0.4, s).astype(np.float32)
        for k, s in expected_tensors(LossLstmConfig()).items()
    }


def _model(seed: int = 0) -> LstmLossModel:
    return LstmLossModel.from_tensors(_tensors(seed), LossLstmConfig())


def _features(n: int, seed: int = 1) -> list[NetworkFeatures]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append(
            NetworkFeatures(
                rtt_us=float(rng.uniform(10_000, 300_000)),
                rtt_var_us=float(rng.uniform(0, 50_000)),
                bandwidth_bps=float(rng.uniform(1e6, 1e8)),
                loss_rate=float(rng.choice([0.0, 0.0, 0.0, rng.uniform(0, 0.3)])),
                loss_trend=float(rng.uniform(-0.2, 0.2)),
                inflight=float(rng.integers(1, 500)),
                cwnd=float(rng.integers(3_000, 800_000)),
                time_since_loss_ms=float(rng.uniform(0, 2000)),
                buffer_occupancy=float(rng.uniform(0, 1)),
                recent_retx=float(rng.integers(0, 5)),
            )
        )
    return out


def _run(pred: LstmLossPredictor, feats: list[NetworkFeatures], t0: float = 0.0) -> np.ndarray:
    out = []
    for i, f in enumerate(feats):
        now = t0 + 0.01 * (i + 1)
        pred.learn_one(f, f.loss_rate, now=now)
        out.append(pred.predict_one(f, now=now))
    return np.array(out)


def test_policy_shape() -> None:
    pred = LstmLossPredictor(_model())
    assert isinstance(pred, Policy)
    assert pred.name == "lstm"
    assert pred.is_learned is True


def test_predict_before_first_step_is_zero() -> None:
    pred = LstmLossPredictor(_model())
    f = _features(1)[0]
    assert pred.predict_one(f, now=0.0) == 0.0
    assert pred.n_updates == 0


def test_learn_one_is_one_model_step_from_carried_state() -> None:
    feats = _features(60)
    pred = LstmLossPredictor(_model())
    got = _run(pred, feats)
    ref = _model()
    want = np.array([ref.step(f.to_vector()) for f in feats])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
    # the predictions really depend on the history (not a constant)
    assert np.ptp(got) > 1e-3
    assert pred.n_updates == 60
    assert all(0.0 <= p <= 1.0 for p in got)


def test_predict_one_reads_state_only() -> None:
    feats = _features(30)
    a = LstmLossPredictor(_model())
    b = LstmLossPredictor(_model())
    for i, f in enumerate(feats):
        now = 0.01 * (i + 1)
        a.learn_one(f, f.loss_rate, now=now)
        b.learn_one(f, f.loss_rate, now=now)
        before = a.state()
        # asked many times, with other features and a later clock: same answer, same state
        ps = {a.predict_one(g, now=now + 5.0) for g in feats[:5]}
        assert ps == {b.predict_one(f, now=now)}
        after = a.state()
        np.testing.assert_array_equal(before["h"], after["h"])
        np.testing.assert_array_equal(before["c"], after["c"])
        assert before["n_updates"] == after["n_updates"]


def test_inputs_not_mutated() -> None:
    feats = _features(10)
    snapshot = [f.to_dict() for f in feats]
    vecs = [f.to_vector().copy() for f in feats]
    _run(LstmLossPredictor(_model()), feats)
    assert [f.to_dict() for f in feats] == snapshot
    for f, v in zip(feats, vecs, strict=True):
        np.testing.assert_array_equal(f.to_vector(), v)


def test_fork_and_reset() -> None:
    feats = _features(40)
    pred = LstmLossPredictor(_model())
    first = _run(pred, feats[:20])
    child = pred.fork()
    assert child.n_updates == 0 and child.predict_one(feats[0], now=0.0) == 0.0
    # the fork starts fresh and does not disturb the parent
    child_out = _run(child, feats[:20])
    np.testing.assert_allclose(child_out, first, atol=0)
    rest = _run(pred, feats[20:], t0=0.2)
    ref = LstmLossPredictor(_model())
    np.testing.assert_allclose(_run(ref, feats)[20:], rest, atol=0)
    # reset: back to a fresh connection
    pred.reset()
    assert pred.n_updates == 0 and pred.predict_one(feats[0], now=1.0) == 0.0
    np.testing.assert_allclose(_run(pred, feats[:20], t0=5.0), first, atol=0)


def test_bad_inputs_change_nothing() -> None:
    feats = _features(3)
    pred = LstmLossPredictor(_model())
    pred.learn_one(feats[0], 0.0, now=1.0)
    state = pred.state()
    with pytest.raises(ValueError, match="backwards"):
        pred.learn_one(feats[1], 0.0, now=0.5)
    with pytest.raises(ValueError, match="feedback"):
        pred.learn_one(feats[1], 1.5, now=2.0)
    with pytest.raises(ValueError, match="now"):
        pred.learn_one(feats[1], 0.0, now=float("nan"))
    with pytest.raises(TypeError, match="NetworkFeatures"):
        pred.learn_one(feats[1].to_vector(), 0.0, now=2.0)  # type: ignore[arg-type]
    after = pred.state()
    np.testing.assert_array_equal(state["h"], after["h"])
    assert after["n_updates"] == 1 and after["p"] == state["p"]
    with pytest.raises(TypeError, match="LstmLossModel"):
        LstmLossPredictor(object())  # type: ignore[arg-type]


def test_engine_uses_it_for_fec() -> None:
    engine = MlEngine(EngineConfig(load_default_models=False))
    pred = LstmLossPredictor(_model())
    engine.replace_policy("loss_predictor", pred, version="test")
    ref = _model()
    for i, f in enumerate(_features(20)):
        now = 1.0 + 0.01 * i
        engine.observe(f, now=now)
        d = engine.fec_decision(now=now)
        assert d.loss_probability == pytest.approx(ref.step(f.to_vector()), abs=1e-7)
    stats = engine.stats().loss_predictor
    assert stats.policy == "lstm" and stats.model_decisions == 20


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from oxidize_ml.training.export import export_onnx
    from oxidize_ml.training.torch_models import LossLstm

    m = LossLstm()
    m.load_state_dict({k: torch.from_numpy(v) for k, v in _tensors(3).items()})
    path = tmp_path_factory.mktemp("lstm") / "loss_predictor.onnx"
    export_onnx(m.eval(), path)
    return path


def test_numpy_and_onnxruntime_agree_on_a_sequence(onnx_file: Path) -> None:
    from oxidize_ml.runtime.onnx_backend import OrtLstmLossModel

    feats = _features(200, seed=7)
    a = _run(LstmLossPredictor(_model(3)), feats)
    ort_pred = LstmLossPredictor(OrtLstmLossModel.load(onnx_file))
    b = _run(ort_pred, feats)
    assert np.max(np.abs(a - b)) <= TOL
    # the onnxruntime predictor forks and resets like the numpy one
    c = _run(ort_pred.fork(), feats[:50])
    ort_pred.reset()
    np.testing.assert_allclose(_run(ort_pred, feats[:50]), c, atol=0)
    np.testing.assert_allclose(c, a[:50], atol=TOL)
