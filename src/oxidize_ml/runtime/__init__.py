"""numpy inference for the learned models; never imports torch.

`load_lstm` / `load_mlp` pick the backend (``"numpy"`` default, or
``"onnxruntime"`` with the ``onnx`` extra); `LstmLossModel` and `MlpModel` are
the numpy implementations, `kernels` their pure float32 kernels.
"""

from __future__ import annotations

from oxidize_ml.runtime.configs import (
    KIND_COMPRESSION_MLP,
    KIND_DQN,
    KIND_LSTM_LOSS,
    KINDS,
    MODEL_FILE_STEMS,
    CompressionMlpConfig,
    DqnMlpConfig,
    LossLstmConfig,
)
from oxidize_ml.runtime.load import load_lstm, load_mlp
from oxidize_ml.runtime.numpy_models import (
    LstmLossModel,
    LstmWeights,
    MlpModel,
    MlpWeights,
    NonFiniteOutputError,
)
from oxidize_ml.runtime.weights import ModelLoadError

__all__ = [
    "KINDS",
    "KIND_COMPRESSION_MLP",
    "KIND_DQN",
    "KIND_LSTM_LOSS",
    "MODEL_FILE_STEMS",
    "CompressionMlpConfig",
    "DqnMlpConfig",
    "LossLstmConfig",
    "LstmLossModel",
    "LstmWeights",
    "MlpModel",
    "MlpWeights",
    "ModelLoadError",
    "NonFiniteOutputError",
    "load_lstm",
    "load_mlp",
]
