"""The runtime's model interfaces backed by onnxruntime (optional ``onnx`` extra).

`OrtLstmLossModel` and `OrtMlpModel` behave like `LstmLossModel` and
`MlpModel` (same methods, same state semantics) but run the exported ONNX
graphs. onnxruntime is imported only when one is loaded. Sessions use one
intra-op thread: these graphs are far too small to gain from more, and the
engine must not steal cores from the packet path.

Each instance binds its inputs and outputs once (``io_binding`` over
preallocated numpy buffers, double-buffered for the LSTM state), which
halves onnxruntime's per-call overhead compared with ``session.run`` with
feed dicts. The session is shared by `fork`ed instances (onnxruntime runs a
session concurrently from several threads); the bindings and buffers are not.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Final

import numpy as np

from oxidize_ml.features import FEATURE_SCHEMA_VERSION
from oxidize_ml.runtime.configs import (
    KIND_COMPRESSION_MLP,
    KIND_DQN,
    KIND_LSTM_LOSS,
    LossLstmConfig,
    MlpConfig,
    ModelConfig,
    config_from_json,
)
from oxidize_ml.runtime.kernels import F32
from oxidize_ml.runtime.numpy_models import NonFiniteOutputError
from oxidize_ml.runtime.weights import ModelLoadError, read_bounded, uses_network_features

ONNX_FORMAT: Final = "oxidize-ml-onnx/1"
"""``format`` metadata value of ONNX files written by `oxidize_ml.training.export`"""
VARIANT_STEP: Final = "step"
VARIANT_WINDOW: Final = "window"
VARIANTS: Final = (VARIANT_STEP, VARIANT_WINDOW)


def import_onnxruntime() -> Any:
    """Import onnxruntime or raise an ImportError that says how to get it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            "the onnxruntime backend needs the optional 'onnx' extra: "
            "pip install 'oxidize-ml[onnx]' (or use backend='numpy')"
        ) from exc
    return onnxruntime


def _session(data: bytes, path: str | Path) -> tuple[Any, ModelConfig, dict[str, str]]:
    """Open ONNX bytes written by our exporter (``path`` names them in errors); check metadata."""
    ort = import_onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises several exception types
        raise ModelLoadError(f"{path}: onnxruntime cannot load it: {exc}") from None
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    if meta.get("format") != ONNX_FORMAT:
        raise ModelLoadError(
            f"{path}: ONNX format {meta.get('format')!r} is not supported; expected {ONNX_FORMAT!r}"
        )
    kind = meta.get("kind", "")
    if uses_network_features(kind) and meta.get("feature_schema_version") != str(
        FEATURE_SCHEMA_VERSION
    ):
        raise ModelLoadError(
            f"{path}: trained for feature schema version {meta.get('feature_schema_version')!r}, "
            f"this package uses {FEATURE_SCHEMA_VERSION}"
        )
    try:
        config = config_from_json(kind, meta.get("config", ""))
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: bad config: {exc}") from None
    return sess, config, meta


def _check_io(
    sess: Any, path: str | Path, inputs: dict[str, list[int]], outputs: dict[str, list[int]]
) -> None:
    got_in = {i.name: list(i.shape) for i in sess.get_inputs()}
    got_out = {o.name: list(o.shape) for o in sess.get_outputs()}
    if got_in != inputs or got_out != outputs:
        raise ModelLoadError(
            f"{path}: graph has inputs {got_in} and outputs {got_out}; expected {inputs} and {outputs}"
        )
    for t in (*sess.get_inputs(), *sess.get_outputs()):
        if t.type != "tensor(float)":
            raise ModelLoadError(f"{path}: {t.name} has type {t.type}, expected tensor(float)")


def _bind(sess: Any, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> Any:
    """An io_binding reading and writing the given (kept-alive) numpy buffers in place."""
    binding = sess.io_binding()
    for name, arr in inputs.items():
        binding.bind_cpu_input(name, arr)
    for name, arr in outputs.items():
        binding.bind_output(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
    return binding


class OrtLstmLossModel:
    """`LstmLossModel`'s interface over the ``"step"`` ONNX graph."""

    kind = KIND_LSTM_LOSS

    def __init__(self, session: Any, config: LossLstmConfig) -> None:
        self._sess = session
        self._config = config
        f, h = config.n_features, config.hidden
        self._x = np.zeros((1, f), dtype=F32)
        self._p = np.zeros((1, 1), dtype=F32)
        # Double-buffered state: binding k reads state k and writes state 1-k.
        self._h = (np.zeros((1, h), dtype=F32), np.zeros((1, h), dtype=F32))
        self._c = (np.zeros((1, h), dtype=F32), np.zeros((1, h), dtype=F32))
        self._bindings = tuple(
            _bind(
                session,
                {"x": self._x, "h": self._h[k], "c": self._c[k]},
                {"p": self._p, "h_out": self._h[1 - k], "c_out": self._c[1 - k]},
            )
            for k in (0, 1)
        )
        self._cur = 0  # index of the buffers holding the current state

    @classmethod
    def load(cls, path: str | Path) -> OrtLstmLossModel:
        """Load a ``lstm_loss`` step-variant ONNX file; raises `ModelLoadError`."""
        return cls.from_bytes(read_bounded(path), source=str(path))

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> OrtLstmLossModel:
        """As `load`, from the file's bytes (e.g. already checksummed by the hub)."""
        path = source
        sess, config, meta = _session(data, path)
        if not isinstance(config, LossLstmConfig):
            raise ModelLoadError(f"{path}: holds a {config.kind!r} model, expected 'lstm_loss'")
        if meta.get("variant") != VARIANT_STEP:
            raise ModelLoadError(
                f"{path}: variant {meta.get('variant')!r}; the runtime needs the 'step' graph"
            )
        f, h = config.n_features, config.hidden
        _check_io(
            sess,
            path,
            {"x": [1, f], "h": [1, h], "c": [1, h]},
            {"p": [1, 1], "h_out": [1, h], "c_out": [1, h]},
        )
        return cls(sess, config)

    @property
    def config(self) -> LossLstmConfig:
        return self._config

    def fork(self) -> OrtLstmLossModel:
        """A new instance sharing the session, with its own buffers and zero state."""
        return OrtLstmLossModel(self._sess, self._config)

    def reset_state(self) -> None:
        self._h[self._cur].fill(0.0)
        self._c[self._cur].fill(0.0)

    def clone_state(self) -> tuple[np.ndarray, np.ndarray]:
        return self._h[self._cur][0].copy(), self._c[self._cur][0].copy()

    def set_state(self, state: tuple[np.ndarray, np.ndarray]) -> None:
        n = self._config.hidden
        h, c = (np.asarray(s, dtype=F32) for s in state)
        if h.shape != (n,) or c.shape != (n,):
            raise ValueError(f"state must be two arrays of shape ({n},), got {h.shape}, {c.shape}")
        if not (np.isfinite(h).all() and np.isfinite(c).all()):
            raise ValueError("state contains NaN or infinity")
        self._h[self._cur][0] = h
        self._c[self._cur][0] = c

    def step(self, x: np.ndarray) -> float:
        """Advance the carried state by one observation ``x [F]`` and return P(loss)."""
        self._x[0] = _check_x(x, self._config.n_features)
        self._sess.run_with_iobinding(self._bindings[self._cur])
        self._cur = 1 - self._cur
        p = float(self._p[0, 0])
        if not math.isfinite(p):
            self.reset_state()
            raise NonFiniteOutputError(
                "LSTM produced a non-finite output (NaN/inf in x, or overflowing weights); "
                "state was reset"
            )
        return p

    def predict_sequence(self, xs: np.ndarray) -> np.ndarray:
        """Per-step P(loss) ``[T]`` over ``xs [T, F]``, advancing the carried state."""
        xs = _check_xs(xs, self._config.n_features)
        return np.array([self.step(x) for x in xs], dtype=F32)

    def predict_window(self, xs: np.ndarray) -> float:
        """P(loss) after the last of ``xs [T, F]`` from zero state; carried state untouched."""
        xs = _check_xs(xs, self._config.n_features)
        saved = self.clone_state()
        try:
            self.reset_state()
            for x in xs:
                p = self.step(x)
        finally:
            self.set_state(saved)
        return p


class OrtMlpModel:
    """`MlpModel`'s interface over an MLP ONNX graph."""

    def __init__(self, session: Any, config: MlpConfig) -> None:
        self._sess = session
        self._config = config
        self._x = np.zeros((1, config.n_inputs), dtype=F32)
        self._y = np.zeros((1, config.n_outputs), dtype=F32)
        self._y_view = self._y[0]
        self._binding = _bind(session, {"x": self._x}, {"y": self._y})

    @classmethod
    def load(cls, path: str | Path, *, kind: str | None = None) -> OrtMlpModel:
        """Load a ``dqn`` or ``compression_mlp`` ONNX file; raises `ModelLoadError`."""
        return cls.from_bytes(read_bounded(path), source=str(path), kind=kind)

    @classmethod
    def from_bytes(
        cls, data: bytes, *, source: str = "<bytes>", kind: str | None = None
    ) -> OrtMlpModel:
        """As `load`, from the file's bytes."""
        if kind is not None and kind not in (KIND_DQN, KIND_COMPRESSION_MLP):
            raise ValueError(f"kind must be {KIND_DQN!r} or {KIND_COMPRESSION_MLP!r}, got {kind!r}")
        path = source
        sess, config, _ = _session(data, path)
        if isinstance(config, LossLstmConfig) or (kind is not None and config.kind != kind):
            raise ModelLoadError(
                f"{path}: holds a {config.kind!r} model, expected {kind or 'an MLP'!r}"
            )
        _check_io(sess, path, {"x": [1, config.n_inputs]}, {"y": [1, config.n_outputs]})
        return cls(sess, config)

    @property
    def kind(self) -> str:
        return self._config.kind

    @property
    def config(self) -> MlpConfig:
        return self._config

    def fork(self) -> OrtMlpModel:
        return OrtMlpModel(self._sess, self._config)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs ``[n_outputs]``; a view of an internal buffer the next call overwrites."""
        self._x[0] = _check_x(x, self._config.n_inputs)
        self._sess.run_with_iobinding(self._binding)
        return self._y_view

    def argmax(self, x: np.ndarray) -> int:
        out = self.forward(x)
        k = int(out.argmax())
        v = out[k]
        if math.isnan(v):
            raise NonFiniteOutputError("MLP produced NaN (NaN in x, or overflowing weights)")
        return k


def _check_x(x: object, n: int) -> np.ndarray:
    if type(x) is np.ndarray and x.shape == (n,):
        return x
    arr = np.asarray(x, dtype=F32)
    if arr.shape != (n,):
        raise ValueError(f"x must have shape ({n},), got {arr.shape}")
    return arr


def _check_xs(xs: object, n: int) -> np.ndarray:
    arr = np.asarray(xs, dtype=F32)
    if arr.ndim != 2 or arr.shape[1] != n or arr.shape[0] < 1:
        raise ValueError(f"xs must have shape [T >= 1, {n}], got {arr.shape}")
    return arr
