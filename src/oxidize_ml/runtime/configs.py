"""Size configs of the learned models and the weight-file contract they imply.

These dataclasses live in `runtime/` (numpy only) rather than `training/` so
the engine can validate a weight file without importing torch; the torch
modules in `oxidize_ml.training.torch_models` are built from the same configs.

A config is saved beside its weights (JSON in the safetensors metadata and in
the ONNX ``metadata_props``), and `expected_tensors` derives from it the exact
tensor names and shapes a weight file must hold. Names follow the torch
``state_dict`` of the training modules, so a file loads back into torch with
``load_state_dict`` unchanged.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Final

from oxidize_ml._validate import check_int
from oxidize_ml.congestion.actions import N_ACTIONS
from oxidize_ml.features import N_FEATURES
from oxidize_ml.types import MlCompressionDecision

# Version of the weight-file contract below (metadata keys, tensor names).
# Bump it when either changes; loaders refuse other versions.
WEIGHTS_FORMAT: Final = "oxidize-ml-weights/1"

KIND_LSTM_LOSS: Final = "lstm_loss"
KIND_DQN: Final = "dqn"
KIND_COMPRESSION_MLP: Final = "compression_mlp"
KIND_PATH_MLP: Final = "path_mlp"
KINDS: Final = (KIND_LSTM_LOSS, KIND_DQN, KIND_COMPRESSION_MLP, KIND_PATH_MLP)

# File stems from the spec's "Model Files" table. Each model ships as
# <stem>.safetensors and <stem>.onnx.
MODEL_FILE_STEMS: Final[dict[str, str]] = {
    KIND_LSTM_LOSS: "loss_predictor",
    KIND_DQN: "congestion_controller",
    KIND_COMPRESSION_MLP: "compression_oracle",
    KIND_PATH_MLP: "path_selector",
}

# Upper bounds on sizes: a corrupt or hostile config must not make a loader
# allocate gigabytes before the shape check fails.
_MAX_WIDTH: Final = 4096
_MAX_LAYERS: Final = 16


@dataclass(frozen=True, slots=True)
class LossLstmConfig:
    """Sizes of the LSTM loss predictor (spec: 8 features, 64 hidden units, 20 steps)."""

    kind: ClassVar[str] = KIND_LSTM_LOSS

    n_features: int = N_FEATURES
    """inputs per step (the feature schema's 8 normalised features)"""
    hidden: int = 64
    """LSTM hidden and cell size (spec: 64)"""
    seq_len: int = 20
    """truncated-BPTT chunk length in training and the length of `predict_window`
    windows (spec: 20). Inference itself runs one step at a time from carried
    (h, c) state, which equals the windowed computation only because training
    is stateful over chunks of this length (REFERENCES section 5)."""

    def __post_init__(self) -> None:
        check_int("n_features", self.n_features, lo=1, hi=_MAX_WIDTH)
        check_int("hidden", self.hidden, lo=1, hi=_MAX_WIDTH)
        check_int("seq_len", self.seq_len, lo=1, hi=100_000)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DqnMlpConfig:
    """Sizes of the DQN congestion controller: ``n_inputs -> hidden -> hidden -> n_actions``."""

    kind: ClassVar[str] = KIND_DQN

    n_inputs: int = N_FEATURES
    """the 8 schema features plus optional history features appended after them"""
    n_actions: int = N_ACTIONS
    """Q-values out, one per `DrlAction` in its order (spec: 6)"""
    hidden: int = 128
    """width of each hidden layer (spec: 128)"""
    n_hidden_layers: int = 2
    """number of hidden Linear+ReLU layers (spec: 2)"""

    def __post_init__(self) -> None:
        check_int("n_inputs", self.n_inputs, lo=N_FEATURES, hi=_MAX_WIDTH)
        check_int("n_actions", self.n_actions, lo=N_ACTIONS, hi=N_ACTIONS)
        check_int("hidden", self.hidden, lo=1, hi=_MAX_WIDTH)
        check_int("n_hidden_layers", self.n_hidden_layers, lo=1, hi=_MAX_LAYERS)

    @property
    def n_outputs(self) -> int:
        return self.n_actions

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CompressionMlpConfig:
    """Sizes of the compression oracle: predicted gain per `MlCompressionDecision`."""

    kind: ClassVar[str] = KIND_COMPRESSION_MLP

    n_inputs: int = 8
    """payload features (entropy, byte-frequency, size...; defined by the compression area)"""
    n_outputs: int = len(MlCompressionDecision)
    """one predicted gain per decision, in `MlCompressionDecision` order (spec: 4)"""
    hidden: int = 32
    """width of each hidden layer; small because it may run per packet"""
    n_hidden_layers: int = 1
    """number of hidden Linear+ReLU layers; one keeps a per-packet call near 4 us"""

    def __post_init__(self) -> None:
        check_int("n_inputs", self.n_inputs, lo=1, hi=_MAX_WIDTH)
        check_int("n_outputs", self.n_outputs, lo=1, hi=_MAX_WIDTH)
        check_int("hidden", self.hidden, lo=1, hi=_MAX_WIDTH)
        check_int("n_hidden_layers", self.n_hidden_layers, lo=1, hi=_MAX_LAYERS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PathMlpConfig:
    """Sizes of the learned path selector's prior: per-path features -> predicted reward.

    The inputs are defined by `oxidize_ml.paths.learned` (path metrics scores,
    their changes, the traffic type one-hot), not by the network feature schema.
    """

    kind: ClassVar[str] = KIND_PATH_MLP

    n_inputs: int = 20
    """per-(path, traffic type) features (`oxidize_ml.paths.learned.INPUT_NAMES`)"""
    n_outputs: int = 1
    """the predicted reward of the next flow on the path"""
    hidden: int = 32
    """width of each hidden layer"""
    n_hidden_layers: int = 2
    """number of hidden Linear+ReLU layers"""

    def __post_init__(self) -> None:
        check_int("n_inputs", self.n_inputs, lo=1, hi=_MAX_WIDTH)
        check_int("n_outputs", self.n_outputs, lo=1, hi=1)
        check_int("hidden", self.hidden, lo=1, hi=_MAX_WIDTH)
        check_int("n_hidden_layers", self.n_hidden_layers, lo=1, hi=_MAX_LAYERS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ModelConfig = LossLstmConfig | DqnMlpConfig | CompressionMlpConfig | PathMlpConfig
MlpConfig = DqnMlpConfig | CompressionMlpConfig | PathMlpConfig

CONFIG_CLASSES: Final[dict[str, type[ModelConfig]]] = {
    KIND_LSTM_LOSS: LossLstmConfig,
    KIND_DQN: DqnMlpConfig,
    KIND_COMPRESSION_MLP: CompressionMlpConfig,
    KIND_PATH_MLP: PathMlpConfig,
}


def config_from_dict(kind: str, data: object) -> ModelConfig:
    """Build the config of model ``kind`` from JSON data, strictly.

    Raises
    ------
    ValueError
        Unknown kind, unknown or missing keys, or out-of-range sizes.
    TypeError
        A size that is not an int.
    """
    try:
        cls = CONFIG_CLASSES[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; choose from {list(KINDS)}") from None
    if not isinstance(data, dict):
        raise TypeError(f"config of {kind!r} must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    missing = sorted(names - set(data))
    if unknown or missing:
        raise ValueError(
            f"config of {kind!r} has unknown keys {unknown} / missing keys {missing}; "
            f"expected exactly {sorted(names)}"
        )
    return cls(**data)


def config_to_json(config: ModelConfig) -> str:
    """Canonical JSON of a config (sorted keys), as stored in weight files."""
    return json.dumps(config.to_dict(), sort_keys=True)


def config_from_json(kind: str, text: str) -> ModelConfig:
    """Parse `config_to_json` output; raises ``ValueError`` on malformed JSON too."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"config of {kind!r} is not valid JSON: {exc}") from None
    return config_from_dict(kind, data)


def expected_tensors(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape a weight file of ``config`` must hold (torch layout).

    LSTM: ``lstm.weight_ih_l0 [4H, F]``, ``lstm.weight_hh_l0 [4H, H]``,
    ``lstm.bias_ih_l0 [4H]``, ``lstm.bias_hh_l0 [4H]`` (gate order i, f, g, o as
    in torch.nn.LSTM), ``head.weight [1, H]``, ``head.bias [1]``.
    MLP: ``layers.{k}.weight [out, in]``, ``layers.{k}.bias [out]`` for each
    Linear layer k, input layer first.
    """
    if isinstance(config, LossLstmConfig):
        f, h = config.n_features, config.hidden
        return {
            "lstm.weight_ih_l0": (4 * h, f),
            "lstm.weight_hh_l0": (4 * h, h),
            "lstm.bias_ih_l0": (4 * h,),
            "lstm.bias_hh_l0": (4 * h,),
            "head.weight": (1, h),
            "head.bias": (1,),
        }
    widths = mlp_widths(config)
    out: dict[str, tuple[int, ...]] = {}
    for k, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        out[f"layers.{k}.weight"] = (n_out, n_in)
        out[f"layers.{k}.bias"] = (n_out,)
    return out


def mlp_widths(config: MlpConfig) -> list[int]:
    """Layer widths ``[n_inputs, hidden, ..., n_outputs]`` of an MLP config."""
    return [config.n_inputs, *([config.hidden] * config.n_hidden_layers), config.n_outputs]
