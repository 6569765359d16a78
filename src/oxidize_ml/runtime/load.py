"""Pick a backend and load a model from a file or a model directory.

A model directory holds ``<stem>.safetensors`` and ``<stem>.onnx`` with the
stems of `MODEL_FILE_STEMS` (``loss_predictor``, ``congestion_controller``,
``compression_oracle``). These loaders do not check a manifest: the engine
loads through `oxidize_ml.models.manifest.load_verified`, which checks checksums
and the feature schema first and then calls these.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from oxidize_ml.runtime.configs import (
    KIND_COMPRESSION_MLP,
    KIND_DQN,
    KIND_LSTM_LOSS,
    MODEL_FILE_STEMS,
)
from oxidize_ml.runtime.numpy_models import LstmLossModel, MlpModel

if TYPE_CHECKING:
    from oxidize_ml.runtime.onnx_backend import OrtLstmLossModel, OrtMlpModel

Backend = Literal["numpy", "onnxruntime"]
BACKENDS: Final = ("numpy", "onnxruntime")
BACKEND_SUFFIX: Final[dict[str, str]] = {"numpy": ".safetensors", "onnxruntime": ".onnx"}


def model_path(path: str | Path, kind: str, backend: str) -> Path:
    """The file to load: ``path`` itself, or ``path/<stem><suffix>`` when it is a directory."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {list(BACKENDS)}")
    p = Path(path)
    if p.is_dir():
        return p / f"{MODEL_FILE_STEMS[kind]}{BACKEND_SUFFIX[backend]}"
    return p


def load_lstm(path: str | Path, backend: Backend = "numpy") -> LstmLossModel | OrtLstmLossModel:
    """Load the LSTM loss predictor.

    Parameters
    ----------
    path
        A model directory (``loss_predictor.safetensors`` / ``loss_predictor.onnx``
        inside) or the file itself.
    backend
        ``"numpy"`` (safetensors, default, fastest) or ``"onnxruntime"`` (ONNX,
        needs the ``onnx`` extra). The returned objects have the same methods.

    Raises
    ------
    ModelLoadError
        Missing, corrupt or mismatching file.
    ImportError
        ``backend="onnxruntime"`` without onnxruntime installed.
    """
    file = model_path(path, KIND_LSTM_LOSS, backend)
    if backend == "onnxruntime":
        from oxidize_ml.runtime.onnx_backend import OrtLstmLossModel

        return OrtLstmLossModel.load(file)
    return LstmLossModel.load(file)


def load_mlp(
    path: str | Path, kind: str = KIND_DQN, backend: Backend = "numpy"
) -> MlpModel | OrtMlpModel:
    """Load the DQN (``kind="dqn"``) or compression oracle (``kind="compression_mlp"``).

    Same conventions and errors as `load_lstm`.
    """
    if kind not in (KIND_DQN, KIND_COMPRESSION_MLP):
        raise ValueError(f"kind must be {KIND_DQN!r} or {KIND_COMPRESSION_MLP!r}, got {kind!r}")
    file = model_path(path, kind, backend)
    if backend == "onnxruntime":
        from oxidize_ml.runtime.onnx_backend import OrtMlpModel

        return OrtMlpModel.load(file, kind=kind)
    return MlpModel.load(file, kind=kind)
