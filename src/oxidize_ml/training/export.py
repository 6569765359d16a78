"""Export trained torch models to safetensors (numpy runtime) and ONNX (onnxruntime).

Both formats carry the model's kind and size config, so a file is
self-describing; both are written atomically (temp file in the same directory,
fsync, ``os.replace``) and validated *before* they get their final name:
a safetensors file is re-read with the runtime's own validator, an ONNX graph
is checked with ``onnx.checker`` and its onnxruntime outputs compared with
torch (`verify_onnx`).

ONNX graphs (single file, weights embedded, batch size 1):

- ``lstm_loss``, variant ``"step"`` (default): inputs ``x [1, F]``,
  ``h [1, H]``, ``c [1, H]``; outputs ``p [1, 1]``, ``h_out [1, H]``,
  ``c_out [1, H]``. One step from carried state, as the engine runs it.
- ``lstm_loss``, variant ``"window"``: input ``xs [1, T, F]`` (T fixed at
  export, default ``seq_len``); output ``p [1]``, P(loss) after the last step
  from zero state.
- ``dqn`` / ``compression_mlp``: input ``x [1, n_inputs]``; output
  ``y [1, n_outputs]``.

The ONNX ``metadata_props`` hold ``format`` (`ONNX_FORMAT`), ``kind``,
``config`` (JSON), ``variant``, ``feature_schema_version`` and ``exporter``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import nn

from oxidize_ml._atomic import atomic_write_bytes
from oxidize_ml.features import FEATURE_SCHEMA_VERSION
from oxidize_ml.runtime.configs import (
    LossLstmConfig,
    ModelConfig,
    config_from_json,
    config_to_json,
    expected_tensors,
)
from oxidize_ml.runtime.onnx_backend import ONNX_FORMAT, VARIANT_STEP, VARIANTS
from oxidize_ml.runtime.weights import ModelLoadError, encode_weights, read_weight_file
from oxidize_ml.training.torch_models import CompressionMlp, DqnMlp, LossLstm, PathMlp, build_model

log = logging.getLogger(__name__)

ONNX_TOLERANCE: Final = 1e-5
"""max |onnxruntime - torch| / max(1, |torch|) accepted by `export_onnx`: absolute for
outputs up to 1 (probabilities), relative above (Q-values reach tens, where float32
reassociation alone moves the 6th significant digit)"""


def _model_config(model: nn.Module) -> ModelConfig:
    if not isinstance(model, LossLstm | DqnMlp | CompressionMlp | PathMlp):
        raise TypeError(
            f"model must be LossLstm, DqnMlp, CompressionMlp or PathMlp, got {type(model).__name__}"
        )
    return model.config


def export_safetensors(
    model: nn.Module,
    path: str | Path,
    config: ModelConfig | None = None,
    *,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``model``'s weights as float32 tensors plus its config to a safetensors file.

    Parameters
    ----------
    model
        A `LossLstm`, `DqnMlp` or `CompressionMlp`.
    path
        Target file (conventionally ``<stem>.safetensors`` with the stems of
        `oxidize_ml.runtime.configs.MODEL_FILE_STEMS`).
    config
        Defaults to ``model.config``; if given it must equal it.
    extra_metadata
        More string metadata (e.g. a training run id); may not override the
        contract keys.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        Tensor names/shapes differ from the contract, or a weight is NaN/inf
        (the file is then not written).
    """
    model_cfg = _model_config(model)
    if config is None:
        config = model_cfg
    elif config != model_cfg:
        raise ValueError(f"config {config} does not match the model's {model_cfg}")
    state = model.state_dict()
    expected = expected_tensors(config)
    if set(state) != set(expected):
        raise ValueError(
            f"state_dict names {sorted(state)} differ from the contract {sorted(expected)}"
        )
    tensors = {
        name: state[name].detach().cpu().to(torch.float32).numpy() for name in sorted(expected)
    }
    try:
        data = encode_weights(tensors, config, extra_metadata=extra_metadata)
    except ModelLoadError as exc:  # e.g. NaN weights after a diverged run
        raise ValueError(f"not writing {path}: {exc}") from None
    return atomic_write_bytes(path, data)


def load_torch_model(path: str | Path) -> nn.Module:
    """Rebuild the torch module from a safetensors weight file (e.g. to continue training).

    Validated with the runtime's loader first; raises `ModelLoadError` on a bad file.
    """
    wf = read_weight_file(path)
    model = build_model(wf.config)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in wf.tensors.items()})
    return model.eval()


class _LstmStepGraph(nn.Module):
    def __init__(self, model: LossLstm) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.model.step(x, h, c)


class _LstmWindowGraph(nn.Module):
    def __init__(self, model: LossLstm) -> None:
        super().__init__()
        self.model = model

    def forward(self, xs: torch.Tensor) -> torch.Tensor:
        p, _ = self.model(xs)
        return p[:, -1]


def _graph_spec(
    model: nn.Module, variant: str, window_len: int | None
) -> tuple[nn.Module, tuple[torch.Tensor, ...], list[str], list[str]]:
    """(module to trace, example inputs, input names, output names)."""
    cfg = _model_config(model)
    if isinstance(cfg, LossLstmConfig):
        assert isinstance(model, LossLstm)  # _model_config: an LSTM config comes from a LossLstm
        if variant == VARIANT_STEP:
            args = (
                torch.zeros(1, cfg.n_features),
                torch.zeros(1, cfg.hidden),
                torch.zeros(1, cfg.hidden),
            )
            return _LstmStepGraph(model), args, ["x", "h", "c"], ["p", "h_out", "c_out"]
        t = cfg.seq_len if window_len is None else window_len
        if t < 1:
            raise ValueError(f"window_len must be >= 1, got {t}")
        return _LstmWindowGraph(model), (torch.zeros(1, t, cfg.n_features),), ["xs"], ["p"]
    if variant != VARIANT_STEP:
        raise ValueError(f"variant {variant!r} only applies to the LSTM; MLPs have one graph")
    return model, (torch.zeros(1, cfg.n_inputs),), ["x"], ["y"]


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the dynamo exporter's chatter that is not about our models.

    It logs a WARNING per missing torchvision op (we use none) and emits
    deprecation warnings from torch internals; real failures still raise.
    """
    noisy = logging.getLogger("torch.onnx._internal.exporter._registration")
    old = noisy.level
    noisy.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=r".*_flat_weights.*")
            yield
    finally:
        noisy.setLevel(old)


def _export_proto_bytes(
    graph: nn.Module, args: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str]
) -> tuple[Any, str]:
    """Export to an in-memory ``onnx.ModelProto``; dynamo first, TorchScript as fallback."""
    import onnx

    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                graph,
                args,
                dynamo=True,
                external_data=False,
                verbose=False,
                input_names=inputs,
                output_names=outputs,
            )
        if program is None:
            raise RuntimeError("torch.onnx.export returned no program")
        return program.model_proto, "dynamo"
    except Exception as exc:  # noqa: BLE001 - any exporter failure means: try the other one
        log.warning("dynamo ONNX export failed (%s); falling back to dynamo=False", exc)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter says it is legacy
        # torch's annotation says str | PathLike, but the TorchScript exporter
        # documents and accepts a binary file object too; the wrong stub is torch's.
        torch.onnx.export(
            graph,
            args,
            buf,  # type: ignore[arg-type]
            dynamo=False,
            input_names=inputs,
            output_names=outputs,
        )
    return onnx.load_from_string(buf.getvalue()), "torchscript"


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    variant: str = VARIANT_STEP,
    window_len: int | None = None,
    verify_n: int = 16,
    seed: int = 0,
) -> Path:
    """Export ``model`` to a single-file ONNX graph, check it, verify it, write it.

    Parameters
    ----------
    model
        A `LossLstm`, `DqnMlp` or `CompressionMlp` (put in eval mode here).
    path
        Target ``.onnx`` file (weights embedded, no ``.onnx.data`` beside it).
    variant
        ``"step"`` or, for the LSTM only, ``"window"`` (see module docstring).
    window_len
        Window length T of the ``"window"`` variant (default ``config.seq_len``).
    verify_n
        Random inputs compared between onnxruntime and torch before writing;
        0 skips (only when onnxruntime is not installed should you need to).
    seed
        Seed of those random inputs.

    Raises
    ------
    ValueError
        Unknown variant, or onnxruntime disagrees with torch by more than
        `ONNX_TOLERANCE` (nothing is written then).
    onnx.checker.ValidationError
        The exported graph is not valid ONNX.
    """
    import onnx

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {list(VARIANTS)}")
    cfg = _model_config(model)
    model.eval()
    graph, args, inputs, outputs = _graph_spec(model, variant, window_len)
    graph.eval()
    proto, exporter = _export_proto_bytes(graph, args, inputs, outputs)
    meta = {
        "format": ONNX_FORMAT,
        "kind": cfg.kind,
        "config": config_to_json(cfg),
        "variant": variant,
        "feature_schema_version": str(FEATURE_SCHEMA_VERSION),
        "exporter": exporter,
    }
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    if verify_n > 0:
        err = verify_onnx(model, data, n=verify_n, seed=seed)
        if not err <= ONNX_TOLERANCE:
            raise ValueError(
                f"onnxruntime output differs from torch by {err:.3g} > {ONNX_TOLERANCE}; not written"
            )
    return atomic_write_bytes(path, data)


def verify_onnx(model: nn.Module, path: str | Path | bytes, n: int = 16, *, seed: int = 0) -> float:
    """Largest |onnxruntime - torch| / max(1, |torch|) over ``n`` random inputs and every output.

    ``path`` is an exported ``.onnx`` file or its bytes; its variant is read
    from the metadata. Inputs: features ~ N(0, 1) (wider than the normalised
    range, to exercise saturation), h ~ U(-1, 1) (its range), c ~ N(0, 1).
    """
    import onnxruntime as ort

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    src = path if isinstance(path, bytes) else str(path)
    sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    cfg = _model_config(model)
    file_cfg = config_from_json(meta.get("kind", ""), meta.get("config", "{}"))
    if file_cfg != cfg:
        raise ValueError(f"ONNX file is for {file_cfg}, model is {cfg}")
    variant = meta.get("variant", VARIANT_STEP)
    rng = np.random.default_rng(seed)
    model.eval()
    worst = 0.0
    ref: tuple[torch.Tensor, ...]
    with torch.no_grad():
        for _ in range(n):
            if isinstance(cfg, LossLstmConfig) and variant == VARIANT_STEP:
                assert isinstance(model, LossLstm)  # see _model_config
                feeds = {
                    "x": rng.standard_normal((1, cfg.n_features)).astype(np.float32),
                    "h": rng.uniform(-1, 1, (1, cfg.hidden)).astype(np.float32),
                    "c": rng.standard_normal((1, cfg.hidden)).astype(np.float32),
                }
                ref = model.step(*(torch.from_numpy(v) for v in feeds.values()))
            elif isinstance(cfg, LossLstmConfig):
                (shape,) = [i.shape for i in sess.get_inputs()]
                feeds = {"xs": rng.standard_normal(tuple(shape)).astype(np.float32)}
                ref = (model(torch.from_numpy(feeds["xs"]))[0][:, -1],)
            else:
                feeds = {"x": rng.standard_normal((1, cfg.n_inputs)).astype(np.float32)}
                ref = (model(torch.from_numpy(feeds["x"])),)
            got = sess.run(None, feeds)
            for g, r in zip(got, ref, strict=True):
                ref_np = r.numpy()
                err = np.abs(np.asarray(g) - ref_np) / np.maximum(1.0, np.abs(ref_np))
                worst = max(worst, float(np.max(err)))
    return worst
