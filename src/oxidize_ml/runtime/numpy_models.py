"""numpy inference for the learned models: weights loaded once, buffers preallocated.

Thread safety
-------------
Weights (`LstmWeights`, `MlpWeights`) are read-only and may be shared by any
number of threads. A model object also owns mutable scratch buffers and (for
the LSTM) the carried (h, c) state, so an instance must be used by one thread
or connection at a time. `fork` returns a new instance sharing the weights
with its own buffers and fresh state: one per connection.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oxidize_ml.runtime.configs import (
    KIND_COMPRESSION_MLP,
    KIND_DQN,
    KIND_LSTM_LOSS,
    LossLstmConfig,
    MlpConfig,
    mlp_widths,
)
from oxidize_ml.runtime.kernels import (
    F32,
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
from oxidize_ml.runtime.weights import ModelLoadError, check_tensors, read_weight_file


class NonFiniteOutputError(ValueError):
    """A model computed NaN or infinity: a NaN/inf input, or weights that overflow float32.

    Learned policies catch it and answer with their heuristic for that
    decision (`oxidize_ml.loss.lstm.LstmLossPredictor`,
    `oxidize_ml.congestion.dqn.DqnCwndPolicy`).
    """


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _coerce_vector(x: object, n: int, name: str) -> np.ndarray:
    """Slow path of input handling: any array-like -> float32 ``[n]`` or a clear error."""
    arr = np.asarray(x, dtype=F32)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class LstmWeights:
    """Read-only LSTM weights in the fused kernel layout (see `runtime.kernels`)."""

    config: LossLstmConfig
    w: np.ndarray  # [F + 1 + H, 4H] fused: input rows, the bias row, hidden rows; gate
    # order (o, i, f, g), sigmoid gates pre-scaled 0.5
    head_w: np.ndarray  # [H]
    head_b: float

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, np.ndarray], config: LossLstmConfig) -> LstmWeights:
        """Build from torch-layout tensors (validated against `expected_tensors`)."""
        check_tensors(tensors, config, source="tensors")
        w = fuse_lstm_weights(
            tensors["lstm.weight_ih_l0"],
            tensors["lstm.weight_hh_l0"],
            tensors["lstm.bias_ih_l0"],
            tensors["lstm.bias_hh_l0"],
        )
        head_w = np.ascontiguousarray(tensors["head.weight"][0], dtype=F32)
        return cls(
            config=config,
            w=_readonly(w),
            head_w=_readonly(head_w),
            head_b=float(tensors["head.bias"][0]),
        )


class LstmLossModel:
    """The LSTM loss predictor, run one step at a time from carried (h, c).

    The model was trained statefully with truncated backpropagation through
    time over chunks of ``config.seq_len`` steps, so `step` from carried state
    computes what a window would, at a fraction of the cost (REFERENCES
    section 5: one step is 5-15x cheaper than recomputing 20).

    Examples
    --------
    >>> m = LstmLossModel.load("models/loss_predictor.safetensors")  # doctest: +SKIP
    >>> p = m.step(features.to_vector())  # doctest: +SKIP
    """

    kind = KIND_LSTM_LOSS
    __slots__ = ("_c", "_s", "_weights", "_x_shape")

    def __init__(self, weights: LstmWeights) -> None:
        cfg = weights.config
        self._weights = weights
        self._s = LstmScratch.allocate(cfg.n_features, cfg.hidden)
        # The carried state lives in the scratch buffer (h in h_part, c in c_part), where
        # the step reads and writes it without copies.
        self._c = self._s.c_part
        self._x_shape = (cfg.n_features,)

    @classmethod
    def load(cls, path: str | Path) -> LstmLossModel:
        """Load a ``lstm_loss`` safetensors file; raises `ModelLoadError` on any problem."""
        wf = read_weight_file(path, expected_kind=KIND_LSTM_LOSS)
        assert isinstance(wf.config, LossLstmConfig)
        return cls(LstmWeights.from_tensors(wf.tensors, wf.config))

    @classmethod
    def from_tensors(
        cls, tensors: Mapping[str, np.ndarray], config: LossLstmConfig
    ) -> LstmLossModel:
        return cls(LstmWeights.from_tensors(tensors, config))

    @property
    def config(self) -> LossLstmConfig:
        return self._weights.config

    @property
    def weights(self) -> LstmWeights:
        return self._weights

    def fork(self) -> LstmLossModel:
        """A new instance sharing the read-only weights, with its own buffers and zero state."""
        return LstmLossModel(self._weights)

    @property
    def input_buffer(self) -> np.ndarray:
        """The step's input slot, float32 ``[n_features]`` (writable, owned by this model).

        A caller that writes the features here (``features.to_vector(out=...)``)
        and passes this array to `step` saves building and copying a vector.
        """
        return self._s.x_part

    def reset_state(self) -> None:
        """Zero (h, c), as at the start of a connection."""
        self._s.h_part.fill(0.0)
        self._c.fill(0.0)

    def clone_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the carried ``(h [H], c [H])``."""
        return self._s.h_part.copy(), self._c.copy()

    def set_state(self, state: tuple[np.ndarray, np.ndarray]) -> None:
        """Restore a state from `clone_state` (copied in; shapes and finiteness checked)."""
        h, c = state
        n = self.config.hidden
        h = _coerce_vector(h, n, "h")
        c = _coerce_vector(c, n, "c")
        if not (np.isfinite(h).all() and np.isfinite(c).all()):
            raise ValueError("state contains NaN or infinity")
        self._s.h_part[...] = h
        self._c[...] = c

    def step(self, x: np.ndarray) -> float:
        """Advance the carried state by one observation and return P(loss).

        Parameters
        ----------
        x
            float32 ``[n_features]`` (other float dtypes and array-likes are
            accepted on a slower path).

        Raises
        ------
        ValueError
            Wrong shape, or a non-finite result (a NaN or infinite input); the
            state is then reset so one bad sample cannot poison later steps.
        """
        if type(x) is not np.ndarray or x.shape != self._x_shape:
            x = _coerce_vector(x, self._x_shape[0], "x")
        wt, s = self._weights, self._s
        lstm_step(x, s.h_part, self._c, wt.w, s.h_part, self._c, s)
        z = float(s.h_part.dot(wt.head_w)) + wt.head_b  # method form: ~0.3 us cheaper
        if not math.isfinite(z):
            self.reset_state()
            raise NonFiniteOutputError(
                "LSTM produced a non-finite output (NaN/inf in x, or overflowing weights); "
                "state was reset"
            )
        return sigmoid_scalar(z)

    def predict_sequence(self, xs: np.ndarray) -> np.ndarray:
        """Per-step P(loss) ``[T]`` over ``xs [T, F]``, advancing the carried state.

        Equal to calling `step` T times (same arithmetic, one batched input
        projection); allocates, so meant for evaluation rather than the hot path.
        """
        xs = self._check_window(xs)
        cfg, wt = self.config, self._weights
        hs = np.empty((xs.shape[0], cfg.hidden), dtype=F32)
        c_out = np.empty(cfg.hidden, dtype=F32)
        lstm_window(xs, wt.w, self._s.h_part.copy(), self._c, hs, c_out)
        if not np.isfinite(hs[-1]).all():
            self.reset_state()
            raise NonFiniteOutputError(
                "LSTM produced a non-finite output (NaN/inf in xs, or overflowing weights); "
                "state was reset"
            )
        self._s.h_part[...] = hs[-1]
        self._c[...] = c_out
        logits = hs @ wt.head_w + F32(wt.head_b)
        return sigmoid(logits, out=logits)

    def predict_window(self, xs: np.ndarray) -> float:
        """P(loss) after the last of ``xs [T, F]`` starting from zero state.

        Does not read or change the carried state. T is normally
        ``config.seq_len`` (20) but any T >= 1 works.
        """
        xs = self._check_window(xs)
        cfg, wt = self.config, self._weights
        hs = np.empty((xs.shape[0], cfg.hidden), dtype=F32)
        c_out = np.empty(cfg.hidden, dtype=F32)
        zeros = np.zeros(cfg.hidden, dtype=F32)
        lstm_window(xs, wt.w, zeros, zeros, hs, c_out)
        z = float(np.dot(hs[-1], wt.head_w)) + wt.head_b
        if not math.isfinite(z):
            raise NonFiniteOutputError(
                "LSTM produced a non-finite output (NaN/inf in xs, or overflowing weights)"
            )
        return sigmoid_scalar(z)

    def _check_window(self, xs: object) -> np.ndarray:
        arr = np.asarray(xs, dtype=F32)
        f = self.config.n_features
        if arr.ndim != 2 or arr.shape[1] != f or arr.shape[0] < 1:
            raise ValueError(f"xs must have shape [T >= 1, {f}], got {arr.shape}")
        return arr


@dataclass(frozen=True, slots=True, eq=False)
class MlpWeights:
    """Read-only MLP weights, each layer as ``w_aug [in + 1, out]`` (bias as the last row)."""

    config: MlpConfig
    layers: tuple[np.ndarray, ...]

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, np.ndarray], config: MlpConfig) -> MlpWeights:
        """Build from torch-layout tensors (``layers.{k}.weight [out, in]``), validated."""
        check_tensors(tensors, config, source="tensors")
        n_layers = len(mlp_widths(config)) - 1
        layers = tuple(
            _readonly(augment_linear(tensors[f"layers.{k}.weight"], tensors[f"layers.{k}.bias"]))
            for k in range(n_layers)
        )
        return cls(config=config, layers=layers)


class MlpModel:
    """The DQN congestion controller or the compression oracle (a plain MLP).

    ``kind`` is ``"dqn"`` (outputs are Q-values in `DrlAction` order) or
    ``"compression_mlp"`` (outputs are predicted gains in
    `MlCompressionDecision` order).
    """

    __slots__ = ("_scratch", "_weights", "_x_shape")

    def __init__(self, weights: MlpWeights, *, _scratch: threading.local | None = None) -> None:
        self._weights = weights
        # Scratch buffers per thread, shared by this model and its forks: a forward
        # pass runs start to finish in one thread, so forks (one per connection)
        # need no buffers of their own; they cost a fork time and memory.
        self._scratch = threading.local() if _scratch is None else _scratch
        self._x_shape = (weights.config.n_inputs,)

    @classmethod
    def load(cls, path: str | Path, *, kind: str | None = None) -> MlpModel:
        """Load a ``dqn`` or ``compression_mlp`` safetensors file.

        ``kind``, if given, must match the file. Raises `ModelLoadError`.
        """
        if kind is not None and kind not in (KIND_DQN, KIND_COMPRESSION_MLP):
            raise ValueError(f"kind must be {KIND_DQN!r} or {KIND_COMPRESSION_MLP!r}, got {kind!r}")
        wf = read_weight_file(path, expected_kind=kind)
        if isinstance(wf.config, LossLstmConfig):
            raise ModelLoadError(f"{path}: holds an LSTM; use LstmLossModel.load")
        return cls(MlpWeights.from_tensors(wf.tensors, wf.config))

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, np.ndarray], config: MlpConfig) -> MlpModel:
        return cls(MlpWeights.from_tensors(tensors, config))

    @property
    def kind(self) -> str:
        return self._weights.config.kind

    @property
    def config(self) -> MlpConfig:
        return self._weights.config

    @property
    def weights(self) -> MlpWeights:
        return self._weights

    def fork(self) -> MlpModel:
        """A new instance sharing the read-only weights and the per-thread buffers."""
        return MlpModel(self._weights, _scratch=self._scratch)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs ``[n_outputs]`` for one input ``x [n_inputs]``.

        Returns a read-write *view of a per-thread buffer* that the next call in
        this thread, on this instance or one of its forks, overwrites: copy it to
        keep it. Non-finite inputs give non-finite outputs (use `argmax`, which
        checks).
        """
        if type(x) is not np.ndarray or x.shape != self._x_shape:
            x = _coerce_vector(x, self._x_shape[0], "x")
        try:
            s = self._scratch.s
        except AttributeError:  # this thread's first forward of these weights
            s = self._scratch.s = MlpScratch.allocate(mlp_widths(self._weights.config))
        return mlp_forward(x, self._weights.layers, s)

    def argmax(self, x: np.ndarray) -> int:
        """Index of the largest output (the greedy action / best decision).

        Raises ``ValueError`` when the outputs contain NaN (a NaN input).
        """
        out = self.forward(x)
        k = int(out.argmax())
        v = out[k]
        if math.isnan(v):  # argmax returns the first NaN when there is one
            raise NonFiniteOutputError("MLP produced NaN (NaN in x, or overflowing weights)")
        return k

    def forward_batch(self, xs: np.ndarray) -> np.ndarray:
        """Outputs ``[n, n_outputs]`` for ``xs [n, n_inputs]`` (allocates; for evaluation)."""
        xs = np.asarray(xs, dtype=F32)
        if xs.ndim != 2 or xs.shape[1] != self._x_shape[0]:
            raise ValueError(f"xs must have shape [n, {self._x_shape[0]}], got {xs.shape}")
        return mlp_forward_batch(xs, self._weights.layers)
