"""onnxruntime backend: same answers and state semantics as the numpy backend."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from oxidize_ml.bench_models import (
    bench_models,
    format_rows,
    lstm_step_onnx,
    lstm_window_onnx,
    mlp_onnx,
    random_tensors,
)
from oxidize_ml.runtime import (
    CompressionMlpConfig,
    DqnMlpConfig,
    LossLstmConfig,
    LstmLossModel,
    MlpModel,
    ModelLoadError,
    load_lstm,
    load_mlp,
)
from oxidize_ml.runtime.onnx_backend import (
    OrtLstmLossModel,
    OrtMlpModel,
    import_onnxruntime,
)

TOL = 1e-5


@pytest.fixture(scope="module")
def lstm_pair():
    cfg = LossLstmConfig()
    t = random_tensors(cfg, seed=11)
    return (
        LstmLossModel.from_tensors(t, cfg),
        OrtLstmLossModel.from_bytes(lstm_step_onnx(t, cfg)),
        t,
    )


def test_ort_lstm_matches_numpy_statefully(lstm_pair) -> None:
    np_m, ort_m, _ = lstm_pair
    np_m, ort_m = np_m.fork(), ort_m.fork()
    xs = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    a = np.array([np_m.step(x) for x in xs])
    b = np.array([ort_m.step(x) for x in xs])
    np.testing.assert_allclose(a, b, atol=TOL)
    for s_np, s_ort in zip(np_m.clone_state(), ort_m.clone_state(), strict=True):
        np.testing.assert_allclose(s_np, s_ort, atol=TOL)
    assert abs(np_m.predict_window(xs[:20]) - ort_m.predict_window(xs[:20])) < TOL
    ort_m.reset_state()
    np.testing.assert_allclose(ort_m.predict_sequence(xs[:20]), a[:20], atol=TOL)


def test_ort_lstm_fork_and_state(lstm_pair) -> None:
    _, ort_m, _ = lstm_pair
    a, b = ort_m.fork(), ort_m.fork()
    xs = np.random.default_rng(1).uniform(0, 1, (5, 8)).astype(np.float32)
    for x in xs:
        a.step(x)
    assert not b.clone_state()[0].any()
    saved = a.clone_state()
    p = a.step(xs[0])
    a.set_state(saved)
    assert a.step(xs[0]) == p
    before = a.clone_state()
    a.predict_window(xs)
    np.testing.assert_array_equal(a.clone_state()[0], before[0])
    with pytest.raises(ValueError, match="shape"):
        a.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="state was reset"):
        a.step(np.full(8, np.nan, np.float32))
    assert not a.clone_state()[0].any()


def test_ort_window_graph_matches_numpy(lstm_pair) -> None:
    import onnxruntime as ort

    np_m, _, t = lstm_pair
    sess = ort.InferenceSession(
        lstm_window_onnx(t, np_m.config, 20), providers=["CPUExecutionProvider"]
    )
    xs = np.random.default_rng(2).standard_normal((1, 20, 8)).astype(np.float32)
    (p,) = sess.run(None, {"xs": xs})
    assert abs(float(p[0]) - np_m.predict_window(xs[0])) < TOL


def test_ort_mlp_matches_numpy() -> None:
    for cfg in (DqnMlpConfig(), CompressionMlpConfig(n_inputs=5)):
        t = random_tensors(cfg, seed=12)
        np_m = MlpModel.from_tensors(t, cfg)
        ort_m = OrtMlpModel.from_bytes(mlp_onnx(t, cfg), kind=cfg.kind)
        assert ort_m.kind == cfg.kind and ort_m.config == cfg
        for x in np.random.default_rng(3).standard_normal((20, cfg.n_inputs)).astype(np.float32):
            np.testing.assert_allclose(np_m.forward(x), ort_m.forward(x), atol=TOL)
            assert np_m.argmax(x) == ort_m.argmax(x)
        with pytest.raises(ModelLoadError, match="expected 'compression_mlp'|expected 'dqn'"):
            OrtMlpModel.from_bytes(
                mlp_onnx(t, cfg), kind="dqn" if cfg.kind != "dqn" else "compression_mlp"
            )


def test_load_from_directory_and_bad_files(tmp_path: Path) -> None:
    cfg = LossLstmConfig()
    t = random_tensors(cfg)
    (tmp_path / "loss_predictor.onnx").write_bytes(lstm_step_onnx(t, cfg))
    m = load_lstm(tmp_path, backend="onnxruntime")
    assert isinstance(m, OrtLstmLossModel)
    dcfg = DqnMlpConfig()
    (tmp_path / "congestion_controller.onnx").write_bytes(mlp_onnx(random_tensors(dcfg), dcfg))
    assert isinstance(load_mlp(tmp_path, "dqn", backend="onnxruntime"), OrtMlpModel)
    with pytest.raises(ModelLoadError, match="holds a 'dqn'"):
        OrtLstmLossModel.load(tmp_path / "congestion_controller.onnx")
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 20)
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load it|format"):
        OrtLstmLossModel.load(bad)
    with pytest.raises(ModelLoadError, match="variant"):
        OrtLstmLossModel.from_bytes(lstm_window_onnx(t, cfg, 20))
    with pytest.raises(ModelLoadError, match="no such file"):
        OrtLstmLossModel.load(tmp_path / "absent.onnx")


def test_missing_onnxruntime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(ImportError, match=r"'onnx' extra"):
        import_onnxruntime()


def test_bench_rows_are_complete_and_backends_agree() -> None:
    # bench_models raises if onnxruntime and numpy disagree; no timing assertions here.
    rows = bench_models(quick=True)
    assert [r.name for r in rows] == [
        "lstm_step",
        "lstm_window_20",
        "dqn_argmax",
        "compression_argmax",
    ]
    for r in rows:
        assert r.numpy_us > 0 and r.onnxruntime_us is not None and r.onnxruntime_us > 0
        assert r.torch_us is None
    assert "timing only" in format_rows(rows)
