"""Weight files and the numpy model objects: loading, validation, state, fork."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save as st_save

from oxidize_ml.bench_models import random_tensors
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
from oxidize_ml.runtime.configs import WEIGHTS_FORMAT, config_from_dict, config_to_json
from oxidize_ml.runtime.weights import encode_weights, read_weight_file


def _write(path: Path, tensors, config, meta_overrides=None) -> Path:
    """A weight file written by hand, so tests can break any part of it."""
    meta = {
        "format": WEIGHTS_FORMAT,
        "kind": config.kind,
        "config": config_to_json(config),
        "feature_schema_version": "1",
    }
    meta.update(meta_overrides or {})
    meta = {k: v for k, v in meta.items() if v is not None}
    path.write_bytes(st_save(dict(tensors), metadata=meta))
    return path


@pytest.fixture()
def lstm_file(tmp_path: Path) -> Path:
    cfg = LossLstmConfig()
    p = tmp_path / "loss_predictor.safetensors"
    p.write_bytes(encode_weights(random_tensors(cfg, seed=1), cfg))
    return p


def test_round_trip_preserves_tensors_and_config(tmp_path: Path) -> None:
    for cfg in (LossLstmConfig(), DqnMlpConfig(n_inputs=10), CompressionMlpConfig(n_inputs=6)):
        t = random_tensors(cfg, seed=2)
        p = tmp_path / f"{cfg.kind}.safetensors"
        p.write_bytes(encode_weights(t, cfg, extra_metadata={"run": "abc"}))
        wf = read_weight_file(p)
        assert wf.kind == cfg.kind and wf.config == cfg and wf.metadata["run"] == "abc"
        assert set(wf.tensors) == set(t)
        for k in t:
            np.testing.assert_array_equal(wf.tensors[k], t[k])
            assert not wf.tensors[k].flags.writeable


def test_loaders_pick_files_from_a_directory(tmp_path: Path, lstm_file: Path) -> None:
    cfg = DqnMlpConfig()
    (tmp_path / "congestion_controller.safetensors").write_bytes(
        encode_weights(random_tensors(cfg), cfg)
    )
    assert isinstance(load_lstm(tmp_path), LstmLossModel)
    m = load_mlp(tmp_path, "dqn")
    assert isinstance(m, MlpModel) and m.kind == "dqn" and m.config == cfg
    with pytest.raises(ModelLoadError, match="no such file"):
        load_mlp(tmp_path, "compression_mlp")
    with pytest.raises(ValueError, match="unknown backend"):
        load_lstm(tmp_path, backend="tensorflow")  # type: ignore[arg-type]
    with pytest.raises(ModelLoadError, match="expected 'dqn'"):
        load_mlp(lstm_file, "dqn")


@pytest.mark.parametrize(
    "damage",
    ["truncate", "garbage", "empty", "flip_header_length"],
)
def test_corrupt_file_raises_model_load_error(lstm_file: Path, damage: str) -> None:
    data = lstm_file.read_bytes()
    if damage == "truncate":
        data = data[: len(data) - 100]
    elif damage == "garbage":
        data = b"this is not a safetensors file at all" * 10
    elif damage == "empty":
        data = b""
    else:
        data = (len(data) * 4).to_bytes(8, "little") + data[8:]
    lstm_file.write_bytes(data)
    with pytest.raises(ModelLoadError) as info:
        LstmLossModel.load(lstm_file)
    assert str(lstm_file) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_wrong_shape_missing_extra_tensor_dtype_nan(tmp_path: Path) -> None:
    cfg = LossLstmConfig()
    good = random_tensors(cfg)
    cases = {
        "shape": ({**good, "head.weight": np.zeros((1, 32), np.float32)}, "has shape"),
        "missing": ({k: v for k, v in good.items() if k != "lstm.bias_hh_l0"}, "missing"),
        "extra": ({**good, "lstm.weight_ih_l1": np.zeros((256, 64), np.float32)}, "unexpected"),
        "dtype": ({**good, "head.bias": np.zeros(1, np.float64)}, "dtype"),
        "nan": ({**good, "head.bias": np.array([np.nan], np.float32)}, "NaN"),
    }
    for name, (tensors, msg) in cases.items():
        p = _write(tmp_path / f"{name}.safetensors", tensors, cfg)
        with pytest.raises(ModelLoadError, match=msg):
            LstmLossModel.load(p)


def test_bad_metadata_raises(tmp_path: Path) -> None:
    cfg = LossLstmConfig()
    t = random_tensors(cfg)
    cases = {
        "format": ({"format": "other/9"}, "not supported"),
        "kind": ({"kind": "transformer"}, "unknown model kind"),
        "schema": ({"feature_schema_version": "99"}, "feature schema"),
        "config_json": ({"config": "{not json"}, "bad config"),
        "config_keys": ({"config": json.dumps({"hidden": 64})}, "missing keys"),
        "config_size": (
            {"config": json.dumps({"n_features": 8, "hidden": 32, "seq_len": 20})},
            "has shape",
        ),
        "no_meta": (
            {"format": None, "kind": None, "config": None, "feature_schema_version": None},
            "metadata|__metadata__",
        ),
    }
    for name, (meta, msg) in cases.items():
        p = _write(tmp_path / f"{name}.safetensors", t, cfg, meta)
        with pytest.raises(ModelLoadError, match=msg):
            LstmLossModel.load(p)


def test_encode_refuses_invalid_weights() -> None:
    cfg = DqnMlpConfig()
    t = random_tensors(cfg)
    t["layers.0.weight"][0, 0] = np.inf
    with pytest.raises(ModelLoadError, match="NaN or infinity"):
        encode_weights(t, cfg)
    with pytest.raises(ValueError, match="override"):
        encode_weights(random_tensors(cfg), cfg, extra_metadata={"kind": "x"})


def test_configs_validate() -> None:
    with pytest.raises(ValueError, match="n_inputs"):
        DqnMlpConfig(n_inputs=4)
    with pytest.raises(TypeError, match="hidden"):
        LossLstmConfig(hidden=64.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown keys"):
        config_from_dict("dqn", {**DqnMlpConfig().to_dict(), "dropout": 0.1})
    assert config_from_dict("dqn", DqnMlpConfig().to_dict()) == DqnMlpConfig()


def test_fork_has_independent_state_and_shares_weights(lstm_file: Path) -> None:
    a = LstmLossModel.load(lstm_file)
    b = a.fork()
    assert b.weights is a.weights
    xs = np.random.default_rng(0).uniform(0, 1, (10, 8)).astype(np.float32)
    pa = [a.step(x) for x in xs]
    # b has seen nothing yet: its first step equals a fresh model's first step.
    fresh = LstmLossModel.load(lstm_file)
    assert b.step(xs[0]) == fresh.step(xs[0]) == pa[0]
    assert not np.allclose(a.clone_state()[0], b.clone_state()[0])
    # Stepping b does not move a.
    before = a.clone_state()
    b.step(xs[1])
    np.testing.assert_array_equal(a.clone_state()[0], before[0])
    np.testing.assert_array_equal(a.clone_state()[1], before[1])


def test_clone_set_reset_state(lstm_file: Path) -> None:
    m = LstmLossModel.load(lstm_file)
    xs = np.random.default_rng(1).uniform(0, 1, (6, 8)).astype(np.float32)
    for x in xs[:3]:
        m.step(x)
    saved = m.clone_state()
    p1 = [m.step(x) for x in xs[3:]]
    m.set_state(saved)
    assert [m.step(x) for x in xs[3:]] == p1
    m.reset_state()
    assert not m.clone_state()[0].any() and not m.clone_state()[1].any()
    with pytest.raises(ValueError, match="shape"):
        m.set_state((np.zeros(3), np.zeros(64)))
    with pytest.raises(ValueError, match="NaN"):
        m.set_state((np.full(64, np.nan), np.zeros(64)))


def test_predict_window_does_not_touch_state(lstm_file: Path) -> None:
    m = LstmLossModel.load(lstm_file)
    xs = np.random.default_rng(2).uniform(0, 1, (20, 8)).astype(np.float32)
    m.step(xs[0])
    before = m.clone_state()
    p = m.predict_window(xs)
    assert 0.0 < p < 1.0
    np.testing.assert_array_equal(m.clone_state()[0], before[0])
    with pytest.raises(ValueError, match="shape"):
        m.predict_window(xs[:, :5])


def test_step_input_handling(lstm_file: Path) -> None:
    m = LstmLossModel.load(lstm_file)
    x = np.random.default_rng(3).uniform(0, 1, 8)
    p64 = m.step(x)  # float64 accepted
    m.reset_state()
    assert m.step(x.astype(np.float32)) == pytest.approx(p64, abs=1e-6)
    m.reset_state()
    assert m.step(list(x)) == pytest.approx(p64, abs=1e-6)
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        m.step(np.zeros(7, np.float32))
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        m.step(np.zeros(1, np.float32))  # would silently broadcast without the check
    m.step(x)
    with pytest.raises(ValueError, match="state was reset"):
        m.step(np.full(8, np.nan, np.float32))
    assert not m.clone_state()[0].any()


def test_mlp_forward_is_a_reused_view_and_argmax_checks_nan(tmp_path: Path) -> None:
    cfg = CompressionMlpConfig()
    m = MlpModel.from_tensors(random_tensors(cfg, seed=3), cfg)
    x1, x2 = np.random.default_rng(4).standard_normal((2, cfg.n_inputs)).astype(np.float32)
    y1 = m.forward(x1)
    kept = y1.copy()
    y2 = m.forward(x2)
    assert y1 is y2 or np.shares_memory(y1, y2)  # documented: the buffer is reused
    assert not np.array_equal(kept, y2)
    f = m.fork()  # a fork shares the per-thread buffer (documented)
    assert np.shares_memory(f.forward(x1), m.forward(x1))
    with pytest.raises(ValueError, match="NaN"):
        m.argmax(np.full(cfg.n_inputs, np.nan, np.float32))
    np.testing.assert_allclose(m.forward_batch(np.stack([x1, x2]))[1], m.forward(x2), atol=1e-6)


def test_runtime_never_imports_torch() -> None:
    code = (
        "import sys, numpy as np\n"
        "import oxidize_ml.runtime, oxidize_ml.runtime.numpy_models, oxidize_ml.runtime.kernels\n"
        "import oxidize_ml.runtime.onnx_backend, oxidize_ml.bench_models, oxidize_ml.hub.manifest\n"
        "import oxidize_ml.models, oxidize_ml.models.manifest\n"
        "from oxidize_ml.bench_models import random_tensors\n"
        "from oxidize_ml.runtime import LstmLossModel, LossLstmConfig\n"
        "m = LstmLossModel.from_tensors(random_tensors(LossLstmConfig()), LossLstmConfig())\n"
        "m.step(np.zeros(8, np.float32))\n"
        "bad = [n for n in ('torch', 'onnxruntime', 'onnx') if n in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
