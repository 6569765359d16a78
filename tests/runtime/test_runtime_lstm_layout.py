"""The LSTM step's fused layout (gates o, i, f, g; the cell state after g; the bias as
a weight row) against the previous layout (gates i, f, o, g; separate products;
a separate bias add).

Each change saves a ufunc call per step (issue 9's hot path). Reordering gate
columns and pairing two products in one multiply change no floating-point
operation; the bias row moves the bias add into the matmul's accumulation,
which rounds differently by about one float32 ulp. So every probability,
hidden state and cell state must agree with the previous kernel's to float32
rounding, on the shipped model and on random weights, over thousands of
carried steps (errors must not grow through the recurrence), including after
resets and with inputs over the clipping range.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from oxidize_ml.bench_models import random_tensors
from oxidize_ml.models import default_model_dir
from oxidize_ml.runtime.configs import LossLstmConfig
from oxidize_ml.runtime.kernels import F32, sigmoid_scalar
from oxidize_ml.runtime.load import load_lstm
from oxidize_ml.runtime.numpy_models import LstmLossModel


class _PreviousStep:
    """The step before the layout change (fused order i, f, o, g), kept verbatim."""

    def __init__(self, tensors: dict[str, np.ndarray]) -> None:
        weight_ih, weight_hh = tensors["lstm.weight_ih_l0"], tensors["lstm.weight_hh_l0"]
        bias_ih, bias_hh = tensors["lstm.bias_ih_l0"], tensors["lstm.bias_hh_l0"]
        four_h = weight_ih.shape[0]
        h = four_h // 4
        order = np.concatenate(
            [np.arange(0, 2 * h), np.arange(3 * h, 4 * h), np.arange(2 * h, 3 * h)]
        )
        scale = np.ones(four_h, dtype=np.float64)
        scale[: 3 * h] = 0.5
        w = np.concatenate([weight_ih, weight_hh], axis=1).astype(np.float64)[order]
        b = (bias_ih.astype(np.float64) + bias_hh.astype(np.float64))[order]
        self.w = np.ascontiguousarray((w * scale[:, None]).T, dtype=F32)
        self.b = np.ascontiguousarray(b * scale, dtype=F32)
        self.head_w = np.ascontiguousarray(tensors["head.weight"][0], dtype=F32)
        self.head_b = float(tensors["head.bias"][0])
        n_features = weight_ih.shape[1]
        buf = np.zeros(n_features + 5 * h, dtype=F32)
        self.xh = buf[: n_features + h]
        self.x_part, self.h = self.xh[:n_features], self.xh[n_features:]
        self.gates = buf[n_features + h :]
        self.sig = self.gates[: 3 * h]
        self.i, self.f = self.gates[:h], self.gates[h : 2 * h]
        self.o, self.g = self.gates[2 * h : 3 * h], self.gates[3 * h :]
        self.half = np.full(3 * h, 0.5, dtype=F32)
        self.c = np.zeros(h, dtype=F32)

    def reset(self) -> None:
        self.h.fill(0.0)
        self.c.fill(0.0)

    def step(self, x: np.ndarray) -> float:
        self.x_part[...] = x
        np.dot(self.xh, self.w, out=self.gates)
        np.add(self.gates, self.b, out=self.gates)
        np.tanh(self.gates, out=self.gates)
        np.multiply(self.sig, self.half, out=self.sig)
        np.add(self.sig, self.half, out=self.sig)
        np.multiply(self.f, self.c, out=self.c)
        np.multiply(self.i, self.g, out=self.i)
        np.add(self.c, self.i, out=self.c)
        np.tanh(self.c, out=self.h)
        np.multiply(self.h, self.o, out=self.h)
        z = float(self.h.dot(self.head_w)) + self.head_b
        assert math.isfinite(z)
        return sigmoid_scalar(z)


def _shipped() -> dict[str, np.ndarray]:
    from oxidize_ml.runtime.configs import KIND_LSTM_LOSS, MODEL_FILE_STEMS
    from oxidize_ml.runtime.weights import read_weight_file

    directory = default_model_dir()
    assert directory is not None
    path = directory / f"{MODEL_FILE_STEMS[KIND_LSTM_LOSS]}.safetensors"
    return dict(read_weight_file(path, expected_kind=KIND_LSTM_LOSS).tensors)


@pytest.mark.parametrize("weights", ["shipped", "random-h64", "random-h24"])
def test_step_agrees_with_the_previous_layout_to_rounding(weights: str) -> None:
    if weights == "shipped":
        tensors = _shipped()
        config = load_lstm(default_model_dir()).config  # type: ignore[arg-type]
    else:
        config = LossLstmConfig(hidden=int(weights.split("-h")[1]))
        tensors = random_tensors(config, seed=config.hidden)
    ours = LstmLossModel.from_tensors(tensors, config)
    ref = _PreviousStep(tensors)
    rng = np.random.default_rng(7)
    for k in range(4_000):
        if k % 1_000 == 0:
            ours.reset_state()
            ref.reset()
        scale = rng.choice([0.01, 1.0, 10.0], size=config.n_features)
        x = (rng.random(config.n_features) * scale).astype(F32)
        assert ours.step(x) == pytest.approx(ref.step(x), rel=1e-5, abs=1e-6), k
        h, c = ours.clone_state()
        np.testing.assert_allclose(h, ref.h, rtol=1e-5, atol=1e-6, err_msg=str(k))
        np.testing.assert_allclose(c, ref.c, rtol=1e-5, atol=1e-5, err_msg=str(k))


def test_window_and_sequence_agree_with_steps_after_the_reorder() -> None:
    config = LossLstmConfig()
    tensors = random_tensors(config, seed=3)
    xs = np.random.default_rng(3).random((20, config.n_features)).astype(F32)
    stepped = LstmLossModel.from_tensors(tensors, config)
    ps = [stepped.step(x) for x in xs]
    seq = LstmLossModel.from_tensors(tensors, config).predict_sequence(xs)
    np.testing.assert_allclose(seq, ps, rtol=1e-5, atol=1e-6)
    window = LstmLossModel.from_tensors(tensors, config).predict_window(xs)
    assert window == pytest.approx(ps[-1], rel=1e-5, abs=1e-6)
