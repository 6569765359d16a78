"""numpy kernels against an independent float64 reference and against torch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from oxidize_ml.bench_models import random_tensors
from oxidize_ml.runtime.configs import (
    CompressionMlpConfig,
    DqnMlpConfig,
    LossLstmConfig,
    mlp_widths,
)
from oxidize_ml.runtime.kernels import (
    LstmScratch,
    MlpScratch,
    augment_linear,
    fuse_lstm_weights,
    lstm_step,
    lstm_window,
    mlp_forward,
    mlp_forward_batch,
    sigmoid,
    sigmoid_scalar,
)
from oxidize_ml.runtime.numpy_models import LstmLossModel, MlpModel

TOL = 1e-5


def _ref_sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _ref_lstm(tensors: dict[str, np.ndarray], xs: np.ndarray, h=None, c=None):
    """Textbook LSTM in float64, torch gate order (i, f, g, o): per-step p, final h, c."""
    w_ih = tensors["lstm.weight_ih_l0"].astype(np.float64)
    w_hh = tensors["lstm.weight_hh_l0"].astype(np.float64)
    b = tensors["lstm.bias_ih_l0"].astype(np.float64) + tensors["lstm.bias_hh_l0"]
    hw = tensors["head.weight"][0].astype(np.float64)
    hb = float(tensors["head.bias"][0])
    n_h = w_hh.shape[1]
    h = np.zeros(n_h) if h is None else h.astype(np.float64)
    c = np.zeros(n_h) if c is None else c.astype(np.float64)
    ps = []
    for x in xs.astype(np.float64):
        z = w_ih @ x + w_hh @ h + b
        i, f, g, o = np.split(z, 4)
        c = _ref_sigmoid(f) * c + _ref_sigmoid(i) * np.tanh(g)
        h = _ref_sigmoid(o) * np.tanh(c)
        ps.append(_ref_sigmoid(hw @ h + hb))
    return np.array(ps), h, c


@pytest.fixture(scope="module")
def lstm_tensors() -> dict[str, np.ndarray]:
    # Scale 0.3 (larger than the bench's 0.1) drives gates into saturation too.
    rng = np.random.default_rng(3)
    from oxidize_ml.runtime.configs import expected_tensors

    return {
        k: (rng.standard_normal(s) * 0.3).astype(np.float32)
        for k, s in expected_tensors(LossLstmConfig()).items()
    }


def test_sigmoid_is_stable_and_accurate() -> None:
    z = np.array([-1e4, -100.0, -20.0, -1.0, 0.0, 1.0, 20.0, 100.0, 1e4], dtype=np.float32)
    out = np.empty_like(z)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning allowed
        sigmoid(z, out)
        scalars = [sigmoid_scalar(float(v)) for v in z]
    with np.errstate(over="ignore"):
        ref = _ref_sigmoid(z.astype(np.float64))
    np.testing.assert_allclose(out, ref, atol=1e-7)
    np.testing.assert_allclose(scalars, ref, atol=1e-12)
    assert out[0] == 0.0 and out[-1] == 1.0


def test_lstm_step_kernel_matches_reference(lstm_tensors) -> None:
    cfg = LossLstmConfig()
    w = fuse_lstm_weights(
        lstm_tensors["lstm.weight_ih_l0"],
        lstm_tensors["lstm.weight_hh_l0"],
        lstm_tensors["lstm.bias_ih_l0"],
        lstm_tensors["lstm.bias_hh_l0"],
    )
    assert w.shape == (cfg.n_features + 1 + cfg.hidden, 4 * cfg.hidden) and w.dtype == np.float32
    rng = np.random.default_rng(0)
    s = LstmScratch.allocate(cfg.n_features, cfg.hidden)
    for _ in range(20):
        x = rng.standard_normal(cfg.n_features).astype(np.float32)
        h = rng.uniform(-1, 1, cfg.hidden).astype(np.float32)
        c = rng.standard_normal(cfg.hidden).astype(np.float32)
        oh, oc = np.empty_like(h), np.empty_like(c)
        lstm_step(x, h, c, w, oh, oc, s)
        _, rh, rc = _ref_lstm(lstm_tensors, x[None], h, c)
        np.testing.assert_allclose(oh, rh, atol=TOL)
        np.testing.assert_allclose(oc, rc, atol=TOL)


def test_lstm_window_equals_repeated_steps(lstm_tensors) -> None:
    cfg = LossLstmConfig()
    w = fuse_lstm_weights(
        *(
            lstm_tensors[k]
            for k in (
                "lstm.weight_ih_l0",
                "lstm.weight_hh_l0",
                "lstm.bias_ih_l0",
                "lstm.bias_hh_l0",
            )
        )
    )
    xs = np.random.default_rng(1).standard_normal((20, cfg.n_features)).astype(np.float32)
    hs = np.empty((20, cfg.hidden), dtype=np.float32)
    c_out = np.empty(cfg.hidden, dtype=np.float32)
    z = np.zeros(cfg.hidden, dtype=np.float32)
    lstm_window(xs, w, z, z, hs, c_out)
    s = LstmScratch.allocate(cfg.n_features, cfg.hidden)
    h, c = z.copy(), z.copy()
    for t in range(20):
        lstm_step(xs[t], h, c, w, h, c, s)
        np.testing.assert_allclose(hs[t], h, atol=1e-6)
    np.testing.assert_allclose(c_out, c, atol=1e-6)
    _, rh, _rc = _ref_lstm(lstm_tensors, xs)
    np.testing.assert_allclose(hs[-1], rh, atol=TOL)
    with pytest.raises(ValueError, match="at least one step"):
        lstm_window(xs[:0], w, z, z, hs[:0], c_out)


def test_lstm_model_stateful_steps_match_reference(lstm_tensors) -> None:
    m = LstmLossModel.from_tensors(lstm_tensors, LossLstmConfig())
    xs = np.random.default_rng(2).uniform(0, 1, (45, 8)).astype(np.float32)
    ref_p, _, _ = _ref_lstm(lstm_tensors, xs)
    got = np.array([m.step(x) for x in xs])
    np.testing.assert_allclose(got, ref_p, atol=TOL)
    m.reset_state()
    np.testing.assert_allclose(m.predict_sequence(xs), ref_p, atol=TOL)
    # predict_window(xs[:20]) == the 20th step from zero state.
    assert abs(m.predict_window(xs[:20]) - ref_p[19]) < TOL


def test_mlp_kernel_matches_reference() -> None:
    for cfg in (DqnMlpConfig(), DqnMlpConfig(n_inputs=12), CompressionMlpConfig(n_inputs=5)):
        t = random_tensors(cfg, seed=4)
        n_layers = len(mlp_widths(cfg)) - 1
        layers = [
            augment_linear(t[f"layers.{k}.weight"], t[f"layers.{k}.bias"]) for k in range(n_layers)
        ]
        s = MlpScratch.allocate(mlp_widths(cfg))
        xs = np.random.default_rng(5).standard_normal((16, cfg.n_inputs)).astype(np.float32)
        a = xs.astype(np.float64)
        for k in range(n_layers):
            a = a @ t[f"layers.{k}.weight"].T.astype(np.float64) + t[f"layers.{k}.bias"]
            if k != n_layers - 1:
                a = np.maximum(a, 0.0)
        for i, x in enumerate(xs):
            np.testing.assert_allclose(mlp_forward(x, layers, s), a[i], atol=TOL)
        np.testing.assert_allclose(mlp_forward_batch(xs, layers), a, atol=TOL)
        m = MlpModel.from_tensors(t, cfg)
        assert [m.argmax(x) for x in xs] == list(a.argmax(axis=1))


def test_kernels_match_torch(lstm_tensors) -> None:
    torch = pytest.importorskip("torch")
    from oxidize_ml.training.torch_models import DqnMlp, LossLstm

    tm = LossLstm().eval()
    tm.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in lstm_tensors.items()})
    xs = np.random.default_rng(6).standard_normal((2, 60, 8)).astype(np.float32)
    with torch.no_grad():
        full, _ = tm(torch.from_numpy(xs))
        # Stateful chunked torch inference (TBPTT regime) equals the full sequence.
        state, chunks = None, []
        for start in range(0, 60, 20):
            p, state = tm(torch.from_numpy(xs[:, start : start + 20]), state)
            chunks.append(p)
        torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=1e-6, rtol=0)
    m = LstmLossModel.from_tensors(lstm_tensors, LossLstmConfig())
    for b in range(2):
        m.reset_state()
        steps = np.array([m.step(x) for x in xs[b]])
        np.testing.assert_allclose(steps, full[b].numpy(), atol=TOL)
        # Chunked numpy inference (predict_sequence carries state) equals it too.
        m.reset_state()
        chunked = np.concatenate([m.predict_sequence(xs[b, s : s + 20]) for s in range(0, 60, 20)])
        np.testing.assert_allclose(chunked, full[b].numpy(), atol=TOL)
        assert abs(m.predict_window(xs[b, :20]) - float(full[b, 19])) < TOL

    dqn = DqnMlp().eval()
    mm = MlpModel.from_tensors({k: v.numpy() for k, v in dqn.state_dict().items()}, dqn.config)
    x = np.random.default_rng(7).standard_normal((10, 8)).astype(np.float32)
    with torch.no_grad():
        ref = dqn(torch.from_numpy(x)).numpy()
    for i in range(10):
        np.testing.assert_allclose(mm.forward(x[i]), ref[i], atol=TOL)
