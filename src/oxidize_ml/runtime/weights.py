"""Reading and validating safetensors weight files (numpy only, never pickle).

A weight file is a safetensors file whose ``__metadata__`` holds:

``format``
    `WEIGHTS_FORMAT` (``"oxidize-ml-weights/1"``).
``kind``
    ``"lstm_loss"``, ``"dqn"`` or ``"compression_mlp"``.
``config``
    the size config as canonical JSON (`config_to_json`).
``feature_schema_version``
    `FEATURE_SCHEMA_VERSION` the model was trained with.

and exactly the float32 tensors `expected_tensors(config)` names. Anything
else raises `ModelLoadError` with a message naming the problem, so the engine
can log it and fall back to its heuristic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from oxidize_ml.features import FEATURE_SCHEMA_VERSION
from oxidize_ml.runtime.configs import (
    KIND_COMPRESSION_MLP,
    KIND_PATH_MLP,
    KINDS,
    WEIGHTS_FORMAT,
    ModelConfig,
    config_from_json,
    config_to_json,
    expected_tensors,
)
from oxidize_ml.runtime.safe_files import UnsafeFileError, read_path

# Our models are about 100 KiB; refuse anything far larger before reading it,
# so a wrong path (a trace, a dataset) fails fast instead of filling memory.
MAX_WEIGHT_FILE_BYTES: Final = 64 * 1024 * 1024
# safetensors header: 8-byte little-endian length, then that much JSON.
_HEADER_LEN_BYTES: Final = 8
_MAX_HEADER_BYTES: Final = 1024 * 1024
_META_KEYS: Final = ("format", "kind", "config", "feature_schema_version")


class ModelLoadError(ValueError):
    """A weight or ONNX file is missing, corrupt, or does not match its config."""


@dataclass(frozen=True, slots=True, eq=False)
class WeightFile:
    """The validated content of one weight file."""

    kind: str
    """model kind from the metadata"""
    config: ModelConfig
    """size config from the metadata"""
    tensors: Mapping[str, np.ndarray]
    """float32 tensors in torch layout, read-only, names per `expected_tensors`"""
    metadata: Mapping[str, str]
    """the raw ``__metadata__`` strings"""


def uses_network_features(kind: str) -> bool:
    """Whether a model of ``kind`` consumes the `oxidize_ml.features` vector.

    The compression oracle reads payload features defined by the compression
    area and the path selector path-metrics scores defined by the paths area,
    so the network feature schema version constrains neither.
    """
    return kind not in (KIND_COMPRESSION_MLP, KIND_PATH_MLP)


def read_metadata(data: bytes, *, source: str) -> dict[str, str]:
    """Parse the ``__metadata__`` of safetensors bytes without touching the tensors."""
    if len(data) < _HEADER_LEN_BYTES:
        raise ModelLoadError(f"{source}: too short to be a safetensors file ({len(data)} bytes)")
    n = int.from_bytes(data[:_HEADER_LEN_BYTES], "little")
    if n > _MAX_HEADER_BYTES or n > len(data) - _HEADER_LEN_BYTES:
        raise ModelLoadError(f"{source}: corrupt safetensors header (claims {n} bytes)")
    try:
        header = json.loads(data[_HEADER_LEN_BYTES : _HEADER_LEN_BYTES + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{source}: corrupt safetensors header: {exc}") from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"{source}: corrupt safetensors header (not a JSON object)")
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise ModelLoadError(f"{source}: no string __metadata__; not an oxidize-ml weight file")
    return meta


def parse_weight_bytes(
    data: bytes, *, source: str = "<bytes>", expected_kind: str | None = None
) -> WeightFile:
    """Validate and decode a weight file's bytes.

    Parameters
    ----------
    data
        The whole file content (hash it first if it must match a manifest:
        decoding the same bytes that were hashed leaves no window for a swap).
    source
        Name used in error messages (usually the path).
    expected_kind
        If given, the file's ``kind`` must equal it.

    Raises
    ------
    ModelLoadError
        On any problem, with a message naming it.
    """
    meta = read_metadata(data, source=source)
    missing_keys = [k for k in _META_KEYS if k not in meta]
    if missing_keys:
        raise ModelLoadError(f"{source}: metadata lacks {missing_keys}; has {sorted(meta)}")
    if meta["format"] != WEIGHTS_FORMAT:
        raise ModelLoadError(
            f"{source}: weight format {meta['format']!r} is not supported; expected {WEIGHTS_FORMAT!r}"
        )
    kind = meta["kind"]
    if kind not in KINDS:
        raise ModelLoadError(f"{source}: unknown model kind {kind!r}; choose from {list(KINDS)}")
    if expected_kind is not None and kind != expected_kind:
        raise ModelLoadError(f"{source}: holds a {kind!r} model, expected {expected_kind!r}")
    # Every file this package writes records the schema version, whatever its kind
    # (learned-feature versions of payload models are checked by their loaders too):
    # a file that says otherwise is not what it claims to be.
    if meta["feature_schema_version"] != str(FEATURE_SCHEMA_VERSION):
        raise ModelLoadError(
            f"{source}: trained for feature schema version {meta['feature_schema_version']!r}, "
            f"this package uses {FEATURE_SCHEMA_VERSION}"
        )
    try:
        config = config_from_json(kind, meta["config"])
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{source}: bad config: {exc}") from None

    from safetensors.numpy import load as st_load  # runtime dependency

    try:
        tensors = st_load(data)
    except Exception as exc:  # noqa: BLE001 - the Rust binding raises several exception types
        raise ModelLoadError(f"{source}: corrupt safetensors data: {exc}") from None
    check_tensors(tensors, config, source=source)
    for t in tensors.values():
        t.flags.writeable = False
    return WeightFile(kind=kind, config=config, tensors=tensors, metadata=meta)


def encode_weights(
    tensors: Mapping[str, np.ndarray],
    config: ModelConfig,
    *,
    extra_metadata: Mapping[str, str] | None = None,
) -> bytes:
    """The bytes of a weight file holding ``tensors`` (torch layout) for ``config``.

    The one writer of the format: `oxidize_ml.training.export.export_safetensors`
    calls it with a torch model's weights. The result is validated with
    `parse_weight_bytes` before it is returned, so an invalid file (wrong
    names or shapes, NaN weights) is never produced.

    Raises
    ------
    ModelLoadError
        The tensors do not fit the contract; ``ValueError`` when
        ``extra_metadata`` tries to override a contract key.
    """
    from safetensors.numpy import save as st_save

    metadata = {
        "format": WEIGHTS_FORMAT,
        "kind": config.kind,
        "config": config_to_json(config),
        "feature_schema_version": str(FEATURE_SCHEMA_VERSION),
    }
    for k, v in (extra_metadata or {}).items():
        if k in metadata:
            raise ValueError(f"extra_metadata may not override {k!r}")
        metadata[k] = str(v)
    # Weights are stored as float32 whatever they were trained in.
    arrays = {name: np.ascontiguousarray(t, dtype=np.float32) for name, t in tensors.items()}
    data = st_save(arrays, metadata=metadata)
    parse_weight_bytes(data, source="<new weight file>", expected_kind=config.kind)
    return data


def read_weight_file(path: str | Path, *, expected_kind: str | None = None) -> WeightFile:
    """Read and validate a weight file from disk (see `parse_weight_bytes`)."""
    return parse_weight_bytes(read_bounded(path), source=str(path), expected_kind=expected_kind)


def read_bounded(path: str | Path, max_bytes: int = MAX_WEIGHT_FILE_BYTES) -> bytes:
    """Read a model file, refusing missing, non-regular, untrusted or oversized files.

    The rules (regular files only, never blocking on a FIFO, no
    world-writable or other-owned file or directory, symlink targets
    checked, bounded read) are `oxidize_ml.runtime.safe_files`'.
    """
    p = Path(path)
    try:
        return read_path(p, max_bytes)
    except FileNotFoundError:
        raise ModelLoadError(f"{p}: no such file") from None
    except UnsafeFileError as exc:
        raise ModelLoadError(f"{p}: {exc}") from None
    except OSError as exc:
        raise ModelLoadError(f"{p}: cannot read: {exc}") from None


def check_tensors(tensors: Mapping[str, np.ndarray], config: ModelConfig, *, source: str) -> None:
    """Names, shapes, dtype (float32) and finiteness against `expected_tensors(config)`."""
    expected = expected_tensors(config)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelLoadError(
            f"{source}: tensors missing {missing}, unexpected {unexpected} for config {config}"
        )
    for name, shape in expected.items():
        t = tensors[name]
        if t.dtype != np.float32:
            raise ModelLoadError(f"{source}: tensor {name!r} has dtype {t.dtype}, expected float32")
        if tuple(t.shape) != shape:
            raise ModelLoadError(
                f"{source}: tensor {name!r} has shape {tuple(t.shape)}, expected {shape} for {config}"
            )
        if not np.isfinite(t).all():
            raise ModelLoadError(f"{source}: tensor {name!r} contains NaN or infinity")
